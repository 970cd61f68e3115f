/**
 * Load levels: `normal`, `warning` or `danger`, from the open connection count, the V8 heap,
 * the resident set size and the event-loop delay, sampled once a second. At `danger` the
 * server refuses new sessions with CLOSE(overloaded, retry-after) and keeps the ones it
 * has. A level is reached as soon as one sample crosses one of its thresholds, and left
 * only after every sample for `recoverAfter` stayed below, so a level does not flap with a
 * metric hovering at its threshold.
 *
 * {@link LoadLevels} is the pure state machine (samples and times in, changes out);
 * {@link LoadMonitor} takes the samples on a timer of the injected clock (unref'd) with
 * `perf_hooks.monitorEventLoopDelay`, and stops with the server.
 */

import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { InvalidArgumentError } from '../errors.js';
import { functionOption, intOption, numberOption } from '../options.js';
import type { Clock, ClockTimer } from '../time/clock.js';

/** The load level of a server. */
export type LoadLevel = 'normal' | 'warning' | 'danger';

/** What a level is judged by. */
export type LoadMetric = 'connections' | 'heapUsed' | 'rss' | 'eventLoopDelay';

/** One measurement of the process. */
export interface ProcessSample {
  /** V8 heap in use (bytes). */
  heapUsed: number;
  /** Resident set size (bytes). */
  rss: number;
  /** Event-loop delay (ms): the 99th percentile since the previous sample. */
  eventLoopDelay: number;
}

/** One measurement: the process plus the server's open sockets. */
export interface LoadSample extends ProcessSample {
  /** Open sockets (handshaking or connected). */
  connections: number;
}

/** Thresholds of one level; a metric at or above its threshold reaches the level. */
export interface LoadThresholds {
  /** Open sockets. */
  connections?: number;
  /** V8 heap in use (bytes). */
  heapUsed?: number;
  /** Resident set size (bytes). */
  rss?: number;
  /** Event-loop delay p99 over one sample period (ms). */
  eventLoopDelay?: number;
}

/** One metric over its threshold. */
export interface LoadReason {
  metric: LoadMetric;
  value: number;
  threshold: number;
}

/** A level change: the server's 'load' event. */
export interface LoadEvent {
  from: LoadLevel;
  to: LoadLevel;
  /** The metrics at or above the new level's thresholds (empty when back to normal). */
  reasons: LoadReason[];
  /** The sample that completed the change. */
  sample: LoadSample;
}

/** Takes a process sample; the default reads memoryUsage() and the event-loop histogram. */
export type LoadSampler = () => ProcessSample;

/** Options of the load levels (`ServerOptions.load`). */
export interface LoadOptions {
  /**
   * Thresholds of `warning` (nothing is refused; the level is a signal).
   * @default connections 80% of maxConnections, heapUsed 70% of V8's heap limit,
   *   rss Infinity, eventLoopDelay 100 ms
   */
  warning?: LoadThresholds;
  /**
   * Thresholds of `danger`, where new sessions are refused.
   * @default connections maxConnections, heapUsed 85% of V8's heap limit, rss Infinity,
   *   eventLoopDelay 1000 ms
   */
  danger?: LoadThresholds;
  /** How often to sample (ms); 0 turns the levels off (always normal). @default 1000 */
  sampleInterval?: number;
  /** How long every sample must stay below a level before it is left (ms). @default 5000 */
  recoverAfter?: number;
  /** Replaces the process measurement (tests inject one). @default heap, RSS and event-loop delay of this process */
  sampler?: LoadSampler;
}

/**
 * Load defaults and why:
 * - event-loop delay 100 ms / 1 s (p99 of each second): heartline promises detection
 *   within the timeout plus 100 ms, so a loop late by 100 ms breaks that promise (warning);
 *   late by a second, heartbeats of 1 s intervals are missed and healthy peers may be
 *   suspected (danger). A single GC pause of a few hundred ms only warns.
 * - heap 70% / 85% of V8's heap limit: near the limit V8 collects ever more often and then
 *   aborts the process; new sessions are refused well before that.
 * - RSS: off by default, since what is too much depends on the machine or container;
 *   set it to match a memory limit.
 * - connections 80% / 100% of maxConnections: danger while the server is full.
 * - recoverAfter 5 s: a level is left after five calm samples in a row.
 */
