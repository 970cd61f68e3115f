/**
 * The pure codec: frames to bytes and bytes to frames. No sockets, no timers, no clock.
 *
 * Wire format (PROTOCOL.md is normative): u32 big-endian length, then that many bytes of
 * which the first is the frame type and the rest the payload. Integers are big-endian;
 * u64 fields carry values up to 2^53 - 1 so that JavaScript numbers hold them exactly.
 *
 * @module
 */

import { InvalidArgumentError, ProtocolError } from '../errors.js';
import {
  type AckFrame,
  type CloseFrame,
  type DataFrame,
  DEFAULT_MAX_FRAME,
  type Frame,
  FrameType,
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
} from './frames.js';

const TWO_32 = 0x1_0000_0000;
/** Largest high word of a u64 that still fits in Number.MAX_SAFE_INTEGER. */
const MAX_SAFE_HIGH = 0x1f_ffff;
const ZERO_ID = new Uint8Array(ID_BYTES);
// ignoreBOM: a leading U+FEFF is part of the string, not a byte-order mark to strip;
// without it "\uFEFFx" would decode as "x" and round trips would differ.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Fixed payload sizes (without the type byte); version 2 adds a u32 maxFrame to both. */
const HELLO_FIXED = 1 + 1 + 4 + 4 + ID_BYTES + ID_BYTES + 8 + 2 + 2 + 2;
const WELCOME_SIZE = 1 + 1 + ID_BYTES + ID_BYTES + 4 + 4 + 8 + 4;
const MAX_FRAME_FIELD = 4;
const PING_SIZE = 4 + 8;
const DATA_HEADER = 8;
const ACK_SIZE = 8;
const CLOSE_FIXED = 2 + 4;
const SETTINGS_SIZE = 4 + 4;
/** REQUEST: seq u64, key length u16 (the key and payload follow). */
const REQUEST_HEADER = 8 + 2;
/** REPLY: seq u64, requestSeq u64, status u8 (the payload follows). */
const REPLY_HEADER = 8 + 8 + 1;

/**
 * The largest length prefix a valid HELLO can carry: the type byte, the fixed fields and
 * three u16-sized fields at their longest and version 2's maxFrame (PROTOCOL.md 3.1:
 * `61 + A + C + T`).
 */
export const MAX_HELLO_LENGTH = 1 + HELLO_FIXED + 3 * 0xffff + MAX_FRAME_FIELD;

/** Bytes a DATA frame adds around its payload (length prefix, type, seq). */
export const DATA_OVERHEAD = LENGTH_BYTES + 1 + DATA_HEADER;

/** Bytes of an ACK frame, length prefix included. */
export const ACK_FRAME_BYTES = LENGTH_BYTES + 1 + ACK_SIZE;

/** The largest DATA payload that fits in a frame of `maxFrame` bytes. */
export function maxPayload(maxFrame: number): number {
  return maxFrame - 1 - DATA_HEADER;
}

/** Bytes a REQUEST frame adds around its payload, for a key of `keyBytes` UTF-8 bytes. */
export function requestOverhead(keyBytes: number): number {
  return LENGTH_BYTES + 1 + REQUEST_HEADER + keyBytes;
}

/** Bytes a REPLY frame adds around its payload (length prefix, type, seq, requestSeq, status). */
export const REPLY_OVERHEAD = LENGTH_BYTES + 1 + REPLY_HEADER;

// ---------------------------------------------------------------------------------------
// Encoding. A field outside its wire range throws InvalidArgumentError
// (HL_ERR_INVALID_ARGUMENT) before anything is returned, so a bad value never reaches
// the peer as a silently truncated one.

function header(type: number, payloadLength: number): Buffer {
  const buf = Buffer.allocUnsafe(LENGTH_BYTES + 1 + payloadLength);
  buf.writeUInt32BE(1 + payloadLength, 0);
  buf[LENGTH_BYTES] = type;
  return buf;
}

function writeU64(buf: Buffer, value: number, offset: number): void {
  checkU64(value);
  putU64(buf, value, offset);
}

function checkU64(value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`u64 field out of range: ${value}`);
  }
}

/** Writes a u64 already checked by {@link checkU64}. */
function putU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32BE(Math.floor(value / TWO_32), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
}

function writeU8(buf: Buffer, value: number, offset: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new InvalidArgumentError(`u8 field out of range: ${value}`);
  }
  buf[offset] = value;
}

function writeU32(buf: Buffer, value: number, offset: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= TWO_32) {
    throw new InvalidArgumentError(`u32 field out of range: ${value}`);
  }
  buf.writeUInt32BE(value, offset);
}

