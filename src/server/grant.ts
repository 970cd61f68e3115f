/**
 * The server owns the heartbeat schedule: a client may ask for an interval and timeout,
 * and the server grants them within its bounds (gRPC's lesson: mismatched keepalive
 * settings on both ends end in "too_many_pings"; here only one side decides).
 */

import { InvalidArgumentError } from '../errors.js';

/** The server's heartbeat policy. */
export interface GrantPolicy {
  /** Interval granted when the client has no preference (ms). */
  interval: number;
  /** Timeout granted when the client has no preference (ms). */
  timeout: number;
  /** Shortest interval a client may obtain (ms). */
  minInterval: number;
  /** Longest interval a client may obtain (ms). */
  maxInterval: number;
}

/** The timeout must leave room for at least one missed heartbeat and a probe. */
export const MIN_TIMEOUT_FACTOR = 2;
/** Past this many intervals a timeout only delays detection. */
export const MAX_TIMEOUT_FACTOR = 10;

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** Checks that a policy is self-consistent. */
export function validatePolicy(p: GrantPolicy): void {
  if (p.minInterval > p.maxInterval) {
    throw new InvalidArgumentError('option "minInterval" must be <= "maxInterval"');
  }
  if (p.interval < p.minInterval || p.interval > p.maxInterval) {
    throw new InvalidArgumentError('option "interval" must lie within [minInterval, maxInterval]');
  }
  if (p.timeout < MIN_TIMEOUT_FACTOR * p.interval) {
    throw new InvalidArgumentError(
      `option "timeout" must be at least ${MIN_TIMEOUT_FACTOR} x "interval" (${MIN_TIMEOUT_FACTOR * p.interval} ms)`,
    );
  }
}

/**
 * Grants heartbeat settings for a client's request (0 = no preference). The interval is
 * clamped to [minInterval, maxInterval]; the timeout defaults to the policy's ratio and is
 * clamped to [2, max(10, policy ratio)] intervals.
 */
export function grantHeartbeat(
  policy: GrantPolicy,
  requestedInterval: number,
  requestedTimeout: number,
): { interval: number; timeout: number } {
  const interval =
    requestedInterval > 0
      ? clamp(requestedInterval, policy.minInterval, policy.maxInterval)
      : policy.interval;
  const ratio = policy.timeout / policy.interval;
  const lo = Math.ceil(MIN_TIMEOUT_FACTOR * interval);
  const hi = Math.floor(Math.max(MAX_TIMEOUT_FACTOR, ratio) * interval);
  const timeout = clamp(
    requestedTimeout > 0 ? requestedTimeout : Math.round(interval * ratio),
    lo,
    hi,
  );
  return { interval, timeout };
}
