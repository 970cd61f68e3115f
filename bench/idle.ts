/**
 * Workload (1): idle heartline connections with heartbeats at scale. 10k and 19k
 * connections on one server process at a 1 s interval (19k is about what one process
 * holds under the 20,000 open-files limit), with a few frozen peers among them whose
 * detection latency is measured while the server is loaded; and 100k connections on the
 * machine at a 10 s interval with the multi-process mode (`workers`), reported as not
 * run when the library has no such mode.
 *
 *   node --import tsx bench/idle.ts [--quick] [--connections 10000,19000] [--multi 100000]
 */

import { estimateIdleSeconds, type IdleParams, type IdleRow, runIdle } from './lib/idle-run.js';
import type { Progress, Step } from './lib/progress.js';
import type { Target } from './lib/results.js';
import { type CommonOptions, isMain, main, type Outcome, type Workload } from './lib/workload.js';

/** Parameters of the workload. */
export interface IdleWorkloadParams extends Record<string, unknown> {
  /** One-process rows. */
  connections: number[];
  interval: number;
  settleS: number;
  windowS: number;
  frozen: number;
  perProcess: number;
  /** Connections opened per second in total. */
  connectRate: number;
  /** The multi-process row (0: none). */
  multiConnections: number;
  multiWorkers: number;
  multiInterval: number;
  multiWindowS: number;
}

/** Most clients per client process: well under the 20,000 open-files limit. */
const PER_PROCESS = 9000;

/** A list of connection counts; 0 stands for none (to run the multi-process row alone). */
function list(raw: string | undefined, fallback: number[]): number[] {
  if (raw === undefined) return fallback;
  const xs = raw.split(',').map((s) => Number(s.trim()));
  if (xs.some((x) => !Number.isInteger(x) || x < 0)) {
    throw new Error(`--connections must be a list of non-negative integers, got "${raw}"`);
  }
  return xs.filter((x) => x > 0);
}

function num(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined) return fallback;
  const x = Number(raw);
  if (!Number.isFinite(x) || x < 0)
    throw new Error(`--${name} must be a non-negative number, got "${raw}"`);
  return x;
}

function rowParams(p: IdleWorkloadParams): IdleParams[] {
  const rows: IdleParams[] = p.connections.map((connections) => ({
    system: 'heartline',
    connections,
    interval: p.interval,
    settleS: p.settleS,
    windowS: p.windowS,
    frozen: Math.min(p.frozen, Math.floor(connections / 10)),
    workers: 0,
    perProcess: p.perProcess,
    connectRate: p.connectRate,
  }));
  if (p.multiConnections > 0) {
    rows.push({
      system: 'heartline',
      connections: p.multiConnections,
      interval: p.multiInterval,
      settleS: p.settleS,
      windowS: p.multiWindowS,
      frozen: 0,
      workers: p.multiWorkers,
      perProcess: p.perProcess,
      connectRate: p.connectRate,
    });
  }
  return rows;
}

const stepId = (r: IdleParams) => `idle:${r.connections}${r.workers > 1 ? `x${r.workers}` : ''}`;

