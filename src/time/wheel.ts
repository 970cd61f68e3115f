/**
 * A hashed timing wheel: one clock timer drives every per-connection timer of heartline
 * (heartbeat due, suspect, dead, write stall, handshake), so 100k connections cost one
 * `clock.setTimeout` instead of 100k Node timers, and re-arming a heartbeat on every
 * received frame costs a few pointer writes and no allocation.
 *
 * Design: a single-level hashed wheel with absolute tick numbers, scheme 6 of Varghese &
 * Lauck, "Hashed and Hierarchical Timing Wheels" (SOSP 1987). Time is cut into ticks of
 * `tickMs`; tick `k` covers `((k - 1) * tickMs, k * tickMs]` of `clock.now()`. A timer due
 * at `d` belongs to tick `ceil(d / tickMs)` and waits in slot `tick & (slots - 1)`, an
 * intrusive circular doubly-linked list whose nodes are the {@link WheelTimer} objects
 * themselves. A timer more than one rotation (`tickMs * slots`, 5.12 s by default) away
 * shares its slot with nearer ones and is skipped until its tick comes round; storing the
 * absolute tick instead of a rounds counter means skipping it writes nothing.
 *
 * Precision: a timer never fires before its deadline (the wheel processes tick `k` only
 * once `clock.now() >= k * tickMs`, and checks each deadline against that reading) and at
 * most one tick after it, plus whatever the event loop adds. Timers of one tick fire in
 * the order they were armed; ticks fire in order, also when catching up after a stall.
 * A timer armed by a callback never fires in the pass that armed it (a 0 ms re-arm fires
 * one tick later), so a self re-arming timer cannot livelock the wheel.
 *
 * Cost, for n armed timers and S slots:
 * - arm / re-arm / cancel: O(1), no allocation. The one exception is an arm that needs the
 *   wheel's clock timer earlier than it is set (the first timer of an empty wheel, or a
 *   new earliest one): that replaces the clock timer, which allocates inside the clock.
 * - processing tick k: O(1 + timers hashed to its slot), due or not; so a timer armed d ms
 *   ahead is looked at about `d / (tickMs * S)` times before it fires.
 * - clock wake-ups: at most one per tick, and only at a lower bound of the next due tick
 *   that each pass computes from the slot heads and at most S timers, O(S); it is exact
 *   when few timers are armed, so a lone timer costs one wake-up however far it is.
 * - catching up after the event loop stalled for g ticks: every stretch of a rotation or
 *   more with nothing due is jumped with one O(S + n) scan, so the work is O(S + n) per
 *   rotation of the stall that holds a due timer, not O(g): a jump of 10^12 ticks is
 *   instant.
 * - memory: one sentinel node per slot plus one node per timer.
 *
 * Why one level and not a hierarchy (Kafka, the old Linux wheel): heartline's deadlines
 * are seconds to a few minutes, a few rotations at most, so the occasional visit to a far
 * timer costs less than cascading every timer down the levels, and the code stays small.
 *
 * The wheel holds exactly one clock timer while it has armed timers (none while its own
 * callbacks run) and none when empty, so an idle process can exit; plus, while any timer
 * is armed for the clock's next turn ({@link WheelTimer.armNextTurn}), one zero-delay
 * clock timer that they all share.
 */

import { InvalidArgumentError } from '../errors.js';
import type { Clock, ClockTimer } from './clock.js';

/** Default tick length (ms): Node timers have 1 ms resolution; 10 ms is far below any heartbeat. */
export const DEFAULT_TICK_MS = 10;

/** Default slot count: 512 x 10 ms = 5.12 s per rotation, so most heartbeats land within one. */
export const DEFAULT_SLOTS = 512;

/** Node clamps longer timeouts to 1 ms (with a warning), so the clock timer never asks for more. */
const MAX_CLOCK_DELAY_MS = 2 ** 31 - 1;

/** Keeps every tick number and tick * tickMs product an exact integer in a double. */
const MAX_DELAY_MS = 2 ** 47;

/** More slots than this is a configuration mistake: each slot costs a node of memory. */
const MAX_SLOTS = 2 ** 20;

/**
 * The longest delay a wheel timer accepts (ms, about 4,460 years): options that arm one
 * are bounded by it.
 */
export const MAX_TIMER_DELAY_MS = MAX_DELAY_MS;

