/**
 * Connection health: the RTT estimator, the pluggable failure detectors (fixed timeout
 * and phi accrual) with their factories, and the health state machine. Everything here
 * is pure: no timers and no I/O; the caller passes the time.
 */

import { type DetectorFactory, FixedTimeoutDetector } from './detector.js';
import { PhiAccrualDetector, type PhiAccrualOptions, resolvePhiAccrualOptions } from './phi.js';

export {
  checkDetectorSettings,
  type DetectorFactory,
  type DetectorSettings,
  type FailureDetector,
  FixedTimeoutDetector,
} from './detector.js';
export {
  elapsedForPhi,
  PHI_ACCRUAL_DEFAULTS,
  PhiAccrualDetector,
  type PhiAccrualOptions,
  phiOf,
  type ResolvedPhiAccrualOptions,
  resolvePhiAccrualOptions,
} from './phi.js';
export { RTT_ESTIMATOR_DEFAULTS, RttEstimator, type RttEstimatorOptions } from './rtt.js';
export {
  HEALTH_STATES,
  HealthMachine,
  type HealthState,
  isLegalTransition,
  type StateChange,
} from './state.js';

/**
 * The default detector factory: a {@link FixedTimeoutDetector} per link
 * (suspect after `suspectAfter`, dead after `timeout` of silence).
 */
export function fixedDetector(): DetectorFactory {
  return (settings, now) => new FixedTimeoutDetector(settings, now);
}

/**
 * A factory of {@link PhiAccrualDetector}s, one per link, sharing `options`. The options
 * are validated and copied now, so a bad value fails at configuration time rather than
 * on the first link, and later changes to the caller's object do not leak into new links.
 * @throws InvalidArgumentError naming the first invalid option.
 */
export function phiDetector(options: PhiAccrualOptions = {}): DetectorFactory {
  const resolved = resolvePhiAccrualOptions(options);
  return (settings, now) => new PhiAccrualDetector(settings, now, resolved);
}
