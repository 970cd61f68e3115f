/**
 * Two connected in-memory transports: a socket pair with no sockets, for tests that run a
 * link (or a whole connection) on a fake clock. Each end behaves as a `net.Socket` does
 * where the link can tell:
 *
 * - bytes arrive on a later microtask, in order, never re-entrantly inside write(): one
 *   'data' per write (or per cork ... uncork), in parts where the peer's window had
 *   room for only part of it;
 * - as a kernel does, the peer's receive buffer takes up to `window` bytes at once, in
 *   write(), whether its reader is reading or paused: `writableLength` stays 0 while it
 *   has room; past it the writer's queue grows, write() returns false at `highWater`,
 *   and 'drain' follows once the queue is empty again;
 * - end() sends a FIN after what is queued: the peer gets 'end' once it has read
 *   everything, and ends its own side as a `net.Socket` does (allowHalfOpen off); an end
 *   whose FIN went out and came in emits 'close';
 * - destroy() closes this end at once, dropping what it holds, and the peer gets a FIN
 *   ('end', then 'close'); resetAndDestroy() sends a reset instead: the peer gets an
 *   ECONNRESET 'error' and 'close';
 * - {@link MemoryPair.drop} pulls the cable: from then on nothing crosses, in either
 *   direction, and no end is told (a FIN or reset is lost too), so only a heartbeat or a
 *   write-stall watch notices.
 *
 * Nothing reads the clock: time moves only when the test moves it, and every delivery
 * runs in the microtasks that `FakeClock.advanceAsync` lets through between its steps.
 */

import { EventEmitter } from 'node:events';
import { InvalidArgumentError } from '../errors.js';
import type { Transport } from './transport.js';

/** Defaults of {@link MemoryPairOptions}. */
export const MEMORY_PAIR_DEFAULTS = Object.freeze({
  /**
   * write() returns false once an end's queue holds this many bytes (net.Socket's
   * default writableHighWaterMark).
   * @default 16384
   */
  highWater: 16 * 1024,
  /**
   * Bytes an end takes in that its reader has not read yet (a kernel receive buffer):
   * beyond them the writer's queue grows, which is what pushes back on it.
   * @default 65536
   */
  window: 64 * 1024,
});

/** Options of {@link MemoryPair}. */
export interface MemoryPairOptions {
  /** @default 16384 (see {@link MEMORY_PAIR_DEFAULTS}) */
  highWater?: number;
  /** @default 65536 (see {@link MEMORY_PAIR_DEFAULTS}) */
  window?: number;
}

function sizeOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new InvalidArgumentError(`option "${name}" must be an integer >= 1, got ${value}`);
  }
  return value;
}

let nextEndId = 0;

/** A system error as Node reports one (`code`, `errno`, `syscall`). */
function systemError(code: string, errno: number, syscall: string): Error {
  return Object.assign(new Error(`${syscall} ${code}`), { code, errno, syscall });
}

/** One end of a {@link MemoryPair}. */
export class MemoryTransport extends EventEmitter implements Transport {
  /** 'memory': the pair has no addresses. */
  readonly remoteAddress = 'memory';
  /** The peer end's process-unique number, so that `remote` tells links apart. */
  readonly remotePort: number;
  /** This end's own number (the peer's remotePort). */
  readonly localPort = ++nextEndId;
  /** Written and not yet taken into the peer's receive buffer. */
  private readonly queue: Buffer[] = [];
  private queued = 0;
  /** Taken in from the peer and not yet emitted as 'data'. */
  private readonly inbox: Buffer[] = [];
  private inboxBytes = 0;
  private corks = 0;
  private corked: Buffer[] | null = null;
  private reading = true;
  private needDrain = false;
  /** end() was called: no more writes; the FIN follows the queue. */
  private ending = false;
  /** Our FIN reached the peer (or was lost with the cable). */
  private finSent = false;
  /** The peer's FIN arrived behind everything it sent. */
  private finReceived = false;
  private endEmitted = false;
  private isDestroyed = false;
  private closeEmitted = false;
  /** An error to emit before 'close'. */
  private failure: Error | null = null;
  /** @internal */
  peer!: MemoryTransport;

