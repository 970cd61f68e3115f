/**
 * The bytes a link writes during one turn of the event loop, gathered so that they reach
 * the socket in one write (one system call) instead of one per frame. Pure: no sockets.
 *
 * Frames are encoded straight into a process-wide arena: {@link WriteBatch.reserve} hands
 * out the next free bytes, and the frames of one batch that land next to each other in the
 * arena leave as one contiguous Buffer. The arena is never rewound past bytes a batch has
 * given out, so bytes handed to a socket are never overwritten; a spent arena is left to
 * the garbage collector once the writes that view it have completed.
 */

/**
 * Size of one arena. Small enough that a pending write of a stalled socket keeps little
 * memory alive (Node's own Buffer pool is 8 KiB), large enough for a few 4 KiB messages.
 */
export const ARENA_BYTES = 16 * 1024;

/**
 * A frame above this that does not fit in the rest of the arena gets a buffer of its own
 * rather than most of a fresh arena.
 */
export const OWN_BUFFER_ABOVE = ARENA_BYTES / 2;

const EMPTY = Buffer.alloc(0);

let arena: Buffer = Buffer.allocUnsafeSlow(ARENA_BYTES);
/** Bytes of `arena` handed out; everything from here on is free. */
let arenaUsed = 0;

/** Frames written in one turn, to be handed to the socket together. */
export class WriteBatch {
  /** The buffer that the last {@link reserve} returned an offset into. */
  buffer: Buffer = EMPTY;
  /** Start and end of the open segment in {@link buffer}. */
  #start = 0;
  #end = 0;
  /** Earlier segments of this batch that are not contiguous with the open one. */
  #sealed: Buffer[] | null = null;
  #bytes = 0;
  /** Where the slot of {@link reserveSlot} is, while the batch has one. */
  slotBuffer: Buffer = EMPTY;
  slotOffset = 0;
  #slotBytes = 0;
  /** Bytes at the front that {@link take} leaves out: a skipped slot. */
  #trim = 0;

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Reserves `n` bytes at the end of the batch; the caller writes them at the returned
   * offset of {@link buffer} before it reserves again.
   */
  reserve(n: number): number {
    this.#bytes += n;
    const end = this.#end;
    if (this.buffer === arena && end === arenaUsed && end + n <= ARENA_BYTES) {
      this.#end = arenaUsed = end + n;
      return end;
    }
    return this.#open(n);
  }

  /**
   * Reserves `n` bytes at the front of an empty batch, for a frame that is only known
   * when the batch leaves (a cumulative ACK riding ahead of the data): the caller fills
   * it at {@link slotBuffer}[{@link slotOffset}] or leaves it out with {@link skipSlot}.
   */
  reserveSlot(n: number): void {
    if (this.#bytes !== 0) throw new Error('reserveSlot() needs an empty batch');
    this.slotOffset = this.reserve(n);
    this.slotBuffer = this.buffer;
    this.#slotBytes = n;
  }

  /** Leaves the slot out: {@link take} returns the bytes after it. */
  skipSlot(): void {
    this.#trim = this.#slotBytes;
    this.#bytes -= this.#slotBytes;
    this.#slotBytes = 0;
  }

  /** Undoes the {@link reserve} of `n` bytes just made (its bytes could not be written). */
  drop(n: number): void {
    this.#bytes -= n;
    this.#end -= n;
    if (this.buffer === arena && arenaUsed === this.#end + n) arenaUsed = this.#end;
  }

  /**
   * Adds `chunk` itself (not a copy) after the bytes held: for frames large enough that
   * copying them would cost more than a segment of their own. The caller must not modify
   * `chunk` afterwards.
   */
  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#seal();
    this.#sealedList().push(chunk);
    this.#bytes += chunk.length;
  }

  /**
   * Empties the batch and returns its bytes in order: one Buffer (the usual case), an
   * array of them when the batch spans several segments, null when it is empty.
   */
  take(): Buffer | Buffer[] | null {
    if (this.#bytes === 0) {
      this.clear();
      return null;
    }
    const trim = this.#trim;
    let out: Buffer | Buffer[];
    if (this.#sealed === null) {
      out = this.buffer.subarray(this.#start + trim, this.#end);
    } else {
      this.#seal();
      const list = this.#sealed!;
      // The slot is at the front of the first segment, or is all of it.
      if (trim > 0) {
        const first = list[0]!;
        if (first.length === trim) list.shift();
        else list[0] = first.subarray(trim);
      }
      out = list.length === 1 ? list[0]! : list;
    }
    this.clear();
    return out;
  }

  /** Drops everything held (the socket is gone). */
  clear(): void {
    this.#sealed = null;
    this.buffer = EMPTY;
    this.#start = this.#end = 0;
    this.#bytes = 0;
    this.slotBuffer = EMPTY;
    this.slotOffset = 0;
    this.#slotBytes = 0;
    this.#trim = 0;
  }

  /** Starts a new segment of at least `n` bytes and returns its offset. */
  #open(n: number): number {
    this.#seal();
    if (n > OWN_BUFFER_ABOVE) {
      this.buffer = Buffer.allocUnsafeSlow(n);
      this.#start = 0;
      this.#end = n;
      return 0;
    }
    if (arenaUsed + n > ARENA_BYTES) {
      arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
      arenaUsed = 0;
    }
    this.buffer = arena;
    this.#start = arenaUsed;
    this.#end = arenaUsed = arenaUsed + n;
    return this.#start;
  }

  #seal(): void {
    if (this.#end > this.#start) {
      this.#sealedList().push(this.buffer.subarray(this.#start, this.#end));
    }
    this.buffer = EMPTY;
    this.#start = this.#end = 0;
  }

  #sealedList(): Buffer[] {
    if (this.#sealed === null) this.#sealed = [];
    return this.#sealed;
  }
}

/** Batches not in use; a link holds one only between its first write and its flush. */
const spare: WriteBatch[] = [];
/** Spare batches kept for reuse; more are left to the garbage collector. */
const SPARE_MAX = 64;

/** An empty batch, reused when one is spare. */
export function acquireBatch(): WriteBatch {
  return spare.pop() ?? new WriteBatch();
}

/** Returns a batch that was taken (or is to be dropped) for reuse. */
export function releaseBatch(batch: WriteBatch): void {
  batch.clear();
  if (spare.length < SPARE_MAX) spare.push(batch);
}
