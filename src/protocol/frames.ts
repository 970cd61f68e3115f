/**
 * Frame types and their decoded shapes. PROTOCOL.md is the normative description of
 * every byte; this file is its TypeScript mirror. Nothing here does I/O.
 */

/**
 * The highest protocol version this implementation speaks. Version 2 adds the announced
 * `maxFrame` to HELLO and WELCOME and the REQUEST and REPLY frames (PROTOCOL.md 5.5).
 */
export const PROTOCOL_VERSION = 2;

/** The lowest protocol version a server of this implementation still accepts. */
export const MIN_PROTOCOL_VERSION = 1;

/** The smallest `maxFrame` a peer may announce (version 2): a WELCOME and a short CLOSE fit. */
export const MIN_MAX_FRAME = 64;

/** Bytes of the length prefix (u32 big-endian, counts the type byte and the payload). */
export const LENGTH_BYTES = 4;

/** Session ids and resume tokens are 16 random bytes. */
export const ID_BYTES = 16;

/** Default maximum frame size (type byte + payload): 1 MiB. */
export const DEFAULT_MAX_FRAME = 1024 * 1024;

/**
 * Default cap on HELLO's clientId and traceId, each in UTF-8 bytes. The wire allows
 * 65535; a server keeps both for the session's life and shows them in logs and the
 * admin endpoint, so it refuses more than its `maxHelloFieldBytes` (this by default).
 */
export const DEFAULT_MAX_HELLO_FIELD_BYTES = 256;

/**
 * Default cap on HELLO's auth field in bytes: room for a JWT or a signed token. The
 * server only hands it to the authenticate hook and keeps nothing of it.
 */
export const DEFAULT_MAX_AUTH_BYTES = 8192;

/** Wire values of the frame types. */
export const FrameType = {
  /** Client to server, first frame: version, heartbeat wishes, auth, resume. */
  HELLO: 0x01,
  /** Server to client: the session and the granted heartbeat settings. */
  WELCOME: 0x02,
  /** Heartbeat probe. */
  PING: 0x03,
  /** Heartbeat answer. */
  PONG: 0x04,
  /** One application message with its sequence number. */
  DATA: 0x05,
  /** Cumulative acknowledgement of DATA. */
  ACK: 0x06,
  /** Ends the connection with a close code. */
  CLOSE: 0x07,
  /** Server to client: new heartbeat settings. */
  SETTINGS: 0x08,
  /** Version 2: a message that asks for a REPLY; sequenced like DATA. */
  REQUEST: 0x09,
  /** Version 2: the answer to one REQUEST; sequenced like DATA. */
  REPLY: 0x0a,
} as const;
/** One of the wire values of {@link FrameType}. */
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

/** HELLO flag: the client asks to resume the session named in the frame. */
export const HELLO_FLAG_RESUME = 0x01;
/** WELCOME flag: the session named in the frame is the one the client asked to resume. */
export const WELCOME_FLAG_RESUMED = 0x01;

/** Client to server, first frame on a connection. */
export interface HelloFrame {
  type: typeof FrameType.HELLO;
  /** Protocol version the client speaks ({@link PROTOCOL_VERSION}). */
  version: number;
  /** Requested heartbeat interval in ms (0: no preference). */
  interval: number;
  /** Requested heartbeat timeout in ms (0: no preference). */
  timeout: number;
  /** Opaque credentials for the server's authenticate hook (may be empty). */
  auth: Uint8Array;
  /** Session to resume, or null for a new session. */
  resume: {
    /** The session id from the earlier WELCOME (16 bytes). */
    sessionId: Uint8Array;
    /** The resume token from the earlier WELCOME (16 bytes). */
    token: Uint8Array;
    /** Highest DATA sequence the client has received from the server in this session. */
    lastReceived: number;
  } | null;
  /** Application-chosen client id (UTF-8, may be empty). */
  clientId: string;
  /** Trace id for logs (UTF-8, may be empty). */
  traceId: string;
  /**
   * Version 2: the largest frame the client accepts (type byte + payload). A version 1
   * HELLO has no such field; it decodes as {@link DEFAULT_MAX_FRAME}.
   */
  maxFrame: number;
}