/**
 * The `tick` of a timer armed for the clock's next turn (it sits in no slot): no real
 * tick, since every tick number lies within +-2^47 / tickMs.
 */
const NEXT_TURN = Number.MIN_SAFE_INTEGER;

/** Options of {@link TimingWheel}. */
export interface WheelOptions {
  /**
   * Length of one tick in ms: the wheel's resolution and the most a timer can be late
   * (plus event-loop delay). A positive integer.
   * @default 10
   */
  tickMs?: number;
  /**
   * Number of slots, a power of two. More slots mean fewer far timers sharing a slot.
   * @default 512
   */
  slots?: number;
  /**
   * Receives whatever a timer callback throws; the other callbacks still run.
   * @default rethrow on process.nextTick (the process crashes as for a throwing setTimeout)
   */
  onError?: (err: unknown) => void;
}

/**
 * What a timer made by {@link TimingWheel.timerFor} calls: a function shared by every
 * owner (module-level, or a static method of the owner's class, which may call its
 * private members) that takes the timer's owner. An object with several timers (one per
 * connection) then costs one timer node each and no closure (see memory per connection
 * in src/connection.ts), and each class, subclasses included, names its own handlers.
 */
export type TimerHandler<T> = (owner: T) => void;

/** A reusable timer of a {@link TimingWheel}, bound to one callback. */
export interface WheelTimer {
  /**
   * Arms (re-arms if armed) to fire once, never earlier than `delayMs` from clock.now(),
   * at most one tick late plus event-loop delay. O(1), no allocation.
   * @throws InvalidArgumentError when `delayMs` is negative, NaN or beyond 2^47 ms.
   */
  arm(delayMs: number): void;
  /**
   * Arms (re-arms if armed) to fire on the clock's next turn rather than at a tick: after
   * the I/O the event loop has pending (Node reads sockets between two timer phases), and
   * without waiting up to a tick. Every timer armed so shares one zero-delay clock timer.
   * For a second look once pending input has been read. O(1).
   */
  armNextTurn(): void;
  /** O(1); no-op when unarmed. */
  cancel(): void;
  /** True from arm() until the timer fires or is cancelled. */
  readonly armed: boolean;
  /** Absolute deadline in clock ms, or -1 when unarmed. */
  readonly deadline: number;
}

function rethrowLater(err: unknown): void {
  process.nextTick(() => {
    throw err;
  });
}

/**
 * A list node: a user's timer, or the sentinel head of a slot. Sentinels share the class
 * so that every link in every list has one shape and V8 keeps the accesses monomorphic.
 */
class TimerNode implements WheelTimer {
  /** Neighbours in the circular list, or null when not linked (unarmed). */
  next: TimerNode | null = null;
  prev: TimerNode | null = null;
  /** Absolute tick this timer fires in; meaningless while unarmed. */
  tick = 0;
  /** Absolute deadline in clock ms, -1 while unarmed. */
  due = -1;

  constructor(
    private readonly core: WheelCore,
    /** What firing calls, with `owner` (a plain callback ignores it). */
    readonly handler: TimerHandler<unknown>,
    readonly owner: unknown,
  ) {}

  get armed(): boolean {
    return this.next !== null;
  }

  get deadline(): number {
    return this.due;
  }

  arm(delayMs: number): void {
    this.core.arm(this, delayMs);
  }

  armNextTurn(): void {
    this.core.armNextTurn(this);
  }

  cancel(): void {
    if (this.next !== null) this.core.cancel(this);
  }
}

function unlink(node: TimerNode): void {
  node.prev!.next = node.next;
  node.next!.prev = node.prev;
  node.next = null;
  node.prev = null;
}

function linkTail(head: TimerNode, node: TimerNode): void {
  const last = head.prev!;
  node.prev = last;
  node.next = head;
  last.next = node;
  head.prev = node;
}

/** Moves every node of the list at `head` onto the empty list `into`, in O(1). */
function moveAll(head: TimerNode, into: TimerNode): void {
  into.next = head.next;
  into.prev = head.prev;
  head.next!.prev = into;
  head.prev!.next = into;
  head.next = head;
  head.prev = head;
}

const noop = (): void => {};

function sentinel(core: WheelCore): TimerNode {
  const head = new TimerNode(core, noop, null);
  head.next = head;
  head.prev = head;
  return head;
}

