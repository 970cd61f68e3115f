/**
 * A deterministic {@link Clock} for tests: time moves only when the test says so, and
 * timers run synchronously inside {@link FakeClock.advance}, so a test of a 30 s timeout
 * takes microseconds and never flakes on a slow machine.
 *
 * Pending timers sit in a binary min-heap ordered by (deadline, scheduling order), so
 * setTimeout/clearTimeout are O(log n) and timers with equal deadlines fire in the order
 * they were scheduled, as Node's own timers do.
 */

import { setImmediate as immediate } from 'node:timers/promises';
import { InvalidArgumentError } from '../errors.js';
import type { Clock, ClockTimer } from './clock.js';

/** The default wall-clock origin: a fixed date (2023-11-14) so logged timestamps are stable. */
const DEFAULT_WALL_START = 1_700_000_000_000;

/** A pending or finished fake timer; the object itself is the {@link ClockTimer} handle. */
class FakeTimer {
  /** Position in the heap, or -1 once fired or cancelled (makes clearTimeout O(log n)). */
  index = -1;

  constructor(
    readonly fn: () => void,
    readonly deadline: number,
    readonly seq: number,
  ) {}
}

function before(a: FakeTimer, b: FakeTimer): boolean {
  return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
}

function checkDuration(name: string, ms: number): void {
  // `!(ms >= 0)` also refuses NaN; an infinite now() would poison every later deadline.
  if (!(ms >= 0) || !Number.isFinite(ms)) {
    throw new InvalidArgumentError(
      `FakeClock.${name}: ms must be a finite number >= 0 (got ${String(ms)})`,
    );
  }
}

/**
 * A manually driven clock for tests.
 *
 * - `now()` starts at `start` and moves only through {@link advance}, {@link advanceAsync},
 *   {@link runNext} and {@link jump}; it never goes backwards.
 * - `setTimeout(fn, ms)` schedules `fn` at `now() + ms`. Unlike Node, a delay below 1 ms
 *   is kept as is (a negative or NaN delay counts as 0), so fractional deadlines can be
 *   tested exactly.
 * - A timer callback that throws propagates out of `advance`/`runNext`; `now()` is then the
 *   deadline of that timer and later timers stay pending.
 * - More than {@link loopLimit} timers in a row at one instant throw a RangeError, so a
 *   0 ms rescheduling loop in the code under test fails the test instead of hanging it.
 */
export class FakeClock implements Clock {
  private current: number;
  private readonly start: number;
  private readonly wallStart: number;
  private readonly heap: FakeTimer[] = [];
  private seq = 0;

  /**
   * Most timers that may run back to back without time moving before `advance`,
   * `advanceAsync` or `runNext` throw a RangeError: code that keeps rescheduling itself at
   * 0 ms would otherwise hang the test instead of failing it.
   * @default 100_000
   */
  loopLimit = 100_000;
  private stuck = 0;

  /**
   * @param start initial value of {@link now} (monotonic ms). @default 0
   * @param wallStart value of {@link wallNow} at `start` (epoch ms). @default 1_700_000_000_000
   */
  constructor(start = 0, wallStart = DEFAULT_WALL_START) {
    this.current = start;
    this.start = start;
    this.wallStart = wallStart;
  }

  /** Current fake monotonic time in ms. */
  now(): number {
    return this.current;
  }

  /** `wallStart` plus the fake time elapsed since construction. */
  wallNow(): number {
    return this.wallStart + (this.current - this.start);
  }

  /** Schedules `fn` at `now() + ms`; returns a handle for {@link clearTimeout}. */
  setTimeout(fn: () => void, ms: number): ClockTimer {
    // biome-ignore lint/complexity/useMathMinMax: Math.max(NaN, 0) is NaN; this maps NaN to 0.
    const timer = new FakeTimer(fn, this.current + (ms > 0 ? ms : 0), this.seq++);
    this.push(timer);
    return timer;
  }

  /** Cancels a pending timer; a fired, cancelled or foreign handle is ignored. */
  clearTimeout(timer: ClockTimer): void {
    if (timer instanceof FakeTimer && timer.index >= 0 && this.heap[timer.index] === timer) {
      this.removeAt(timer.index);
    }
  }

  /** Number of timers scheduled and not yet fired or cancelled. */
  get pending(): number {
    return this.heap.length;
  }