export const LOAD_DEFAULTS = Object.freeze({
  sampleInterval: 1000,
  recoverAfter: 5000,
  warningEventLoopDelay: 100,
  dangerEventLoopDelay: 1000,
  warningHeapFraction: 0.7,
  dangerHeapFraction: 0.85,
  warningConnectionsFraction: 0.8,
  /** monitorEventLoopDelay resolution (ms): Node's default. */
  histogramResolution: 10,
});

const METRICS: readonly LoadMetric[] = ['connections', 'heapUsed', 'rss', 'eventLoopDelay'];
const RANK: Readonly<Record<LoadLevel, number>> = { normal: 0, warning: 1, danger: 2 };

/** Resolved load settings. */
export interface ResolvedLoad {
  readonly warning: Readonly<Required<LoadThresholds>>;
  readonly danger: Readonly<Required<LoadThresholds>>;
  readonly sampleInterval: number;
  readonly recoverAfter: number;
  readonly sampler: LoadSampler | null;
}

/**
 * Validates the load options. `maxConnections` anchors the connection thresholds and
 * `heapLimit` (V8's, read when omitted) the heap ones. A default warning threshold above an
 * explicit danger one is lowered to it; two explicit ones in that order are refused.
 */
export function resolveLoad(
  o: LoadOptions = {},
  maxConnections: number = Number.POSITIVE_INFINITY,
  heapLimit: number = getHeapStatistics().heap_size_limit,
): ResolvedLoad {
  const d = LOAD_DEFAULTS;
  const defaults: Record<'warning' | 'danger', Required<LoadThresholds>> = {
    warning: {
      connections: Number.isFinite(maxConnections)
        ? Math.floor(maxConnections * d.warningConnectionsFraction)
        : Number.POSITIVE_INFINITY,
      heapUsed: Math.floor(heapLimit * d.warningHeapFraction),
      rss: Number.POSITIVE_INFINITY,
      eventLoopDelay: d.warningEventLoopDelay,
    },
    danger: {
      connections: maxConnections,
      heapUsed: Math.floor(heapLimit * d.dangerHeapFraction),
      rss: Number.POSITIVE_INFINITY,
      eventLoopDelay: d.dangerEventLoopDelay,
    },
  };
  const danger = { ...defaults.danger };
  const warning = { ...defaults.warning };
  for (const m of METRICS) {
    // Each threshold is a number >= 0 (Infinity: off), or its default.
    const dv = o.danger?.[m];
    const wv = o.warning?.[m];
    danger[m] = numberOption(`load.danger.${m}`, dv, danger[m]);
    warning[m] = numberOption(`load.warning.${m}`, wv, warning[m]);
    if (warning[m] > danger[m]) {
      if (wv !== undefined && dv !== undefined) {
        throw new InvalidArgumentError(`option "load.warning.${m}" must be <= "load.danger.${m}"`);
      }
      if (wv === undefined) warning[m] = danger[m];
      else danger[m] = warning[m];
    }
  }
  return Object.freeze({
    warning: Object.freeze(warning),
    danger: Object.freeze(danger),
    sampleInterval: intOption('load.sampleInterval', o.sampleInterval, d.sampleInterval, 0),
    recoverAfter: intOption('load.recoverAfter', o.recoverAfter, d.recoverAfter, 0),
    sampler: functionOption('load.sampler', o.sampler),
  });
}

/** The level a sample reaches, with the metrics that put it there. */
export function classifyLoad(
  config: Pick<ResolvedLoad, 'warning' | 'danger'>,
  sample: LoadSample,
): { level: LoadLevel; reasons: LoadReason[] } {
  for (const level of ['danger', 'warning'] as const) {
    const limits = config[level];
    const reasons: LoadReason[] = [];
    for (const metric of METRICS) {
      const value = sample[metric];
      if (value >= limits[metric]) reasons.push({ metric, value, threshold: limits[metric] });
    }
    if (reasons.length > 0) return { level, reasons };
  }
  return { level: 'normal', reasons: [] };
}

/**
 * The level state machine: up at once when a sample reaches a higher level, down only
 * after `recoverAfter` ms of samples all below the current level (to the highest level
 * those samples reached).
 */
export class LoadLevels {
  private current: LoadLevel = 'normal';
  private calmSince: number | null = null;
  private calmPeak: { level: LoadLevel; reasons: LoadReason[] } | null = null;

  constructor(private readonly config: Pick<ResolvedLoad, 'warning' | 'danger' | 'recoverAfter'>) {}