/**
 * The wheel's state and algorithms, kept apart from {@link TimingWheel} so that timer
 * nodes can call into them without widening the public class.
 */
class WheelCore {
  readonly slots: TimerNode[] = [];
  readonly mask: number;
  /** Timers taken out of the current tick's slot and about to fire. */
  readonly firing: TimerNode;
  size = 0;
  /** Next tick to process; every armed timer has `tick >= cursor`. */
  cursor = 0;
  /** Tick the clock timer is set for, Infinity when there is none. */
  wakeTick = Number.POSITIVE_INFINITY;
  clockTimer: ClockTimer | null = null;
  /** True while callbacks run: arms then leave rescheduling to the end of the pass. */
  processing = false;
  /** Bound once so that scheduling the clock timer allocates no closure. */
  readonly onClock = (): void => this.wake();
  /** Timers armed for the clock's next turn, their count and their shared clock timer. */
  readonly nextTurn: TimerNode;
  /** The next-turn timers about to fire (taken off `nextTurn` at once). */
  readonly nextTurnFiring: TimerNode;
  nextTurnSize = 0;
  nextTurnTimer: ClockTimer | null = null;
  readonly onNextTurn = (): void => this.fireNextTurn();

  constructor(
    readonly clock: Clock,
    readonly tickMs: number,
    slotCount: number,
    readonly onError: (err: unknown) => void,
  ) {
    this.mask = slotCount - 1;
    for (let i = 0; i < slotCount; i++) this.slots.push(sentinel(this));
    this.firing = sentinel(this);
    this.nextTurn = sentinel(this);
    this.nextTurnFiring = sentinel(this);
  }

  /**
   * Largest k with k * tickMs <= t. tickMs is an integer, and for an integer divisor (and
   * times below 2^50 ms) the rounded quotient never crosses an integer the exact one does
   * not reach, so floor and ceil of the division are exact; processTick still checks
   * deadlines against the clock.
   */
  tickFloor(t: number): number {
    return Math.floor(t / this.tickMs);
  }

  /** Smallest k with k * tickMs >= t (exact for the same reason as tickFloor). */
  tickCeil(t: number): number {
    return Math.ceil(t / this.tickMs);
  }

  arm(node: TimerNode, delayMs: number): void {
    if (!(delayMs >= 0 && delayMs <= MAX_DELAY_MS)) {
      throw new InvalidArgumentError(
        `WheelTimer.arm: delayMs must be a number from 0 to 2^47 (got ${String(delayMs)})`,
      );
    }
    const now = this.clock.now();
    if (node.next !== null && node.tick === NEXT_TURN) this.cancel(node);
    if (node.next !== null) {
      unlink(node);
    } else {
      // An empty wheel has no clock timer and a stale cursor: restart it at the present.
      if (this.size === 0 && !this.processing) this.cursor = this.tickFloor(now);
      this.size++;
    }
    const due = now + delayMs;
    let tick = this.tickCeil(due);
    // Ticks before the cursor are already processed (or being processed): the earliest
    // this timer can still fire is the cursor's tick, at most one tick after `due`.
    if (tick < this.cursor) tick = this.cursor;
    node.tick = tick;
    node.due = due;
    linkTail(this.slots[tick & this.mask]!, node);
    if (tick < this.wakeTick && !this.processing) this.schedule(tick, now);
  }

  cancel(node: TimerNode): void {
    unlink(node);
    node.due = -1;
    if (node.tick === NEXT_TURN) {
      if (--this.nextTurnSize === 0) this.releaseNextTurn();
      return;
    }
    this.size--;
    if (this.size === 0 && !this.processing) this.releaseClock();
  }

  armNextTurn(node: TimerNode): void {
    if (node.next !== null) this.cancel(node);
    node.tick = NEXT_TURN;
    node.due = this.clock.now();
    linkTail(this.nextTurn, node);
    this.nextTurnSize++;
    this.nextTurnTimer ??= this.clock.setTimeout(this.onNextTurn, 0);
  }

  clear(): void {
    for (const head of this.slots) this.unlinkAll(head);
    this.unlinkAll(this.firing);
    this.unlinkAll(this.nextTurn);
    this.unlinkAll(this.nextTurnFiring);
    this.size = 0;
    this.nextTurnSize = 0;
    this.releaseClock();
    this.releaseNextTurn();
  }

