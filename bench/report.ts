/**
 * Turns the result files (bench/results/*.json) into Markdown: the tables of
 * docs/benchmarks.md (between its `bench:results` markers; the method and findings around
 * them are written by hand) and the headline table of the README (between its `bench`
 * markers, in the Benchmarks section). Nothing outside the markers is touched.
 *
 *   node --import tsx bench/report.ts [--results DIR]
 *
 * bench/run.ts calls it after a full run.
 */

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { ClusterRow } from './cluster.js';
import { ROOT } from './lib/child.js';
import type { IdleRow } from './lib/idle-run.js';
import { describeMachine } from './lib/machine.js';
import { RESULTS_DIR, type ResultDoc, readResult, type Target } from './lib/results.js';
import { isMain } from './lib/workload.js';
import type { MessagesRow } from './messages.js';
import { type PeersRow, summarize } from './peers.js';
import { REQUEST_LABELS, type RequestsRow } from './requests.js';
import type { WheelRow } from './wheel.js';

const DOC = join(ROOT, 'docs', 'benchmarks.md');
const README = join(ROOT, 'README.md');
const DOC_MARKERS = ['<!-- bench:results:start -->', '<!-- bench:results:end -->'] as const;
const README_MARKERS = ['<!-- bench:start -->', '<!-- bench:end -->'] as const;

/** Names of the systems in the message tables (no heartbeat is involved there). */
const MESSAGE_LABELS: Record<string, string> = {
  net: 'raw `net`, same framing',
  ws: '`ws`',
  heartline: '**heartline**',
};

const LABELS: Record<string, string> = {
  net: 'raw `net`, no heartbeat (floor)',
  naive: 'naive: timers per connection',
  ws: '`ws`, README heartbeat',
  socketio: 'Socket.IO',
  aedes: 'aedes + mqtt.js keepalive',
  heartline: '**heartline**',
};