  /** @internal Made by {@link MemoryPair}. */
  constructor(
    private readonly pair: MemoryPair,
    peerPort: number,
  ) {
    super();
    this.remotePort = peerPort;
  }

  get writableLength(): number {
    return this.queued;
  }

  get writable(): boolean {
    return !this.ending && !this.isDestroyed;
  }

  get destroyed(): boolean {
    return this.isDestroyed;
  }

  /** True while the peer's bytes are emitted as 'data' (see {@link pause}). */
  get isReading(): boolean {
    return this.reading;
  }

  /** Bytes taken in from the peer that the reader has not read yet (paused). */
  get unread(): number {
    return this.inboxBytes;
  }

  write(bytes: Uint8Array): boolean {
    if (this.isDestroyed) return false;
    if (this.ending) {
      // As a net.Socket: the error comes on a later turn and the stream is destroyed.
      this.fail(
        Object.assign(new Error('write after end'), { code: 'ERR_STREAM_WRITE_AFTER_END' }),
      );
      return false;
    }
    const chunk = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (chunk.length === 0) return this.queued < this.pair.highWater;
    if (this.corked !== null) this.corked.push(chunk);
    else this.queue.push(chunk);
    this.queued += chunk.length;
    if (this.corks === 0) this.send();
    const below = this.queued < this.pair.highWater;
    if (!below) this.needDrain = true;
    return below;
  }

  cork(): void {
    this.corks++;
    this.corked ??= [];
  }

  uncork(): void {
    if (this.corks === 0) return;
    if (--this.corks > 0) return;
    const corked = this.corked;
    this.corked = null;
    if (corked === null || corked.length === 0) return;
    // What was written corked leaves as one chunk, as one writev would.
    this.queue.push(corked.length === 1 ? corked[0]! : Buffer.concat(corked));
    this.send();
  }

  end(): this {
    if (this.ending || this.isDestroyed) return this;
    this.uncorkAll();
    this.ending = true;
    this.send();
    return this;
  }

  destroy(): this {
    if (this.isDestroyed) return this;
    this.isDestroyed = true;
    this.drop();
    // A FIN, unless ours already went: the peer reads what it holds, then 'end'.
    if (!this.finSent && !this.pair.dropped) this.peer.finReceived = true;
    this.finSent = true;
    this.pair.schedule();
    return this;
  }

  /**
   * Closes at once with a reset (as `net.Socket.resetAndDestroy`): this end just closes,
   * the peer gets an ECONNRESET 'error' and 'close' and loses what it had not read. With
   * the cable pulled the peer hears nothing.
   */
  resetAndDestroy(): this {
    if (this.isDestroyed) return this;
    const peer = this.peer;
    this.isDestroyed = true;
    this.finSent = true;
    this.drop();
    if (!this.pair.dropped && !peer.isDestroyed) {
      peer.failure = systemError('ECONNRESET', -104, 'read');
      peer.isDestroyed = true;
      peer.drop();
    }
    this.pair.schedule();
    return this;
  }

  pause(): this {
    this.reading = false;
    return this;
  }

  resume(): this {
    if (this.reading) return this;
    this.reading = true;
    this.pair.schedule();
    return this;
  }

  /** Does nothing: a memory transport holds no handle that could keep the process alive. */
  ref(): this {
    return this;
  }

  /** Does nothing (see {@link ref}). */
  unref(): this {
    return this;
  }

  /** Hands what fits to the peer's receive buffer now; it reads it on a later microtask. */
  private send(): void {
    if (!this.pair.dropped) this.transmit();
    this.pair.schedule();
  }

  private uncorkAll(): void {
    if (this.corks === 0) return;
    this.corks = 1;
    this.uncork();
  }

  /** Fails this end on a later turn: 'error', then 'close'. */
  private fail(err: Error): void {
    this.failure ??= err;
    this.isDestroyed = true;
    this.drop();
    this.pair.schedule();
  }

