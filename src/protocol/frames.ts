/**
 * Frame types and their decoded shapes. PROTOCOL.md is the normative description of
 * every byte; this file is its TypeScript mirror. Nothing here does I/O.
 */

/** The protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 1;

/** Bytes of the length prefix (u32 big-endian, counts the type byte and the payload). */
export const LENGTH_BYTES = 4;

/** Session ids and resume tokens are 16 random bytes. */
export const ID_BYTES = 16;

/** Default maximum frame size (type byte + payload): 1 MiB. */
export const DEFAULT_MAX_FRAME = 1024 * 1024;

/** Wire values of the frame types. */
export const FrameType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  PING: 0x03,
  PONG: 0x04,
  DATA: 0x05,
  ACK: 0x06,
  CLOSE: 0x07,
  SETTINGS: 0x08,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

/** HELLO flag: the client asks to resume the session named in the frame. */
export const HELLO_FLAG_RESUME = 0x01;
/** WELCOME flag: the session named in the frame is the one the client asked to resume. */
export const WELCOME_FLAG_RESUMED = 0x01;

/** Client to server, first frame on a connection. */
export interface HelloFrame {
  type: typeof FrameType.HELLO;
  version: number;
  /** Requested heartbeat interval in ms (0: no preference). */
  interval: number;
  /** Requested heartbeat timeout in ms (0: no preference). */
  timeout: number;
  /** Opaque credentials for the server's authenticate hook (may be empty). */
  auth: Uint8Array;
  /** Session to resume, or null for a new session. */
  resume: { sessionId: Uint8Array; token: Uint8Array; lastReceived: number } | null;
  /** Application-chosen client id (UTF-8, may be empty). */
  clientId: string;
  /** Trace id for logs (UTF-8, may be empty). */
  traceId: string;
}

/** Server to client, accepts the handshake. */
export interface WelcomeFrame {
  type: typeof FrameType.WELCOME;
  version: number;
  /** True when this is the session the client asked to resume. */
  resumed: boolean;
  sessionId: Uint8Array;
  token: Uint8Array;
  /** Granted heartbeat interval in ms. */
  interval: number;
  /** Granted heartbeat timeout in ms. */
  timeout: number;
  /** Highest DATA sequence the server has received from the client in this session. */
  lastReceived: number;
  /** How long the server keeps the session after the link drops, in ms. */
  sessionTtl: number;
}

/** Heartbeat probe. `timestamp` is the sender's monotonic clock in microseconds. */
export interface PingFrame {
  type: typeof FrameType.PING;
  seq: number;
  timestamp: number;
}

/** Heartbeat answer, echoing the PING's seq and timestamp. */
export interface PongFrame {
  type: typeof FrameType.PONG;
  seq: number;
  timestamp: number;
}

/** One application message. `seq` counts from 1 per direction per session. */
export interface DataFrame {
  type: typeof FrameType.DATA;
  seq: number;
  payload: Uint8Array;
}

/** Cumulative acknowledgement: every DATA with seq <= `seq` has been received. */
export interface AckFrame {
  type: typeof FrameType.ACK;
  seq: number;
}

/** Ends the connection with a code, an optional retry hint and a UTF-8 reason. */
export interface CloseFrame {
  type: typeof FrameType.CLOSE;
  code: number;
  /** Milliseconds the peer should wait before reconnecting (0: no hint). */
  retryAfter: number;
  reason: string;
}

/** Server to client: the heartbeat interval and timeout change from now on. */
export interface SettingsFrame {
  type: typeof FrameType.SETTINGS;
  interval: number;
  timeout: number;
}

export type Frame =
  | HelloFrame
  | WelcomeFrame
  | PingFrame
  | PongFrame
  | DataFrame
  | AckFrame
  | CloseFrame
  | SettingsFrame;
