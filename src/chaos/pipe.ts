/**
 * One direction of a proxied pair: reads from `src`, writes to `dst`, and applies the
 * direction's current fault (latency, freeze, blackhole) on the way. Every chunk and the
 * end-of-stream mark go through one FIFO with delivery times, so latency and freezing can
 * never reorder bytes or let a FIN overtake the data in front of it.
 */

import type { Socket } from 'node:net';
import type { Clock, ClockTimer } from '../time/clock.js';

/** What a direction does with bytes: forward them, hold them, or drop them. */
export type PipeMode = 'flow' | 'frozen' | 'blackhole';

/** The fault settings of one direction, owned by the proxy and shared by its pipes. */
export interface PipeFaults {
  /** Forward, hold (frozen peer) or silently drop (blackhole). */
  readonly mode: PipeMode;
  /** Fixed one-way delay added to each chunk (ms). */
  readonly latencyMs: number;
  /** Extra uniform random delay 0..jitterMs per chunk (ms). */
  readonly jitterMs: number;
}

/** Counters the pipe reports into; the proxy turns them into stats. */
export interface PipeCounters {
  /** `bytes` were written to the destination. */
  forwarded(bytes: number): void;
  /** `bytes` were discarded by a blackhole. */
  dropped(bytes: number): void;
}

/** What a pipe needs besides its sockets. */
export interface PipeContext {
  /** Read on every decision, so a fault change reaches existing pairs at once. */
  readonly faults: () => PipeFaults;
  readonly clock: Clock;
  /** Uniform random in [0, 1), for jitter. */
  readonly random: () => number;
  readonly counters: PipeCounters;
}

/**
 * Bytes held in one pipe's queue before it stops reading its source. Without a bound a
 * long latency on a fast sender would buffer without limit; with it the sender's kernel
 * buffers fill instead, as they would behind a real slow link.
 */
export const PIPE_HIGH_WATER = 4 * 1024 * 1024;

/** Node timers fire on a coarse millisecond grid; deliver what is due within this slack. */
const DUE_SLACK_MS = 1;

/** Compact the queue array once this many delivered entries sit at its front. */
const COMPACT_AFTER = 1024;

interface Entry {
  /** The bytes, or null for the end of the stream (the source sent FIN). */
  readonly chunk: Buffer | null;
  /** Monotonic time (clock.now) at which this entry may be delivered. */
  readonly at: number;
}

/** One forwarding direction of a proxied pair. */
export class Pipe {
  private readonly queue: Entry[] = [];
  /** Index of the first undelivered entry; avoids O(n) shift() on long held queues. */
  private head = 0;
  private queuedBytes = 0;
  /** Latest delivery time handed out; later chunks never get an earlier one (order). */
  private lastAt = 0;
  private timer: ClockTimer | undefined;
  /** The destination's write() returned false; wait for 'drain'. */
  private blocked = false;
  private stopped = false;
  /** When set, bytes read are thrown away (the pair is being closed with FIN). */
  private discarding = false;

  private readonly onData = (chunk: Buffer): void => this.accept(chunk);
  private readonly onEnd = (): void => this.accept(null);
  private readonly onDrain = (): void => {
    this.blocked = false;
    this.refresh();
  };
  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.refresh();
  };

  constructor(
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly ctx: PipeContext,
  ) {}

  /** Starts reading the source. */
  start(): void {
    this.src.on('data', this.onData);
    this.src.on('end', this.onEnd);
    this.dst.on('drain', this.onDrain);
    this.refresh();
  }

  /** Bytes read from the source and not yet delivered or dropped. */
  get queued(): number {
    return this.queuedBytes;
  }

  /** Re-applies the current fault: delivers what is due, schedules the rest, (un)pauses. */
  refresh(): void {
    if (this.stopped) return;
    this.pump();
    this.updateReading();
  }

  /**
   * Stops forwarding for good and drops the queue. With `discard`, the source keeps being
   * read and its bytes thrown away: a socket closed with unread bytes in its kernel
   * receive buffer sends RST, and a FIN cut must not turn into one.
   */
  stop(discard = false): void {
    if (this.stopped) return;
    this.stopped = true;
    this.cancelTimer();
    this.queue.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
    this.dst.off('drain', this.onDrain);
    if (discard) {
      this.discarding = true;
      this.src.resume();
    }
  }

  private accept(chunk: Buffer | null): void {
    if (this.stopped) return;
    const faults = this.ctx.faults();
    if (chunk !== null && faults.mode === 'blackhole') {
      this.ctx.counters.dropped(chunk.length);
      return;
    }
    // The FIN is never dropped, only delayed or held: a blackhole means "no FIN" while
    // it lasts, and after heal the receiver still learns that the stream ended.
    const jitter = faults.jitterMs > 0 ? this.ctx.random() * faults.jitterMs : 0;
    const at = Math.max(this.ctx.clock.now() + faults.latencyMs + jitter, this.lastAt);
    this.lastAt = at;
    this.queue.push({ chunk, at });
    if (chunk !== null) this.queuedBytes += chunk.length;
    this.refresh();
  }

  private pump(): void {
    const { mode } = this.ctx.faults();
    if (mode === 'frozen') {
      // Held bytes wait for heal(); no timer runs while frozen.
      this.cancelTimer();
      return;
    }
    const now = this.ctx.clock.now();
    while (this.head < this.queue.length) {
      const entry = this.queue[this.head]!;
      if (mode === 'blackhole') {
        if (entry.chunk === null) break; // the FIN waits for heal()
        this.shift(entry);
        this.ctx.counters.dropped(entry.chunk.length);
        continue;
      }
      if (entry.at > now + DUE_SLACK_MS) {
        this.schedule(entry.at - now);
        return;
      }
      if (this.blocked) break;
      this.shift(entry);
      if (entry.chunk === null) {
        if (!this.dst.destroyed) this.dst.end();
      } else if (!this.dst.destroyed) {
        this.ctx.counters.forwarded(entry.chunk.length);
        if (!this.dst.write(entry.chunk)) this.blocked = true;
      }
    }
    this.cancelTimer();
  }

  private shift(entry: Entry): void {
    this.head++;
    if (entry.chunk !== null) this.queuedBytes -= entry.chunk.length;
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head >= COMPACT_AFTER) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  private updateReading(): void {
    if (this.discarding) return;
    const { mode } = this.ctx.faults();
    // Frozen: stop reading so the sender's kernel buffers fill, like a peer that hangs.
    // Otherwise pause only for backpressure: a slow receiver or a long latency queue.
    const pause =
      mode === 'frozen' || this.queuedBytes >= PIPE_HIGH_WATER || (mode === 'flow' && this.blocked);
    if (pause) {
      if (!this.src.isPaused()) this.src.pause();
    } else if (this.src.isPaused()) {
      this.src.resume();
    }
  }

  private schedule(delayMs: number): void {
    this.cancelTimer();
    this.timer = this.ctx.clock.setTimeout(this.onTimer, Math.ceil(delayMs));
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) {
      this.ctx.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}
