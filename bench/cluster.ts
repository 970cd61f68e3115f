/**
 * What running several nodes on Redis costs: memory per session in Redis, the latency a
 * message's round trip gains when every message and reply is committed to Redis before it
 * is acknowledged or sent, the throughput of one session, and the latency of a resume on
 * the same node and on another node (a takeover from Redis).
 *
 *   node --import tsx bench/cluster.ts [--quick] [--samples 2000] [--resumes 100]
 *
 * Starts its own redis-server (Debian's /usr/bin/redis-server) on a free loopback port
 * with no persistence, and everything else in this process over loopback TCP. The echo is
 * the reply path: `info.reply(data)`, committed with the message.
 */

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, createServer as netServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { type ClientConnection, connect } from '../src/client/client.js';
import { joinCluster } from '../src/cluster/node.js';
import { RedisStore } from '../src/cluster/redis-store.js';
import { createServer, type Server, type ServerOptions } from '../src/server/server.js';
import { MemoryStore } from '../src/session/memory-store.js';
import type { ClusterStore } from '../src/session/store.js';
import type { Progress, Step } from './lib/progress.js';
import { percentile, round, sleep } from './lib/stats.js';
import {
  type CommonOptions,
  isMain,
  main,
  type Outcome,
  positiveInt,
  type Workload,
} from './lib/workload.js';

/** Parameters of the workload. */
export interface ClusterBenchParams extends Record<string, unknown> {
  /** Echo round trips per mode, one message in flight. */
  samples: number;
  /** Messages per mode in the throughput rows. */
  throughputMessages: number;
  /** Messages in flight in the throughput rows. */
  window: number;
  /** Resumes per resume row. */
  resumes: number;
  /** Sessions created for the used_memory rows. */
  sessions: number;
  payloadBytes: number;
}

/** One measurement. */
export interface ClusterRow extends Record<string, unknown> {
  id: string;
  scenario: string;
  unit: string;
  value: number;
  p50?: number;
  p99?: number;
  /** The same figure without a store, where it compares. */
  baseline?: number;
  /** value - baseline. */
  added?: number;
}

// ---- redis-server -----------------------------------------------------------------------

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = netServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'heartline-bench-redis-'));
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = spawn('redis-server', [...args, '--dir', dir], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0 });
  probe.on('error', () => {});
  for (let i = 0; i < 200; i++) {
    try {
      await probe.connect();
      break;
    } catch {
      await sleep(25);
    }
  }
  await probe.ping();
  probe.disconnect();
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- helpers ------------------------------------------------------------------------------

async function echoServer(options: ServerOptions): Promise<{ server: Server; port: number }> {
  const server = createServer(options);
  server.on('connection', (conn) => conn.on('message', (data, info) => info.reply(data)));
  const { port } = await server.listen(0, '127.0.0.1');
  return { server, port };
}

async function opened(client: ClientConnection): Promise<void> {
  if (client.state === 'healthy') return;
  await new Promise<void>((r) => client.once('open', () => r()));
}

/** Round-trip times (ms) of `n` echoes, one in flight. */
async function pingPong(client: ClientConnection, n: number, payload: Buffer): Promise<number[]> {
  const rtts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      client.once('message', () => resolve());
      client.send(payload);
    });
    rtts.push(performance.now() - t0);
  }
  return rtts;
}

/** Echoes per second with `window` messages in flight. */
async function throughput(
  client: ClientConnection,
  n: number,
  window: number,
  payload: Buffer,
): Promise<number> {
  let sent = 0;
  let got = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const onMessage = () => {
      got++;
      if (got === n) {
        client.off('message', onMessage);
        resolve();
      } else if (sent < n) {
        sent++;
        client.send(payload);
      }
    };
    client.on('message', onMessage);
    for (; sent < Math.min(window, n); ) {
      sent++;
      client.send(payload);
    }
  });
  return n / ((performance.now() - t0) / 1000);
}

const FAST = { interval: 1000, timeout: 3000 };

type Mode = 'memory' | 'memory-store' | 'redis';

function modeLabel(mode: Mode): string {
  return mode === 'memory'
    ? 'no store (one node)'
    : mode === 'memory-store'
      ? 'shared MemoryStore'
      : 'RedisStore (loopback Redis)';
}

