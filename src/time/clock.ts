/**
 * The one clock abstraction. Everything in heartline that reads time or waits goes
 * through a {@link Clock}, so tests drive time with a FakeClock instead of sleeping.
 */

/** An opaque handle returned by {@link Clock.setTimeout}. */
export type ClockTimer = { readonly __clockTimer: unique symbol } | object;

/**
 * Where heartline reads time and schedules work: {@link systemClock} in production, a
 * FakeClock in tests.
 */
export interface Clock {
  /** Monotonic time in milliseconds (may be fractional). Never goes backwards. */
  now(): number;
  /** Wall-clock time in epoch milliseconds, for events and logs only. */
  wallNow(): number;
  /** Runs `fn` once after `ms` milliseconds. Real timers are unref'd. */
  setTimeout(fn: () => void, ms: number): ClockTimer;
  /** Cancels a timer; cancelling a fired or unknown timer does nothing. */
  clearTimeout(timer: ClockTimer): void;
}

/** The real clock: performance.now() and unref'd Node timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(timer) {
    clearTimeout(timer as NodeJS.Timeout);
  },
};
