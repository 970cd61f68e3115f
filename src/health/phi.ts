/**
 * The phi accrual failure detector: N. Hayashibara, X. Défago, R. Yared, T. Katayama,
 * "The φ Accrual Failure Detector", SRDS 2004 (https://doi.org/10.1109/RELDIS.2004.1353004),
 * following Akka's implementation, now Apache Pekko's
 * (https://github.com/apache/pekko/blob/main/remote/src/main/scala/org/apache/pekko/remote/PhiAccrualFailureDetector.scala).
 *
 * Instead of a fixed silence budget it outputs a suspicion level phi = -log10(P(a
 * heartbeat arrives later than now)), modelling heartbeat inter-arrival times as a
 * normal distribution fitted to a sliding window of recent gaps. A threshold on phi
 * then adapts by itself to the link's jitter: phi = 8 means the model gives a 1e-8
 * chance that the peer is merely late.
 */

import { checkDetectorSettings, type DetectorSettings, type FailureDetector } from './detector.js';
import { checkNumber } from './validate.js';

/**
 * Coefficients of the logistic approximation of the standard normal CDF that Akka
 * uses: Phi(y) ~= 1 / (1 + exp(-y (1.5976 + 0.070566 y^2))), error below 1.4e-4 over the
 * real line (Bowling et al., "A logistic approximation to the cumulative normal
 * distribution", JIEM 2009, https://doi.org/10.3926/jiem.2009.v2n1.p114-127).
 * Unlike an erf series it has a closed-form inverse (a cubic), which gives exact crossing times.
 */
const LOGISTIC_B = 1.5976;
const LOGISTIC_A = 0.070566;

/** Options of {@link PhiAccrualDetector}; every field is optional. */
export interface PhiAccrualOptions {
  /**
   * phi at which the peer is declared dead. 8 is Akka's and Cassandra's default: a 1e-8
   * modelled chance of a false positive per decision.
   * @default 8
   */
  threshold?: number;
  /**
   * phi at which the peer becomes suspect; must not exceed `threshold`. Defaults to half
   * of `threshold` (4 for the default: a 1e-4 modelled chance of a false suspicion),
   * so that raising the dead threshold for a jittery link also calms the suspect state,
   * while suspicion still comes well before death.
   * @default threshold / 2
   */
  suspectThreshold?: number;
  /**
   * How many inter-arrival samples the window keeps (at least 2, so the initial
   * estimate's spread fits). 200 is Akka's default: at a 1 s interval the model follows
   * the last ~3 minutes of the link.
   * @default 200
   */
  maxSampleSize?: number;
  /**
   * Floor of the standard deviation in ms. A perfectly regular link has a deviation near 0,
   * which would make phi jump to infinity a hair after the mean; the floor keeps a
   * GC pause or a scheduling hiccup from being read as death (Akka default, 100 ms).
   * @default 100
   */
  minStdDeviation?: number;
  /**
   * Extra pause in ms added to the mean before phi is computed: tolerance for known,
   * expected stalls (for example stop-the-world GC or a peer's busy event loop). Akka's
   * cluster uses 3 s. The default 0 is the paper's pure model, so phi alone decides: on
   * a very regular link the deviation sits at the `minStdDeviation` floor and the peer
   * is dead about 5.2 deviations past the mean (phi 8), i.e. ~520 ms late with the
   * defaults. Set this to the longest stall a live peer may show.
   * @default 0
   */
  acceptableHeartbeatPause?: number;
  /**
   * Expected heartbeat gap in ms before any sample arrives. The window is seeded with
   * `estimate -/+ estimate/4` (mean = estimate, deviation = estimate/4), as Akka does.
   * @default settings.interval
   */
  firstHeartbeatEstimate?: number;
}

/** Defaults of {@link PhiAccrualOptions} that are constants; see each field for the reason. */
export const PHI_ACCRUAL_DEFAULTS: Readonly<
  Required<Omit<PhiAccrualOptions, 'suspectThreshold' | 'firstHeartbeatEstimate'>>
