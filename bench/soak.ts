/**
 * The soak (`npm run soak -- --minutes 10`; not part of CI): thousands of clients, spread
 * over several processes, each behind a chaos proxy that random faults hit (RST, FIN,
 * freezes both ways or one way, latency), send numbered messages of random sizes to an
 * echo server for the given time. It then asserts that
 * - every message came back exactly once and in order (nothing lost, duplicated or
 *   reordered, no session lost, no client closed by anything but itself, none closed for
 *   pinging too fast);
 * - the server's heap, after full garbage collections, is back within 10% of its
 *   baseline once every client has gone (the baseline is taken the same way after a
 *   warm-up round at full scale with faults, so that compiled code and tables sized to
 *   the peak count in both, and only what the long run accumulates counts against it);
 * and prints a summary (and writes bench/results/soak.json). It stops by itself: a hard
 * deadline ends a run that hangs, with exit code 1.
 *
 *   node --import tsx bench/soak.ts [--minutes 10] [--clients 2000] [--procs 4]
 *     [--proxies 10] [--rate 0.5] [--interval 1000] [--timeout 3000] [--warmup 20]
 *     [--seed N] [--out bench/results] [--no-write]
 *
 * The server runs in a child with --expose-gc and reports its heap over IPC; each client
 * process holds its clients and their proxies (3 descriptors per client), well under the
 * 20,000 open files a process may have here.
 */

import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Child } from './lib/child.js';
import { machineInfo } from './lib/machine.js';
import { RESULTS_DIR, SCHEMA, writeResult } from './lib/results.js';

const HELP = `Usage: node --import tsx bench/soak.ts [options]   (npm run soak -- [options])

  --minutes M     how long the faults and messages run (default 10; fractions allowed)
  --clients N     clients in total (default 2000)
  --procs P       client processes (default 4)
  --proxies K     chaos proxies per client process (default 10)
  --rate R        messages per client per second (default 0.5)
  --interval MS   heartbeat interval the server grants (default 1000)
  --timeout MS    heartbeat timeout the server grants (default 3000)
  --warmup S      warm-up seconds before the heap baseline (default 20)
  --seed N        seed of the faults and messages (default random, printed)
  --out DIR       where soak.json goes (default bench/results)
  --no-write      print the summary only`;

interface ClientTotals {
  clients: number;
  healthy: number;
  sent: number;
  echoed: number;
  pending: number;
  unacked: number;
  duplicates: number;
  gaps: number;
  unexpectedCloses: number;
  unexpectedReasons: string[];
  reconnects: number;
  resumes: number;
  sessionsLost: number;
  policyViolations: number;
  faults: Record<string, number>;
  settled?: boolean;
}

interface ServerStats {
  sessions: number;
  peakConnections: number;
  connections: number;
  rejected: Record<string, number>;
  disconnects: Record<string, number>;
  closes: Record<string, number>;
  sessionsLost: number;
  echoErrors: number;
  load: string[];
  heapUsed: number;
  rss: number;
}

function options() {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '10' },
      clients: { type: 'string', default: '2000' },
      procs: { type: 'string', default: '4' },
      proxies: { type: 'string', default: '10' },
      rate: { type: 'string', default: '0.5' },
      interval: { type: 'string', default: '1000' },
      timeout: { type: 'string', default: '3000' },
      warmup: { type: 'string', default: '20' },
      seed: { type: 'string' },
      out: { type: 'string', default: RESULTS_DIR },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const num = (name: keyof typeof values, min: number): number => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}`);
    return n;
  };
  return {
    help: values.help,
    minutes: num('minutes', 0.05),
    clients: Math.round(num('clients', 1)),
    procs: Math.round(num('procs', 1)),
    proxies: Math.round(num('proxies', 1)),
    rate: num('rate', 0.01),
    interval: Math.round(num('interval', 100)),
    timeout: Math.round(num('timeout', 200)),
    warmup: num('warmup', 0),
    seed: values.seed !== undefined ? Math.round(num('seed', 0)) : randomInt(1, 2 ** 31),
    out: values.out,
    write: !values['no-write'],
  };
}

/** Every client process started, stopped whatever happens. */
const started: Child[] = [];

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MB`;
const log = (line: string) => process.stdout.write(`${line}\n`);

function sum(list: ClientTotals[]): ClientTotals {
  const out: ClientTotals = {
    clients: 0,
    healthy: 0,
    sent: 0,
    echoed: 0,
    pending: 0,
    unacked: 0,
    duplicates: 0,
    gaps: 0,
    unexpectedCloses: 0,
    unexpectedReasons: [],
    reconnects: 0,
    resumes: 0,
    sessionsLost: 0,
    policyViolations: 0,
    faults: {},
    settled: true,
  };
  for (const t of list) {
    for (const k of [
      'clients',
      'healthy',
      'sent',
      'echoed',
      'pending',
      'unacked',
      'duplicates',
      'gaps',
      'unexpectedCloses',
      'reconnects',
      'resumes',
      'sessionsLost',
      'policyViolations',
    ] as const) {
      out[k] += t[k];
    }
    out.unexpectedReasons.push(...t.unexpectedReasons);
    for (const [f, n] of Object.entries(t.faults)) out.faults[f] = (out.faults[f] ?? 0) + n;
    out.settled = out.settled && t.settled !== false;
  }
  return out;
}

