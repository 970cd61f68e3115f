/**
 * Typed errors. Every error heartline raises or emits is a {@link HeartlineError}
 * with a stable `code` from {@link ErrorCodes}; the table is the documented contract
 * (docs/errors.md lists each code, and a test keeps the two in step).
 */

/** Stable error codes with a one-line meaning each. */
export const ErrorCodes = {
  HL_ERR_INVALID_ARGUMENT: 'An option or argument has an invalid value.',
  HL_ERR_FRAME_TOO_LARGE: 'A frame announced a length above the configured maximum.',
  HL_ERR_UNKNOWN_FRAME: 'A frame had a type this protocol version does not define.',
  HL_ERR_MALFORMED_FRAME: 'A frame was truncated, too long for its type or held an invalid field.',
  HL_ERR_UNSUPPORTED_VERSION: 'The peer speaks a protocol version this end does not support.',
  HL_ERR_UNEXPECTED_FRAME: 'A valid frame arrived in a state where it is not allowed.',
  HL_ERR_SLOW_FRAME: 'A frame arrived below the minimum data rate.',
  HL_ERR_HANDSHAKE_TIMEOUT: 'The handshake did not complete in time.',
  HL_ERR_CONNECT_TIMEOUT: 'The TCP connection could not be established in time.',
  HL_ERR_HEARTBEAT_TIMEOUT: 'Nothing was heard from the peer within the heartbeat timeout.',
  HL_ERR_WRITE_STALL: 'Outgoing bytes did not drain within the write timeout.',
  HL_ERR_CONNECTION_CLOSED: 'The connection is closed; nothing more can be sent on it.',
  HL_ERR_BUFFER_FULL: 'The replay buffer reached its hard cap; the message was not accepted.',
  HL_ERR_CIRCUIT_OPEN: 'The client is failing fast while its circuit breaker is open.',
  HL_ERR_SESSION_LOST:
    'The session could not be resumed; unacknowledged messages were handed back.',
  HL_ERR_AUTH_FAILED: 'The server refused the credentials.',
  HL_ERR_OVERLOADED:
    'The server is overloaded: it refused the connection, or its shared replay budget is spent.',
  HL_ERR_POLICY_VIOLATION: 'The peer broke a protocol policy (for example pinging too often).',
  HL_ERR_ABORTED: 'The operation was aborted through an AbortSignal.',
  HL_ERR_GAVE_UP: 'The client stopped reconnecting after its maximum number of attempts.',
  HL_ERR_SOCKET: 'The operating system reported a socket error.',
  HL_ERR_TLS: 'The TLS handshake failed or a certificate was refused.',
  HL_ERR_STORE: 'The session store could not be reached or failed.',
  HL_ERR_REPLY_AFTER_HANDLER: 'A reply was attempted after its message handler had returned.',
  HL_ERR_INTERNAL: 'An unexpected failure inside heartline or an application hook.',
  HL_ERR_HANDLER:
    "A 'message' listener threw; the connection that delivered the message was closed.",
  HL_ERR_REQUEST_TIMEOUT: 'No reply arrived within the request timeout.',
  HL_ERR_REMOTE:
    "The responder failed the request (its 'message' listener called fail() or threw).",
  HL_ERR_NO_RESPONDER: "Nothing on the peer's end answers requests (no 'message' listener).",
  HL_ERR_NOT_SUPPORTED: 'The peer speaks protocol version 1, which has no requests.',
  HL_ERR_ALREADY_REPLIED: 'A request was answered twice; only the first answer counts.',
  HL_ERR_MISSING_PACKAGE:
    'An optional feature needs a package that is not installed; the message names it.',
} as const;

/** One of the stable error codes. */
export type ErrorCode = keyof typeof ErrorCodes;

/** Base class of every error heartline produces. */
export class HeartlineError extends Error {
  /** Stable, documented error code. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HeartlineError';
    this.code = code;
  }
}

/**
 * How a request ended without a reply. `mayHaveBeenHandled` tells whether the responder
 * may have run it: false when the request never left this end (or the responder refused
 * it unrun: HL_ERR_OVERLOADED, HL_ERR_NO_RESPONDER), so that sending it again cannot run
 * it twice; true once it was written to a link, since it may have arrived. An
 * idempotency key makes a retry safe either way.
 */
export class RequestError extends HeartlineError {
  readonly mayHaveBeenHandled: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    mayHaveBeenHandled: boolean,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'RequestError';
    this.mayHaveBeenHandled = mayHaveBeenHandled;
  }
}

/** Raised by the decoder for bytes that do not form a valid frame. */
export class ProtocolError extends HeartlineError {
  constructor(
    code: Extract<
      ErrorCode,
      | 'HL_ERR_FRAME_TOO_LARGE'
      | 'HL_ERR_UNKNOWN_FRAME'
      | 'HL_ERR_MALFORMED_FRAME'
      | 'HL_ERR_UNSUPPORTED_VERSION'
      | 'HL_ERR_UNEXPECTED_FRAME'
      | 'HL_ERR_SLOW_FRAME'
    >,
    message: string,
  ) {
    super(code, message);
    this.name = 'ProtocolError';
  }
}

/** Raised for an invalid option; the message names the option. */
export class InvalidArgumentError extends HeartlineError {
  constructor(message: string) {
    super('HL_ERR_INVALID_ARGUMENT', message);
    this.name = 'InvalidArgumentError';
  }
}
