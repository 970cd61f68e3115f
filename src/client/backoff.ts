/**
 * Reconnect backoff as a standalone, pure object: no timers, no clock, randomness injected.
 * The reconnecting client asks {@link Backoff.next} for a delay before each attempt and
 * calls {@link Backoff.reset} when it loses a link that heard the server after its
 * handshake, or once a connection has stayed healthy for `stableAfter`.
 *
 * Policies follow Marc Brooker, "Exponential Backoff and Jitter" (AWS Architecture Blog,
 * 2015): https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
 * The shape is grpc-js `backoff-timeout.ts`, with two of its peers' mistakes avoided:
 * jitter is applied after the cap (Socket.IO jitters before clamping, so from its fifth try
 * every client waits exactly the cap), and it is re-drawn on every attempt.
 */

import { choiceOption, functionOption, numberOption, positiveOption } from '../options.js';

/**
 * How the delay is randomised inside the exponential ceiling.
 * - `'full'`: uniform in [0, ceiling). Least total work and fastest completion in the AWS study.
 * - `'equal'`: uniform in [ceiling/2, ceiling). Never retries sooner than half the ceiling.
 * - `'decorrelated'`: uniform in [initialDelay, min(maxDelay, 3 x previous delay)); the cap
 *   bounds the range before the draw, so no client waits exactly maxDelay.
 * - `'none'`: exactly the ceiling. Deterministic; every client retries in lockstep, so only
 *   for tests or a single client.
 */
export type JitterMode = 'full' | 'equal' | 'decorrelated' | 'none';

/** Options for {@link Backoff}. Every field is optional; see {@link BACKOFF_DEFAULTS}. */
export interface BackoffOptions {
  /**
   * Ceiling of the first delay in milliseconds; must be > 0.
   * @default 500
   */
  initialDelay?: number;
  /**
   * Upper bound of any delay in milliseconds; must be >= initialDelay and at most
   * {@link MAX_BACKOFF_DELAY}.
   * @default 30_000
   */
  maxDelay?: number;
  /**
   * Growth factor of the ceiling per attempt; must be >= 1.
   * @default 2
   */
  multiplier?: number;
  /**
   * Randomisation policy.
   * @default 'full'
   */
  jitter?: JitterMode;
  /**
   * Source of uniform numbers in [0, 1). Injected so that tests are deterministic.
   * @default Math.random
   */
  random?: () => number;
}

/**
 * Largest accepted delay. Node's setTimeout fires after 1 ms for anything above
 * 2^31 - 1 ms (with a TimeoutOverflowWarning), which would turn a long backoff into a storm.
 */
export const MAX_BACKOFF_DELAY = 2 ** 31 - 1;

/** The defaults of {@link BackoffOptions} (without `random`). */
export const BACKOFF_DEFAULTS: Readonly<Required<Omit<BackoffOptions, 'random'>>> = Object.freeze({
  /** First-delay ceiling: quick enough that a one-off reset costs well under a second. */
  initialDelay: 500,
  /** Cap: a long outage is noticed within 30 s of ending, at a bounded retry rate. */
  maxDelay: 30_000,
  /** Growth: doubling reaches the default cap on the 7th attempt (500 x 2^6 > 30 s). */
  multiplier: 2,
  /** Full jitter spreads a fleet over the whole window (see the AWS article). */
  jitter: 'full',
});

const JITTER_MODES: readonly JitterMode[] = ['full', 'equal', 'decorrelated', 'none'];

/**
 * Exponential backoff with jitter.
 *
 * The ceiling of attempt n (counting from 0 since the last reset) is
 * `min(maxDelay, initialDelay * multiplier^n)`; the jitter policy then draws the delay
 * inside it. The ceiling is kept as state and grown by one multiplication per attempt, so
 * it never overflows however many attempts are drawn.
 */