/** Starts `procs` client processes sharing `clients` clients. */
async function startClients(
  port: number,
  clients: number,
  procs: number,
  o: ReturnType<typeof options>,
  label: string,
): Promise<Child[]> {
  const group = await Promise.all(
    Array.from({ length: procs }, (_, i) => {
      const share = Math.floor(clients / procs) + (i < clients % procs ? 1 : 0);
      return Child.start('bench/soak/clients.ts', {
        name: `${label}-${i + 1}`,
        args: [
          '--port',
          String(port),
          '--clients',
          String(share),
          '--proxies',
          String(o.proxies),
          '--rate',
          String(o.rate),
          '--seed',
          String(o.seed + i + (label === 'warmup' ? 1000 : 0)),
        ],
        readyTimeout: 120_000,
      });
    }),
  );
  started.push(...group);
  return group;
}

/** Runs faults and messages for `ms` on `group`, printing progress; returns the drained totals. */
async function round(
  group: Child[],
  server: Child,
  ms: number,
  label: string,
): Promise<ClientTotals> {
  await Promise.all(group.map((c) => c.request('run')));
  const started = Date.now();
  const every = Math.min(15_000, Math.max(2000, ms / 8));
  while (Date.now() - started < ms) {
    await new Promise((r) => setTimeout(r, Math.min(every, ms - (Date.now() - started))));
    const t = sum(await Promise.all(group.map((c) => c.request<ClientTotals>('progress'))));
    const s = await server.request<ServerStats>('stats');
    log(
      `  ${label} ${Math.round((Date.now() - started) / 1000)}s: ${t.healthy}/${t.clients} healthy, ` +
        `${t.echoed}/${t.sent} echoed, ${t.reconnects} reconnects, ` +
        `${Object.values(t.faults).reduce((a, b) => a + b, 0)} faults, server ${s.connections} ` +
        `sessions, heap ${mb(s.heapUsed)}`,
    );
  }
  log(`  ${label}: draining (faults off, waiting for every echo)`);
  return sum(
    await Promise.all(group.map((c) => c.request<ClientTotals>('drain', 90_000, 120_000))),
  );
}

interface CloseReport {
  proxiesClosed: boolean;
  pairsBefore: number;
  pairsLeft: number;
}

async function closeGroup(group: Child[], server: Child): Promise<number> {
  const reports = await Promise.all(
    group.map((c) => c.request<CloseReport>('close', null, 60_000)),
  );
  for (const [i, r] of reports.entries()) {
    if (!r.proxiesClosed) {
      log(
        `  note: ${group[i]!.name}: its chaos proxies kept ${r.pairsLeft} of ${r.pairsBefore} pairs after close()`,
      );
    }
  }
  await Promise.all(group.map((c) => c.stop()));
  // Every client closed normally: the server ends each session at once.
  const until = Date.now() + 60_000;
  let left = (await server.request<ServerStats>('stats')).connections;
  while (left > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 200));
    left = (await server.request<ServerStats>('stats')).connections;
  }
  return left;
}

