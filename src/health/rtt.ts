/**
 * Round-trip time estimation for PING/PONG pairs, after RFC 6298 "Computing TCP's
 * Retransmission Timer" (https://www.rfc-editor.org/rfc/rfc6298). Pure: the caller
 * measures the sample (PONG arrival minus PING departure on its clock) and passes it in.
 */

import { checkNumber } from './validate.js';

/** RFC 6298 §2.3: alpha = 1/8, the gain of the smoothed RTT. */
const ALPHA = 1 / 8;
/** RFC 6298 §2.3: beta = 1/4, the gain of the RTT variation. */
const BETA = 1 / 4;
/** RFC 6298 §2.2: K = 4, how many variations above the mean the timeout sits. */
const K = 4;

/** Options of {@link RttEstimator}. Every field is optional; defaults in {@link RTT_ESTIMATOR_DEFAULTS}. */
export interface RttEstimatorOptions {
  /**
   * Clock granularity G in ms: the RTO is never closer to SRTT than this, so a run of
   * identical samples (RTTVAR -> 0) cannot shrink the timeout to the mean itself.
   * @default 1
   */
  granularity?: number;
  /**
   * Lower bound of the RTO in ms. RFC 6298 §2.4 asks for 1 s because a spurious TCP
   * retransmission is costly; a late PONG only costs a suspect state, so we use the
   * Linux floor (TCP_RTO_MIN, 200 ms) which still absorbs event-loop and GC stalls.
   * @default 200
   */
  minRto?: number;
  /**
   * Upper bound of the RTO in ms; RFC 6298 §2.5 allows a cap of at least 60 s.
   * @default 60000
   */
  maxRto?: number;
  /**
   * RTO in ms before any sample, RFC 6298 §2.1 (1 s). Clamped to [minRto, maxRto].
   * @default 1000
   */
  initialRto?: number;
}

/** Defaults of {@link RttEstimatorOptions}, declared once; see each field for the reason. */
export const RTT_ESTIMATOR_DEFAULTS: Readonly<Required<RttEstimatorOptions>> = Object.freeze({
  granularity: 1,
  minRto: 200,
  maxRto: 60_000,
  initialRto: 1000,
});

/**
 * Smoothed RTT, RTT variation and retransmission-style timeout (RTO) from RTT samples,
 * per RFC 6298 §2. O(1) per sample, no allocation.
 *
 * - first sample R: SRTT = R, RTTVAR = R/2
 * - later sample R': RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|, then SRTT = 7/8 SRTT + 1/8 R'
 * - RTO = SRTT + max(G, 4 RTTVAR), clamped to [minRto, maxRto]
 *
 * @example
 * const rtt = new RttEstimator();
 * rtt.update(pongAt - pingAt);
 * const pongDeadline = pingAt + rtt.rto;
 */
export class RttEstimator {
  readonly #granularity: number;
  readonly #minRto: number;
  readonly #maxRto: number;
  readonly #initialRto: number;
  #srtt: number | undefined = undefined;
  #rttvar: number | undefined = undefined;
  #latest: number | undefined = undefined;
  #min: number | undefined = undefined;
  #samples = 0;

  /**
   * @param options see {@link RttEstimatorOptions}; the object is read, never kept or mutated.
   * @throws InvalidArgumentError if an option is not a finite number in range or maxRto < minRto.
   */
  constructor(options: RttEstimatorOptions = {}) {
    const d = RTT_ESTIMATOR_DEFAULTS;
    this.#granularity = checkNumber('granularity', options.granularity ?? d.granularity, {
      min: 0,
    });
    this.#minRto = checkNumber('minRto', options.minRto ?? d.minRto, { min: 0 });
    this.#maxRto = checkNumber('maxRto', options.maxRto ?? d.maxRto, { min: this.#minRto });
    this.#initialRto = checkNumber('initialRto', options.initialRto ?? d.initialRto, {
      min: 0,
      minExclusive: true,
    });
  }

  /**
   * Feeds one RTT sample in ms. Negative, NaN and infinite samples are ignored: they
   * come from a clock that stepped or a PONG matched to the wrong PING, and one of them
   * would poison SRTT for many samples.
   */
  update(sampleMs: number): void {
    if (!Number.isFinite(sampleMs) || sampleMs < 0) return;
    if (this.#srtt === undefined || this.#rttvar === undefined) {
      // RFC 6298 §2.2
      this.#srtt = sampleMs;
      this.#rttvar = sampleMs / 2;
    } else {
      // RFC 6298 §2.3: RTTVAR first, because it uses the SRTT from before this sample.
      this.#rttvar = (1 - BETA) * this.#rttvar + BETA * Math.abs(this.#srtt - sampleMs);
      this.#srtt = (1 - ALPHA) * this.#srtt + ALPHA * sampleMs;
    }
    this.#latest = sampleMs;
    this.#min = this.#min === undefined ? sampleMs : Math.min(this.#min, sampleMs);
    this.#samples += 1;
  }

  /** Smoothed RTT in ms, `undefined` before the first sample. */
  get srtt(): number | undefined {
    return this.#srtt;
  }

  /** RTT variation in ms, `undefined` before the first sample. */
  get rttvar(): number | undefined {
    return this.#rttvar;
  }

  /**
   * Timeout in ms after which a reply is overdue: SRTT + max(G, 4 RTTVAR) clamped to
   * [minRto, maxRto]; before any sample, `initialRto` clamped the same way.
   */
  get rto(): number {
    const raw =
      this.#srtt === undefined || this.#rttvar === undefined
        ? this.#initialRto
        : this.#srtt + Math.max(this.#granularity, K * this.#rttvar);
    return Math.min(this.#maxRto, Math.max(this.#minRto, raw));
  }

  /** The most recent accepted sample in ms, `undefined` before the first. */
  get latest(): number | undefined {
    return this.#latest;
  }

  /** The smallest accepted sample in ms (the path's propagation floor), `undefined` before the first. */
  get min(): number | undefined {
    return this.#min;
  }

  /** How many samples were accepted (ignored samples are not counted). */
  get samples(): number {
    return this.#samples;
  }
}
