/**
 * Workload (2): the same idle work side by side, in one run: 10k connections with a 1 s
 * heartbeat on one server process, for heartline and for what users would pick instead:
 * raw `net` with no heartbeat (the floor), a naive design with timers per connection,
 * `ws` with its README's heartbeat, Socket.IO with pingInterval/pingTimeout, and aedes
 * with mqtt.js keepalive. The targets of issue 8 at 10k are judged from this file.
 *
 *   node --import tsx bench/peers.ts [--quick] [--connections 10000] [--systems net,ws,...]
 */

import { estimateIdleSeconds, type IdleParams, type IdleRow, runIdle } from './lib/idle-run.js';
import type { Progress, Step } from './lib/progress.js';
import type { Target } from './lib/results.js';
import { type CommonOptions, isMain, main, type Outcome, type Workload } from './lib/workload.js';
import { isSystemName, SYSTEM_NAMES } from './systems/index.js';
import type { SystemName } from './systems/types.js';

/** Parameters of the workload. */
export interface PeersParams extends Record<string, unknown> {
  systems: SystemName[];
  /**
   * Rounds over all systems, the even ones in reverse order: on a shared machine the
   * background load drifts, and alternating the order spreads it over every system.
   */
  rounds: number;
  connections: number;
  interval: number;
  settleS: number;
  windowS: number;
  perProcess: number;
  /** Connections opened per second in total. */
  connectRate: number;
}

/** Order of the rows: the floor first, heartline last, the others as users meet them. */
const ORDER: readonly SystemName[] = ['net', 'naive', 'ws', 'socketio', 'aedes', 'heartline'];

/** One measurement of one system in one round. */
export type PeersRow = IdleRow & { round: number };

/** A system's figures over the rounds. */
export interface PeerSummary {
  system: SystemName;
  rounds: number;
  /** Means over the rounds. */
  rssPerConnKiB: number;
  per100kS: number;
  eldP99: number;
  /** The worst round's p99. */
  eldP99Worst: number;
  /** Lowest and highest CPU figure of the rounds. */
  per100kRange: [number, number];
  open: number;
  lost: number;
  countedPerNominal: number | null;
}

const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Figures per system over the rounds, in the order of the rows. */
export function summarize(rows: readonly IdleRow[]): PeerSummary[] {
  const out: PeerSummary[] = [];
  for (const system of ORDER) {
    const rs = rows.filter(
      (r) => r.system === system && r.status === 'ok' && r.memory && r.cpu && r.eld,
    );
    if (rs.length === 0) continue;
    const cpu = rs.map((r) => r.cpu!.per100kS);
    const counted = rs.every((r) => r.cpu!.countedHeartbeats !== null)
      ? avg(rs.map((r) => r.cpu!.countedHeartbeats! / r.cpu!.nominalHeartbeats))
      : null;
    out.push({
      system,
      rounds: rs.length,
      rssPerConnKiB: avg(rs.map((r) => r.memory!.rssPerConnKiB)),
      per100kS: avg(cpu),
      eldP99: avg(rs.map((r) => r.eld!.p99)),
      eldP99Worst: Math.max(...rs.map((r) => r.eld!.p99)),
      per100kRange: [Math.min(...cpu), Math.max(...cpu)],
      open: Math.min(...rs.map((r) => r.open)),
      lost: rs.reduce((a, r) => a + r.clients.lost, 0),
      countedPerNominal: counted,
    });
  }
  return out;
}

function rowParams(p: PeersParams): Array<IdleParams & { round: number }> {
  const out: Array<IdleParams & { round: number }> = [];
  for (let round = 1; round <= p.rounds; round++) {
    const order = round % 2 === 1 ? p.systems : [...p.systems].reverse();
    for (const system of order) {
      out.push({
        round,
        system,
        connections: p.connections,
        interval: p.interval,
        settleS: p.settleS,
        windowS: p.windowS,
        frozen: 0,
        workers: 0,
        perProcess: p.perProcess,
        connectRate: p.connectRate,
      });
    }
  }
  return out;
}