> = Object.freeze({
  threshold: 8,
  maxSampleSize: 200,
  minStdDeviation: 100,
  acceptableHeartbeatPause: 0,
});

/** {@link PhiAccrualOptions} validated and with defaults applied, except the estimate that defaults per link. */
export type ResolvedPhiAccrualOptions = Readonly<
  Required<Omit<PhiAccrualOptions, 'firstHeartbeatEstimate'>> &
    Pick<PhiAccrualOptions, 'firstHeartbeatEstimate'>
>;

/**
 * Validates `options` and applies the defaults, returning a frozen copy; the caller's
 * object is never mutated. `firstHeartbeatEstimate` stays `undefined` when not given,
 * since its default is each link's interval.
 * @throws InvalidArgumentError naming the first invalid option.
 */
export function resolvePhiAccrualOptions(
  options: PhiAccrualOptions = {},
): ResolvedPhiAccrualOptions {
  const d = PHI_ACCRUAL_DEFAULTS;
  const threshold = checkNumber('threshold', options.threshold ?? d.threshold, {
    min: 0,
    minExclusive: true,
  });
  const suspectThreshold = checkNumber(
    'suspectThreshold',
    options.suspectThreshold ?? threshold / 2,
    { min: 0, minExclusive: true, max: threshold },
  );
  const maxSampleSize = checkNumber('maxSampleSize', options.maxSampleSize ?? d.maxSampleSize, {
    min: 2,
    integer: true,
  });
  const minStdDeviation = checkNumber(
    'minStdDeviation',
    options.minStdDeviation ?? d.minStdDeviation,
    { min: 0, minExclusive: true },
  );
  const acceptableHeartbeatPause = checkNumber(
    'acceptableHeartbeatPause',
    options.acceptableHeartbeatPause ?? d.acceptableHeartbeatPause,
    { min: 0 },
  );
  const firstHeartbeatEstimate =
    options.firstHeartbeatEstimate === undefined
      ? undefined
      : checkNumber('firstHeartbeatEstimate', options.firstHeartbeatEstimate, {
          min: 0,
          minExclusive: true,
        });
  return Object.freeze({
    threshold,
    suspectThreshold,
    maxSampleSize,
    minStdDeviation,
    acceptableHeartbeatPause,
    firstHeartbeatEstimate,
  });
}

/**
 * phi for a silence of `elapsedMs`, given the distribution's `mean` and `stdDeviation`
 * (both ms): -log10(1 - CDF(elapsed)) with Akka's logistic CDF. Computed as
 * log10(1 + exp(z)) with a stable softplus, so it is finite for any finite silence
 * (Akka's direct form overflows to Infinity about 22 deviations past the mean), and
 * strictly increasing in `elapsedMs`.
 */
export function phiOf(elapsedMs: number, mean: number, stdDeviation: number): number {
  const y = (elapsedMs - mean) / stdDeviation;
  const z = y * (LOGISTIC_B + LOGISTIC_A * y * y);
  // 1 - CDF = 1 / (1 + e^z), so phi = log10(1 + e^z) = softplus(z) / ln 10.
  const softplus = z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
  return softplus / Math.LN10;
}

/**
 * The inverse of {@link phiOf}: the silence in ms at which phi reaches `phi` (> 0).
 * Solves log10(1 + e^z) = phi for z, then the cubic A y^3 + B y = z for y by Cardano
 * (one real root, since the cubic is strictly increasing), then one Newton step to
 * polish rounding. Exact to far below a microsecond for realistic inputs.
 */
export function elapsedForPhi(phi: number, mean: number, stdDeviation: number): number {
  const x = phi * Math.LN10;
  // z = ln(10^phi - 1), written so neither small nor large phi loses precision.
  const z = x + Math.log(-Math.expm1(-x));
  // The cubic is odd: solve for |z| and restore the sign, avoiding cancellation in Cardano.
  const w = Math.abs(z);
  const p = LOGISTIC_B / LOGISTIC_A;
  const halfQ = w / (2 * LOGISTIC_A);
  const c = Math.cbrt(halfQ + Math.sqrt(halfQ * halfQ + (p * p * p) / 27));
  let y = c - p / (3 * c);
  y -= (LOGISTIC_A * y * y * y + LOGISTIC_B * y - w) / (3 * LOGISTIC_A * y * y + LOGISTIC_B);
  return mean + Math.sign(z) * y * stdDeviation;
}