  private releaseNextTurn(): void {
    if (this.nextTurnTimer === null) return;
    this.clock.clearTimeout(this.nextTurnTimer);
    this.nextTurnTimer = null;
  }

  /**
   * The next turn came: fires every timer armed for it, in arming order. The list is
   * taken first, so that a timer a handler arms for the next turn waits for the next one.
   */
  private fireNextTurn(): void {
    this.nextTurnTimer = null;
    const head = this.nextTurn;
    const firing = this.nextTurnFiring;
    if (head.next === head) return;
    moveAll(head, firing);
    this.fireAll(firing, true);
  }

  /**
   * Fires, in order, every timer on the detached list `firing`, each counted out of its
   * list's size before its handler runs (a handler may arm timers again).
   */
  private fireAll(firing: TimerNode, nextTurn: boolean): void {
    while (firing.next !== firing) {
      const timer = firing.next!;
      unlink(timer);
      timer.due = -1;
      if (nextTurn) this.nextTurnSize--;
      else this.size--;
      try {
        timer.handler(timer.owner);
      } catch (err) {
        this.report(err);
      }
    }
  }

  private unlinkAll(head: TimerNode): void {
    while (head.next !== head) {
      const node = head.next!;
      unlink(node);
      node.due = -1;
    }
  }

  private schedule(tick: number, now: number): void {
    if (this.clockTimer !== null) this.clock.clearTimeout(this.clockTimer);
    this.wakeTick = tick;
    const delay = tick * this.tickMs - now;
    // A clamped (early) wake is harmless: it processes nothing and reschedules.
    this.clockTimer = this.clock.setTimeout(
      this.onClock,
      delay > 0 ? Math.min(delay, MAX_CLOCK_DELAY_MS) : 0,
    );
  }

  private releaseClock(): void {
    if (this.clockTimer !== null) {
      this.clock.clearTimeout(this.clockTimer);
      this.clockTimer = null;
    }
    this.wakeTick = Number.POSITIVE_INFINITY;
  }

  /** The clock timer fired: process every tick up to now, then sleep until the next one. */
  private wake(): void {
    this.clockTimer = null;
    this.wakeTick = Number.POSITIVE_INFINITY;
    // Read once: later callbacks see a later real time, so this reading errs towards late.
    const now = this.clock.now();
    this.processing = true;
    try {
      this.catchUp(now, this.tickFloor(now));
    } finally {
      this.processing = false;
    }
    if (this.size > 0) this.scheduleNext(now);
  }

  private catchUp(now: number, nowTick: number): void {
    const slotCount = this.mask + 1;
    while (this.cursor <= nowTick) {
      if (this.size === 0) {
        this.cursor = nowTick + 1;
        return;
      }
      let end = nowTick;
      if (nowTick - this.cursor >= slotCount) {
        // A gap of a rotation or more (a long stall, or a clamped wake): jump to the
        // earliest armed tick so that empty stretches cost one scan, not a pass per rotation.
        const earliest = this.earliestTick(Number.POSITIVE_INFINITY);
        if (earliest > nowTick) {
          this.cursor = nowTick + 1;
          return;
        }
        if (earliest > this.cursor) this.cursor = earliest;
        end = Math.min(nowTick, this.cursor + slotCount - 1);
      }
      while (this.cursor <= end) this.processTick(this.cursor, now);
    }
  }

  /**
   * A lower bound of the earliest armed tick, exact unless more than `budget` timers had
   * to be looked at: O(S + min(n, budget)). Slots are walked from the cursor, and the walk
   * stops as soon as no later slot can hold anything earlier.
   */
  private earliestTick(budget: number): number {
    let min = Number.POSITIVE_INFINITY;
    let left = budget;
    for (let offset = 0; offset <= this.mask; offset++) {
      const firstVisit = this.cursor + offset;
      // Every timer in this slot or a later one has tick >= firstVisit.
      if (min <= firstVisit) break;
      const head = this.slots[firstVisit & this.mask]!;
      for (let node = head.next!; node !== head; node = node.next!) {
        if (node.tick < min) min = node.tick;
        if (--left === 0) return Math.min(min, firstVisit);
      }
    }
    return min;
  }