function writeId(buf: Buffer, id: Uint8Array, offset: number): void {
  if (id.length !== ID_BYTES)
    throw new InvalidArgumentError(`ids are ${ID_BYTES} bytes, got ${id.length}`);
  buf.set(id, offset);
}

function shortField(bytes: Uint8Array, name: string): Uint8Array {
  if (bytes.length > 0xffff) throw new InvalidArgumentError(`${name} is over 65535 bytes`);
  return bytes;
}

/** HELLO: the client's first frame (version, heartbeat wishes, auth, resume, ids). */
export function encodeHello(f: Omit<HelloFrame, 'type'>): Buffer {
  const auth = shortField(f.auth, 'auth');
  const clientId = shortField(Buffer.from(f.clientId, 'utf8'), 'clientId');
  const traceId = shortField(Buffer.from(f.traceId, 'utf8'), 'traceId');
  const v2 = f.version >= 2;
  const buf = header(
    FrameType.HELLO,
    HELLO_FIXED + auth.length + clientId.length + traceId.length + (v2 ? MAX_FRAME_FIELD : 0),
  );
  let o = LENGTH_BYTES + 1;
  writeU8(buf, f.version, o++);
  buf[o++] = f.resume ? HELLO_FLAG_RESUME : 0;
  writeU32(buf, f.interval, o);
  writeU32(buf, f.timeout, o + 4);
  o += 8;
  writeId(buf, f.resume?.sessionId ?? ZERO_ID, o);
  writeId(buf, f.resume?.token ?? ZERO_ID, o + ID_BYTES);
  o += 2 * ID_BYTES;
  writeU64(buf, f.resume?.lastReceived ?? 0, o);
  o += 8;
  for (const field of [auth, clientId, traceId]) {
    buf.writeUInt16BE(field.length, o);
    buf.set(field, o + 2);
    o += 2 + field.length;
  }
  if (v2) writeMaxFrame(buf, f.maxFrame, o);
  return buf;
}

function writeMaxFrame(buf: Buffer, maxFrame: number, offset: number): void {
  if (maxFrame < MIN_MAX_FRAME) {
    throw new InvalidArgumentError(`maxFrame must be at least ${MIN_MAX_FRAME}, got ${maxFrame}`);
  }
  writeU32(buf, maxFrame, offset);
}

/** WELCOME: the server's answer to HELLO (session, token, granted settings). */
export function encodeWelcome(f: Omit<WelcomeFrame, 'type'>): Buffer {
  const v2 = f.version >= 2;
  const buf = header(FrameType.WELCOME, WELCOME_SIZE + (v2 ? MAX_FRAME_FIELD : 0));
  let o = LENGTH_BYTES + 1;
  writeU8(buf, f.version, o++);
  buf[o++] = f.resumed ? WELCOME_FLAG_RESUMED : 0;
  writeId(buf, f.sessionId, o);
  writeId(buf, f.token, o + ID_BYTES);
  o += 2 * ID_BYTES;
  writeU32(buf, f.interval, o);
  writeU32(buf, f.timeout, o + 4);
  writeU64(buf, f.lastReceived, o + 8);
  writeU32(buf, f.sessionTtl, o + 16);
  if (v2) writeMaxFrame(buf, f.maxFrame, o + 20);
  return buf;
}

/** Bytes of a PING or PONG frame. */
export const PROBE_FRAME_BYTES = LENGTH_BYTES + 1 + PING_SIZE;

function encodeProbe(
  type: typeof FrameType.PING | typeof FrameType.PONG,
  seq: number,
  timestamp: number,
): Buffer {
  const buf = Buffer.allocUnsafe(PROBE_FRAME_BYTES);
  writeProbeAt(buf, 0, type, seq, timestamp);
  return buf;
}

/**
 * Writes a PING or PONG (`type`) into `buf` at `offset` ({@link PROBE_FRAME_BYTES} there):
 * the link answers each PING straight into its write batch, with no Buffer per PONG.
 */
export function writeProbeAt(
  buf: Buffer,
  offset: number,
  type: typeof FrameType.PING | typeof FrameType.PONG,
  seq: number,
  timestamp: number,
): void {
  checkU64(timestamp);
  writeU32(buf, seq, offset + LENGTH_BYTES + 1);
  buf.writeUInt32BE(1 + PING_SIZE, offset);
  buf[offset + LENGTH_BYTES] = type;
  putU64(buf, timestamp, offset + LENGTH_BYTES + 5);
}

