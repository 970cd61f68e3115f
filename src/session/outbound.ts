/**
 * The sender's replay buffer: numbers outgoing messages and keeps each one until the peer
 * acknowledges it, so that after a reconnect everything unacknowledged can be resent in
 * order. Pure: no sockets, no timers.
 *
 * Sequence numbers are contiguous, so the buffer only stores payloads: the message at queue
 * position k has seq `acked + 1 + k`.
 */

import { HeartlineError, InvalidArgumentError } from '../errors.js';
import { CONNECTION_DEFAULTS, intOption, type SharedBudget } from '../options.js';

/**
 * Options for {@link OutboundBuffer}: the connection passes its resolved limits; a field
 * left out takes the connection option's default ({@link CONNECTION_DEFAULTS}).
 */
export interface OutboundOptions {
  /**
   * Buffered bytes at which {@link OutboundBuffer.full} turns true and send() starts
   * returning false, asking the application to wait for a drain.
   * @default CONNECTION_DEFAULTS.highWaterMark (1 MiB)
   */
  highWaterMark?: number;
  /**
   * Hard cap on buffered bytes; a push that would pass it is refused with
   * `HL_ERR_BUFFER_FULL`. Must be >= highWaterMark.
   * @default CONNECTION_DEFAULTS.maxBufferedBytes (16 MiB)
   */
  maxBytes?: number;
  /**
   * Bytes each held message is charged on top of its payload, for the objects that hold
   * it; both limits compare against payload plus this (see {@link OutboundBuffer.memory}).
   * @default 160 ({@link ENTRY_OVERHEAD})
   */
  entryOverhead?: number;
  /**
   * A budget shared with other buffers (a server's connections): a push that would pass
   * it is refused with `HL_ERR_OVERLOADED`. @default none
   */
  budget?: SharedBudget | null;
}

/**
 * What one held message costs beyond its payload bytes, measured on Node 20 x64 as RSS
 * per entry over a million entries: a Buffer view and its array slot take about 150
 * bytes. Counting it makes empty or tiny messages count: without it a peer could make a
 * server hold gigabytes of bookkeeping under a cap that saw only payload bytes.
 */
export const ENTRY_OVERHEAD = 160;

/**
 * A payload that keeps more than this many bytes of a larger buffer alive (a view into a
 * 64 KiB socket read) is copied when pushed, so that what the buffer holds is what it
 * counts. Small enough that the slack a view may carry unaccounted stays below a few
 * entries' overhead.
 */
export const RETAINED_SLACK = 1024;

/** Shared by every empty payload kept (a Buffer, so hand-backs need no view of it). */
const EMPTY = Buffer.alloc(0);

/**
 * Consumed slots at the front are dropped once there are at least this many and they make
 * up half the array, so compaction is O(1) amortised per message and the array never holds
 * more than about twice the live entries.
 */
const COMPACT_MIN = 1024;

/**
 * Replay buffer for one direction of one session.
 *
 * Payloads are kept by reference, not copied: the caller must not modify a payload after
 * pushing it, or a resend after resume would carry different bytes.
 */
export class OutboundBuffer {
  readonly #highWaterMark: number;
  readonly #maxBytes: number;
  readonly #overhead: number;
  #budget: SharedBudget | null;

  /** Payloads; live entries are `#queue[#head ..]`, holes before #head are undefined. */
  #queue: (Uint8Array | undefined)[] = [];
  #head = 0;
  #bytes = 0;
  /** Payload bytes plus the per-entry overhead of every held message. */
  #memory = 0;
  #lastSeq = 0;
  #acked = 0;

  /**
   * @param options Read once and never mutated.
   * @throws {InvalidArgumentError} naming the option when a value is out of range or the
   *   two limits conflict.
   */
  constructor(options: OutboundOptions = {}) {
    const highWaterMark = intOption(
      'outbound.highWaterMark',
      options.highWaterMark,
      CONNECTION_DEFAULTS.highWaterMark,
      0,
    );
    const maxBytes = intOption(
      'outbound.maxBytes',
      options.maxBytes,
      CONNECTION_DEFAULTS.maxBufferedBytes,
      1,
    );
    // A cap below the soft limit would fail pushes before back-pressure ever showed.
    if (maxBytes < highWaterMark) {
      throw new InvalidArgumentError(
        `option "outbound.maxBytes" (${maxBytes}) must be >= "outbound.highWaterMark" (${highWaterMark})`,
      );
    }
    const entryOverhead = intOption(
      'outbound.entryOverhead',
      options.entryOverhead,
      ENTRY_OVERHEAD,
      0,
    );
    this.#highWaterMark = highWaterMark;
    this.#maxBytes = maxBytes;
    this.#overhead = entryOverhead;
    this.#budget = options.budget ?? null;
  }

  /** Payload bytes held (sum of payload lengths). */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Memory held as the limits count it: payload bytes plus {@link ENTRY_OVERHEAD} per
   * message. The high-water mark, maxBytes and a shared budget all compare against this.
   */
  get memory(): number {
    return this.#memory;
  }

  /** Messages held (unacknowledged). */
  get size(): number {
    return this.#queue.length - this.#head;
  }

  /** Highest sequence number assigned; 0 before the first push. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Highest sequence number acknowledged by the peer; 0 before the first ack. */
  get acked(): number {
    return this.#acked;
  }

  /** True while memory >= highWaterMark: send() returns false and the caller should wait. */
  get full(): boolean {
    return this.#memory >= this.#highWaterMark;
  }

