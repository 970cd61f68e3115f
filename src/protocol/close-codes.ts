/**
 * CLOSE frame codes and the classified close reasons they map to. Codes are u16 on the
 * wire; the 4000-4999 range is left to applications.
 */

export const CloseCode = {
  /** The application closed the connection on purpose. */
  NORMAL: 1000,
  /** The server is shutting down or draining: reconnect elsewhere at once. */
  GOING_AWAY: 1001,
  /** The peer sent bytes that are not a valid frame, a frame out of order, or a frame too slowly. */
  PROTOCOL_ERROR: 1002,
  /** The peer's HELLO asked for a protocol version this end does not speak. */
  UNSUPPORTED_VERSION: 1003,
  /** A frame announced a length above the maximum frame size. */
  FRAME_TOO_LARGE: 1004,
  /** Nothing was heard from the peer within the heartbeat timeout. */
  HEARTBEAT_TIMEOUT: 1005,
  /** The server's authenticate hook refused the credentials. Final. */
  AUTH_FAILED: 1006,
  /** The server is overloaded; the frame's retryAfter says how long to wait. */
  OVERLOADED: 1007,
  /** The session to resume no longer exists on the server. */
  SESSION_EXPIRED: 1008,
  /** The peer broke a policy (for example pinged faster than granted). Final. */
  POLICY_VIOLATION: 1009,
  /** The handshake did not complete within the handshake timeout. */
  HANDSHAKE_TIMEOUT: 1010,
  /** Outgoing data did not drain within the write timeout. */
  WRITE_STALL: 1011,
  /** A newer connection resumed this session. */
  SUPERSEDED: 1012,
  /** An unexpected failure inside the server. */
  INTERNAL_ERROR: 1013,
} as const;
/** One of the {@link CloseCode} numbers. */
export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Why a connection closed, classified rather than a raw OS string.
 * - eof: the peer half-closed (FIN) without a CLOSE frame
 * - reset: ECONNRESET / EPIPE
 * - refused: ECONNREFUSED while connecting
 * - connect-timeout, handshake-timeout, heartbeat-timeout, write-stall: our own timers
 * - protocol-error, frame-too-large, unsupported-version: the peer sent bad bytes (or,
 *   protocol-error with HL_ERR_SLOW_FRAME, a frame below the minimum data rate)
 * - keepalive-timeout: the kernel gave up on the peer (TCP keepalive or TCP_USER_TIMEOUT)
 * - tls-error: the TLS handshake failed or a certificate was refused (no CLOSE code: it
 *   happens below the frame layer); not final, a client retries with backoff
 * - local: this end called close()
 * - remote: the peer sent CLOSE(normal)
 * - going-away, overloaded, auth-failed, policy-violation, session-expired, superseded:
 *   the peer's CLOSE code, or this end's decision with that code
 * - error: any other socket error (the close event carries its code)
 */
export type CloseReason =
  | 'eof'
  | 'reset'
  | 'refused'
  | 'connect-timeout'
  | 'handshake-timeout'
  | 'heartbeat-timeout'
  | 'write-stall'
  | 'keepalive-timeout'
  | 'tls-error'
  | 'protocol-error'
  | 'frame-too-large'
  | 'unsupported-version'
  | 'local'
  | 'remote'
  | 'going-away'
  | 'overloaded'
  | 'auth-failed'
  | 'policy-violation'
  | 'session-expired'
  | 'superseded'
  | 'internal-error'
  | 'error';

const REASON_BY_CODE: ReadonlyMap<number, CloseReason> = new Map<number, CloseReason>([
  [CloseCode.NORMAL, 'remote'],
  [CloseCode.GOING_AWAY, 'going-away'],
  [CloseCode.PROTOCOL_ERROR, 'protocol-error'],
  [CloseCode.UNSUPPORTED_VERSION, 'unsupported-version'],
  [CloseCode.FRAME_TOO_LARGE, 'frame-too-large'],
  [CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat-timeout'],
  [CloseCode.AUTH_FAILED, 'auth-failed'],
  [CloseCode.OVERLOADED, 'overloaded'],
  [CloseCode.SESSION_EXPIRED, 'session-expired'],
  [CloseCode.POLICY_VIOLATION, 'policy-violation'],
  [CloseCode.HANDSHAKE_TIMEOUT, 'handshake-timeout'],
  [CloseCode.WRITE_STALL, 'write-stall'],
  [CloseCode.SUPERSEDED, 'superseded'],
  [CloseCode.INTERNAL_ERROR, 'internal-error'],
]);

/** The reason an end reports when the peer closes with `code`. Unknown codes read as 'remote'. */
export function reasonForCode(code: number): CloseReason {
  return REASON_BY_CODE.get(code) ?? 'remote';
}

/** Reasons after which a client must not reconnect. */
export const FINAL_REASONS: ReadonlySet<CloseReason> = new Set<CloseReason>([
  'local',
  'remote',
  'auth-failed',
  'unsupported-version',
  'policy-violation',
  'frame-too-large',
]);