/**
 * The type of `chunk` when it is exactly one well-formed PING or PONG (how nearly every
 * idle heartbeat arrives), else 0; read its fields with {@link probeSeq} and
 * {@link probeTimestamp}. Allocates nothing. On 0 the caller decodes the chunk the usual
 * way, so a malformed probe still raises the usual error.
 */
export function wholeProbeType(chunk: Buffer, maxFrame: number): number {
  if (
    chunk.length !== PROBE_FRAME_BYTES ||
    chunk.readUInt32BE(0) !== 1 + PING_SIZE ||
    1 + PING_SIZE > maxFrame
  ) {
    return 0;
  }
  const type = chunk[LENGTH_BYTES]!;
  if (type !== FrameType.PING && type !== FrameType.PONG) return 0;
  return chunk.readUInt32BE(LENGTH_BYTES + 5) > MAX_SAFE_HIGH ? 0 : type;
}

/** The seq of a chunk {@link wholeProbeType} accepted. */
export function probeSeq(chunk: Buffer): number {
  return chunk.readUInt32BE(LENGTH_BYTES + 1);
}

/** The timestamp of a chunk {@link wholeProbeType} accepted. */
export function probeTimestamp(chunk: Buffer): number {
  return (
    chunk.readUInt32BE(LENGTH_BYTES + 5) * 0x1_0000_0000 + chunk.readUInt32BE(LENGTH_BYTES + 9)
  );
}

/** PING with the sender's seq and monotonic timestamp in microseconds. */
export function encodePing(seq: number, timestamp: number): Buffer {
  return encodeProbe(FrameType.PING, seq, timestamp);
}

/** PONG echoing a PING's seq and timestamp. */
export function encodePong(seq: number, timestamp: number): Buffer {
  return encodeProbe(FrameType.PONG, seq, timestamp);
}

/** DATA carrying one application message with its sequence number. */
export function encodeData(seq: number, payload: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(DATA_OVERHEAD + payload.length);
  writeDataAt(buf, 0, seq, payload);
  return buf;
}

/**
 * Writes a DATA frame into `buf` at `offset` (it needs {@link DATA_OVERHEAD} +
 * payload.length bytes there): the hot path encodes straight into a write batch.
 */
export function writeDataAt(buf: Buffer, offset: number, seq: number, payload: Uint8Array): void {
  // Checked before any byte is written: a failed call leaves `buf` as it was.
  checkU64(seq);
  buf.writeUInt32BE(1 + DATA_HEADER + payload.length, offset);
  buf[offset + LENGTH_BYTES] = FrameType.DATA;
  putU64(buf, seq, offset + LENGTH_BYTES + 1);
  buf.set(payload, offset + DATA_OVERHEAD);
}

/** REQUEST `seq` with an idempotency key (UTF-8 bytes, may be empty) and a payload. */
export function encodeRequest(seq: number, key: Uint8Array, payload: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(requestOverhead(key.length) + payload.length);
  writeRequestAt(buf, 0, seq, key, payload);
  return buf;
}

/**
 * Writes a REQUEST frame into `buf` at `offset` ({@link requestOverhead}(key.length) +
 * payload.length bytes there).
 */
export function writeRequestAt(
  buf: Buffer,
  offset: number,
  seq: number,
  key: Uint8Array,
  payload: Uint8Array,
): void {
  checkU64(seq);
  shortField(key, 'idempotency key');
  const o = offset + LENGTH_BYTES + 1;
  buf.writeUInt32BE(1 + REQUEST_HEADER + key.length + payload.length, offset);
  buf[offset + LENGTH_BYTES] = FrameType.REQUEST;
  putU64(buf, seq, o);
  buf.writeUInt16BE(key.length, o + 8);
  buf.set(key, o + REQUEST_HEADER);
  buf.set(payload, o + REQUEST_HEADER + key.length);
}

/** REPLY `seq` answering the peer's REQUEST `requestSeq` with a status and a payload. */
export function encodeReply(
  seq: number,
  requestSeq: number,
  status: ReplyStatusValue,
  payload: Uint8Array,
): Buffer {
  const buf = Buffer.allocUnsafe(REPLY_OVERHEAD + payload.length);
  writeReplyAt(buf, 0, seq, requestSeq, status, payload);
  return buf;
}