function n(x: number | undefined | null, digits = 2): string {
  return x === undefined || x === null || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

function int(x: number | undefined | null): string {
  return x === undefined || x === null || !Number.isFinite(x)
    ? '-'
    : Math.round(x).toLocaleString('en');
}

function table(header: string[], rows: string[][], align?: Array<'l' | 'r'>): string {
  const sep = header.map((_, i) => ((align?.[i] ?? 'l') === 'r' ? '---:' : '---'));
  return [header, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

function when(doc: ResultDoc<unknown>): string {
  return `${doc.startedAt.slice(0, 16).replace('T', ' ')} UTC`;
}

function verdict(t: Target): string {
  return t.met === true ? 'met' : t.met === false ? '**missed**' : 'not run';
}

// ---- sections -------------------------------------------------------------------------

function peersSection(doc: ResultDoc<PeersRow>): string {
  const summary = summarize(doc.rows);
  const floor = summary.find((r) => r.system === 'net');
  const rowsOf = (system: string) => doc.rows.filter((r) => r.system === system);
  const rows = summary.map((r) => {
    const first = rowsOf(r.system)[0];
    return [
      LABELS[r.system] ?? r.system,
      n(r.rssPerConnKiB),
      floor ? `${n(r.rssPerConnKiB / floor.rssPerConnKiB)}x` : '-',
      r.system === 'net' ? `(${n(r.per100kS, 3)})` : n(r.per100kS, 3),
      r.rounds > 1 ? `${n(r.per100kRange[0])}-${n(r.per100kRange[1])}` : '-',
      `${n(r.eldP99)}${r.rounds > 1 ? ` (worst ${n(r.eldP99Worst)})` : ''}`,
      r.countedPerNominal !== null ? n(r.countedPerNominal) : '-',
      first?.deadAfterMs == null ? 'never' : `${n(first.deadAfterMs / 1000, 1)} s`,
      `${int(r.open)}${r.lost > 0 ? `, **${int(r.lost)} lost**` : ''}`,
    ];
  });
  const p = doc.parameters as {
    connections: number;
    interval: number;
    windowS: number;
    settleS: number;
    rounds: number;
  };
  const busy = doc.rows.filter((r) => r.otherWorkPct !== undefined).map((r) => r.otherWorkPct!);
  return [
    `### Idle connections side by side (${int(p.connections)} connections, ${p.interval} ms heartbeat)`,
    '',
    `From \`bench/results/peers.json\`, ${when(doc)}: ${p.rounds === 1 ? 'one pass' : `${p.rounds} passes over all systems (alternating the order)`}, each a ${p.windowS} s window after ${p.settleS} s of heartbeats${p.rounds === 1 ? '' : '; figures are means over the passes'}.` +
      (busy.length > 0
        ? ` Work other than the benchmark took ${n(Math.min(...busy), 0)}-${n(Math.max(...busy), 0)}% of the machine's CPU during the windows.`
        : ''),
    '',
    table(
      [
        'system',
        'RSS/conn (KiB)',
        'vs floor',
        'CPU-s per 100k heartbeats',
        'CPU range',
        'loop delay p99 (ms)',
        'counted / nominal heartbeats',
        'drops a silent peer after',
        'connections',
      ],
      rows,
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
    `The floor sends no heartbeat; its CPU figure, in brackets, is what an idle server costs anyway, divided the same way.${summary.some((r) => r.lost > 0) ? ' "Lost" counts client connections that the server or the client dropped as dead while every peer was alive (heartbeats answered too late under load).' : ''} How each system finds a dead peer:`,
    '',
    ...summary.map(
      (r) => `- ${LABELS[r.system] ?? r.system}: ${rowsOf(r.system)[0]?.heartbeat ?? ''}.`,
    ),
  ].join('\n');
}

function idleSection(doc: ResultDoc<IdleRow>): string {
  const rows = doc.rows.map((r) =>
    r.status !== 'ok'
      ? [
          int(r.connections),
          r.workers > 1 ? String(r.workers) : '1',
          `${r.interval / 1000} s`,
          'not run',
          '-',
          '-',
          '-',
          '-',
          r.note ?? '',
        ]
      : [
          int(r.open),
          r.workers > 1 ? `${r.serverProcesses} processes` : '1',
          `${r.interval / 1000} s`,
          n(r.memory?.rssPerConnKiB),
          n(r.cpu?.per100kS, 3),
          `${n(r.eld?.p50)} / ${n(r.eld?.p99)} / ${n(r.eld?.max, 0)}`,
          r.detection
            ? `${r.detection.detected}/${r.detection.frozen}, worst ${n(r.detection.worstMs, 0)} ms (bound ${r.detection.boundMs})`
            : '-',
          `${n(r.cpu?.clientProcessesS, 1)} s`,
          r.clients.lost > 0 ? `${r.clients.lost} client connections lost` : '',
        ],
  );
  const p = doc.parameters as { windowS: number; settleS: number; frozen: number };
  const busy = doc.rows.filter((r) => r.otherWorkPct !== undefined).map((r) => r.otherWorkPct!);
  return [
    '### heartline at scale',
    '',
    `From \`bench/results/idle.json\`, ${when(doc)}; a ${p.windowS} s window after ${p.settleS} s of heartbeats, ${p.frozen} frozen peers per one-process row.` +
      (busy.length > 0
        ? ` Work other than the benchmark took ${n(Math.min(...busy), 0)}-${n(Math.max(...busy), 0)}% of the machine's CPU during the windows.`
        : ''),
    '',
    table(
      [
        'connections',
        'server processes',
        'interval',
        'RSS/conn (KiB)',
        'CPU-s per 100k heartbeats',
        'loop delay p50 / p99 / max (ms)',
        'frozen peers: detected, last heard -> dead',
        'client processes CPU',
        'note',
      ],
      rows,
      ['r', 'r', 'r', 'r', 'r', 'r', 'l', 'r', 'l'],
    ),
  ].join('\n');
}

function messagesSection(doc: ResultDoc<MessagesRow>): string {
  const rows = doc.rows.map((r) => {
    const net = doc.rows.find(
      (x) => x.system === 'net' && x.size === r.size && x.connections === r.connections,
    );
    return [
      `${r.size} B`,
      int(r.connections),
      MESSAGE_LABELS[r.system] ?? r.system,
      int(r.perSecond),
      net && r.system !== 'net' ? `${Math.round((r.perSecond / net.perSecond) * 100)}%` : '',
      n(r.latencyMs.p50, 2),
      n(r.latencyMs.p99, 2),
      n(r.serverCpuPer100kS, 2),
    ];
  });
  const p = doc.parameters as {
    windows: Record<string, number>;
    warmupS: number;
    durationS: number;
  };
  return [
    '### Messages (echo)',
    '',
    `From \`bench/results/messages.json\`, ${when(doc)}; ${p.durationS} s measured after ${p.warmupS} s of warm-up per cell; messages in flight per connection: ${Object.entries(
      p.windows,
    )
      .map(([k, v]) => `${v} with ${k}`)
      .join(', ')}.`,
    '',
    table(
      [
        'payload',
        'connections',
        'system',
        'messages/s',
        'vs raw net',
        'p50 (ms)',
        'p99 (ms)',
        'server CPU-s per 100k',
      ],
      rows,
      ['r', 'r', 'l', 'r', 'r', 'r', 'r', 'r'],
    ),
  ].join('\n');
}

function wheelSection(doc: ResultDoc<WheelRow>): string {
  return [
    '### Timing wheel vs Node timers',
    '',
    `From \`bench/results/wheel.json\`, ${when(doc)} (\`bench/wheel.ts\`).`,
    '',
    table(
      ['scenario', 'unit', 'wheel', 'setTimeout', 'setTimeout / wheel'],
      doc.rows.map((r) => [
        r.scenario,
        r.unit,
        String(r.wheel),
        r.node === null ? '-' : String(r.node),
        r.ratio === null ? '-' : `${r.ratio}x`,
      ]),
      ['l', 'l', 'r', 'r', 'r'],
    ),
  ].join('\n');
}

function clusterSection(doc: ResultDoc<ClusterRow>): string {
  const ms = (x: number | undefined) => (x === undefined ? '-' : String(x));
  return [
    '### Sessions on Redis',
    '',
    `From \`bench/results/cluster.json\`, ${when(doc)} (\`bench/cluster.ts\`). ${doc.notes.join(' ')}`,
    '',
    table(
      ['scenario', 'unit', 'value', 'p99', 'without a store', 'added'],
      doc.rows.map((r) => [
        r.scenario,
        r.unit,
        String(r.value),
        ms(r.p99),
        ms(r.baseline),
        ms(r.added),
      ]),
      ['l', 'l', 'r', 'r', 'r', 'r'],
    ),
  ].join('\n');
}

function requestsSection(doc: ResultDoc<RequestsRow>): string {
  const label = (r: RequestsRow) => REQUEST_LABELS[r.system] ?? r.system;
  const order = (r: RequestsRow) => Object.keys(REQUEST_LABELS).indexOf(r.system);
  const seq = doc.rows
    .filter((r) => r.kind === 'sequential')
    .sort((a, b) => a.size - b.size || order(a) - order(b));
  const pipelined = (r: RequestsRow) =>
    doc.rows.find((x) => x.kind === 'pipelined' && x.system === r.system && x.size === r.size);
  const floor = (size: number) =>
    doc.rows.find((x) => x.kind === 'pipelined' && x.system === 'net' && x.size === size);
  const p = doc.parameters as { inFlight: number; warmupS: number; durationS: number };
  const memory = doc.rows.filter(
    (r) => r.kind === 'pending-memory' || r.kind === 'idempotency-memory',
  );
  return [
    '### Requests and replies',
    '',
    `From \`bench/results/requests.json\`, ${when(doc)} (\`bench/requests.ts\`), on ${describeMachine(doc.machine)}; ${p.durationS} s measured after ${p.warmupS} s of warm-up per row.`,
    '',
    table(
      [
        'payload',
        'system',
        'one outstanding: p50 (ms)',
        'p99 (ms)',
        'mean (ms)',
        'requests/s',
        `${int(p.inFlight)} in flight: requests/s`,
        'in flight vs raw net',
      ],
      seq.map((r) => {
        const pipe = pipelined(r);
        const net = floor(r.size);
        return [
          `${r.size} B`,
          label(r),
          n(r.latencyMs?.p50, 3),
          n(r.latencyMs?.p99, 3),
          n(r.latencyMs?.mean, 3),
          int(r.perSecond),
          int(pipe?.perSecond),
          pipe?.perSecond !== undefined && net?.perSecond && r.system !== 'net'
            ? `${Math.round((pipe.perSecond / net.perSecond) * 100)}%`
            : '',
        ];
      }),
      ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
    table(
      [
        'heartline, acknowledged messages',
        'payload',
        'messages/s',
        'p50 per call (ms)',
        'p99 (ms)',
      ],
      doc.rows
        .filter((r) => r.kind === 'acked')
        .map((r) => [
          r.scenario,
          `${r.size} B`,
          int(r.perSecond),
          n(r.latencyMs?.p50, 3),
          n(r.latencyMs?.p99, 3),
        ]),
      ['l', 'r', 'r', 'r', 'r'],
    ),
    '',
    table(
      ['memory', 'system', 'heap bytes per request'],
      memory.map((r) => [
        r.scenario,
        label(r),
        `${int(r.heapBytesPerRequest)}${r.chargedBytesPerRequest !== undefined ? ` (RSS ${int(r.rssBytesPerRequest)}; the window charges ${int(r.chargedBytesPerRequest)})` : ''}`,
      ]),
      ['l', 'l', 'r'],
    ),
    '',
    ...doc.notes.map((note) => `- ${note}`),
  ].join('\n');
}

interface Docs {
  peers: ResultDoc<PeersRow> | null;
  idle: ResultDoc<IdleRow> | null;
  messages: ResultDoc<MessagesRow> | null;
  cluster: ResultDoc<ClusterRow> | null;
  wheel: ResultDoc<WheelRow> | null;
  requests: ResultDoc<RequestsRow> | null;
}

function load(dir: string): Docs {
  return {
    peers: readResult<PeersRow>(dir, 'peers'),
    idle: readResult<IdleRow>(dir, 'idle'),
    messages: readResult<MessagesRow>(dir, 'messages'),
    cluster: readResult<ClusterRow>(dir, 'cluster'),
    wheel: readResult<WheelRow>(dir, 'wheel'),
    requests: readResult<RequestsRow>(dir, 'requests'),
  };
}

function present(d: Docs): ResultDoc<unknown>[] {
  const all: Array<ResultDoc<unknown> | null> = [d.peers, d.idle, d.messages, d.cluster, d.wheel];
  return all.filter((x): x is ResultDoc<unknown> => x !== null);
}

/**
 * Every document, the requests one included. It stays out of {@link present}, which dates
 * the README table: its own README line carries its date, so a requests run does not
 * re-date figures it did not measure.
 */
function everything(d: Docs): ResultDoc<unknown>[] {
  return d.requests ? [...present(d), d.requests] : present(d);
}

/** The generated part of docs/benchmarks.md. */
export function resultsMarkdown(d: Docs): string {
  const docs = everything(d);
  if (docs.length === 0) return '_No results yet: run `npm run bench`._';
  const machines = [...new Set(docs.map((x) => describeMachine(x.machine)))];
  const targets = docs.flatMap((x) => x.targets.map((t) => ({ t, from: x.name })));
  const parts = [
    `Machine: ${machines.join('; ')}.`,
    '',
    '### Targets (issue 8)',
    '',
    table(
      ['target', 'measured', 'verdict', 'from'],
      targets.map(({ t, from }) => [t.goal, t.measured, verdict(t), `${from}.json`]),
    ),
  ];
  if (d.peers) parts.push('', peersSection(d.peers));
  if (d.idle) parts.push('', idleSection(d.idle));
  if (d.messages) parts.push('', messagesSection(d.messages));
  if (d.cluster) parts.push('', clusterSection(d.cluster));
  if (d.wheel) parts.push('', wheelSection(d.wheel));
  if (d.requests) parts.push('', requestsSection(d.requests));
  const quick = docs.filter((x) => x.quick).map((x) => x.name);
  if (quick.length > 0)
    parts.push(
      '',
      `_Quick (reduced) runs: ${quick.join(', ')}; their figures are smoke checks, not results._`,
    );
  return parts.join('\n');
}

/** The README's one line on requests: 64 B latency and pipelined rate against the others. */
function requestsLine(doc: ResultDoc<RequestsRow>): string {
  const find = (kind: RequestsRow['kind'], system: string) =>
    doc.rows.find((r) => r.kind === kind && r.system === system && r.size === 64);
  const others = ['socketio', 'ws', 'net'] as const;
  const short: Record<string, string> = { socketio: 'Socket.IO', ws: 'ws', net: 'raw net' };
  const hlSeq = find('sequential', 'heartline');
  const hlPipe = find('pipelined', 'heartline');
  const pending = doc.rows.find((r) => r.kind === 'pending-memory' && r.system === 'heartline');
  const seqOthers = others
    .map((s) => find('sequential', s))
    .filter((r) => r !== undefined)
    .map((r) => `${short[r.system]} ${n(r.latencyMs?.p50, 3)}`);
  const pipeOthers = others
    .map((s) => find('pipelined', s))
    .filter((r) => r !== undefined)
    .map((r) => `${short[r.system]} ${int(r.perSecond)}`);
  return (
    `- Requests (64 B, one connection, \`bench/requests.ts\`, ${when(doc).slice(0, 10)}): heartline \`request()\` p50 ${n(hlSeq?.latencyMs?.p50, 3)} ms one at a time` +
    (seqOthers.length > 0 ? ` (${seqOthers.join(', ')})` : '') +
    `, ${int(hlPipe?.perSecond)}/s with ${int(hlPipe?.inFlight)} in flight` +
    (pipeOthers.length > 0 ? ` (${pipeOthers.join(', ')})` : '') +
    (pending
      ? `; ${int(pending.heapBytesPerRequest)} heap bytes per request awaiting its reply`
      : '') +
    '.'
  );
}

/** The generated part of the README's Benchmarks section. */
export function readmeMarkdown(d: Docs): string {
  const lines: string[] = [];
  if (d.peers) {
    const p = d.peers.parameters as { connections: number; interval: number };
    const summary = summarize(d.peers.rows);
    const floor = summary.find((r) => r.system === 'net');
    lines.push(
      `${int(p.connections)} idle connections on one server process, one heartbeat per connection every ${p.interval / 1000} s (the server alone in its process, clients in others):`,
      '',
      table(
        ['system', 'RSS per connection', 'CPU-s per 100k heartbeats', 'event-loop delay p99'],
        summary.map((r) => [
          `${LABELS[r.system] ?? r.system}${r.lost > 0 ? ` (${int(r.lost)} connections lost)` : ''}`,
          `${n(r.rssPerConnKiB, 1)} KiB${floor && r.system !== 'net' ? ` (${n(r.rssPerConnKiB / floor.rssPerConnKiB, 1)}x)` : ''}`,
          r.system === 'net' ? '-' : n(r.per100kS, 2),
          `${n(r.eldP99, 1)} ms`,
        ]),
        ['l', 'r', 'r', 'r'],
      ),
    );
  }
  const extra: string[] = [];
  for (const r of d.idle?.rows ?? []) {
    if (r.status !== 'ok') {
      extra.push(
        `- ${int(r.connections)} connections on ${r.workers} workers: not run (${r.note}).`,
      );
      continue;
    }
    extra.push(
      `- heartline, ${int(r.open)} connections${r.workers > 1 ? ` on ${r.serverProcesses} processes` : ' on one process'} at ${r.interval / 1000} s: ` +
        `${n(r.memory?.rssPerConnKiB, 1)} KiB per connection, ${n(r.cpu?.per100kS, 2)} CPU-s per 100k heartbeats, loop delay p99 ${n(r.eld?.p99, 1)} ms` +
        (r.detection
          ? `; frozen peers declared dead ${n(r.detection.worstMs, 0)} ms after last heard at worst (timeout ${r.detection.timeoutMs} ms)`
          : '') +
        '.',
    );
  }
  if (d.messages) {
    const parts: string[] = [];
    for (const hl of d.messages.rows.filter((r) => r.system === 'heartline')) {
      const net = d.messages.rows.find(
        (r) => r.system === 'net' && r.size === hl.size && r.connections === hl.connections,
      );
      const ws = d.messages.rows.find(
        (r) => r.system === 'ws' && r.size === hl.size && r.connections === hl.connections,
      );
      parts.push(
        `${hl.size} B x ${int(hl.connections)}: ${int(hl.perSecond)}/s` +
          (net ? ` (${Math.round((hl.perSecond / net.perSecond) * 100)}% of raw net` : '') +
          (ws ? `, ${Math.round((hl.perSecond / ws.perSecond) * 100)}% of ws)` : net ? ')' : ''),
      );
    }
    extra.push(`- Echoed messages per second, heartline: ${parts.join('; ')}.`);
  }
  if (d.requests) extra.push(requestsLine(d.requests));
  if (extra.length > 0) lines.push('', ...extra);
  const docs = present(d);
  const targets = docs.flatMap((x) => x.targets);
  if (targets.length > 0) {
    const met = targets.filter((t) => t.met === true).map((t) => t.goal);
    const missed = targets.filter((t) => t.met === false).map((t) => t.goal);
    const notRun = targets.filter((t) => t.met === null).map((t) => t.goal);
    const list = (label: string, goals: string[]) =>
      goals.length > 0 ? ` ${label}: ${goals.join('; ')}.` : '';
    lines.push(
      '',
      `Targets of issue 8:${list('Met', met)}${list('Missed', missed)}${list('Not run', notRun)} Method, every figure and what limits them: [docs/benchmarks.md](docs/benchmarks.md).`,
    );
  }
  if (docs.length > 0) {
    const latest = docs.reduce((a, b) => (a.startedAt > b.startedAt ? a : b));
    lines.push('', `Measured ${when(latest)} on ${describeMachine(latest.machine)}.`);
  } else lines.push('_No results yet: run `npm run bench`._');
  return lines.join('\n');
}

function replaceBetween(
  text: string,
  [start, end]: readonly [string, string],
  body: string,
  file: string,
): string {
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${file} has no ${start} ... ${end} markers`);
  return `${text.slice(0, a + start.length)}\n${body}\n${text.slice(b)}`;
}

/** Rewrites the generated parts of docs/benchmarks.md and README.md; returns the files written. */
export function writeReport(dir = RESULTS_DIR): string[] {
  const d = load(dir);
  const written: string[] = [];
  // Each file is read right before it is written: other people edit the README too.
  if (existsSync(DOC)) {
    const text = readFileSync(DOC, 'utf8');
    writeFileSync(DOC, replaceBetween(text, DOC_MARKERS, resultsMarkdown(d), 'docs/benchmarks.md'));
    written.push(DOC);
  }
  const readme = readFileSync(README, 'utf8');
  if (readme.includes(README_MARKERS[0])) {
    writeFileSync(README, replaceBetween(readme, README_MARKERS, readmeMarkdown(d), 'README.md'));
    written.push(README);
  }
  return written;
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { results: { type: 'string' } }, strict: true });
  const dir = values.results ? resolve(values.results) : RESULTS_DIR;
  for (const f of writeReport(dir)) process.stdout.write(`wrote ${f}\n`);
}