/** Server to client, accepts the handshake. */
export interface WelcomeFrame {
  type: typeof FrameType.WELCOME;
  /** Protocol version the server speaks. */
  version: number;
  /** True when this is the session the client asked to resume. */
  resumed: boolean;
  /** The session id (16 random bytes). */
  sessionId: Uint8Array;
  /** The resume token (16 random bytes); the client presents it to resume. */
  token: Uint8Array;
  /** Granted heartbeat interval in ms. */
  interval: number;
  /** Granted heartbeat timeout in ms. */
  timeout: number;
  /** Highest DATA sequence the server has received from the client in this session. */
  lastReceived: number;
  /** How long the server keeps the session after the link drops, in ms. */
  sessionTtl: number;
  /**
   * Version 2: the largest frame the server accepts (type byte + payload); version 1
   * decodes as {@link DEFAULT_MAX_FRAME}.
   */
  maxFrame: number;
}

/** Heartbeat probe. `timestamp` is the sender's monotonic clock in microseconds. */
export interface PingFrame {
  type: typeof FrameType.PING;
  /** Probe number, echoed by the PONG. */
  seq: number;
  /** The sender's monotonic clock in microseconds, echoed by the PONG. */
  timestamp: number;
}

/** Heartbeat answer, echoing the PING's seq and timestamp. */
export interface PongFrame {
  type: typeof FrameType.PONG;
  /** The seq of the PING answered. */
  seq: number;
  /** The timestamp of the PING answered (the PING sender's clock, microseconds). */
  timestamp: number;
}

/** One application message. `seq` counts from 1 per direction per session. */
export interface DataFrame {
  type: typeof FrameType.DATA;
  /** Sequence number, from 1 per direction per session. */
  seq: number;
  /** The application's bytes. */
  payload: Uint8Array;
}

/** Cumulative acknowledgement: every DATA with seq <= `seq` has been received. */
export interface AckFrame {
  type: typeof FrameType.ACK;
  /** Highest DATA sequence received, with every one below it. */
  seq: number;
}

/** Ends the connection with a code, an optional retry hint and a UTF-8 reason. */
export interface CloseFrame {
  type: typeof FrameType.CLOSE;
  /** The close code (see `CloseCode`; PROTOCOL.md lists them). */
  code: number;
  /** Milliseconds the peer should wait before reconnecting (0: no hint). */
  retryAfter: number;
  /** Human-readable reason (UTF-8, may be empty). */
  reason: string;
}

/** Server to client: the heartbeat interval and timeout change from now on. */
export interface SettingsFrame {
  type: typeof FrameType.SETTINGS;
  /** The new heartbeat interval in ms. */
  interval: number;
  /** The new heartbeat timeout in ms. */
  timeout: number;
}

/**
 * Version 2: a message that asks for one REPLY. It shares DATA's sequence numbers (and
 * so its acks, replay and duplicate rules); its seq names it in the REPLY.
 */
export interface RequestFrame {
  type: typeof FrameType.REQUEST;
  /** Sequence number, from the same counter as DATA. */
  seq: number;
  /** Idempotency key (UTF-8, may be empty: none). */
  key: string;
  /** The application's bytes. */
  payload: Uint8Array;
}

/** How a REPLY ends its request. */
export const ReplyStatus = {
  /** The responder answered; the payload is its answer. */
  OK: 0,
  /** The responder failed the request; the payload is its UTF-8 message. */
  ERROR: 1,
  /** Nothing on the responder's end handles requests; the payload may say more (UTF-8). */
  NO_RESPONDER: 2,
  /** The responder could not take the request now (not run); the payload says why (UTF-8). */
  OVERLOADED: 3,
} as const;
/** One of the values of {@link ReplyStatus}. */
export type ReplyStatusValue = (typeof ReplyStatus)[keyof typeof ReplyStatus];

/** Version 2: the answer to a REQUEST, sequenced like DATA. */
export interface ReplyFrame {
  type: typeof FrameType.REPLY;
  /** Sequence number, from the same counter as DATA. */
  seq: number;
  /** The seq of the REQUEST answered (a seq the receiver sent). */
  requestSeq: number;
  /** {@link ReplyStatus}. */
  status: ReplyStatusValue;
  /** The answer (OK) or a UTF-8 message (any other status). */
  payload: Uint8Array;
}

/** Any decoded frame; `type` tells which. */
export type Frame =
  | HelloFrame
  | WelcomeFrame
  | PingFrame
  | PongFrame
  | DataFrame
  | AckFrame
  | CloseFrame
  | SettingsFrame
  | RequestFrame
  | ReplyFrame;