/** Writes a REPLY frame into `buf` at `offset` ({@link REPLY_OVERHEAD} + payload.length bytes). */
export function writeReplyAt(
  buf: Buffer,
  offset: number,
  seq: number,
  requestSeq: number,
  status: ReplyStatusValue,
  payload: Uint8Array,
): void {
  checkU64(seq);
  checkU64(requestSeq);
  if (!isReplyStatus(status)) throw new InvalidArgumentError(`unknown reply status ${status}`);
  const o = offset + LENGTH_BYTES + 1;
  buf.writeUInt32BE(1 + REPLY_HEADER + payload.length, offset);
  buf[offset + LENGTH_BYTES] = FrameType.REPLY;
  putU64(buf, seq, o);
  putU64(buf, requestSeq, o + 8);
  buf[o + 16] = status;
  buf.set(payload, o + REPLY_HEADER);
}

function isReplyStatus(status: number): status is ReplyStatusValue {
  return Number.isInteger(status) && status >= ReplyStatus.OK && status <= ReplyStatus.OVERLOADED;
}

/** ACK: every DATA with a sequence up to `seq` has been received. */
export function encodeAck(seq: number): Buffer {
  const buf = Buffer.allocUnsafe(ACK_FRAME_BYTES);
  writeAckAt(buf, 0, seq);
  return buf;
}

/** Writes an ACK frame into `buf` at `offset` ({@link ACK_FRAME_BYTES} bytes). */
export function writeAckAt(buf: Buffer, offset: number, seq: number): void {
  checkU64(seq);
  buf.writeUInt32BE(1 + ACK_SIZE, offset);
  buf[offset + LENGTH_BYTES] = FrameType.ACK;
  putU64(buf, seq, offset + LENGTH_BYTES + 1);
}

/**
 * A CLOSE reason cut, at a character boundary (it stays valid UTF-8), so that the frame
 * fits a receiver's `maxFrame`: a reason is only for logs (PROTOCOL.md 3.6).
 */
export function closeReasonFor(reason: string, maxFrame: number): string {
  const room = Math.max(0, maxFrame - 1 - CLOSE_FIXED);
  if (Buffer.byteLength(reason) <= room) return reason;
  const { read } = new TextEncoder().encodeInto(reason, new Uint8Array(room));
  return reason.slice(0, read);
}

/** CLOSE with a close code, a UTF-8 reason and a retry hint in ms (0: none). */
export function encodeClose(code: number, reason = '', retryAfter = 0): Buffer {
  if (!Number.isInteger(code) || code < 0 || code > 0xffff) {
    throw new InvalidArgumentError(`close code out of range: ${code}`);
  }
  const text = Buffer.from(reason, 'utf8');
  const buf = header(FrameType.CLOSE, CLOSE_FIXED + text.length);
  buf.writeUInt16BE(code, LENGTH_BYTES + 1);
  writeU32(buf, retryAfter, LENGTH_BYTES + 3);
  buf.set(text, LENGTH_BYTES + 1 + CLOSE_FIXED);
  return buf;
}

/** SETTINGS: the heartbeat interval and timeout (ms) in force from now on. */
export function encodeSettings(interval: number, timeout: number): Buffer {
  const buf = header(FrameType.SETTINGS, SETTINGS_SIZE);
  writeU32(buf, interval, LENGTH_BYTES + 1);
  writeU32(buf, timeout, LENGTH_BYTES + 5);
  return buf;
}

/** Encodes any frame; the per-type functions above avoid the dispatch on hot paths. */
export function encodeFrame(frame: Frame): Buffer {
  switch (frame.type) {
    case FrameType.HELLO:
      return encodeHello(frame);
    case FrameType.WELCOME:
      return encodeWelcome(frame);
    case FrameType.PING:
      return encodePing(frame.seq, frame.timestamp);
    case FrameType.PONG:
      return encodePong(frame.seq, frame.timestamp);
    case FrameType.DATA:
      return encodeData(frame.seq, frame.payload);
    case FrameType.ACK:
      return encodeAck(frame.seq);
    case FrameType.CLOSE:
      return encodeClose(frame.code, frame.reason, frame.retryAfter);
    case FrameType.SETTINGS:
      return encodeSettings(frame.interval, frame.timeout);
    case FrameType.REQUEST:
      return encodeRequest(frame.seq, Buffer.from(frame.key, 'utf8'), frame.payload);
    case FrameType.REPLY:
      return encodeReply(frame.seq, frame.requestSeq, frame.status, frame.payload);
  }
}

// ---------------------------------------------------------------------------------------
// Decoding

function malformed(message: string): ProtocolError {
  return new ProtocolError('HL_ERR_MALFORMED_FRAME', message);
}

