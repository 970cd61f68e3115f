/**
 * The pluggable failure detector: given when the peer was last heard, when does it
 * become suspect, and when dead? Pure and timer-free: the caller passes `now` (ms on its
 * injected clock) and schedules its own timers at {@link FailureDetector.suspectAt} and
 * {@link FailureDetector.deadAt}, re-reading them after each `heard()`.
 */

import { checkNumber } from './validate.js';

/**
 * The heartbeat settings a detector works from, all in ms. `interval` is how often the
 * peer is expected to send a heartbeat on an idle link; `timeout` is the hard bound of
 * silence after which the peer is dead; `suspectAfter` is the silence after which a
 * fixed detector calls it suspect.
 */
export interface DetectorSettings {
  /** Expected heartbeat interval in ms (> 0). */
  interval: number;
  /** Silence in ms after which the peer is dead (> 0); a hard bound for every detector. */
  timeout: number;
  /** Silence in ms after which the peer is suspect (> 0, at most `timeout`). */
  suspectAfter: number;
}

/**
 * A failure detector for one link. Implementations are pure state machines over
 * caller-supplied times: no timers, no I/O.
 */
export interface FailureDetector {
  /** The peer was heard from at `now` (any arrival counts as life). O(1). */
  heard(now: number): void;
  /**
   * A heartbeat inter-arrival sample in ms (the caller reports the gap between
   * consecutive heartbeat frames on an otherwise idle link). Fixed detector ignores it.
   */
  sample(gapMs: number): void;
  /** Absolute time (ms) at which, with nothing more heard, the peer becomes suspect. */
  suspectAt(): number;
  /** Absolute time (ms) at which, with nothing more heard, the peer is declared dead. */
  deadAt(): number;
  /** Suspicion for display and metrics: fixed = silence/timeout (0..1+), phi = phi. */
  suspicion(now: number): number;
  /** Starts over (a new link) as if heard at `now`. */
  reset(now: number): void;
  /** The interval and timeout changed (server granted or retuned them). */
  configure(settings: DetectorSettings): void;
}

/**
 * Builds the detector for a new link from its settings, as if the peer was heard at
 * `now`. The client and server take one of these so the detector is pluggable
 * (see `fixedDetector()` and `phiDetector()` in `health/index.ts`).
 */
export type DetectorFactory = (settings: DetectorSettings, now: number) => FailureDetector;

/**
 * Checks detector settings and returns a frozen copy (the caller's object is never kept,
 * unless it is frozen already: then it cannot change, and every link of a server can
 * share the one settings object instead of holding a copy each).
 * @throws InvalidArgumentError naming the bad field: each must be a finite number > 0,
 *   and `suspectAfter` must not exceed `timeout` (a peer cannot be dead before suspect).
 */
export function checkDetectorSettings(settings: DetectorSettings): Readonly<DetectorSettings> {
  const interval = checkNumber('interval', settings.interval, { min: 0, minExclusive: true });
  const timeout = checkNumber('timeout', settings.timeout, { min: 0, minExclusive: true });
  const suspectAfter = checkNumber('suspectAfter', settings.suspectAfter, {
    min: 0,
    minExclusive: true,
    max: timeout,
  });
  if (Object.isFrozen(settings) && Object.getPrototypeOf(settings) === Object.prototype) {
    return settings;
  }
  return Object.freeze({ interval, timeout, suspectAfter });
}

/**
 * The default detector: fixed silence budgets, as TCP keepalive, gRPC keepalive and
 * most heartbeat protocols do. `suspectAt = last + suspectAfter`,
 * `deadAt = last + timeout`, `suspicion = silence / timeout`. Inter-arrival samples are
 * ignored. Predictable and easy to reason about; prefer the phi accrual detector when
 * the link's jitter is unknown or varies.
 */
export class FixedTimeoutDetector implements FailureDetector {
  #settings: Readonly<DetectorSettings>;
  #last: number;

  /**
   * @param settings heartbeat settings, validated by {@link checkDetectorSettings}.
   * @param now the time the link starts, counted as the peer's first sign of life.
   * @throws InvalidArgumentError for invalid settings or a non-finite `now`.
   */
  constructor(settings: DetectorSettings, now: number) {
    this.#settings = checkDetectorSettings(settings);
    this.#last = checkNumber('now', now);
  }

  /** @inheritdoc */
  heard(now: number): void {
    // Max, not assignment: a late-reported arrival must not move the deadline backwards.
    if (now > this.#last) this.#last = now;
  }

  /** Ignored: a fixed budget does not learn from the link. */
  sample(_gapMs: number): void {}

  /** @inheritdoc */
  suspectAt(): number {
    return this.#last + this.#settings.suspectAfter;
  }

  /** @inheritdoc */
  deadAt(): number {
    return this.#last + this.#settings.timeout;
  }

  /** Silence as a fraction of the timeout: 0 just after hearing, 1 at `deadAt()`, above 1 after. */
  suspicion(now: number): number {
    return Math.max(0, now - this.#last) / this.#settings.timeout;
  }

  /** @inheritdoc */
  reset(now: number): void {
    this.#last = checkNumber('now', now);
  }

  /** Takes the new budgets; the last-heard time is kept, so deadlines move by the difference. */
  configure(settings: DetectorSettings): void {
    this.#settings = checkDetectorSettings(settings);
  }

  /** When the peer was last heard (ms on the caller's clock). */
  get lastHeard(): number {
    return this.#last;
  }
}
