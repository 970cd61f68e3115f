/**
 * Workload (3): messages. An echo server (alone in its process) and a load process that
 * keeps a fixed number of messages in flight per connection; 64 B and 4 KiB payloads,
 * one connection and 1,000 connections; messages per second (round trips completed) and
 * p50/p99 latency from the send time carried in the payload. heartline against raw `net`
 * with the same length-prefixed framing and against `ws`.
 *
 *   node --import tsx bench/messages.ts [--quick] [--systems heartline,net,ws]
 */

import { ADDRESSES_PER_PROCESS, takeAddresses } from './lib/addresses.js';
import { buildHeartline } from './lib/build.js';
import { Child } from './lib/child.js';
import { clientNodeFlags, type QuietCheck, serverNodeFlags, waitForQuiet } from './lib/idle-run.js';
import type { MarkResult } from './lib/probe.mjs';
import type { Progress, Step } from './lib/progress.js';
import type { Target } from './lib/results.js';
import { round, sleep } from './lib/stats.js';
import { type CommonOptions, isMain, main, type Outcome, type Workload } from './lib/workload.js';
import type { SystemName } from './systems/types.js';

const SYSTEMS = ['heartline', 'net', 'ws'] as const satisfies readonly SystemName[];
type MessageSystem = (typeof SYSTEMS)[number];

/** Parameters of the workload. */
export interface MessagesParams extends Record<string, unknown> {
  systems: MessageSystem[];
  sizes: number[];
  connections: number[];
  /** Messages in flight per connection, by connection count. */
  windows: Record<string, number>;
  warmupS: number;
  durationS: number;
}

/** One cell of the matrix. */
export interface MessagesRow {
  system: MessageSystem;
  size: number;
  connections: number;
  window: number;
  /** Round trips completed per second. */
  perSecond: number;
  messages: number;
  latencyMs: { p50: number; p99: number; mean: number; max: number };
  /** Server CPU seconds per 100k messages echoed. */
  serverCpuPer100kS: number;
  serverCpuS: number;
  lost: number;
  /** How busy the machine was before the cell started. */
  quiet: QuietCheck;
}

interface EchoResult {
  messages: number;
  elapsedMs: number;
  perSecond: number;
  latencyMs: { p50: number; p99: number; mean: number; max: number };
  lost: number;
}

/**
 * Messages in flight per connection: enough on one connection to keep both processes
 * busy (a ping-pong of one message would measure wake-ups, not messages), a few each
 * across 1,000 connections.
 */
function windowFor(connections: number): number {
  return connections === 1 ? 64 : 4;
}

function cells(
  p: MessagesParams,
): Array<{ system: MessageSystem; size: number; connections: number }> {
  const out = [];
  for (const size of p.sizes) {
    for (const connections of p.connections) {
      for (const system of p.systems) out.push({ system, size, connections });
    }
  }
  return out;
}

const cellId = (c: { system: string; size: number; connections: number }) =>
  `messages:${c.system}:${c.size}:${c.connections}`;

async function runCell(
  c: { system: MessageSystem; size: number; connections: number },
  window: number,
  p: MessagesParams,
  progress: Progress,
  id: string,
): Promise<MessagesRow> {
  const children: Child[] = [];
  try {
    if (c.system === 'heartline') buildHeartline();
    const quiet = await waitForQuiet(progress, id);
    progress.update(id, 0, 'starting');
    const server = await Child.start<{ port: number }>('bench/servers/echo-server.ts', {
      name: `echo-server(${c.system})`,
      args: ['--system', c.system],
      nodeFlags: serverNodeFlags(),
    });
    children.push(server);
    const load = await Child.start('bench/clients/echo-clients.ts', {
      name: `echo-clients(${c.system})`,
      nodeFlags: clientNodeFlags(),
      args: [
        '--system',
        c.system,
        '--port',
        String(server.ready.port),
        '--connections',
        String(c.connections),
        '--size',
        String(c.size),
        '--window',
        String(window),
        '--addresses',
        takeAddresses(ADDRESSES_PER_PROCESS).join(','),
      ],
    });
    children.push(load);
    progress.update(id, 0.1, `connecting ${c.connections}`);
    await load.request('connect', null, 120_000);
    // The server's window opens and closes with the load's measurement.
    let startMark: Promise<MarkResult> | null = null;
    let endMark: Promise<MarkResult> | null = null;
    load.onEvent((name) => {
      if (name === 'measuring') startMark = server.request<MarkResult>('mark');
      if (name === 'measured') endMark = server.request<MarkResult>('mark');
    });
    const t0 = performance.now();
    const total = (p.warmupS + p.durationS) * 1000;
    const ticker = setInterval(() => {
      const f = Math.min(1, (performance.now() - t0) / total);
      progress.update(
        id,
        0.15 + 0.8 * f,
        f * total < p.warmupS * 1000 ? 'warming up' : 'measuring',
      );
    }, 250);
    let result: EchoResult;
    try {
      result = await load.request<EchoResult>(
        'run',
        { warmupMs: p.warmupS * 1000, durationMs: p.durationS * 1000 },
        total + 60_000,
      );
    } finally {
      clearInterval(ticker);
    }
    while (endMark === null) await sleep(10);
    if (startMark === null) throw new Error('the load never started measuring');
    await startMark;
    const window_ = (await (endMark as Promise<MarkResult>)).previous;
    const serverCpuS = (window_.cpuUserMs + window_.cpuSystemMs) / 1000;
    return {
      system: c.system,
      size: c.size,
      connections: c.connections,
      window,
      perSecond: Math.round(result.perSecond),
      messages: result.messages,
      latencyMs: {
        p50: round(result.latencyMs.p50, 3),
        p99: round(result.latencyMs.p99, 3),
        mean: round(result.latencyMs.mean, 3),
        max: round(result.latencyMs.max, 3),
      },
      serverCpuS: round(serverCpuS, 3),
      serverCpuPer100kS: round(
        result.messages > 0 ? (serverCpuS / result.messages) * 1e5 : Number.NaN,
        3,
      ),
      lost: result.lost,
      quiet,
    };
  } finally {
    await Promise.all(children.map((ch) => ch.stop()));
  }
}

