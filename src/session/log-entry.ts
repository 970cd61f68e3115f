/**
 * How a held outbound message is written to a session store's log (cluster mode), so
 * that another node replays it as the same frame: DATA, REQUEST or REPLY. An entry is
 * the frame's body without its seq (the log's position gives the seq): the type byte,
 * then REQUEST's key length and key, or REPLY's requestSeq and status, then the payload.
 * Pure: no I/O.
 */

import { InvalidArgumentError } from '../errors.js';
import { FrameType, type ReplyStatusValue } from '../protocol/frames.js';

/** What turns a held message into a REQUEST or a REPLY instead of DATA. */
export type Envelope =
  | { type: typeof FrameType.REQUEST; key: Uint8Array }
  | { type: typeof FrameType.REPLY; requestSeq: number; status: ReplyStatusValue };

/** One decoded log entry. */
export interface LogEntry {
  payload: Uint8Array;
  envelope: Envelope | null;
}

/** Encodes one held message as a log entry (one copy of the payload). */
export function encodeLogEntry(payload: Uint8Array, envelope: Envelope | null): Uint8Array {
  if (envelope === null) {
    const out = Buffer.allocUnsafe(1 + payload.length);
    out[0] = FrameType.DATA;
    out.set(payload, 1);
    return out;
  }
  if (envelope.type === FrameType.REQUEST) {
    const key = envelope.key;
    const out = Buffer.allocUnsafe(3 + key.length + payload.length);
    out[0] = FrameType.REQUEST;
    out.writeUInt16BE(key.length, 1);
    out.set(key, 3);
    out.set(payload, 3 + key.length);
    return out;
  }
  const out = Buffer.allocUnsafe(10 + payload.length);
  out[0] = FrameType.REPLY;
  out.writeUInt32BE(Math.floor(envelope.requestSeq / 0x1_0000_0000), 1);
  out.writeUInt32BE(envelope.requestSeq >>> 0, 5);
  out[9] = envelope.status;
  out.set(payload, 10);
  return out;
}

/** Decodes a log entry written by {@link encodeLogEntry}; views, no copies. */
export function decodeLogEntry(entry: Uint8Array): LogEntry {
  const buf = Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength);
  switch (buf[0]) {
    case FrameType.DATA:
      return { payload: buf.subarray(1), envelope: null };
    case FrameType.REQUEST: {
      const n = buf.length >= 3 ? buf.readUInt16BE(1) : -1;
      if (n < 0 || 3 + n > buf.length) break;
      return {
        payload: buf.subarray(3 + n),
        envelope: { type: FrameType.REQUEST, key: buf.subarray(3, 3 + n) },
      };
    }
    case FrameType.REPLY:
      if (buf.length < 10) break;
      return {
        payload: buf.subarray(10),
        envelope: {
          type: FrameType.REPLY,
          requestSeq: buf.readUInt32BE(1) * 0x1_0000_0000 + buf.readUInt32BE(5),
          status: buf[9] as ReplyStatusValue,
        },
      };
  }
  throw new InvalidArgumentError(
    'a session log entry is not one this version writes (drain nodes of older versions first)',
  );
}