/** A bounds-checked reader over one frame's payload. */
class Reader {
  private offset = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly frameName: string,
  ) {}

  private need(n: number): number {
    const at = this.offset;
    if (at + n > this.buf.length) throw malformed(`${this.frameName} frame is truncated`);
    this.offset = at + n;
    return at;
  }

  u8(): number {
    return this.buf[this.need(1)]!;
  }
  u16(): number {
    return this.buf.readUInt16BE(this.need(2));
  }
  u32(): number {
    return this.buf.readUInt32BE(this.need(4));
  }
  u64(): number {
    return readU64(this.buf, this.need(8), this.frameName);
  }
  bytes(n: number): Buffer {
    const at = this.need(n);
    return this.buf.subarray(at, at + n);
  }
  string(n: number): string {
    try {
      return utf8.decode(this.bytes(n));
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      throw malformed(`${this.frameName} holds invalid UTF-8`);
    }
  }
  rest(): Buffer {
    const at = this.offset;
    this.offset = this.buf.length;
    return this.buf.subarray(at);
  }
  end(): void {
    if (this.offset !== this.buf.length) throw malformed(`${this.frameName} frame is too long`);
  }
}

function checkVersion(version: number, frameName: string): void {
  if (version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
    throw new ProtocolError(
      'HL_ERR_UNSUPPORTED_VERSION',
      `${frameName} asks for protocol version ${version}; this end speaks ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`,
    );
  }
}

/** Version 2's maxFrame field; version 1 means the default. */
function readMaxFrame(r: Reader, version: number): number {
  if (version < 2) return DEFAULT_MAX_FRAME;
  const maxFrame = r.u32();
  if (maxFrame < MIN_MAX_FRAME) throw malformed(`maxFrame ${maxFrame} is below ${MIN_MAX_FRAME}`);
  return maxFrame;
}

function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

/**
 * Decodes one frame body (the type byte and payload, without the length prefix).
 * `version` is the connection's protocol version once known: REQUEST and REPLY are
 * unknown frames on a version 1 connection. Throws {@link ProtocolError} for anything
 * that is not a valid frame.
 */
export function decodeBody(body: Buffer, version = PROTOCOL_VERSION): Frame {
  if (body.length === 0) throw malformed('a frame must hold at least its type byte');
  const type = body[0];
  if ((type === FrameType.REQUEST || type === FrameType.REPLY) && version < 2) {
    throw new ProtocolError(
      'HL_ERR_UNKNOWN_FRAME',
      `frame type 0x${hex(type)} does not exist in protocol version ${version}`,
    );
  }
  const r = new Reader(body.subarray(1), frameName(type));
  let frame: Frame;
  switch (type) {
    case FrameType.HELLO: {
      const version = r.u8();
      checkVersion(version, 'HELLO');
      const flags = r.u8();
      if ((flags & ~HELLO_FLAG_RESUME) !== 0) throw malformed('HELLO has unknown flags');
      const interval = r.u32();
      const timeout = r.u32();
      const sessionId = Uint8Array.from(r.bytes(ID_BYTES));
      const token = Uint8Array.from(r.bytes(ID_BYTES));
      const lastReceived = r.u64();
      const resumeFlag = (flags & HELLO_FLAG_RESUME) !== 0;
      if (!resumeFlag && (!isZero(sessionId) || !isZero(token) || lastReceived !== 0)) {
        throw malformed('HELLO without the resume flag must carry zero session fields');
      }
      const auth = Uint8Array.from(r.bytes(r.u16()));
      const clientId = r.string(r.u16());
      const traceId = r.string(r.u16());
      frame = {
        type: FrameType.HELLO,
        version,
        interval,
        timeout,
        auth,
        resume: resumeFlag ? { sessionId, token, lastReceived } : null,
        clientId,
        traceId,
        maxFrame: readMaxFrame(r, version),
      };
      break;
    }
    case FrameType.WELCOME: {
      const version = r.u8();
      checkVersion(version, 'WELCOME');
      const flags = r.u8();
      if ((flags & ~WELCOME_FLAG_RESUMED) !== 0) throw malformed('WELCOME has unknown flags');
      frame = {
        type: FrameType.WELCOME,
        version,
        resumed: (flags & WELCOME_FLAG_RESUMED) !== 0,
        sessionId: Uint8Array.from(r.bytes(ID_BYTES)),
        token: Uint8Array.from(r.bytes(ID_BYTES)),
        interval: r.u32(),
        timeout: r.u32(),
        lastReceived: r.u64(),
        sessionTtl: r.u32(),
        maxFrame: readMaxFrame(r, version),
      };
      break;
    }
    case FrameType.PING:
    case FrameType.PONG:
      frame = { type, seq: r.u32(), timestamp: r.u64() } as PingFrame | PongFrame;
      break;
    case FrameType.DATA:
      frame = { type: FrameType.DATA, seq: r.u64(), payload: r.rest() } satisfies DataFrame;
      break;
    case FrameType.ACK:
      frame = { type: FrameType.ACK, seq: r.u64() } satisfies AckFrame;
      break;
    case FrameType.CLOSE: {
      const code = r.u16();
      const retryAfter = r.u32();
      const rest = r.rest();
      let reason: string;
      try {
        reason = utf8.decode(rest);
      } catch {
        throw malformed('CLOSE reason is invalid UTF-8');
      }
      frame = { type: FrameType.CLOSE, code, retryAfter, reason } satisfies CloseFrame;
      break;
    }
    case FrameType.SETTINGS:
      frame = {
        type: FrameType.SETTINGS,
        interval: r.u32(),
        timeout: r.u32(),
      } satisfies SettingsFrame;
      break;
    case FrameType.REQUEST: {
      const seq = r.u64();
      const key = r.string(r.u16());
      frame = { type: FrameType.REQUEST, seq, key, payload: r.rest() } satisfies RequestFrame;
      break;
    }
    case FrameType.REPLY: {
      const seq = r.u64();
      const requestSeq = r.u64();
      const status = r.u8();
      if (!isReplyStatus(status)) throw malformed(`REPLY has unknown status ${status}`);
      frame = {
        type: FrameType.REPLY,
        seq,
        requestSeq,
        status,
        payload: r.rest(),
      } satisfies ReplyFrame;
      break;
    }
    default:
      throw new ProtocolError('HL_ERR_UNKNOWN_FRAME', `unknown frame type 0x${hex(type)}`);
  }
  r.end();
  return frame;
}

