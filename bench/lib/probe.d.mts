/** Types of probe.mjs (plain JavaScript so that it loads without the TypeScript loader). */

/** Sampling period of the event-loop delay histogram (ms). */
export declare const ELD_RESOLUTION_MS: number;

/** Memory of one process (bytes). */
export interface MemoryReading {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Physical pages of V8's young generation (new space + new large-object space). */
  young: number;
  /** rss - young. */
  rssNet: number;
}

/**
 * Event-loop delay over a window (ms): how late the histogram's 10 ms timer ran, that is
 * the time between its runs minus the 10 ms period.
 */
export interface EldSummary {
  samples: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
  /** p99 of the time between the timer's runs, period included (Node's raw figure). */
  rawP99: number;
}

/** One closed (or running) window of one process. */
export interface WindowSummary {
  seq: number;
  pid: number;
  ppid: number;
  /** Epoch ms when the window opened. */
  startedAt: number;
  elapsedMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  eld: EldSummary;
  memAtStart: MemoryReading;
}

/** What a mark returns: the window it closed and the reading that opens the next. */
export interface MarkResult {
  previous: WindowSummary;
  current: { seq: number; startedAt: number; mem: MemoryReading };
}

/** The state file a file-controlled probe writes (DIR/probe-<pid>.json). */
export interface ProbeState {
  pid: number;
  ppid: number;
  argv: string[];
  seq: number;
  mem: MemoryReading;
  previous: WindowSummary | null;
}

export interface Probe {
  mark(collect?: boolean): MarkResult;
  peek(): WindowSummary;
  sync(seq: number): void;
}

export declare function memory(): MemoryReading;
export declare function getProbe(): Probe;
