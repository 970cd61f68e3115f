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
  /**
   * Longest timeout a client may obtain (ms), whatever its interval: how long a silent
   * peer may hold its connection. At least {@link MIN_TIMEOUT_FACTOR} x maxInterval.
   */
  maxTimeout: number;
}

/** The timeout must leave room for at least one missed heartbeat and a probe. */
export const MIN_TIMEOUT_FACTOR = 2;
/** Past this many intervals a timeout only delays detection. */
export const MAX_TIMEOUT_FACTOR = 10;
/**
 * The default maxTimeout (ms): 5 minutes, below the 350 s idle timeout of an AWS NAT
 * gateway (the longest common middlebox timer) and the OS keepalive's reach, so no grant
 * keeps a link the network itself would have cut; it is raised to 2 x maxInterval when
 * that is longer, so that every interval a client may obtain still has a valid timeout.
 * Without it, 10 x 120 s let a client hold a silent socket for 20 minutes.
 */
export const DEFAULT_MAX_TIMEOUT = 300_000;

/** The default maxTimeout for a given maxInterval. */
export function defaultMaxTimeout(maxInterval: number): number {
  return Math.max(DEFAULT_MAX_TIMEOUT, MIN_TIMEOUT_FACTOR * maxInterval);
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** Checks that a policy is self-consistent. */
export function validatePolicy(p: GrantPolicy): void {
  if (p.minInterval > p.maxInterval) {
    throw new InvalidArgumentError('option "minInterval" must be <= "maxInterval"');
  }
  if (p.interval < p.minInterval || p.interval > p.maxInterval) {
    throw new InvalidArgumentError('option "interval" must lie within [minInterval, maxInterval]');
  }
  if (p.maxTimeout < MIN_TIMEOUT_FACTOR * p.maxInterval) {
    throw new InvalidArgumentError(
      `option "maxTimeout" must be at least ${MIN_TIMEOUT_FACTOR} x "maxInterval" (${MIN_TIMEOUT_FACTOR * p.maxInterval} ms)`,
    );
  }
  if (p.timeout > p.maxTimeout) {
    throw new InvalidArgumentError('option "timeout" must be <= "maxTimeout"');
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
 * clamped to [2, max(10, policy ratio)] intervals and to maxTimeout.
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
  // lo <= maxTimeout always: interval <= maxInterval and maxTimeout >= 2 x maxInterval.
  const hi = Math.min(
    policy.maxTimeout,
    Math.floor(Math.max(MAX_TIMEOUT_FACTOR, ratio) * interval),
  );
  const timeout = clamp(
    requestedTimeout > 0 ? requestedTimeout : Math.round(interval * ratio),
    lo,
    hi,
  );
  return { interval, timeout };
}