  private processTick(k: number, now: number): void {
    const head = this.slots[k & this.mask]!;
    const firing = this.firing;
    // Advance first: whatever the callbacks arm lands at k + 1 or later.
    this.cursor = k + 1;
    if (head.next === head) return;
    // Move the whole slot onto the firing list in O(1) (the firing list is always empty
    // here), then send back, in order, the far timers that only share the slot. Sorting
    // before any callback runs lets callbacks arm and cancel anything (themselves,
    // siblings in this slot) without disturbing the walk.
    moveAll(head, firing);
    let node = firing.next!;
    while (node !== firing) {
      const next = node.next!;
      if (node.tick > k) {
        unlink(node);
        linkTail(head, node);
      } else if (node.due > now) {
        // Unreachable while tickCeil is exact; it keeps "never early" resting on a
        // comparison with the clock rather than on reasoning about float division.
        unlink(node);
        node.tick = k + 1;
        linkTail(this.slots[(k + 1) & this.mask]!, node);
      }
      node = next;
    }
    this.fireAll(firing, false);
  }

  private report(err: unknown): void {
    try {
      this.onError(err);
    } catch (handlerErr) {
      // A broken handler must not leave the wheel half-processed.
      rethrowLater(handlerErr);
    }
  }

  /**
   * Sets the clock timer for the earliest tick that may hold a due timer. The scan is
   * capped at S timers: a sparse wheel (a few far timers) sleeps until exactly the right
   * tick, a dense one wakes at a bound that is typically the next tick anyway.
   */
  private scheduleNext(now: number): void {
    this.schedule(this.earliestTick(this.mask + 1), now);
  }
}

/**
 * A hashed timing wheel on an injected {@link Clock}; see the module docblock for the
 * design, precision and costs.
 *
 * @example
 * const wheel = new TimingWheel(systemClock);
 * const dead = wheel.timer(() => connection.destroy());
 * dead.arm(30_000); // on every frame received: dead.arm(30_000) again
 */
export class TimingWheel {
  /** Length of one tick (ms): the resolution and the most a timer fires late. */
  readonly tickMs: number;
  private readonly core: WheelCore;

  /** @throws InvalidArgumentError naming the option when an option is invalid. */
  constructor(clock: Clock, options: WheelOptions = {}) {
    const tickMs = options.tickMs ?? DEFAULT_TICK_MS;
    const slots = options.slots ?? DEFAULT_SLOTS;
    const onError = options.onError ?? rethrowLater;
    if (!Number.isInteger(tickMs) || tickMs < 1 || tickMs > MAX_CLOCK_DELAY_MS) {
      throw new InvalidArgumentError(
        `TimingWheel option tickMs must be an integer from 1 to ${MAX_CLOCK_DELAY_MS} (got ${String(tickMs)})`,
      );
    }
    if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS || (slots & (slots - 1)) !== 0) {
      throw new InvalidArgumentError(
        `TimingWheel option slots must be a power of two from 1 to ${MAX_SLOTS} (got ${String(slots)})`,
      );
    }
    if (typeof onError !== 'function') {
      throw new InvalidArgumentError('TimingWheel option onError must be a function');
    }
    this.tickMs = tickMs;
    this.core = new WheelCore(clock, tickMs, slots, onError);
  }

  /**
   * A reusable timer bound to `callback`; created unarmed.
   * @throws InvalidArgumentError when `callback` is not a function.
   */
  timer(callback: () => void): WheelTimer {
    if (typeof callback !== 'function') {
      throw new InvalidArgumentError('TimingWheel.timer: callback must be a function');
    }
    return new TimerNode(this.core, callback, null);
  }

  /**
   * A reusable timer that calls `handler(owner)`; created unarmed. Objects with several
   * timers (one per connection) use this with module-level handlers instead of holding a
   * closure per timer.
   * @throws InvalidArgumentError when `handler` is not a function.
   */
  timerFor<T>(owner: T, handler: TimerHandler<T>): WheelTimer {
    if (typeof handler !== 'function') {
      throw new InvalidArgumentError('TimingWheel.timerFor: handler must be a function');
    }
    return new TimerNode(this.core, handler as TimerHandler<unknown>, owner);
  }

  /** Number of armed timers. */
  get size(): number {
    return this.core.size + this.core.nextTurnSize;
  }

  /** Cancels every timer and releases the clock timer. The wheel can be used again afterwards. */
  clear(): void {
    this.core.clear();
  }
}