  /** The level in force. */
  get level(): LoadLevel {
    return this.current;
  }

  /** Feeds one sample taken at `now` (monotonic ms); returns the change, if any. */
  update(sample: LoadSample, now: number): LoadEvent | null {
    const seen = classifyLoad(this.config, sample);
    if (RANK[seen.level] >= RANK[this.current]) {
      this.calmSince = null;
      this.calmPeak = null;
      if (seen.level === this.current) return null;
      return this.change(seen.level, seen.reasons, sample);
    }
    if (this.calmSince === null || this.calmPeak === null) {
      this.calmSince = now;
      this.calmPeak = seen;
    } else if (RANK[seen.level] >= RANK[this.calmPeak.level]) {
      this.calmPeak = seen;
    }
    if (now - this.calmSince < this.config.recoverAfter) return null;
    const to = this.calmPeak;
    this.calmSince = null;
    this.calmPeak = null;
    return this.change(to.level, to.level === 'normal' ? [] : to.reasons, sample);
  }

  private change(to: LoadLevel, reasons: LoadReason[], sample: LoadSample): LoadEvent {
    const from = this.current;
    this.current = to;
    return { from, to, reasons, sample };
  }
}

/** The default process sampler: memoryUsage() and an event-loop delay histogram. */
class ProcessSampler {
  private readonly histogram: IntervalHistogram;

  constructor() {
    this.histogram = monitorEventLoopDelay({ resolution: LOAD_DEFAULTS.histogramResolution });
    this.histogram.enable();
  }

  /** The last RSS reading, kept for when the next one cannot be taken. */
  private rss = 0;

  sample(): ProcessSample {
    // RSS is read from /proc and throws EMFILE once a flood of sockets has used every
    // descriptor, exactly when the load levels matter: keep the last reading then. The
    // heap figure needs no descriptor.
    try {
      this.rss = process.memoryUsage.rss();
    } catch {
      // keep the last reading
    }
    const rss = this.rss;
    const heapUsed = getHeapStatistics().used_heap_size;
    const h = this.histogram;
    // The histogram holds nanoseconds; an empty one reports a huge minimum, so check count.
    const eventLoopDelay = h.count > 0 ? h.percentile(99) / 1e6 : 0;
    h.reset();
    return { heapUsed, rss, eventLoopDelay };
  }

  stop(): void {
    this.histogram.disable();
  }
}

/** Samples the load on a timer and reports level changes. */
export class LoadMonitor {
  private readonly levels: LoadLevels;
  private timer: ClockTimer | null = null;
  private process: ProcessSampler | null = null;
  private last: LoadSample | null = null;
  private running = false;

  constructor(
    private readonly config: ResolvedLoad,
    private readonly clock: Clock,
    /** Open sockets right now. */
    private readonly connections: () => number,
    private readonly onChange: (event: LoadEvent) => void,
  ) {
    this.levels = new LoadLevels(config);
  }

  /** The level in force. */
  get level(): LoadLevel {
    return this.levels.level;
  }

  /** The latest sample, or null before the first. */
  get lastSample(): LoadSample | null {
    return this.last;
  }

  /** Starts sampling (no-op when sampling is off or already running). */
  start(): void {
    if (this.running || this.config.sampleInterval === 0) return;
    this.running = true;
    if (!this.config.sampler) this.process = new ProcessSampler();
    this.arm();
  }

  /** Stops sampling and releases the histogram. */
  stop(): void {
    this.running = false;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.process?.stop();
    this.process = null;
  }

  /** Takes a sample now and applies it; returns the change, if any. */
  sample(): LoadEvent | null {
    const measured = this.config.sampler
      ? this.config.sampler()
      : (this.process?.sample() ?? { heapUsed: 0, rss: 0, eventLoopDelay: 0 });
    const sample: LoadSample = {
      connections: this.connections(),
      heapUsed: measured.heapUsed,
      rss: measured.rss,
      eventLoopDelay: measured.eventLoopDelay,
    };
    this.last = sample;
    const change = this.levels.update(sample, this.clock.now());
    if (change) this.onChange(change);
    return change;
  }

  private arm(): void {
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      try {
        this.sample();
      } finally {
        // A listener of the change may have stopped the monitor (by closing the server).
        if (this.running && this.timer === null) this.arm();
      }
    }, this.config.sampleInterval);
  }
}