  /** Forgets everything this end holds (destroyed). */
  private drop(): void {
    this.queue.length = 0;
    this.queued = 0;
    this.corked = null;
    this.corks = 0;
    this.inbox.length = 0;
    this.inboxBytes = 0;
    this.needDrain = false;
  }

  /**
   * @internal Moves what this end wrote into the peer's receive buffer, as far as it has
   * room, then the FIN behind it. Nothing crosses a dropped pair.
   */
  transmit(): void {
    const peer = this.peer;
    if (peer.isDestroyed) {
      // Nobody reads on the other side any more: what was queued goes nowhere.
      this.queue.length = 0;
      this.queued = 0;
    }
    while (this.queue.length > 0) {
      const room = this.pair.window - peer.inboxBytes;
      if (room <= 0) break;
      const head = this.queue[0]!;
      let moved = head;
      if (head.length <= room) this.queue.shift();
      else {
        moved = head.subarray(0, room);
        this.queue[0] = head.subarray(room);
      }
      peer.inbox.push(moved);
      peer.inboxBytes += moved.length;
      this.queued -= moved.length;
    }
    if (this.queued === 0 && this.ending && !this.finSent) {
      this.finSent = true;
      peer.finReceived = true;
    }
  }

  /** @internal Emits what this end has to tell, in order: data, end, error, close. */
  deliver(): void {
    if (this.needDrain && this.queued === 0 && !this.isDestroyed) {
      this.needDrain = false;
      this.emit('drain');
    }
    while (this.reading && this.inbox.length > 0 && !this.isDestroyed) {
      const chunk = this.inbox.shift()!;
      this.inboxBytes -= chunk.length;
      // Room in our receive buffer: the peer's queue may move on.
      if (this.peer.queued > 0) this.pair.schedule();
      this.emit('data', chunk);
    }
    if (
      !this.isDestroyed &&
      this.reading &&
      this.finReceived &&
      this.inbox.length === 0 &&
      !this.endEmitted
    ) {
      this.endEmitted = true;
      this.emit('end');
      // allowHalfOpen off, as a net.Socket by default: our FIN answers the peer's.
      this.end();
    }
    if (!this.isDestroyed && this.endEmitted && this.finSent) this.isDestroyed = true;
    if (this.isDestroyed && !this.closeEmitted) {
      this.closeEmitted = true;
      const failure = this.failure;
      this.failure = null;
      if (failure !== null) this.emit('error', failure);
      this.emit('close');
    }
  }
}

/**
 * Two connected {@link MemoryTransport}s, `a` and `b`, and the cable between them.
 * @example
 * const pair = new MemoryPair();
 * pair.b.on('data', (chunk) => console.log(chunk.toString()));
 * pair.a.write(Buffer.from('hello')); // 'data' on b on a later microtask
 */
export class MemoryPair {
  readonly a: MemoryTransport;
  readonly b: MemoryTransport;
  /** @internal */
  readonly highWater: number;
  /** @internal */
  readonly window: number;
  private cut = false;
  private scheduled = false;

  constructor(options: MemoryPairOptions = {}) {
    this.highWater = sizeOption('highWater', options.highWater, MEMORY_PAIR_DEFAULTS.highWater);
    this.window = sizeOption('window', options.window, MEMORY_PAIR_DEFAULTS.window);
    const aPort = nextEndId + 1;
    const bPort = nextEndId + 2;
    this.a = new MemoryTransport(this, bPort);
    this.b = new MemoryTransport(this, aPort);
    this.a.peer = this.b;
    this.b.peer = this.a;
  }

  /** True once {@link drop} pulled the cable. */
  get dropped(): boolean {
    return this.cut;
  }

  /**
   * Pulls the cable: from now on no byte, FIN or reset crosses in either direction, and
   * neither end is told. Writes still queue (and never drain); what an end had already
   * taken in is still read.
   */
  drop(): void {
    this.cut = true;
  }

  /** @internal Runs {@link pump} on the next microtask (once, however often asked). */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.pump());
  }

  private pump(): void {
    this.scheduled = false;
    if (!this.cut) {
      this.a.transmit();
      this.b.transmit();
    }
    this.a.deliver();
    this.b.deliver();
  }
}
