/**
 * Child process of the soak (bench/soak.ts): a group of heartline clients, each behind
 * one of this process's chaos proxies, sending numbered messages of random sizes to an
 * echo server and checking that every echo comes back exactly once and in order, while
 * random faults (RST, FIN, freezes both ways or one way, latency) hit random proxies.
 *
 *   --port P --clients N --proxies K --rate MSG_PER_S --seed S
 *
 * Commands: run (start messages and faults), progress, drain (stop both, wait until every
 * message is echoed, report), close (normal close of every client, proxies down).
 */

import { type ChaosProxy, createChaosProxy } from '../../src/chaos/proxy.js';
import { type ClientConnection, connect } from '../../src/client/client.js';
import { childArgs, emit, numArg, serveParent } from '../lib/child.js';

const args = childArgs();
const PORT = numArg(args, 'port');
const CLIENTS = numArg(args, 'clients');
const PROXIES = numArg(args, 'proxies');
const RATE = numArg(args, 'rate');
let seed = numArg(args, 'seed') >>> 0;

/** mulberry32: a seeded PRNG, so a run's faults and messages can be replayed. */
function random(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const between = (lo: number, hi: number) => lo + random() * (hi - lo);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

/** One client and what it checks. */
interface Peer {
  conn: ClientConnection;
  sent: number;
  /** Highest echo received in order. */
  echoed: number;
  duplicates: number;
  gaps: number;
  nextAt: number;
  closedUnexpectedly: string | null;
}

const FAULTS = ['reset', 'fin', 'freeze', 'freeze-up', 'freeze-down', 'latency'] as const;
type Fault = (typeof FAULTS)[number];
const WEIGHTS: Record<Fault, number> = {
  reset: 0.25,
  fin: 0.2,
  freeze: 0.2,
  'freeze-up': 0.1,
  'freeze-down': 0.1,
  latency: 0.15,
};

const counts = {
  reconnects: 0,
  resumes: 0,
  sessionsLost: 0,
  policyViolations: 0,
  faults: Object.fromEntries(FAULTS.map((f) => [f, 0])) as Record<Fault, number>,
};

const padding = Buffer.alloc(1024, 0x61);
const proxies: ChaosProxy[] = [];
/** A timed fault in progress per proxy (freeze or latency), healed by its timer. */
const healing = new Map<number, NodeJS.Timeout>();
const peers: Peer[] = [];
let closing = false;
let sendTimer: NodeJS.Timeout | null = null;
let faultTimer: NodeJS.Timeout | null = null;

for (let i = 0; i < PROXIES; i++) {
  proxies.push(await createChaosProxy({ target: { host: '127.0.0.1', port: PORT } }));
}

function open(index: number): Peer {
  const proxy = proxies[index % proxies.length]!;
  const conn = connect({
    port: proxy.port,
    backoff: { initialDelay: 100, maxDelay: 2000 },
    // A run never gives up: every message must come back.
    maxAttempts: Number.POSITIVE_INFINITY,
  });
  const peer: Peer = {
    conn,
    sent: 0,
    echoed: 0,
    duplicates: 0,
    gaps: 0,
    nextAt: 0,
    closedUnexpectedly: null,
  };
  conn.on('message', (data) => {
    const seq = Number.parseInt(data.toString('latin1', 0, data.indexOf(0x3a)), 10);
    if (seq === peer.echoed + 1) peer.echoed = seq;
    else if (seq <= peer.echoed) peer.duplicates++;
    else {
      peer.gaps++;
      peer.echoed = seq;
    }
  });
  conn.on('reconnecting', () => counts.reconnects++);
  conn.on('resumed', () => counts.resumes++);
  conn.on('session-lost', () => counts.sessionsLost++);
  conn.on('close', (info) => {
    if (info.reason === 'policy-violation') counts.policyViolations++;
    if (!closing) peer.closedUnexpectedly = `${info.reason}: ${info.message}`;
  });
  return peer;
}

function sendSome(now: number): void {
  for (const p of peers) {
    if (p.nextAt > now || p.conn.closed) continue;
    const n = 1 + Math.floor(random() * 3);
    for (let i = 0; i < n; i++) {
      const seq = ++p.sent;
      const size = Math.floor(random() * padding.length);
      p.conn.send(Buffer.concat([Buffer.from(`${seq}:`), padding.subarray(0, size)]));
    }
    // n messages per visit at `RATE` a second on average: 2 / RATE between visits.
    p.nextAt = now + between(0.2, 1.8) * (2 / RATE) * 1000;
  }
}

function scheduleFault(): void {
  faultTimer = setTimeout(
    () => {
      injectFault();
      scheduleFault();
    },
    between(1500, 4000),
  );
}

function injectFault(): void {
  let r = random();
  let fault: Fault = 'reset';
  for (const f of FAULTS) {
    r -= WEIGHTS[f];
    if (r <= 0) {
      fault = f;
      break;
    }
  }
  const index = Math.floor(random() * proxies.length);
  const proxy = proxies[index]!;
  // One timed fault per proxy at a time; a cut may land on top of one.
  if (healing.has(index) && fault !== 'reset' && fault !== 'fin') fault = pick(['reset', 'fin']);
  counts.faults[fault]++;
  const heal = (ms: number, undo: () => void) =>
    healing.set(
      index,
      setTimeout(() => {
        healing.delete(index);
        undo();
      }, ms),
    );
  switch (fault) {
    case 'reset':
      proxy.reset();
      return;
    case 'fin':
      proxy.fin();
      return;
    case 'freeze':
    case 'freeze-up':
    case 'freeze-down': {
      const direction = fault === 'freeze' ? 'both' : fault === 'freeze-up' ? 'up' : 'down';
      proxy.freeze(direction);
      // Up to 1.5 heartbeat timeouts: short freezes must be ridden out, long ones detected.
      heal(between(300, 4500), () => proxy.heal(direction));
      return;
    }
    case 'latency':
      proxy.setLatency(Math.round(between(20, 300)), Math.round(between(0, 50)));
      heal(between(1000, 5000), () => proxy.setLatency(0));
      return;
  }
}

function totals() {
  let sent = 0;
  let echoed = 0;
  let duplicates = 0;
  let gaps = 0;
  let unacked = 0;
  const unexpected: string[] = [];
  let healthy = 0;
  for (const p of peers) {
    sent += p.sent;
    echoed += p.echoed;
    duplicates += p.duplicates;
    gaps += p.gaps;
    unacked += p.conn.unackedCount;
    if (p.conn.state === 'healthy') healthy++;
    if (p.closedUnexpectedly) unexpected.push(p.closedUnexpectedly);
  }
  return {
    clients: peers.length,
    healthy,
    sent,
    echoed,
    pending: sent - echoed,
    unacked,
    duplicates,
    gaps,
    unexpectedCloses: unexpected.length,
    unexpectedReasons: unexpected.slice(0, 5),
    ...counts,
  };
}

// Open every client, a few at a time, and wait until all have a session.
for (let i = 0; i < CLIENTS; i++) {
  peers.push(open(i));
  if (i % 25 === 24) await new Promise((r) => setTimeout(r, 20));
}
const deadline = Date.now() + 60_000;
while (peers.some((p) => p.conn.state !== 'healthy') && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 50));
}

