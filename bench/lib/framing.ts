/**
 * The length-prefixed framing of the raw-net baselines: a u32 big-endian length, then
 * that many bytes. It is heartline's own prefix without its type byte and sequence
 * number, so the message benchmark compares heartline with the cheapest design that
 * frames messages the same way, and the naive heartbeat design speaks it too.
 */

/** Bytes of the length prefix. */
export const PREFIX_BYTES = 4;

/** Largest body accepted; anything larger is a bug in the benchmark, not a workload. */
const MAX_BODY = 16 * 1024 * 1024;

/** Encodes one frame: prefix and body in a single buffer (one write per frame). */
export function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(PREFIX_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, PREFIX_BYTES);
  return out;
}

/**
 * Incremental decoder: feed chunks, get every complete body (a view into the chunk when
 * a frame sits inside one chunk, a copy when it spans several).
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the pending data must reach before a frame can complete. */
  private needed = 0;

  constructor(private readonly onFrame: (body: Buffer) => void) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      // Concatenate only once the frame can complete: no quadratic copying of big frames.
      if (this.pendingBytes < this.needed) return;
      buf = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let offset = 0;
    while (buf.length - offset >= PREFIX_BYTES) {
      const length = buf.readUInt32BE(offset);
      if (length > MAX_BODY) throw new Error(`frame of ${length} bytes exceeds ${MAX_BODY}`);
      const end = offset + PREFIX_BYTES + length;
      if (end > buf.length) break;
      this.onFrame(buf.subarray(offset + PREFIX_BYTES, end));
      offset = end;
    }
    if (offset < buf.length) {
      const rest = buf.subarray(offset);
      this.pending.push(rest);
      this.pendingBytes = rest.length;
      this.needed =
        rest.length >= PREFIX_BYTES ? PREFIX_BYTES + rest.readUInt32BE(0) : PREFIX_BYTES;
    }
  }
}
