/**
 * Reads the HELLO at the start of a stream without consuming it: the primary of the
 * multi-process mode uses it to route a socket to the worker that holds its session. Pure:
 * it only collects bytes; the worker decodes them again, so anything invalid is judged
 * (and closed with the proper CLOSE code) exactly as a single-process server would.
 *
 * Linear: each byte is copied once into the frame being assembled (the 4-byte length
 * prefix at most twice), never re-concatenated per chunk, so a HELLO trickled in tiny
 * chunks costs the primary what a whole one does. A length no HELLO can have is answered
 * as soon as its type and version bytes are in.
 */

import { ProtocolError } from '../../errors.js';
import { decodeBody, MAX_HELLO_LENGTH } from '../../protocol/codec.js';
import { FrameType, LENGTH_BYTES } from '../../protocol/frames.js';

/** What the bytes so far say. */
export type PeekResult =
  /** Not a whole frame yet. */
  | { kind: 'more' }
  /** A valid HELLO; `sessionId` when it asks to resume. */
  | { kind: 'hello'; sessionId: Uint8Array | null }
  /** Not a valid HELLO (bad length, garbage, another frame): the worker will say why. */
  | { kind: 'invalid' }
  /**
   * A HELLO announcing more bytes than any HELLO can hold: `error` is what a single-process
   * server would fail it with once the whole frame were in (unsupported version, or
   * malformed), so the primary refuses it at once with the same CLOSE code.
   */
  | { kind: 'oversized'; length: number; error: ProtocolError };

const MORE: PeekResult = { kind: 'more' };
const INVALID: PeekResult = { kind: 'invalid' };
/** Length prefix, type and version: all an oversized HELLO needs to be judged. */
const HEADER_BYTES = LENGTH_BYTES + 2;

export class HelloPeek {
  /**
   * The frame's first bytes: a small header until its length is known to fit a HELLO,
   * then a buffer of the whole frame, filled in place.
   */
  private frame = Buffer.allocUnsafe(HEADER_BYTES);
  private filled = 0;
  /** True once `frame` is the whole frame's buffer. */
  private sized = false;
  /** Bytes after the frame (or after the verdict), kept for the worker. */
  private readonly tail: Buffer[] = [];
  private result: PeekResult = MORE;
  private copied_ = 0;

  constructor(private readonly maxFrame: number) {}

  /** Every byte pushed so far, in order (what the worker must read first). */
  get bytes(): Buffer {
    const head = this.frame.subarray(0, this.filled);
    return this.tail.length === 0 ? head : Buffer.concat([head, ...this.tail]);
  }

  /** Bytes copied so far (a test checks that the work stays linear in the bytes pushed). */
  get copied(): number {
    return this.copied_;
  }

  /** Adds bytes; once the result is not 'more' it stays (later bytes are still kept). */
  push(chunk: Buffer): PeekResult {
    if (this.result.kind !== 'more') {
      if (chunk.length > 0) this.tail.push(chunk);
      return this.result;
    }
    let at = 0;
    while (at < chunk.length) {
      // The length prefix first, alone: until it is judged, nothing else is placed.
      const want = this.filled < LENGTH_BYTES ? LENGTH_BYTES : this.frame.length;
      const n = chunk.copy(this.frame, this.filled, at, at + want - this.filled);
      this.copied_ += n;
      this.filled += n;
      at += n;
      this.result = this.judge();
      if (this.result.kind !== 'more') break;
    }
    if (at < chunk.length) this.tail.push(chunk.subarray(at));
    return this.result;
  }

  /** Looks at the bytes assembled so far (called once per copy, so a bounded number of times). */
  private judge(): PeekResult {
    if (this.filled < LENGTH_BYTES) return MORE;
    const frame = this.frame;
    const size = frame.readUInt32BE(0);
    // Same bounds as the decoder: never wait for more than maxFrame bytes.
    if (size === 0 || size > this.maxFrame) return INVALID;
    if (!this.sized && size <= MAX_HELLO_LENGTH) {
      // The length fits a HELLO: from now on bytes go straight to their place in the frame.
      this.frame = Buffer.allocUnsafe(LENGTH_BYTES + size);
      frame.copy(this.frame, 0, 0, LENGTH_BYTES);
      this.copied_ += LENGTH_BYTES;
      this.filled = LENGTH_BYTES;
      this.sized = true;
      return MORE;
    }
    // Not a HELLO: the worker judges the frame (and waits for it) as a single process does.
    if (this.filled > LENGTH_BYTES && this.frame[LENGTH_BYTES] !== FrameType.HELLO) return INVALID;
    if (size > MAX_HELLO_LENGTH) {
      if (this.filled < HEADER_BYTES) return MORE;
      return { kind: 'oversized', length: size, error: oversizedError(this.frame, size) };
    }
    if (this.filled < this.frame.length) return MORE;
    try {
      const hello = decodeBody(this.frame.subarray(LENGTH_BYTES));
      if (hello.type !== FrameType.HELLO) return INVALID;
      return { kind: 'hello', sessionId: hello.resume?.sessionId ?? null };
    } catch {
      return INVALID;
    }
  }
}

/**
 * What a single-process server fails an oversized HELLO with once it is all in: the version
 * byte is checked before the layout (PROTOCOL.md section 4), then the bytes past the
 * longest possible HELLO are trailing bytes.
 */
function oversizedError(header: Buffer, size: number): ProtocolError {
  try {
    // Type and version alone: throws for the version, else for the truncated fields.
    decodeBody(header.subarray(LENGTH_BYTES, HEADER_BYTES));
  } catch (err) {
    if (err instanceof ProtocolError && err.code === 'HL_ERR_UNSUPPORTED_VERSION') return err;
  }
  return new ProtocolError(
    'HL_ERR_MALFORMED_FRAME',
    `HELLO of ${size} bytes is longer than any HELLO can be (${MAX_HELLO_LENGTH})`,
  );
}