serveParent({
  run: () => {
    sendTimer = setInterval(() => sendSome(Date.now()), 50);
    scheduleFault();
  },
  progress: () => totals(),
  drain: async (timeoutMs: number) => {
    if (sendTimer) clearInterval(sendTimer);
    if (faultTimer) clearTimeout(faultTimer);
    for (const t of healing.values()) clearTimeout(t);
    healing.clear();
    for (const proxy of proxies) {
      proxy.heal();
      proxy.setLatency(0);
    }
    const until = Date.now() + timeoutMs;
    const settled = () =>
      peers.every(
        (p) =>
          p.conn.closed ||
          (p.conn.state === 'healthy' && p.conn.unackedCount === 0 && p.echoed >= p.sent),
      );
    while (!settled() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    return { ...totals(), settled: settled() };
  },
  close: async () => {
    closing = true;
    const closed = peers.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.conn.closed) resolve();
          else p.conn.once('close', () => resolve());
        }),
    );
    for (const p of peers) p.conn.close();
    await Promise.all(closed);
    // Let the CLOSE frames cross the proxies before they go.
    await new Promise((r) => setTimeout(r, 500));
    const pairsBefore = proxies.reduce((n, p) => n + p.connections, 0);
    let timer: NodeJS.Timeout | undefined;
    const proxiesClosed = await Promise.race([
      Promise.all(proxies.map((p) => p.close())).then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), 10_000);
      }),
    ]);
    clearTimeout(timer);
    return {
      proxiesClosed,
      pairsBefore,
      pairsLeft: proxies.reduce((n, p) => n + p.connections, 0),
    };
  },
});
emit('ready', { pid: process.pid, opened: peers.filter((p) => p.conn.state === 'healthy').length });
