/**
 * The measuring probe of a server under test: CPU time (process.cpuUsage), memory
 * (process.memoryUsage, V8's young generation) and event-loop delay
 * (monitorEventLoopDelay) of the process it runs in, over windows between marks.
 *
 * A server child imports it and marks windows on request (over IPC). For a server that
 * forks workers of its own (the multi-process mode), the harness also loads it into every
 * process of the tree with NODE_OPTIONS="--import=<this file>" and BENCH_PROBE_DIR: each
 * process then polls DIR/control.json and, whenever its `seq` changes, marks a window and
 * writes DIR/probe-<pid>.json. That needs nothing from the server's code.
 *
 * Plain JavaScript on purpose: it must load in processes started without the TypeScript
 * loader. Types for the TypeScript side are in probe.d.mts.
 */

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';

/** Sampling period of the event-loop delay histogram (ms): Node's default. */
export const ELD_RESOLUTION_MS = 10;

/** How often a file-controlled probe looks for a new mark (ms). */
const POLL_MS = 200;

const KEY = Symbol.for('heartline.bench.probe');

/** gc(), exposed by --expose-gc or, failing that, by switching the flag on at run time. */
function findGc() {
  if (typeof globalThis.gc === 'function') return globalThis.gc;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc');
}

/**
 * Memory of this process. `young` is what V8's young generation (new space and new
 * large-object space) holds in physical pages; `rssNet` is RSS without it, because the
 * young generation grows with the allocation rate, not with the number of connections.
 */
export function memory() {
  const m = process.memoryUsage();
  let young = 0;
  for (const space of v8.getHeapSpaceStatistics()) {
    if (space.space_name === 'new_space' || space.space_name === 'new_large_object_space') {
      young += space.physical_space_size;
    }
  }
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    young,
    rssNet: m.rss - young,
  };
}

function createProbe() {
  const gc = findGc();
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  eld.enable();

  const open = (seq, collect) => {
    if (collect) {
      // Twice: the first full GC can leave garbage the second one frees (weak callbacks).
      gc();
      gc();
    }
    const mem = memory();
    eld.reset();
    return {
      seq,
      at: performance.timeOrigin + performance.now(),
      t0: performance.now(),
      cpu0: process.cpuUsage(),
      mem,
    };
  };

  const summarize = (w) => {
    const cpu = process.cpuUsage(w.cpu0);
    // The histogram holds the time between runs of its own timer, which includes the
    // timer's period; the delay is what exceeds it (as @fastify/under-pressure computes).
    const ms = (ns) => (Number.isFinite(ns) ? Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS) : 0);
    return {
      seq: w.seq,
      pid: process.pid,
      ppid: process.ppid,
      startedAt: w.at,
      elapsedMs: performance.now() - w.t0,
      cpuUserMs: cpu.user / 1000,
      cpuSystemMs: cpu.system / 1000,
      eld: {
        samples: eld.count,
        p50: eld.count > 0 ? ms(eld.percentile(50)) : 0,
        p99: eld.count > 0 ? ms(eld.percentile(99)) : 0,
        max: eld.count > 0 ? ms(eld.max) : 0,
        mean: eld.count > 0 ? ms(eld.mean) : 0,
        rawP99: eld.count > 0 ? eld.percentile(99) / 1e6 : 0,
      },
      memAtStart: w.mem,
    };
  };

  let current = open(0, false);
  return {
    /** Closes the current window (returned) and opens the next, after a GC when asked. */
    mark(collect = false) {
      const previous = summarize(current);
      current = open(current.seq + 1, collect);
      return { previous, current: { seq: current.seq, startedAt: current.at, mem: current.mem } };
    },
    /** The current window so far. */
    peek() {
      return summarize(current);
    },
    /** Adopts a sequence number without closing anything (a probe started late). */
    sync(seq) {
      current.seq = seq;
    },
  };
}

/** The probe of this process (one per process, however often this module is loaded). */
export function getProbe() {
  globalThis[KEY] ??= createProbe();
  return globalThis[KEY];
}

function readControl(dir) {
  try {
    return JSON.parse(readFileSync(join(dir, 'control.json'), 'utf8'));
  } catch {
    return null;
  }
}

function writeState(dir, state) {
  const file = join(dir, `probe-${process.pid}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify(state));
  renameSync(`${file}.tmp`, file);
}

/**
 * File-controlled mode (see the module docblock). The state file holds the reading taken
 * at the latest mark (`mem`) and the window that mark closed (`previous`).
 */
function watchDirectory(dir) {
  const probe = getProbe();
  let seq = readControl(dir)?.seq ?? 0;
  probe.sync(seq);
  const argv = process.argv.slice(1);
  let state = { pid: process.pid, ppid: process.ppid, argv, seq, mem: memory(), previous: null };
  writeState(dir, state);
  const timer = setInterval(() => {
    const next = readControl(dir);
    if (!next || next.seq === seq) return;
    const marked = probe.mark(Boolean(next.gc));
    seq = next.seq;
    probe.sync(seq);
    state = { ...state, seq, mem: marked.current.mem, previous: marked.previous };
    writeState(dir, state);
  }, POLL_MS);
  timer.unref();
}

const dir = process.env.BENCH_PROBE_DIR;
if (dir) watchDirectory(dir);