function fmt(x: number | undefined, digits = 2): string {
  return x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

export const idle: Workload<IdleWorkloadParams, IdleRow> = {
  name: 'idle',
  title: 'Idle heartline connections with heartbeats (one process, and the machine)',
  flags: {
    connections:
      'connections of the one-process rows, 0 for none (default 10000,19000; quick 1000)',
    interval: 'heartbeat interval in ms (default 1000)',
    settle: 'seconds of heartbeats before the memory reading (default 5; quick 3)',
    window: 'measurement window in s (default 20; quick 5)',
    frozen: 'frozen peers per row (default 10; quick 5)',
    'connect-rate':
      'connections opened per second, all client processes together (default 1000; 0: unpaced)',
    multi: 'connections of the multi-process row, 0 for none (default 100000; quick 2000)',
    workers: 'worker processes of the multi-process row (default 8; quick 2)',
    'multi-interval': 'heartbeat interval of the multi-process row in ms (default 10000)',
    'multi-window': 'window of the multi-process row in s (default 30; quick 10)',
  },
  parameters(o: CommonOptions): IdleWorkloadParams {
    const v = o.values;
    return {
      connections: list(v.connections, o.quick ? [1000] : [10_000, 19_000]),
      interval: num(v.interval, 1000, 'interval'),
      settleS: num(v.settle, o.quick ? 3 : 5, 'settle'),
      windowS: num(v.window, o.quick ? 5 : 20, 'window'),
      frozen: num(v.frozen, o.quick ? 5 : 10, 'frozen'),
      perProcess: PER_PROCESS,
      connectRate: num(v['connect-rate'], 1000, 'connect-rate'),
      multiConnections: num(v.multi, o.quick ? 2000 : 100_000, 'multi'),
      multiWorkers: num(v.workers, o.quick ? 2 : 8, 'workers'),
      multiInterval: num(v['multi-interval'], 10_000, 'multi-interval'),
      multiWindowS: num(v['multi-window'], o.quick ? 10 : 30, 'multi-window'),
    };
  },
  steps(p): Step[] {
    return rowParams(p).map((r) => ({
      id: stepId(r),
      label: `idle heartline ${r.connections.toLocaleString('en')}${r.workers > 1 ? ` on ${r.workers} workers` : ''}`,
      weight: estimateIdleSeconds(r),
    }));
  },
  async run(p, progress: Progress): Promise<Outcome<IdleRow>> {
    const rows: IdleRow[] = [];
    for (const r of rowParams(p)) {
      const id = stepId(r);
      progress.start(id);
      const row = await runIdle(r, progress, id);
      rows.push(row);
      progress.finish(
        id,
        row.status === 'ok'
          ? `${fmt(row.memory?.rssPerConnKiB)} KiB/conn, ${fmt(row.cpu?.per100kS)} CPU-s/100k hb, eld p99 ${fmt(row.eld?.p99)} ms`
          : `not run: ${row.note}`,
      );
    }
    return { rows, targets: judge(rows), notes: notes(p) };
  },
  summary(rows) {
    return rows
      .map((r) =>
        r.status !== 'ok'
          ? `  ${r.connections} conns${r.workers > 1 ? ` x${r.workers} workers` : ''}: not run (${r.note})`
          : `  ${r.connections} conns${r.workers > 1 ? ` x${r.workers} workers` : ''} @ ${r.interval} ms: ${fmt(r.memory?.rssPerConnKiB)} KiB/conn, ` +
            `${fmt(r.cpu?.per100kS, 3)} CPU-s per 100k heartbeats, eld p99 ${fmt(r.eld?.p99)} ms` +
            (r.detection
              ? `, frozen peers dead after ${fmt(r.detection.worstMs, 0)} ms at worst (bound ${r.detection.boundMs})`
              : ''),
      )
      .join('\n');
  },
};

function notes(p: IdleWorkloadParams): string[] {
  return [
    `Frozen peers (${p.frozen} per one-process row) answer PINGs until frozen, then stop reading and writing with their sockets open; they are frozen ${Math.min(2, p.windowS / 4)} s into the window.`,
    'Detection latency is measured by the server: time from the last byte it heard from the peer to the DEAD state.',
  ];
}

function judge(rows: IdleRow[]): Target[] {
  const targets: Target[] = [];
  const withDetection = rows.filter((r) => r.status === 'ok' && r.detection);
  if (withDetection.length > 0) {
    const parts = withDetection.map((r) => {
      const d = r.detection!;
      return `${r.connections.toLocaleString('en')} conns: ${d.detected}/${d.frozen} detected, worst ${fmt(d.worstMs, 0)} ms (bound ${d.boundMs} ms)`;
    });
    const met = withDetection.every(
      (r) =>
        r.detection!.detected === r.detection!.frozen &&
        r.detection!.worstMs <= r.detection!.boundMs,
    );
    targets.push({
      id: 'detection-under-load',
      goal: 'frozen peers detected under load within the configured timeout + 100 ms',
      measured: parts.join('; '),
      met,
    });
  }
  const multi = rows.find((r) => r.workers > 1);
  if (multi) {
    const eld = multi.eld;
    targets.push({
      id: 'multi-process-eld',
      goal: `${multi.connections.toLocaleString('en')} connections on the machine at a ${multi.interval / 1000} s interval, event-loop delay p99 < 20 ms in every worker`,
      measured:
        multi.status !== 'ok'
          ? `not run: ${multi.note}`
          : `${multi.open.toLocaleString('en')} connections on ${multi.serverProcesses} processes, worst p99 ${fmt(eld?.p99)} ms`,
      met:
        multi.status !== 'ok'
          ? null
          : multi.open >= multi.connections && (eld?.p99 ?? Number.POSITIVE_INFINITY) < 20,
    });
  }
  return targets;
}

if (isMain(import.meta.url)) await main(idle);