/**
 * The phi accrual detector as a {@link FailureDetector}. `heard()` moves the last-arrival
 * time; `sample()` feeds the window of heartbeat gaps (running sums, O(1) amortized);
 * `suspectAt()` / `deadAt()` are where phi crosses `suspectThreshold` / `threshold`,
 * found analytically, with `deadAt()` never later than `last + timeout` so the user's
 * hard bound always holds, and `suspectAt()` never later than `deadAt()`.
 *
 * Differences from Akka, each deliberate: the caller reports gaps separately from
 * arrivals (data frames prove life but are not heartbeats, so they must not shrink the
 * mean); phi is evaluated in a form that never overflows; `reset()` reseeds the window,
 * since a new link may reach a different server over a different path; and a changed
 * `interval` in `configure()` reseeds it with the new interval, as the old gaps no
 * longer describe the peer.
 *
 * @example
 * const d = new PhiAccrualDetector({ interval: 1000, timeout: 10_000, suspectAfter: 3000 }, clock.now());
 * // on each heartbeat frame on an idle link:
 * d.sample(now - previousHeartbeatAt);
 * d.heard(now);
 */
export class PhiAccrualDetector implements FailureDetector {
  readonly #threshold: number;
  readonly #suspectThreshold: number;
  readonly #minStdDeviation: number;
  readonly #pause: number;
  #settings: Readonly<DetectorSettings>;
  #estimate: number;
  #last: number;

  // Sliding window as a ring buffer with running sums.
  readonly #window: Float64Array;
  #head = 0;
  #count = 0;
  #sum = 0;
  #sumSquares = 0;

  // Crossing offsets from `last`, recomputed lazily after the window or settings change.
  #suspectOffset = 0;
  #deadOffset = 0;
  #stale = true;

  /**
   * @param settings heartbeat settings; `timeout` is the hard bound on `deadAt()`, and
   *   `interval` is the first-heartbeat estimate unless the options give one.
   *   `suspectAfter` is validated but not used: `suspectThreshold` takes its place.
   * @param now the time the link starts, counted as the peer's first sign of life.
   * @param options see {@link PhiAccrualOptions}; read, never kept or mutated.
   * @throws InvalidArgumentError naming the first invalid setting or option.
   */
  constructor(settings: DetectorSettings, now: number, options: PhiAccrualOptions = {}) {
    this.#settings = checkDetectorSettings(settings);
    this.#last = checkNumber('now', now);
    const o = resolvePhiAccrualOptions(options);
    this.#threshold = o.threshold;
    this.#suspectThreshold = o.suspectThreshold;
    this.#minStdDeviation = o.minStdDeviation;
    this.#pause = o.acceptableHeartbeatPause;
    this.#estimate = o.firstHeartbeatEstimate ?? this.#settings.interval;
    this.#window = new Float64Array(o.maxSampleSize);
    this.#seed();
  }