  /**
   * Assigns the next sequence number (starting at 1) and keeps the payload until it is
   * acknowledged. A payload that is a small view into a much larger buffer is copied (see
   * {@link RETAINED_SLACK}); `owned` says the caller made it for this push (no check).
   * `force` skips the limits, for a session restored from a store, which held it already.
   * @returns The assigned sequence number.
   * @throws {HeartlineError} `HL_ERR_BUFFER_FULL` if the payload would take the buffer past
   *   maxBytes, `HL_ERR_OVERLOADED` past the shared budget; nothing is changed then.
   * @throws {InvalidArgumentError} if `payload` is not a Uint8Array.
   */
  push(payload: Uint8Array, owned = false, force = false): number {
    if (!(payload instanceof Uint8Array)) {
      throw new InvalidArgumentError('payload must be a Uint8Array');
    }
    const cost = payload.length + this.#overhead;
    if (!force && this.#memory + cost > this.#maxBytes) {
      throw new HeartlineError(
        'HL_ERR_BUFFER_FULL',
        `replay buffer full: ${this.size} unacknowledged messages hold ${this.#memory} bytes; ${cost} more would pass maxBytes (${this.#maxBytes})`,
      );
    }
    const budget = this.#budget;
    if (budget !== null) {
      if (force) budget.reserve(cost);
      else if (!budget.tryReserve(cost, this.#memory)) {
        throw new HeartlineError(
          'HL_ERR_OVERLOADED',
          `server-wide replay budget full: ${budget.used} of ${budget.limit} bytes held by all connections`,
        );
      }
    }
    this.#queue.push(owned ? payload : keepable(payload));
    this.#bytes += payload.length;
    this.#memory += cost;
    return ++this.#lastSeq;
  }

  /**
   * Cumulative acknowledgement: frees every message with seq <= `seq`.
   * @returns How many messages were freed (0 for a repeated ack), or -1 if the ack is above
   *   {@link lastSeq} or below {@link acked}; it is ignored then. The caller treats an ack
   *   above lastSeq as a protocol error (the peer acknowledged something never sent).
   * @throws {InvalidArgumentError} if `seq` is not a safe integer (a caller bug: the decoder
   *   only produces integers).
   */
  ack(seq: number): number {
    if (!Number.isSafeInteger(seq)) {
      throw new InvalidArgumentError(`ack seq must be a safe integer, got ${String(seq)}`);
    }
    if (seq > this.#lastSeq || seq < this.#acked) return -1;
    const freed = seq - this.#acked;
    const queue = this.#queue;
    const end = this.#head + freed;
    let freedBytes = 0;
    for (let i = this.#head; i < end; i++) {
      // Entries in [head, head + size) are always present.
      freedBytes += queue[i]!.length;
      queue[i] = undefined;
    }
    this.#bytes -= freedBytes;
    const freedMemory = freedBytes + freed * this.#overhead;
    this.#memory -= freedMemory;
    this.#budget?.release(freedMemory);
    this.#head = end;
    this.#acked = seq;
    if (this.#head === queue.length) {
      // Empty: start over without copying.
      queue.length = 0;
      this.#head = 0;
    } else if (this.#head >= COMPACT_MIN && this.#head * 2 >= queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
    return freed;
  }

  /**
   * The payload with sequence number `seq` while it is still buffered (acked < seq <=
   * lastSeq), otherwise undefined. O(1): lets a writer walk forward one seq at a time as the
   * socket drains, without holding an iterator across writes.
   */
  get(seq: number): Uint8Array | undefined {
    if (!Number.isSafeInteger(seq) || seq <= this.#acked || seq > this.#lastSeq) return undefined;
    return this.#queue[this.#head + (seq - this.#acked - 1)];
  }

  /**
   * Starts an empty buffer at `seq`, for a session restored from a store: everything up to
   * `seq` counts as sent and acknowledged, and the next push gets `seq + 1`.
   * @throws {InvalidArgumentError} if the buffer holds messages or `seq` is not a safe
   *   integer >= 0.
   */
  startAt(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq < 0) {
      throw new InvalidArgumentError(`startAt seq must be a safe integer >= 0, got ${String(seq)}`);
    }
    if (this.size > 0) throw new InvalidArgumentError('startAt needs an empty buffer');
    this.#queue = [];
    this.#head = 0;
    this.#lastSeq = seq;
    this.#acked = seq;
  }

  /**
   * Empties the buffer and returns every unacknowledged payload in order, for handing back
   * to the application when the session is lost or the client gives up. The sequence
   * restarts at 1 and {@link acked} at 0 (a new session).
   */
  takeAll(): Uint8Array[] {
    const out = this.#queue.slice(this.#head) as Uint8Array[];
    this.#budget?.release(this.#memory);
    this.#queue = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#memory = 0;
    this.#lastSeq = 0;
    this.#acked = 0;
    return out;
  }

  /**
   * Gives what the buffer holds back to the shared budget and leaves it (the connection
   * ended: its messages are gone or kept by a store, not by this process for long).
   */
  releaseBudget(): void {
    this.#budget?.release(this.#memory);
    this.#budget = null;
  }
}

/** The payload to keep for `payload`: a copy when it would keep much more alive than itself. */
function keepable(payload: Uint8Array): Uint8Array {
  if (payload.buffer.byteLength - payload.length <= RETAINED_SLACK) return payload;
  return payload.length === 0 ? EMPTY : Buffer.from(payload);
}

/** `payload` as a Buffer over the same bytes (no copy): what hand-backs give the application. */
export function asBuffer(payload: Uint8Array): Buffer {
  return Buffer.isBuffer(payload)
    ? payload
    : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}