/**
 * Decodes the frame body at `buf[start, end)` in place: DATA, ACK, PING and PONG of a
 * valid size (the frames of a busy link) without the views and the reader that
 * {@link decodeBody} allocates; everything else, and every malformed frame, through
 * decodeBody, so that errors are the same. A DATA payload is a view into `buf`.
 */
function decodeAt(buf: Buffer, start: number, end: number, version: number): Frame {
  const type = buf[start];
  const size = end - start - 1;
  switch (type) {
    case FrameType.DATA:
      if (size >= DATA_HEADER) {
        const payload = buf.subarray(start + 1 + DATA_HEADER, end);
        return { type: FrameType.DATA, seq: readU64(buf, start + 1, 'DATA'), payload };
      }
      break;
    case FrameType.ACK:
      if (size === ACK_SIZE) return { type: FrameType.ACK, seq: readU64(buf, start + 1, 'ACK') };
      break;
    case FrameType.PING:
    case FrameType.PONG:
      if (size === PING_SIZE) {
        return {
          type,
          seq: buf.readUInt32BE(start + 1),
          timestamp: readU64(buf, start + 5, type === FrameType.PING ? 'PING' : 'PONG'),
        } as PingFrame | PongFrame;
      }
      break;
  }
  return decodeBody(buf.subarray(start, end), version);
}

function readU64(buf: Buffer, at: number, frameName: string): number {
  const high = buf.readUInt32BE(at);
  if (high > MAX_SAFE_HIGH) throw malformed(`${frameName} has a u64 above 2^53 - 1`);
  return high * TWO_32 + buf.readUInt32BE(at + 4);
}

function hex(type: number | undefined): string {
  return (type ?? 0).toString(16).padStart(2, '0');
}

/** Frame names by type byte, built once: decoding runs per frame. */
const FRAME_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(FrameType).map(([name, value]) => [value, name]),
);

function frameName(type: number | undefined): string {
  return (type !== undefined && FRAME_NAMES.get(type)) || `0x${hex(type)}`;
}

/** Options of {@link Decoder}. */
export interface DecoderOptions {
  /** Largest accepted frame (type byte + payload) in bytes. @default 1048576 */
  maxFrame?: number;
}

/**
 * Chunks below this size that continue a buffered frame are copied into the decoder's
 * assembly buffer rather than held: each held chunk costs about 200 B of heap and 500 B
 * of RSS besides its bytes (its Buffer and ArrayBuffer objects and its own allocation), so
 * a frame trickled a few bytes per packet cost some 85 B of RSS per byte held. From this
 * size on the overhead is under half a byte per byte and the chunk is held by reference,
 * uncopied: an MSS-sized read (about 1448 B), a 16 KiB TLS record, a 64 KiB socket read.
 */
const SMALL_CHUNK = 1024;

