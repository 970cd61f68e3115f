/**
 * Reads the HELLO at the start of a stream without consuming it: the primary of the
 * multi-process mode uses it to route a socket to the worker that holds its session. Pure:
 * it only collects bytes; the worker decodes them again, so anything invalid is judged
 * (and closed with the proper CLOSE code) exactly as a single-process server would.
 */

import { decodeBody } from '../../protocol/codec.js';
import { FrameType, LENGTH_BYTES } from '../../protocol/frames.js';

/** What the bytes so far say. */
export type PeekResult =
  /** Not a whole frame yet. */
  | { kind: 'more' }
  /** A valid HELLO; `sessionId` when it asks to resume. */
  | { kind: 'hello'; sessionId: Uint8Array | null }
  /** Not a valid HELLO (bad length, garbage, another frame): the worker will say why. */
  | { kind: 'invalid' };

const MORE: PeekResult = { kind: 'more' };
const INVALID: PeekResult = { kind: 'invalid' };

export class HelloPeek {
  private readonly chunks: Buffer[] = [];
  private length = 0;
  private result: PeekResult = MORE;

  constructor(private readonly maxFrame: number) {}

  /** Every byte pushed so far, in order (what the worker must read first). */
  get bytes(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length);
  }

  /** Adds bytes; once the result is not 'more' it stays (later bytes are still kept). */
  push(chunk: Buffer): PeekResult {
    this.chunks.push(chunk);
    this.length += chunk.length;
    if (this.result.kind === 'more' && this.length >= LENGTH_BYTES) this.result = this.judge();
    return this.result;
  }

  private judge(): PeekResult {
    const all = this.bytes;
    // Kept as one buffer so a HELLO in many small chunks is not concatenated again and again.
    this.chunks.splice(0, this.chunks.length, all);
    const size = all.readUInt32BE(0);
    // Same bounds as the decoder: never wait for more than maxFrame bytes.
    if (size === 0 || size > this.maxFrame) return INVALID;
    if (all.length < LENGTH_BYTES + size) return MORE;
    const body = all.subarray(LENGTH_BYTES, LENGTH_BYTES + size);
    if (body[0] !== FrameType.HELLO) return INVALID;
    try {
      const frame = decodeBody(body);
      if (frame.type !== FrameType.HELLO) return INVALID;
      return { kind: 'hello', sessionId: frame.resume?.sessionId ?? null };
    } catch {
      return INVALID;
    }
  }
}