async function main(): Promise<number> {
  let o: ReturnType<typeof options>;
  try {
    o = options();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  if (o.help) {
    log(HELP);
    return 0;
  }
  const runMs = o.minutes * 60_000;
  const hardDeadline = o.warmup * 1000 + runMs + 6 * 60_000;
  const watchdog = setTimeout(() => {
    process.stderr.write(
      `soak: no result within ${Math.round(hardDeadline / 1000)} s: giving up\n`,
    );
    process.exit(1);
  }, hardDeadline);
  watchdog.unref();

  const startedAt = new Date();
  log(
    `heartline soak: ${o.clients} clients in ${o.procs} processes behind ${o.procs * o.proxies} chaos ` +
      `proxies, ${o.minutes} min, ${o.rate} msg/s per client, heartbeat ${o.interval}/${o.timeout} ms, seed ${o.seed}`,
  );
  const server = await Child.start<{ port: number }>('bench/soak/server.ts', {
    name: 'server',
    args: [
      '--interval',
      String(o.interval),
      '--timeout',
      String(o.timeout),
      '--session-ttl',
      '300000',
    ],
    nodeFlags: ['--expose-gc'],
  });
  const port = server.ready.port;
  try {
    const fresh = await server.request<number>('heap');
    let warm: ClientTotals | null = null;
    if (o.warmup > 0) {
      // At full scale: what a server builds once for its peak (compiled code, tables
      // sized to the peak) is in the baseline, and the end must not add to it.
      log(`warm-up: ${o.clients} clients for ${o.warmup} s`);
      const group = await startClients(port, o.clients, o.procs, o, 'warmup');
      warm = await round(group, server, o.warmup * 1000, 'warm-up');
      await closeGroup(group, server);
    }
    const baseline = await server.request<number>('heap');
    log(`heap baseline ${mb(baseline)} (fresh server ${mb(fresh)})`);

    log(`opening ${o.clients} clients`);
    const openedAt = Date.now();
    const group = await startClients(port, o.clients, o.procs, o, 'clients');
    log(`  all open in ${((Date.now() - openedAt) / 1000).toFixed(1)} s`);
    const peak = await server.request<ServerStats>('stats');
    const totals = await round(group, server, runMs, 'soak');
    const beforeClose = await server.request<ServerStats>('stats');
    const left = await closeGroup(group, server);
    const end = await server.request<number>('heap');
    const stats = await server.request<ServerStats>('stats');
    await server.request('close');

    const growth = (end - baseline) / baseline;
    const checks: Array<[string, boolean, string]> = [
      ['all clients connected', peak.connections === o.clients, `${peak.connections}/${o.clients}`],
      [
        'every echo back',
        totals.settled === true && totals.pending === 0,
        `${totals.pending} missing`,
      ],
      ['nothing lost (no gap)', totals.gaps === 0, String(totals.gaps)],
      ['nothing duplicated', totals.duplicates === 0, String(totals.duplicates)],
      [
        'no session lost',
        totals.sessionsLost === 0 && stats.sessionsLost === 0,
        String(totals.sessionsLost),
      ],
      [
        'no unexpected close',
        totals.unexpectedCloses === 0,
        totals.unexpectedReasons.join('; ') || '0',
      ],
      [
        'no policy violation',
        totals.policyViolations === 0 && !stats.closes['policy-violation'],
        String(totals.policyViolations),
      ],
      ['every session ended', left === 0, `${left} left`],
      ['heap within 10% of baseline', growth <= 0.1, `${(growth * 100).toFixed(1)}%`],
    ];
    const pass = checks.every(([, ok]) => ok);
    const faults = Object.values(totals.faults).reduce((a, b) => a + b, 0);
    log('');
    log(`== soak summary (${o.minutes} min, seed ${o.seed})`);
    log(
      `clients     ${o.clients} in ${o.procs} processes; server peak ${stats.peakConnections} sessions`,
    );
    log(
      `messages    ${totals.sent} sent, ${totals.echoed} echoed in order; ${totals.duplicates} duplicated, ${totals.gaps} gaps`,
    );
    log(`faults      ${faults}: ${JSON.stringify(totals.faults)}`);
    log(
      `links       ${totals.reconnects} reconnects, ${totals.resumes} resumes, ${totals.sessionsLost} sessions lost`,
    );
    log(
      `server      disconnects ${JSON.stringify(beforeClose.disconnects)}; rejected ${JSON.stringify(stats.rejected)}`,
    );
    if (stats.load.length > 0)
      log(
        `load        ${stats.load.slice(0, 6).join('; ')}${stats.load.length > 6 ? '; ...' : ''}`,
      );
    log(
      `heap        baseline ${mb(baseline)}, end ${mb(end)} (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)}%), live peak-time ${mb(beforeClose.heapUsed)}, rss ${mb(beforeClose.rss)}`,
    );
    for (const [name, ok, detail] of checks) log(`${ok ? 'ok  ' : 'FAIL'}  ${name} (${detail})`);
    log(pass ? 'PASS' : 'FAIL');

    if (o.write) {
      const path = writeResult(
        {
          schema: SCHEMA,
          name: 'soak',
          title: 'Soak: thousands of clients through random faults',
          quick: false,
          startedAt: startedAt.toISOString(),
          finishedAt: new Date().toISOString(),
          durationS: Math.round((Date.now() - startedAt.getTime()) / 1000),
          machine: machineInfo(),
          parameters: { ...o, write: undefined, help: undefined },
          rows: [
            {
              ...totals,
              warmup: warm,
              server: stats,
              heap: { fresh, baseline, end, growth },
            },
          ],
          targets: checks.map(([name, ok, detail]) => ({
            id: name.replace(/[^a-z0-9]+/gi, '-').toLowerCase(),
            goal: name,
            measured: detail,
            met: ok,
          })),
          notes: [],
        },
        o.out,
      );
      log(`written to ${path}`);
    }
    return pass ? 0 : 1;
  } finally {
    await Promise.all([server, ...started].map((c) => c.stop()));
    clearTimeout(watchdog);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`soak failed: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