async function messageRows(
  p: ClusterBenchParams,
  redisUrl: string,
  progress: Progress,
): Promise<ClusterRow[]> {
  const rows: ClusterRow[] = [];
  const payload = randomBytes(p.payloadBytes);
  const modes: Mode[] = ['memory', 'memory-store', 'redis'];
  const results = new Map<Mode, { rtts: number[]; rate: number }>();
  for (const [i, mode] of modes.entries()) {
    let store: ClusterStore | undefined;
    if (mode === 'memory-store') store = new MemoryStore();
    if (mode === 'redis') store = new RedisStore(redisUrl);
    const { server, port } = await echoServer({ ...FAST, ...(store ? { store } : {}) });
    const client = connect({ port, ...FAST });
    await opened(client);
    await pingPong(client, Math.min(200, p.samples), payload); // warm-up
    const rtts = await pingPong(client, p.samples, payload);
    progress.update('cluster:messages', (i + 0.5) / modes.length, modeLabel(mode));
    await throughput(client, Math.min(2000, p.throughputMessages), p.window, payload); // warm-up
    const rate = await throughput(client, p.throughputMessages, p.window, payload);
    results.set(mode, { rtts, rate });
    client.close();
    await server.close();
    await store?.close();
    progress.update('cluster:messages', (i + 1) / modes.length);
  }
  const base = results.get('memory')!;
  for (const mode of modes) {
    const { rtts } = results.get(mode)!;
    const p50 = percentile(rtts, 50);
    rows.push({
      id: `echo-rtt-${mode}`,
      scenario: `echo round trip, one message in flight, ${modeLabel(mode)}`,
      unit: 'ms',
      value: round(p50, 3),
      p50: round(p50, 3),
      p99: round(percentile(rtts, 99), 3),
      baseline: round(percentile(base.rtts, 50), 3),
      added: round(p50 - percentile(base.rtts, 50), 3),
    });
  }
  for (const mode of modes) {
    const { rate } = results.get(mode)!;
    rows.push({
      id: `echo-rate-${mode}`,
      scenario: `echoes per second, ${p.window} in flight, one session, ${modeLabel(mode)}`,
      unit: 'messages/s',
      value: Math.round(rate),
      baseline: Math.round(base.rate),
    });
  }
  return rows;
}

/** Time (ms) from the client's dial to its 'resumed' event, `n` times. */
async function resumeTimes(
  n: number,
  nodes: Array<{ port: number }>,
  moveEachTime: boolean,
): Promise<number[]> {
  let target = 0;
  let dialedAt = 0;
  const sockets: Socket[] = [];
  const client = connect({
    port: 1,
    ...FAST,
    backoff: { initialDelay: 1, maxDelay: 2, jitter: 'equal' },
    createSocket: () => {
      dialedAt = performance.now();
      const s = netConnect({ host: '127.0.0.1', port: nodes[target]!.port, noDelay: true });
      sockets.push(s);
      return s;
    },
  });
  await opened(client);
  client.send('x');
  await new Promise<void>((r) => client.once('message', () => r()));
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    if (moveEachTime) target = (target + 1) % nodes.length;
    const resumed = new Promise<void>((r) => client.once('resumed', () => r()));
    sockets.at(-1)?.resetAndDestroy();
    await resumed;
    times.push(performance.now() - dialedAt);
    // One message each time, so the session has something to carry.
    client.send('y');
    await new Promise<void>((r) => client.once('message', () => r()));
  }
  client.close();
  return times;
}

async function resumeRows(
  p: ClusterBenchParams,
  redisUrl: string,
  progress: Progress,
): Promise<ClusterRow[]> {
  const rows: ClusterRow[] = [];
  const plain = await echoServer({ ...FAST });
  const baseTimes = await resumeTimes(p.resumes, [plain], false);
  await plain.server.close();
  progress.update('cluster:resume', 1 / 3);
  const stores = [new RedisStore(redisUrl), new RedisStore(redisUrl)];
  const a = await echoServer({
    ...FAST,
    nodeId: 'bench-a',
    cluster: joinCluster({ store: stores[0]! }),
  });
  const b = await echoServer({
    ...FAST,
    nodeId: 'bench-b',
    cluster: joinCluster({ store: stores[1]! }),
  });
  const sameTimes = await resumeTimes(p.resumes, [a], false);
  progress.update('cluster:resume', 2 / 3);
  const moveTimes = await resumeTimes(p.resumes, [a, b], true);
  await a.server.close();
  await b.server.close();
  for (const s of stores) await s.close();
  const base = percentile(baseTimes, 50);
  const row = (id: string, scenario: string, times: number[]): ClusterRow => ({
    id,
    scenario,
    unit: 'ms',
    value: round(percentile(times, 50), 3),
    p50: round(percentile(times, 50), 3),
    p99: round(percentile(times, 99), 3),
    baseline: round(base, 3),
    added: round(percentile(times, 50) - base, 3),
  });
  rows.push(row('resume-memory', 'resume on the same node, no store (dial to resumed)', baseTimes));
  rows.push(
    row(
      'resume-redis-same-node',
      'resume on the same node, RedisStore (ownership check)',
      sameTimes,
    ),
  );
  rows.push(
    row('resume-redis-takeover', 'resume on another node: load + claim from Redis', moveTimes),
  );
  return rows;
}