function fmtRate(x: number): string {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en') : '-';
}

export const messages: Workload<MessagesParams, MessagesRow> = {
  name: 'messages',
  title: 'Messages: throughput and latency of an echo, heartline vs raw net vs ws',
  flags: {
    systems: `systems to run (default ${SYSTEMS.join(',')})`,
    sizes: 'payload sizes in bytes (default 64,4096)',
    'message-connections': 'connection counts (default 1,1000; quick 1,100)',
    warmup: 'warm-up seconds per cell (default 2; quick 1)',
    duration: 'measured seconds per cell (default 5; quick 2)',
  },
  parameters(o: CommonOptions): MessagesParams {
    const v = o.values;
    const ints = (raw: string | undefined, fallback: number[], name: string) => {
      if (raw === undefined) return fallback;
      const xs = raw.split(',').map((s) => Number(s.trim()));
      if (xs.some((x) => !Number.isInteger(x) || x < 1))
        throw new Error(`--${name} must list positive integers, got "${raw}"`);
      return xs;
    };
    const systems = (v.systems ?? SYSTEMS.join(',')).split(',').map((s) => s.trim());
    for (const s of systems) {
      if (!(SYSTEMS as readonly string[]).includes(s))
        throw new Error(`unknown system "${s}" (known: ${SYSTEMS.join(', ')})`);
    }
    const connections = ints(
      v['message-connections'],
      o.quick ? [1, 100] : [1, 1000],
      'message-connections',
    );
    const sec = (raw: string | undefined, fallback: number, name: string) => {
      if (raw === undefined) return fallback;
      const x = Number(raw);
      if (!Number.isFinite(x) || x <= 0)
        throw new Error(`--${name} must be a positive number, got "${raw}"`);
      return x;
    };
    return {
      systems: SYSTEMS.filter((s) => systems.includes(s)),
      sizes: ints(v.sizes, [64, 4096], 'sizes'),
      connections,
      windows: Object.fromEntries(connections.map((n) => [String(n), windowFor(n)])),
      warmupS: sec(v.warmup, o.quick ? 1 : 2, 'warmup'),
      durationS: sec(v.duration, o.quick ? 2 : 5, 'duration'),
    };
  },
  steps(p): Step[] {
    return cells(p).map((c) => ({
      id: cellId(c),
      label: `${c.system} echo ${c.size} B x ${c.connections}`,
      weight: 3 + p.warmupS + p.durationS + c.connections / 500,
    }));
  },
  async run(p, progress): Promise<Outcome<MessagesRow>> {
    const rows: MessagesRow[] = [];
    for (const c of cells(p)) {
      const id = cellId(c);
      progress.start(id);
      const row = await runCell(
        c,
        p.windows[String(c.connections)] ?? windowFor(c.connections),
        p,
        progress,
        id,
      );
      rows.push(row);
      progress.finish(
        id,
        `${fmtRate(row.perSecond)} msg/s, p50 ${row.latencyMs.p50} ms, p99 ${row.latencyMs.p99} ms`,
      );
    }
    return {
      rows,
      targets: judge(rows),
      notes: [
        'A message is one round trip: the load sends it, the server echoes it, the load receives it; messages/s counts round trips completed.',
        `Messages in flight per connection: ${Object.entries(p.windows)
          .map(([n, w]) => `${w} with ${n} connection${n === '1' ? '' : 's'}`)
          .join(', ')}.`,
        'heartline runs with its defaults: every message is sequenced, held until acknowledged and acknowledged cumulatively (every 32 messages or 20 ms).',
      ],
    };
  },
  summary(rows) {
    return rows
      .map(
        (r) =>
          `  ${r.system.padEnd(10)} ${String(r.size).padStart(5)} B x ${String(r.connections).padEnd(5)} ${fmtRate(r.perSecond).padStart(9)} msg/s  p50 ${r.latencyMs.p50.toFixed(2)} ms  p99 ${r.latencyMs.p99.toFixed(2)} ms`,
      )
      .join('\n');
  },
};

function judge(rows: MessagesRow[]): Target[] {
  const parts: string[] = [];
  let met: boolean | null = true;
  let judged = 0;
  for (const hl of rows.filter((r) => r.system === 'heartline')) {
    const net = rows.find(
      (r) => r.system === 'net' && r.size === hl.size && r.connections === hl.connections,
    );
    if (!net) continue;
    judged++;
    const ratio = hl.perSecond / net.perSecond;
    parts.push(`${hl.size} B x ${hl.connections}: ${Math.round(ratio * 100)}%`);
    if (ratio < 0.8) met = false;
  }
  if (judged === 0) met = null;
  return [
    {
      id: 'message-throughput',
      goal: 'message throughput at least 80% of raw net with the same framing',
      measured: parts.length > 0 ? parts.join(', ') : 'not run',
      met,
    },
  ];
}

if (isMain(import.meta.url)) await main(messages);