/** Smallest assembly buffer worth allocating (a few small frames fit in it). */
const MIN_ASSEMBLY = 256;

/**
 * Incremental decoder. Feed it any chunking of a byte stream; it yields the same frames.
 * An announced length is checked against `maxFrame` before any byte of the frame is
 * buffered beyond what arrived, so a hostile length never causes an allocation. After it
 * throws, the decoder stays failed: the stream cannot be re-synchronised.
 *
 * Memory: an incomplete frame costs about its size. Small chunks are copied into one
 * assembly buffer that at most doubles each time it grows and never outgrows the frame it
 * assembles; large ones too while they fit in its room, and are held by reference
 * otherwise. The decoder thus retains at most about twice the bytes it buffers (plus
 * 256 B, and the decoded part of the chunk a frame began in): see {@link retainedBytes}.
 */
export class Decoder {
  readonly maxFrame: number;
  /**
   * The connection's protocol version, set once the handshake names it (REQUEST and
   * REPLY are unknown frames in version 1). Until then every defined frame decodes.
   */
  version: number = PROTOCOL_VERSION;
  /**
   * The chunk the next frame starts in (read from `head`), or null when nothing is
   * buffered; `rest` holds the chunks after it, and is null unless a frame spans chunks.
   * An idle link holds neither: no array waits, emptied, on each of a server's connections.
   */
  private first: Buffer | null = null;
  private rest: Buffer[] | null = null;
  private head = 0;
  private buffered = 0;
  /**
   * The assembly buffer, and `accView`, its filled part (it starts at 0). While it can
   * still grow in place `accView` is the last chunk held (`first`, or the last of `rest`);
   * both are null otherwise. Bytes before the end of `accView` are never written again:
   * frames decoded from it (DATA payloads) are views into it.
   */
  private acc: Buffer | null = null;
  private accView: Buffer | null = null;
  /**
   * Spare room of assembly buffers given up for a large chunk while their bytes are still
   * held (for {@link retainedBytes}); cleared once a single chunk is left.
   */
  private abandoned = 0;
  private failure: ProtocolError | null = null;

  constructor(options: DecoderOptions = {}) {
    const maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME;
    // NaN or a fraction would silently disable the size guard; above 2^32 - 1 it is unreachable.
    if (!Number.isInteger(maxFrame) || maxFrame < 1 || maxFrame > 0xffff_ffff) {
      throw new InvalidArgumentError(
        `maxFrame must be an integer from 1 to 4294967295, got ${maxFrame}`,
      );
    }
    this.maxFrame = maxFrame;
  }

  /** Bytes received but not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Bytes of memory the decoder keeps alive (an upper bound): the chunks it holds, in
   * full (including the part of the first one already decoded), and the spare room of its
   * assembly buffers. At least {@link bufferedBytes}; at most about twice that, plus a few
   * hundred bytes and the decoded part of the first chunk.
   */
  get retainedBytes(): number {
    if (this.first === null) return 0;
    let n = this.first.length;
    if (this.rest !== null) for (const c of this.rest) n += c.length;
    if (this.acc !== null && this.accView !== null) n += this.acc.length - this.accView.length;
    return n + this.abandoned;
  }

  /** @internal Chunks held (tests: small chunks must not pile up). */
  get heldChunks(): number {
    return this.first === null ? 0 : 1 + (this.rest?.length ?? 0);
  }