async function memoryRows(p: ClusterBenchParams, redisUrl: string): Promise<ClusterRow[]> {
  const rows: ClusterRow[] = [];
  const redis = new Redis(redisUrl);
  const store = new RedisStore({ url: redisUrl, keyPrefix: 'mem:' });
  const usage = async (keys: string[]): Promise<number> => {
    let total = 0;
    for (const k of keys)
      total += ((await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')) as number) ?? 0;
    return total;
  };
  const keysOf = (sid: string) => [`mem:{${sid}}:s`, `mem:{${sid}}:log`, `mem:{${sid}}:in`];
  const snap = (clientId = '') => ({
    sessionId: randomBytes(16).toString('hex'),
    token: randomBytes(16),
    identity: null,
    clientId,
    traceId: '',
    ttl: 120_000,
    maxBytes: 16 * 1024 * 1024,
  });
  // A new session as its node writes it on the handshake: its first commit, with a snapshot.
  const owner = { node: 'node-1', gen: 1 };
  const put = (s: ReturnType<typeof snap>) =>
    store.commit(s.sessionId, { received: 0, replies: [], owner, snapshot: s });
  // One idle session.
  const idle = snap();
  await put(idle);
  rows.push({
    id: 'redis-bytes-session-idle',
    scenario: 'one idle session (MEMORY USAGE of its keys)',
    unit: 'bytes',
    value: await usage(keysOf(idle.sessionId)),
  });
  // A session with 10 unacknowledged messages of the payload size.
  const busy = snap();
  await put(busy);
  const replies = Array.from({ length: 10 }, () => randomBytes(p.payloadBytes));
  await store.commit(busy.sessionId, { received: 10, replies, owner });
  rows.push({
    id: 'redis-bytes-session-10-unacked',
    scenario: `one session holding 10 unacknowledged ${p.payloadBytes}-byte messages (MEMORY USAGE)`,
    unit: 'bytes',
    value: await usage(keysOf(busy.sessionId)),
  });
  // used_memory per session over many, with a client id index and presence.
  const used = async () => {
    const info = (await redis.info('memory')) as string;
    return Number(/used_memory:(\d+)/.exec(info)?.[1]);
  };
  await redis.call('MEMORY', 'PURGE');
  const before = await used();
  for (let i = 0; i < p.sessions; i++) {
    const s = snap(`client-${i}`);
    await put(s);
    await store.presenceOnline({ node: 'node-1', sessionId: s.sessionId, clientId: s.clientId });
  }
  await store.presenceBeat('node-1', 60_000);
  const after = await used();
  rows.push({
    id: 'redis-bytes-per-session-used-memory',
    scenario: `used_memory per idle session over ${p.sessions}, with client id index and presence`,
    unit: 'bytes',
    value: Math.round((after - before) / p.sessions),
  });
  await store.close();
  redis.disconnect();
  return rows;
}

const STEPS = ['memory', 'messages', 'resume'] as const;

export const clusterBench: Workload<ClusterBenchParams, ClusterRow> = {
  name: 'cluster',
  title: 'Sessions on Redis: memory per session, added latency per message and per resume',
  flags: {
    samples: 'echo round trips per mode (default 2000; quick 300)',
    resumes: 'resumes per row (default 100; quick 20)',
  },
  parameters(o: CommonOptions): ClusterBenchParams {
    return {
      samples: positiveInt(o.values.samples, o.quick ? 300 : 2000, 'samples'),
      throughputMessages: o.quick ? 5000 : 50_000,
      window: 256,
      resumes: positiveInt(o.values.resumes, o.quick ? 20 : 100, 'resumes'),
      sessions: o.quick ? 500 : 5000,
      payloadBytes: 100,
    };
  },
  steps(p): Step[] {
    const w: Record<(typeof STEPS)[number], number> = {
      memory: p.sessions / 2000,
      messages: (p.samples / 1000) * 3 + p.throughputMessages / 10_000,
      resume: p.resumes / 30,
    };
    return STEPS.map((id) => ({ id: `cluster:${id}`, label: `cluster ${id}`, weight: w[id] }));
  },
  async run(p, progress: Progress): Promise<Outcome<ClusterRow>> {
    const redis = await startRedis();
    try {
      progress.start('cluster:memory');
      const rows = await memoryRows(p, redis.url);
      progress.finish('cluster:memory');
      progress.start('cluster:messages');
      rows.push(...(await messageRows(p, redis.url, progress)));
      progress.finish('cluster:messages');
      progress.start('cluster:resume');
      rows.push(...(await resumeRows(p, redis.url, progress)));
      progress.finish('cluster:resume');
      return {
        rows,
        targets: [],
        notes: [
          `redis-server ${redisVersion()} on loopback, no persistence; heartline in one process; payloads of ${p.payloadBytes} bytes.`,
          'Echo rows: the server answers with info.reply(); with a store the reply is committed with the message (received seq, seen mark, reply in one Lua script) before the client gets it or its ACK.',
          'Resume rows: from the client dialing to its resumed event (TCP connect, HELLO, the store round trips, WELCOME); the link is cut with RST each time.',
          'MEMORY USAGE counts one key each; used_memory also counts Redis dictionaries, the client-id index and presence.',
        ],
      };
    } finally {
      await redis.stop();
    }
  },
  summary(rows) {
    return rows
      .map((r) => {
        const p99 = r.p99 !== undefined ? ` (p99 ${r.p99})` : '';
        const added = r.added !== undefined ? `, +${r.added} over ${r.baseline}` : '';
        return `  ${r.scenario}: ${r.value} ${r.unit}${p99}${added}`;
      })
      .join('\n');
  },
};

function redisVersion(): string {
  try {
    return execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).split(' ')[2] ?? '';
  } catch {
    return '';
  }
}

if (isMain(import.meta.url)) await main(clusterBench);