  /** @inheritdoc */
  heard(now: number): void {
    // Max, not assignment: a late-reported arrival must not move the deadline backwards.
    if (now > this.#last) this.#last = now;
  }

  /**
   * Adds a heartbeat gap to the window. Ignored when negative or not finite, and, as in
   * Akka, when the gap is at or past the dead crossing: such a gap means the peer was
   * already dead, and recording it would skew the model towards tolerating death.
   */
  sample(gapMs: number): void {
    if (!Number.isFinite(gapMs) || gapMs < 0) return;
    this.#refresh();
    if (gapMs >= this.#deadOffset) return;
    this.#push(gapMs);
  }

  /** @inheritdoc */
  suspectAt(): number {
    this.#refresh();
    return this.#last + this.#suspectOffset;
  }

  /** @inheritdoc */
  deadAt(): number {
    this.#refresh();
    return this.#last + this.#deadOffset;
  }

  /** phi at `now`: 0 just after hearing (roughly), `threshold` at the unclamped dead crossing. */
  suspicion(now: number): number {
    return phiOf(Math.max(0, now - this.#last), this.#effectiveMean(), this.#effectiveStd());
  }

  /** Starts over as if heard at `now`, with the window reseeded from the current estimate. */
  reset(now: number): void {
    this.#last = checkNumber('now', now);
    this.#seed();
  }

  /**
   * Takes new settings. A changed `interval` reseeds the window with it (the old gaps
   * describe a cadence the peer no longer follows); the new `timeout` bounds `deadAt()`.
   */
  configure(settings: DetectorSettings): void {
    const next = checkDetectorSettings(settings);
    const intervalChanged = next.interval !== this.#settings.interval;
    this.#settings = next;
    if (intervalChanged) {
      this.#estimate = next.interval;
      this.#seed();
    }
    this.#stale = true;
  }

  /** Mean of the gaps in the window in ms (before `acceptableHeartbeatPause` is added). */
  get mean(): number {
    return this.#sum / this.#count;
  }

  /** Standard deviation of the gaps in the window in ms (before the `minStdDeviation` floor). */
  get stdDeviation(): number {
    const mean = this.mean;
    // Max with 0: the sums are rounded, and a near-constant window can come out at -1e-12.
    return Math.sqrt(Math.max(0, this.#sumSquares / this.#count - mean * mean));
  }

  /** How many gaps the window holds, the two seed gaps included until they slide out. */
  get sampleCount(): number {
    return this.#count;
  }

  /** When the peer was last heard (ms on the caller's clock). */
  get lastHeard(): number {
    return this.#last;
  }

  /** The phi at which the peer is declared dead. */
  get threshold(): number {
    return this.#threshold;
  }

  /** The phi at which the peer becomes suspect. */
  get suspectThreshold(): number {
    return this.#suspectThreshold;
  }

  #effectiveMean(): number {
    return this.mean + this.#pause;
  }

  #effectiveStd(): number {
    return Math.max(this.stdDeviation, this.#minStdDeviation);
  }

  // Akka's `firstHeartbeat`: two gaps at estimate -/+ estimate/4 give mean = estimate and
  // deviation = estimate/4 until real gaps outnumber them and then push them out.
  #seed(): void {
    this.#head = 0;
    this.#count = 0;
    this.#sum = 0;
    this.#sumSquares = 0;
    const spread = this.#estimate / 4;
    this.#push(this.#estimate - spread);
    this.#push(this.#estimate + spread);
  }

  #push(gap: number): void {
    const capacity = this.#window.length;
    if (this.#count === capacity) {
      const old = this.#window[this.#head]!;
      this.#sum -= old;
      this.#sumSquares -= old * old;
    } else {
      this.#count += 1;
    }
    this.#window[this.#head] = gap;
    this.#sum += gap;
    this.#sumSquares += gap * gap;
    this.#head = (this.#head + 1) % capacity;
    if (this.#head === 0) {
      // Once per lap, re-add from the buffer: adding and subtracting forever would let
      // rounding drift accumulate over a long-lived link. O(capacity) per capacity pushes.
      let sum = 0;
      let sumSquares = 0;
      for (let i = 0; i < this.#count; i++) {
        const v = this.#window[i]!;
        sum += v;
        sumSquares += v * v;
      }
      this.#sum = sum;
      this.#sumSquares = sumSquares;
    }
    this.#stale = true;
  }

  #refresh(): void {
    if (!this.#stale) return;
    const mean = this.#effectiveMean();
    const std = this.#effectiveStd();
    // Max with 0: a threshold below log10(2) is crossed before the mean, possibly "before" last.
    const dead = Math.max(0, elapsedForPhi(this.#threshold, mean, std));
    this.#deadOffset = Math.min(dead, this.#settings.timeout);
    const suspect = Math.max(0, elapsedForPhi(this.#suspectThreshold, mean, std));
    this.#suspectOffset = Math.min(suspect, this.#deadOffset);
    this.#stale = false;
  }
}