  /**
   * Moves time forward by `ms`, running every timer due in the window in deadline order
   * (ties in scheduling order). `now()` reads each timer's deadline while it runs, and
   * timers that callbacks schedule inside the window run too. Ends with `now()` equal to
   * the time at the call plus `ms` (or later, if a callback advanced the clock further).
   * @throws InvalidArgumentError when `ms` is negative, NaN or infinite.
   */
  advance(ms: number): void {
    checkDuration('advance', ms);
    this.runUntil(this.current + ms);
  }

  /**
   * Like {@link advance}, but yields to the event loop (`setImmediate`) before each step so
   * promise continuations and real I/O callbacks run between timers. Without `stepMs` it
   * steps from one due timer to the next; with it, time moves `stepMs` at a time and each
   * step runs its due timers synchronously.
   * @throws InvalidArgumentError when `ms` or `stepMs` is not a finite number (`stepMs > 0`).
   */
  async advanceAsync(ms: number, stepMs?: number): Promise<void> {
    checkDuration('advanceAsync', ms);
    if (stepMs !== undefined && (!(stepMs > 0) || !Number.isFinite(stepMs))) {
      throw new InvalidArgumentError(
        `FakeClock.advanceAsync: stepMs must be a finite number > 0 (got ${String(stepMs)})`,
      );
    }
    const origin = this.current;
    const target = origin + ms;
    await immediate();
    if (stepMs === undefined) {
      for (;;) {
        const next = this.heap[0];
        if (next === undefined || next.deadline > target) break;
        this.fire(next);
        await immediate();
      }
      if (target > this.current) this.current = target;
      return;
    }
    // Step targets are computed from the origin, not by repeated addition, so rounding
    // cannot leave a sliver of time that takes forever to cross.
    for (let i = 1; ; i++) {
      const stepTarget = Math.min(origin + i * stepMs, target);
      this.runUntil(stepTarget);
      await immediate();
      if (stepTarget >= target) return;
    }
  }

  /**
   * Runs the earliest pending timer, moving `now()` to its deadline if that is later.
   * @returns false when no timer was pending.
   */
  runNext(): boolean {
    const next = this.heap[0];
    if (next === undefined) return false;
    this.fire(next);
    return true;
  }

  /**
   * Moves time forward by `ms` without running anything, as a blocked event loop would.
   * Timers that became overdue run late, in deadline order, on the next
   * {@link advance}/{@link runNext}, and `now()` then stays where the jump left it.
   * @throws InvalidArgumentError when `ms` is negative, NaN or infinite.
   */
  jump(ms: number): void {
    checkDuration('jump', ms);
    this.current += ms;
    if (ms > 0) this.stuck = 0;
  }

  private runUntil(target: number): void {
    for (;;) {
      const next = this.heap[0];
      if (next === undefined || next.deadline > target) break;
      this.fire(next);
    }
    // max(): a callback may itself have advanced the clock past `target`.
    if (target > this.current) {
      this.current = target;
      this.stuck = 0;
    }
  }

  private fire(timer: FakeTimer): void {
    this.removeAt(timer.index);
    if (timer.deadline > this.current) {
      this.current = timer.deadline;
      this.stuck = 0;
    } else if (++this.stuck > this.loopLimit) {
      this.stuck = 0;
      throw new RangeError(
        `FakeClock: more than ${this.loopLimit} timers ran at ${this.current} ms without time moving (a 0 ms timer loop?)`,
      );
    }
    timer.fn();
  }

  // -- binary heap --------------------------------------------------------------------

  private push(timer: FakeTimer): void {
    timer.index = this.heap.length;
    this.heap.push(timer);
    this.siftUp(timer.index);
  }

  private removeAt(index: number): void {
    const heap = this.heap;
    const removed = heap[index]!;
    const last = heap.pop()!;
    removed.index = -1;
    if (last === removed) return;
    heap[index] = last;
    last.index = index;
    this.siftUp(index);
    this.siftDown(last.index);
  }

  private siftUp(index: number): void {
    const heap = this.heap;
    const timer = heap[index]!;
    let i = index;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = heap[parentIndex]!;
      if (!before(timer, parent)) break;
      heap[i] = parent;
      parent.index = i;
      i = parentIndex;
    }
    heap[i] = timer;
    timer.index = i;
  }

  private siftDown(index: number): void {
    const heap = this.heap;
    const n = heap.length;
    const timer = heap[index]!;
    let i = index;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && before(heap[right]!, heap[left]!)) child = right;
      const candidate = heap[child]!;
      if (!before(candidate, timer)) break;
      heap[i] = candidate;
      candidate.index = i;
      i = child;
    }
    heap[i] = timer;
    timer.index = i;
  }
}