export class Backoff {
  readonly #initialDelay: number;
  readonly #maxDelay: number;
  readonly #multiplier: number;
  readonly #jitter: JitterMode;
  readonly #random: () => number;

  #attempt = 0;
  /** Ceiling of the next attempt; always within [initialDelay, maxDelay]. */
  #ceiling: number;
  /** Previous delay for the decorrelated policy; starts at initialDelay. */
  #prev: number;

  /**
   * @param options Read once and never mutated.
   * @throws {InvalidArgumentError} naming the option when a value is out of range.
   */
  constructor(options: BackoffOptions = {}) {
    // A zero initial delay would make every policy return 0 forever: no backoff at all,
    // which is exactly the reconnect storm this object exists to prevent.
    const initialDelay = positiveOption(
      'backoff.initialDelay',
      options.initialDelay,
      BACKOFF_DEFAULTS.initialDelay,
      MAX_BACKOFF_DELAY,
    );
    const maxDelay = numberOption(
      'backoff.maxDelay',
      options.maxDelay,
      BACKOFF_DEFAULTS.maxDelay,
      initialDelay,
      MAX_BACKOFF_DELAY,
    );
    // Below 1 the ceiling would shrink and retries would speed up during an outage.
    const multiplier = numberOption(
      'backoff.multiplier',
      options.multiplier,
      BACKOFF_DEFAULTS.multiplier,
      1,
      Number.MAX_VALUE,
    );
    const jitter = choiceOption(
      'backoff.jitter',
      options.jitter,
      BACKOFF_DEFAULTS.jitter,
      JITTER_MODES,
    );
    const random = functionOption('backoff.random', options.random) ?? Math.random;

    this.#initialDelay = initialDelay;
    this.#maxDelay = maxDelay;
    this.#multiplier = multiplier;
    this.#jitter = jitter;
    this.#random = random;
    this.#ceiling = initialDelay;
    this.#prev = initialDelay;
  }

  /** Attempts drawn with {@link next} since construction or the last {@link reset}. */
  get attempt(): number {
    return this.#attempt;
  }

  /**
   * Delay in milliseconds before the next attempt; advances the attempt count. Always within
   * [0, maxDelay]; the random part is re-drawn on every call.
   */
  next(): number {
    const ceiling = this.#ceiling;
    let delay: number;
    switch (this.#jitter) {
      case 'full':
        delay = this.#draw() * ceiling;
        break;
      case 'equal':
        delay = ceiling / 2 + (this.#draw() * ceiling) / 2;
        break;
      case 'decorrelated': {
        // AWS writes min(cap, random_between(base, prev * 3)), which clamps after the draw:
        // every draw above the cap lands exactly on it, and in steady state about a third of
        // a fleet (measured with the defaults) waits exactly maxDelay, retrying in lockstep.
        // Clamping the range first and drawing inside it is identical while prev * 3 is
        // below the cap and leaves no point mass at the cap.
        const upper = Math.min(this.#maxDelay, this.#prev * 3);
        delay = this.#initialDelay + this.#draw() * (upper - this.#initialDelay);
        this.#prev = delay;
        break;
      }
      case 'none':
        delay = ceiling;
        break;
    }
    this.#attempt++;
    // Once at the cap the product is maxDelay * multiplier at most: finite, then clamped.
    if (ceiling < this.#maxDelay)
      this.#ceiling = Math.min(this.#maxDelay, ceiling * this.#multiplier);
    return delay;
  }

  /** Back to the first attempt (call it once the server has proved reachable). */
  reset(): void {
    this.#attempt = 0;
    this.#ceiling = this.#initialDelay;
    this.#prev = this.#initialDelay;
  }

  /**
   * One uniform draw. An injected source that strays outside [0, 1] (or returns NaN) is
   * clamped so that a faulty hook can never produce a negative or above-cap delay.
   */
  #draw(): number {
    const r = this.#random();
    if (r >= 0 && r <= 1) return r;
    return r > 1 ? 1 : 0;
  }
}
