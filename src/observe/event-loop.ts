/**
 * Event-loop delay, measured with perf_hooks.monitorEventLoopDelay while anything
 * observes it. A heartbeat is only as punctual as the loop that sends it: a loop stalled
 * for longer than the suspect budget makes healthy peers look suspect, so this figure
 * belongs next to the heartbeat metrics.
 */

import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** Sampling resolution of the monitor (ms): fine enough for heartbeats of a second or more. */
const RESOLUTION_MS = 10;
/** Values describe the last completed window of this length (ms), or the current one before the first completes. */
export const EVENT_LOOP_WINDOW_MS = 10_000;

/** Event-loop delay figures in seconds. */
export interface EventLoopDelay {
  p50: number;
  p99: number;
  max: number;
}

const ZERO: EventLoopDelay = Object.freeze({ p50: 0, p99: 0, max: 0 });

/**
 * One monitor for the process, enabled while at least one user retains it. Windows are
 * rotated lazily when read, so no timer runs for it.
 */
class EventLoopMonitor {
  private histogram: IntervalHistogram | null = null;
  private users = 0;
  private windowStart = 0;
  private last: EventLoopDelay | null = null;

  retain(): void {
    if (this.users++ > 0) return;
    this.histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.histogram.enable();
    this.windowStart = performance.now();
    this.last = null;
  }

  release(): void {
    if (this.users === 0 || --this.users > 0) return;
    this.histogram?.disable();
    this.histogram = null;
  }

  read(): EventLoopDelay {
    const h = this.histogram;
    if (!h) return ZERO;
    const now = performance.now();
    if (now - this.windowStart >= EVENT_LOOP_WINDOW_MS) {
      this.last = figures(h);
      h.reset();
      this.windowStart = now;
    }
    return this.last ?? figures(h);
  }
}

/**
 * Node's histogram records the time between two runs of its sampling timer, so an idle
 * loop reads as the resolution itself; the delay is what lies beyond it.
 */
function delay(ns: number): number {
  return Math.max(0, ns / 1e6 - RESOLUTION_MS) / 1000;
}

function figures(h: IntervalHistogram): EventLoopDelay {
  if (h.count === 0) return ZERO;
  return { p50: delay(h.percentile(50)), p99: delay(h.percentile(99)), max: delay(h.max) };
}

/** The process-wide monitor. */
export const eventLoop = new EventLoopMonitor();
