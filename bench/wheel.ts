/**
 * Micro-benchmark of the timing wheel against Node's own timers, for 100k timers (one per
 * connection): arm + cancel, re-arm (what every received frame does to a heartbeat timer),
 * the CPU cost of firing, and the heap held per armed timer.
 *
 *   node --import tsx bench/wheel.ts [--quick] [--timers 100000] [--rounds 11]
 *
 * Timing rows are the median over rounds of the per-operation time, after warm-up rounds.
 * Fire rows count CPU time (process.cpuUsage) from the last arm to the last fire, so the
 * idle time between deadlines is not counted for either side.
 */

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { systemClock } from '../src/time/clock.js';
import { FakeClock } from '../src/time/fake-clock.js';
import { TimingWheel, type WheelTimer } from '../src/time/wheel.js';
import type { Progress, Step } from './lib/progress.js';
import { round } from './lib/stats.js';
import {
  type CommonOptions,
  isMain,
  main,
  type Outcome,
  positiveInt,
  type Workload,
} from './lib/workload.js';

/** Parameters of the workload. */
export interface WheelBenchParams extends Record<string, unknown> {
  timers: number;
  rounds: number;
  warmupRounds: number;
  /** Fire rows: deadlines spread uniformly over this many ms. */
  fireSpreadMs: number;
  /** Fire rows: runs per side; the row keeps the median. */
  fireRepeats: number;
  tickMs: number;
  slots: number;
}

/** One measurement: the wheel next to Node's timers where a comparison exists. */
export interface WheelRow extends Record<string, unknown> {
  id: string;
  scenario: string;
  unit: string;
  wheel: number;
  /** The same operation with setTimeout/clearTimeout, or null when there is none. */
  node: number | null;
  /** node / wheel: above 1 means the wheel is cheaper. */
  ratio: number | null;
}

const noop = (): void => {};

/** Explicit GC between measurements, so one row does not pay for the previous one's garbage. */
const gc: () => void = (() => {
  setFlagsFromString('--expose-gc');
  const fn = runInNewContext('gc') as unknown;
  return typeof fn === 'function' ? (fn as () => void) : noop;
})();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median ns per operation of `round`, which performs `ops` operations per call. */
function nsPerOp(round: () => void, ops: number, p: WheelBenchParams): number {
  for (let i = 0; i < p.warmupRounds; i++) round();
  const samples: number[] = [];
  for (let i = 0; i < p.rounds; i++) {
    gc();
    const t0 = process.hrtime.bigint();
    round();
    samples.push(Number(process.hrtime.bigint() - t0) / ops);
  }
  return median(samples);
}

/** Uniform integer delays in [lo, hi], from a fixed seed so every run arms the same deadlines. */
function delays(n: number, lo: number, hi: number): Float64Array {
  const out = new Float64Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = lo + ((x >>> 0) % (hi - lo + 1));
  }
  return out;
}

function row(
  id: string,
  scenario: string,
  unit: string,
  wheel: number,
  node: number | null,
): WheelRow {
  return {
    id,
    scenario,
    unit,
    wheel: round(wheel, 1),
    node: node === null ? null : round(node, 1),
    ratio: node === null ? null : round(node / wheel, 2),
  };
}

function armCancel(p: WheelBenchParams, d: Float64Array, id: string, label: string): WheelRow {
  const n = p.timers;
  const wheel = new TimingWheel(systemClock, { tickMs: p.tickMs, slots: p.slots });
  const timers: WheelTimer[] = Array.from({ length: n }, () => wheel.timer(noop));
  const wheelNs = nsPerOp(
    () => {
      for (let i = 0; i < n; i++) timers[i]!.arm(d[i]!);
      for (let i = 0; i < n; i++) timers[i]!.cancel();
    },
    n,
    p,
  );
  const handles: NodeJS.Timeout[] = new Array(n);
  const nodeNs = nsPerOp(
    () => {
      for (let i = 0; i < n; i++) handles[i] = setTimeout(noop, d[i]!);
      for (let i = 0; i < n; i++) clearTimeout(handles[i]);
    },
    n,
    p,
  );
  return row(id, label, 'ns per arm + cancel', wheelNs, nodeNs);
}

