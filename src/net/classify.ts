/**
 * Turns raw OS socket errors into classified close reasons, so applications and metrics
 * see 'reset' or 'refused' rather than strings that differ by platform.
 */

import type { CloseReason } from '../protocol/close-codes.js';

/** The `code` of a Node system error, if it has one. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Classifies a socket error. */
export function classifySocketError(err: unknown): CloseReason {
  switch (errnoCode(err)) {
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ECONNABORTED':
      return 'reset';
    case 'ECONNREFUSED':
      return 'refused';
    case 'ETIMEDOUT':
      // The kernel gave up: keepalive probes or TCP_USER_TIMEOUT expired.
      return 'keepalive-timeout';
    default:
      return 'error';
  }
}