function fmt(x: number | undefined, digits = 2): string {
  return x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

export const peers: Workload<PeersParams, PeersRow> = {
  name: 'peers',
  title: 'Idle connections side by side: heartline and the alternatives',
  flags: {
    systems: `systems to run (default ${ORDER.join(',')})`,
    connections: 'connections per system (default 10000; quick 1000)',
    interval: 'heartbeat interval in ms, the same for all (default 1000)',
    settle: 'seconds of heartbeats before the memory reading (default 5; quick 3)',
    window: 'measurement window in s (default 10; quick 5)',
    passes: 'passes over all systems, alternating the order (default 2; quick 1)',
    'connect-rate': 'connections opened per second, all client processes together (default 1000)',
  },
  parameters(o: CommonOptions): PeersParams {
    const v = o.values;
    const systems = (v.systems ?? ORDER.join(',')).split(',').map((s) => s.trim());
    for (const s of systems) {
      if (!isSystemName(s))
        throw new Error(`unknown system "${s}" (known: ${SYSTEM_NAMES.join(', ')})`);
    }
    const num = (raw: string | undefined, fallback: number, name: string) => {
      if (raw === undefined) return fallback;
      const x = Number(raw);
      if (!Number.isFinite(x) || x <= 0)
        throw new Error(`--${name} must be a positive number, got "${raw}"`);
      return x;
    };
    return {
      systems: ORDER.filter((s) => systems.includes(s)),
      connections: num(v.connections, o.quick ? 1000 : 10_000, 'connections'),
      interval: num(v.interval, 1000, 'interval'),
      settleS: num(v.settle, o.quick ? 3 : 5, 'settle'),
      windowS: num(v.window, o.quick ? 5 : 10, 'window'),
      rounds: Math.round(num(v.passes, o.quick ? 1 : 2, 'passes')),
      perProcess: 9000,
      connectRate: num(v['connect-rate'], 1000, 'connect-rate'),
    };
  },
  steps(p): Step[] {
    return rowParams(p).map((r) => ({
      id: `peers:${r.system}:${r.round}`,
      label: `${r.system} idle ${r.connections.toLocaleString('en')}${p.rounds > 1 ? ` (round ${r.round}/${p.rounds})` : ''}`,
      weight: estimateIdleSeconds(r),
    }));
  },
  async run(p, progress: Progress): Promise<Outcome<PeersRow>> {
    const rows: PeersRow[] = [];
    for (const r of rowParams(p)) {
      const id = `peers:${r.system}:${r.round}`;
      progress.start(id);
      const row = await runIdle(r, progress, id);
      rows.push({ ...row, round: r.round });
      progress.finish(
        id,
        `${fmt(row.memory?.rssPerConnKiB)} KiB/conn, ${fmt(row.cpu?.per100kS, 3)} CPU-s/100k hb, eld p99 ${fmt(row.eld?.p99)} ms`,
      );
    }
    return {
      rows,
      targets: judge(summarize(rows)),
      notes: [
        `Every system runs ${p.connections.toLocaleString('en')} connections with a ${p.interval} ms heartbeat, its server alone in one process, clients in separate processes; ${p.rounds} round(s) over all systems, alternating the order; figures are means over the rounds.`,
        'CPU per 100k heartbeats divides the server CPU time of the window by connections x window / interval, the heartbeat work every design has to do; countedHeartbeats shows what the server itself counted where that is free to count.',
      ],
    };
  },
  summary(rows) {
    return summarize(rows)
      .map(
        (r) =>
          `  ${r.system.padEnd(10)} ${fmt(r.rssPerConnKiB).padStart(7)} KiB/conn  ${fmt(r.per100kS, 3).padStart(7)} CPU-s/100k hb (${fmt(r.per100kRange[0], 2)}-${fmt(r.per100kRange[1], 2)})  eld p99 ${fmt(r.eldP99).padStart(7)} ms  (${r.open} open, ${r.lost} lost)`,
      )
      .join('\n');
  },
};

/** The 10k targets of issue 8, judged on the means over the rounds. */
function judge(summary: PeerSummary[]): Target[] {
  const by = new Map(summary.map((r) => [r.system, r]));
  const hl = by.get('heartline');
  if (!hl) return [];
  const targets: Target[] = [];
  const floor = by.get('net');
  if (floor) {
    const ratio = hl.rssPerConnKiB / floor.rssPerConnKiB;
    targets.push({
      id: 'rss-per-connection',
      goal: 'at 10k and 1/s: RSS per connection at most 1.3 x the raw-net floor',
      measured: `${fmt(hl.rssPerConnKiB)} KiB vs ${fmt(floor.rssPerConnKiB)} KiB (${fmt(ratio)}x)`,
      met: ratio <= 1.3,
    });
  }
  const others = summary.filter((r) => r.system !== 'heartline' && r.system !== 'net');
  if (others.length > 0) {
    const cheapest = others.reduce((a, b) => (b.per100kS < a.per100kS ? b : a));
    targets.push({
      id: 'cpu-per-100k-heartbeats',
      goal: 'at 10k and 1/s: CPU per 100k heartbeats below the naive design and below every peer',
      measured: `${fmt(hl.per100kS, 3)} s vs ${others.map((r) => `${r.system} ${fmt(r.per100kS, 3)} s`).join(', ')}`,
      met: by.has('naive') ? hl.per100kS < cheapest.per100kS : null,
    });
  }
  targets.push({
    id: 'event-loop-delay',
    goal: 'at 10k and 1/s: event-loop delay p99 under 20 ms',
    measured: `${fmt(hl.eldP99)} ms at ${hl.open.toLocaleString('en')} connections (worst round ${fmt(hl.eldP99Worst)} ms)`,
    met: hl.eldP99Worst < 20,
  });
  return targets;
}

if (isMain(import.meta.url)) await main(peers);