function rearm(p: WheelBenchParams, d: Float64Array): WheelRow[] {
  const n = p.timers;
  const wheel = new TimingWheel(systemClock, { tickMs: p.tickMs, slots: p.slots });
  const timers: WheelTimer[] = Array.from({ length: n }, () => wheel.timer(noop));
  for (let i = 0; i < n; i++) timers[i]!.arm(d[i]!);
  const wheelNs = nsPerOp(
    () => {
      for (let i = 0; i < n; i++) timers[i]!.arm(d[i]!);
    },
    n,
    p,
  );
  wheel.clear();

  const handles: NodeJS.Timeout[] = Array.from({ length: n }, (_, i) => setTimeout(noop, d[i]!));
  const replaceNs = nsPerOp(
    () => {
      for (let i = 0; i < n; i++) {
        clearTimeout(handles[i]);
        handles[i] = setTimeout(noop, d[i]!);
      }
    },
    n,
    p,
  );
  // refresh() is Node's cheapest re-arm, but only for the delay the timer was made with.
  const refreshNs = nsPerOp(
    () => {
      for (let i = 0; i < n; i++) handles[i]!.refresh();
    },
    n,
    p,
  );
  for (const h of handles) clearTimeout(h);
  return [
    row(
      'rearm',
      're-arm an armed timer, delays 1-60 s (Node: clear + set)',
      'ns per re-arm',
      wheelNs,
      replaceNs,
    ),
    row(
      'rearm-refresh',
      're-arm an armed timer (Node: timeout.refresh(), same delay only)',
      'ns per re-arm',
      wheelNs,
      refreshNs,
    ),
  ];
}

interface FireResult {
  cpuNsPerFire: number;
  worstLateMs: number;
}

/** Arms one timer per delay, then measures CPU until the last one has fired. */
async function fire(
  d: Float64Array,
  arm: (delay: number, onFire: () => void) => void,
): Promise<FireResult> {
  gc();
  const n = d.length;
  const deadlines = new Float64Array(n);
  let fired = 0;
  let worst = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  // The wheel's clock timer is unref'd: keep the loop alive until everything fired.
  const keepAlive = setInterval(noop, 1000);
  let armedAt = Number.POSITIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    deadlines[i] = performance.now() + d[i]!;
    arm(d[i]!, () => {
      // Deadlines that passed while the loop was still arming count from the end of arming.
      const late = performance.now() - Math.max(deadlines[i]!, armedAt);
      if (late > worst) worst = late;
      if (++fired === n) done();
    });
  }
  armedAt = performance.now();
  const cpu0 = process.cpuUsage();
  await finished;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(keepAlive);
  return { cpuNsPerFire: ((cpu.user + cpu.system) * 1000) / n, worstLateMs: worst };
}

async function fireRows(p: WheelBenchParams): Promise<WheelRow[]> {
  const n = p.timers;
  const wheel = new TimingWheel(systemClock, { tickMs: p.tickMs, slots: p.slots });
  const armWheel = (delay: number, cb: () => void): void => wheel.timer(cb).arm(delay);
  const armNode = (delay: number, cb: () => void): void => {
    setTimeout(cb, delay);
  };
  // Warm-up of both paths with a tenth of the timers.
  const warm = delays(Math.max(1, Math.floor(n / 10)), 0, p.fireSpreadMs);
  await fire(warm, armWheel);
  await fire(warm, armNode);
  const spread = delays(n, 0, p.fireSpreadMs);
  // Alternate the two sides and keep medians: one fire run is short and noisy.
  const w: FireResult[] = [];
  const t: FireResult[] = [];
  for (let rep = 0; rep < p.fireRepeats; rep++) {
    w.push(await fire(spread, armWheel));
    t.push(await fire(spread, armNode));
  }
  const cpu = (xs: FireResult[]) => median(xs.map((x) => x.cpuNsPerFire));
  const late = (xs: FireResult[]) => median(xs.map((x) => x.worstLateMs));
  const rows = [
    row(
      'fire-cpu',
      `fire, deadlines over ${p.fireSpreadMs} ms (CPU)`,
      'CPU ns per fired timer',
      cpu(w),
      cpu(t),
    ),
    row(
      'fire-late',
      `fire, deadlines over ${p.fireSpreadMs} ms (worst lateness)`,
      'ms',
      late(w),
      late(t),
    ),
  ];
  // ratio of lateness is not "cheaper"; leave it out.
  rows[1]!.ratio = null;

  // The wheel's own processing, without the OS or the event loop: a FakeClock drives it.
  const clock = new FakeClock();
  const fake = new TimingWheel(clock, { tickMs: p.tickMs, slots: p.slots });
  const far = delays(n, 0, 10_000);
  const fakeTimers = Array.from({ length: n }, () => fake.timer(noop));
  const processing = nsPerOp(
    () => {
      for (let i = 0; i < n; i++) fakeTimers[i]!.arm(far[i]!);
      clock.advance(10_000 + p.tickMs);
    },
    n,
    p,
  );
  rows.push(
    row(
      'fire-processing',
      'arm + fire, deadlines over 10 s, FakeClock (wheel work only)',
      'ns per timer',
      processing,
      null,
    ),
  );
  return rows;
}