  /** Decodes every complete frame in the bytes received so far. */
  push(chunk: Uint8Array): Frame[] {
    if (this.failure) throw this.failure;
    const frames: Frame[] = [];
    if (chunk.length > 0) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      if (this.first === null) this.first = buf;
      else this.append(buf);
      this.buffered += chunk.length;
    }
    try {
      while (this.buffered >= LENGTH_BYTES) {
        const length = this.peekLength();
        if (length === 0) throw malformed('a frame must hold at least its type byte');
        if (length > this.maxFrame) {
          throw new ProtocolError(
            'HL_ERR_FRAME_TOO_LARGE',
            `frame of ${length} bytes exceeds the maximum of ${this.maxFrame}`,
          );
        }
        if (this.buffered < LENGTH_BYTES + length) break;
        const first = this.first!;
        const start = this.head + LENGTH_BYTES;
        const end = start + length;
        if (end <= first.length) {
          // The usual case: the frame lies in the first chunk, decode it where it is.
          this.buffered -= LENGTH_BYTES + length;
          if (end === first.length) this.shift();
          else this.head = end;
          frames.push(decodeAt(first, start, end, this.version));
          continue;
        }
        this.consume(LENGTH_BYTES);
        frames.push(decodeBody(this.consume(length), this.version));
      }
    } catch (err) {
      this.failure = err as ProtocolError;
      this.first = null;
      this.rest = null;
      this.acc = this.accView = null;
      this.abandoned = 0;
      this.buffered = 0;
      throw err;
    }
    return frames;
  }

  /**
   * Adds a chunk behind the buffered bytes (the start of an incomplete frame). It goes
   * into the assembly buffer when that has room for it; a large chunk is otherwise held
   * by reference, and a small one is copied into a new assembly buffer that also takes
   * over the last chunk's unread bytes when that one is small (or the old assembly
   * buffer), so small chunks never pile up.
   */
  private append(chunk: Buffer): void {
    const n = chunk.length;
    const view = this.accView;
    if (view !== null && this.acc!.length - view.length >= n) {
      chunk.copy(this.acc!, view.length);
      this.setLast(this.acc!.subarray(0, view.length + n));
      return;
    }
    let rest = this.rest;
    if (n >= SMALL_CHUNK) {
      // Its room is lost while its bytes wait; less than this chunk, which did not fit.
      if (view !== null) this.abandoned += this.acc!.length - view.length;
      this.acc = this.accView = null;
      if (rest === null) this.rest = [chunk];
      else rest.push(chunk);
      return;
    }
    const last = rest === null ? this.first! : rest[rest.length - 1]!;
    const from = rest === null ? this.head : 0;
    const live = last.length - from;
    const merge = last === view || live < SMALL_CHUNK;
    const want = merge ? live + n : n;
    // Room for the rest of the frame, no more: the bytes still missing from it are known
    // once its length prefix is in, and that length has been checked against maxFrame.
    let missing = 0;
    if (this.buffered >= LENGTH_BYTES) {
      missing = Math.max(0, LENGTH_BYTES + this.peekLength() - this.buffered - n);
    }
    // Doubling keeps the copies linear in the frame size and the spare room below what was
    // received, so a peer cannot make us reserve memory it has not sent.
    const acc = Buffer.allocUnsafe(want + Math.min(missing, Math.max(want, MIN_ASSEMBLY - want)));
    const at = merge ? last.copy(acc, 0, from) : 0;
    chunk.copy(acc, at);
    this.acc = acc;
    const filled = acc.subarray(0, want);
    if (merge) {
      if (rest === null) this.head = 0;
      this.setLast(filled);
      return;
    }
    if (rest === null) rest = this.rest = [];
    rest.push(filled);
    this.accView = filled;
  }

  /** Replaces the last chunk held with `view` (the grown assembly buffer). */
  private setLast(view: Buffer): void {
    const rest = this.rest;
    if (rest === null) this.first = view;
    else rest[rest.length - 1] = view;
    this.accView = view;
  }

  /** Drops the first chunk (fully read): the next one, if any, takes its place. */
  private shift(): void {
    this.head = 0;
    const rest = this.rest;
    if (rest === null) {
      // The assembly buffer, if any, was this last chunk: frames decoded from it keep it.
      this.first = null;
      this.acc = this.accView = null;
      this.abandoned = 0;
      return;
    }
    this.first = rest.shift()!;
    if (rest.length === 0) {
      // A lone chunk is never one given up by the assembly buffer (a large one followed it).
      this.rest = null;
      this.abandoned = 0;
    }
  }

  private peekLength(): number {
    const first = this.first!;
    if (first.length - this.head >= LENGTH_BYTES) return first.readUInt32BE(this.head);
    // The length prefix is split: it continues in the next chunks (buffered >= 4).
    const bytes = Buffer.allocUnsafe(LENGTH_BYTES);
    let filled = first.copy(bytes, 0, this.head);
    for (const c of this.rest!) {
      filled += c.copy(bytes, filled, 0, Math.min(c.length, LENGTH_BYTES - filled));
      if (filled === LENGTH_BYTES) break;
    }
    return bytes.readUInt32BE(0);
  }

  /** Removes `n` buffered bytes (n <= buffered) and returns them, copying only if split. */
  private consume(n: number): Buffer {
    const first = this.first!;
    const available = first.length - this.head;
    this.buffered -= n;
    if (available > n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      return out;
    }
    if (available === n) {
      const out = first.subarray(this.head);
      this.shift();
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.first!;
      const take = Math.min(c.length - this.head, n - filled);
      c.copy(out, filled, this.head, this.head + take);
      filled += take;
      if (this.head + take === c.length) this.shift();
      else this.head += take;
    }
    return out;
  }
}
