/**
 * `heartline/codec`: the wire format (PROTOCOL.md) as a pure encoder and a bounded
 * decoder, with the frame types: no sockets, timers or other I/O. For tools and
 * implementations in other runtimes; an application uses the main entry instead.
 * @packageDocumentation
 */

export {
  CloseCode,
  type CloseCodeValue,
  type CloseReason,
  reasonForCode,
} from '../protocol/close-codes.js';
export {
  Decoder,
  type DecoderOptions,
  decodeBody,
  encodeAck,
  encodeClose,
  encodeData,
  encodeFrame,
  encodeHello,
  encodePing,
  encodePong,
  encodeReply,
  encodeRequest,
  encodeSettings,
  encodeWelcome,
  maxPayload,
} from '../protocol/codec.js';
export {
  type AckFrame,
  type CloseFrame,
  type DataFrame,
  DEFAULT_MAX_FRAME,
  type Frame,
  FrameType,
  type FrameTypeValue,
  HELLO_FLAG_RESUME,
  type HelloFrame,
  ID_BYTES,
  LENGTH_BYTES,
  MIN_MAX_FRAME,
  MIN_PROTOCOL_VERSION,
  type PingFrame,
  type PongFrame,
  PROTOCOL_VERSION,
  type ReplyFrame,
  ReplyStatus,
  type ReplyStatusValue,
  type RequestFrame,
  type SettingsFrame,
  WELCOME_FLAG_RESUMED,
  type WelcomeFrame,
} from '../protocol/frames.js';