function heapPerTimer(p: WheelBenchParams): WheelRow {
  const n = p.timers;
  const d = delays(n, 1000, 60_000);
  const measure = (armAll: () => () => void): number => {
    gc();
    const before = process.memoryUsage().heapUsed;
    const release = armAll();
    gc();
    const bytes = (process.memoryUsage().heapUsed - before) / n;
    release();
    return bytes;
  };
  const wheelBytes = measure(() => {
    const wheel = new TimingWheel(systemClock, { tickMs: p.tickMs, slots: p.slots });
    const timers = Array.from({ length: n }, (_, i) => {
      const t = wheel.timer(() => {});
      t.arm(d[i]!);
      return t;
    });
    return () => {
      wheel.clear();
      timers.length = 0;
    };
  });
  const nodeBytes = measure(() => {
    const handles = Array.from({ length: n }, (_, i) => setTimeout(() => {}, d[i]!));
    return () => {
      for (const h of handles) clearTimeout(h);
    };
  });
  return row(
    'heap',
    'heap per armed timer (incl. its closure and the array slot)',
    'bytes',
    wheelBytes,
    nodeBytes,
  );
}

const STEPS = ['arm-cancel', 'rearm', 'fire', 'heap'] as const;

export const wheelBench: Workload<WheelBenchParams, WheelRow> = {
  name: 'wheel',
  title: 'Timing wheel vs setTimeout/clearTimeout',
  flags: {
    timers: 'timers per measurement (default 100000; quick 20000)',
    rounds: 'measured rounds per timing row (default 11; quick 3)',
  },
  parameters(o: CommonOptions): WheelBenchParams {
    return {
      timers: positiveInt(o.values.timers, o.quick ? 20_000 : 100_000, 'timers'),
      rounds: positiveInt(o.values.rounds, o.quick ? 3 : 11, 'rounds'),
      warmupRounds: o.quick ? 1 : 2,
      fireSpreadMs: 200,
      fireRepeats: o.quick ? 1 : 5,
      tickMs: 10,
      slots: 512,
    };
  },
  steps(p): Step[] {
    const scale = (p.timers / 100_000) * ((p.rounds + p.warmupRounds) / 13);
    const weights: Record<(typeof STEPS)[number], number> = {
      'arm-cancel': 4 * scale,
      rearm: 3 * scale,
      fire: (p.fireRepeats * 0.6 + 0.2) * Math.max(1, p.timers / 100_000),
      heap: 1,
    };
    return STEPS.map((id) => ({ id: `wheel:${id}`, label: `wheel ${id}`, weight: weights[id] }));
  },
  async run(p, progress: Progress): Promise<Outcome<WheelRow>> {
    const rows: WheelRow[] = [];
    progress.start('wheel:arm-cancel');
    rows.push(
      armCancel(p, delays(p.timers, 1000, 60_000), 'arm-cancel', 'arm + cancel, delays 1-60 s'),
    );
    rows.push(
      armCancel(
        p,
        new Float64Array(p.timers).fill(30_000),
        'arm-cancel-same',
        'arm + cancel, one delay (30 s)',
      ),
    );
    progress.finish('wheel:arm-cancel');
    progress.start('wheel:rearm');
    rows.push(...rearm(p, delays(p.timers, 1000, 60_000)));
    progress.finish('wheel:rearm');
    progress.start('wheel:fire');
    rows.push(...(await fireRows(p)));
    progress.finish('wheel:fire');
    progress.start('wheel:heap');
    rows.push(heapPerTimer(p));
    progress.finish('wheel:heap');
    return {
      rows,
      targets: [],
      notes: [
        `${p.timers} timers per row; wheel tickMs ${p.tickMs}, ${p.slots} slots, on the system clock unless stated.`,
        'Timing rows: median of the measured rounds after warm-up, with a forced GC before each round.',
        `Fire rows: median of ${p.fireRepeats} alternating runs per side; CPU time (user + system) from the last arm to the last fire, divided by the timers; lateness counts from each deadline, or from the end of arming for deadlines that passed while arming.`,
        gc === noop
          ? 'GC could not be forced; heap figures are rough.'
          : 'Heap: heapUsed after a forced GC, armed minus empty.',
      ],
    };
  },
  summary(rows) {
    const header = ['scenario', 'unit', 'wheel', 'setTimeout', 'node/wheel'];
    const cells = rows.map((r) => [
      r.scenario,
      r.unit,
      String(r.wheel),
      r.node === null ? '-' : String(r.node),
      r.ratio === null ? '-' : `${r.ratio}x`,
    ]);
    const widths = header.map((h, c) =>
      Math.max(h.length, ...cells.map((line) => line[c]!.length)),
    );
    const line = (xs: string[]) =>
      `  ${xs.map((x, c) => (c >= 2 ? x.padStart(widths[c]!) : x.padEnd(widths[c]!))).join('  ')}`;
    return [line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
  },
};

if (isMain(import.meta.url)) await main(wheelBench);
