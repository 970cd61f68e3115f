/**
 * Recovery on a flapping link (issue 13): one client streams 30,000 numbered messages over
 * about 20 s through the chaos proxy, which breaks the link at random every 100-400 ms
 * (RST, FIN, freezes held past the heartbeat timeout), with the client's default backoff
 * and `stableAfter`. Every reconnect succeeds at once, so the run should finish soon after
 * the last message was sent: the target is a total time within 1.3x the sending time.
 *
 *   node --import tsx bench/flap.ts [--quick] [--runs 3] [--messages 30000] [--seconds 20]
 *
 * Everything runs in this process on loopback (server, proxy, client); the faults and the
 * client's jitter come from fixed seeds, so a run is repeatable up to scheduling.
 */

import { createChaosProxy } from '../src/chaos/proxy.js';
import { connect } from '../src/client/client.js';
import type { ReconnectingEvent } from '../src/connection.js';
import { createServer } from '../src/server/server.js';
import { mulberry32 } from '../test/support/prng.js';
import type { Progress, Step } from './lib/progress.js';
import type { Target } from './lib/results.js';
import { percentile, round } from './lib/stats.js';
import {
  type CommonOptions,
  isMain,
  main,
  type Outcome,
  positiveInt,
  type Workload,
} from './lib/workload.js';

/** Parameters of the workload. */
export interface FlapParams extends Record<string, unknown> {
  runs: number;
  messages: number;
  sendSeconds: number;
  /** The granted heartbeat: short, so that a freeze is found within a second. */
  interval: number;
  timeout: number;
  /** Faults come every faultMinMs + uniform(faultSpreadMs). */
  faultMinMs: number;
  faultSpreadMs: number;
  /** Give up on a run after this long (it then counts as missed). */
  deadlineS: number;
}

/** One run. */
export interface FlapRow extends Record<string, unknown> {
  seed: number;
  messages: number;
  /** First to last send (s). */
  sendingS: number;
  /** First send to the last message received by the server, in order (s). */
  totalS: number;
  /** totalS / sendingS. */
  ratio: number;
  /** Every message arrived exactly once, in order. */
  exactlyOnce: boolean;
  faults: { reset: number; fin: number; freeze: number; freezeUp: number };
  reconnects: number;
  /** Highest attempt number a 'reconnecting' event carried. */
  maxAttempt: number;
  delayP50Ms: number;
  delayMaxMs: number;
  /** Sum of the backoff delays drawn (s). */
  delaySumS: number;
}

/** The target: the run finishes within 1.3x its sending time. */
const MAX_RATIO = 1.3;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function runOnce(p: FlapParams, seed: number, progress: Progress): Promise<FlapRow> {
  const server = createServer({ interval: p.interval, timeout: p.timeout, sessionTtl: 120_000 });
  const { port } = await server.listen(0, '127.0.0.1');
  const proxy = await createChaosProxy({ target: { host: '127.0.0.1', port } });
  const received: number[] = [];
  server.on('connection', (conn) => {
    conn.on('message', (m) => received.push(Number(m.toString())));
  });
  const client = connect({
    port: proxy.port,
    random: mulberry32(seed * 7919 + 1),
    maxBufferedBytes: 256 * 1024 * 1024,
    highWaterMark: 256 * 1024 * 1024,
  });
  const delays: number[] = [];
  let maxAttempt = 0;
  client.on('reconnecting', (e: ReconnectingEvent) => {
    delays.push(e.delayMs);
    maxAttempt = Math.max(maxAttempt, e.attempt);
  });
  const id = `flap:run-${seed}`;
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('open', () => resolve());
      client.once('close', () => reject(new Error('the client closed before opening')));
    });

    // The sender: an even stream, paced by wall time so that a slow tick catches up.
    const perTick = 10;
    const ticks = Math.ceil(p.messages / perTick);
    const tickMs = (p.sendSeconds * 1000) / ticks;
    let sent = 0;
    const t0 = performance.now();
    let lastSendAt = t0;
    const pump = setInterval(
      () => {
        const due = Math.min(p.messages, Math.ceil((performance.now() - t0) / tickMs) * perTick);
        while (sent < due) client.send(String(++sent));
        if (sent >= p.messages) {
          lastSendAt = performance.now();
          clearInterval(pump);
        }
      },
      Math.max(1, Math.floor(tickMs)),
    );

    const random = mulberry32(seed);
    const faults = { reset: 0, fin: 0, freeze: 0, freezeUp: 0 };
    const done = () => received.length >= p.messages;
    const deadline = t0 + p.deadlineS * 1000;
    while (!done() && performance.now() < deadline) {
      await sleep(p.faultMinMs + random() * p.faultSpreadMs);
      progress.update(id, Math.min(1, received.length / p.messages), `${received.length} received`);
      if (done()) break;
      const pick = random();
      if (pick < 0.35) {
        faults.reset++;
        proxy.reset();
      } else if (pick < 0.65) {
        faults.fin++;
        proxy.fin();
      } else {
        // Held past the heartbeat timeout: only the heartbeat notices, then both sides
        // close and the client comes back through the healed proxy.
        const direction = pick < 0.85 ? 'both' : 'up';
        if (direction === 'both') faults.freeze++;
        else faults.freezeUp++;
        proxy.freeze(direction);
        await sleep(p.timeout + 100);
        proxy.heal(direction);
      }
    }
    while (!done() && performance.now() < deadline) await sleep(10);
    clearInterval(pump);
    const finishedAt = performance.now();
    const sendingS = (lastSendAt - t0) / 1000;
    const totalS = (finishedAt - t0) / 1000;
    const exactlyOnce = received.length === p.messages && received.every((n, i) => n === i + 1);
    const sorted = [...delays].sort((a, b) => a - b);
    return {
      seed,
      messages: p.messages,
      sendingS: round(sendingS, 2),
      totalS: round(totalS, 2),
      ratio: done() ? round(totalS / sendingS, 3) : Number.POSITIVE_INFINITY,
      exactlyOnce,
      faults,
      reconnects: delays.length,
      maxAttempt,
      delayP50Ms: round(percentile(sorted, 50), 0),
      delayMaxMs: round(sorted[sorted.length - 1] ?? 0, 0),
      delaySumS: round(delays.reduce((a, b) => a + b, 0) / 1000, 2),
    };
  } finally {
    client.close();
    await proxy.close();
    await server.close();
  }
}

/** The workload. */
export const flapBench: Workload<FlapParams, FlapRow> = {
  name: 'flap',
  title: 'Recovery on a flapping link (chaos proxy, default backoff)',
  flags: {
    runs: 'runs, one seed each (default 3; quick 1)',
    messages: 'messages per run (default 30000; quick 6000)',
    seconds: 'sending time per run in s (default 20; quick 4)',
  },
  parameters(o: CommonOptions): FlapParams {
    return {
      runs: positiveInt(o.values.runs, o.quick ? 1 : 3, 'runs'),
      messages: positiveInt(o.values.messages, o.quick ? 6000 : 30_000, 'messages'),
      sendSeconds: positiveInt(o.values.seconds, o.quick ? 4 : 20, 'seconds'),
      interval: 250,
      timeout: 750,
      faultMinMs: 100,
      faultSpreadMs: 300,
      deadlineS: 180,
    };
  },
  steps(p): Step[] {
    return Array.from({ length: p.runs }, (_, i) => ({
      id: `flap:run-${i + 1}`,
      label: `flap run ${i + 1}`,
      weight: p.sendSeconds * 1.2,
    }));
  },
  async run(p, progress: Progress): Promise<Outcome<FlapRow>> {
    const rows: FlapRow[] = [];
    for (let seed = 1; seed <= p.runs; seed++) {
      progress.start(`flap:run-${seed}`);
      const row = await runOnce(p, seed, progress);
      rows.push(row);
      progress.finish(
        `flap:run-${seed}`,
        `${row.totalS} s for ${row.sendingS} s of sending (${row.ratio}x)`,
      );
    }
    const worst = Math.max(...rows.map((r) => r.ratio));
    const targets: Target[] = [
      {
        id: 'flap-ratio',
        goal: `a run through a link broken every few hundred ms finishes within ${MAX_RATIO}x its sending time`,
        measured: rows
          .map(
            (r) => `${r.totalS} s for ${r.sendingS} s (${r.ratio}x, max delay ${r.delayMaxMs} ms)`,
          )
          .join('; '),
        met: worst <= MAX_RATIO && rows.every((r) => r.exactlyOnce),
      },
    ];
    return {
      rows,
      targets,
      notes: [
        `Heartbeat ${p.interval} ms / ${p.timeout} ms granted by the server; the client keeps its default backoff (500 ms x2 up to 30 s, full jitter) and stableAfter (10 s).`,
        `A fault every ${p.faultMinMs}-${p.faultMinMs + p.faultSpreadMs} ms until every message arrived: 35% RST, 30% FIN, 20% freeze both ways and 15% freeze client->server, each freeze held for timeout + 100 ms.`,
        'Server, proxy and client share this process on loopback; fault and jitter seeds are fixed per run.',
      ],
    };
  },
  summary(rows): string {
    return rows
      .map(
        (r) =>
          `  seed ${r.seed}: ${r.totalS} s for ${r.sendingS} s of sending (${r.ratio}x), ${r.reconnects} reconnects, max attempt ${r.maxAttempt}, delay p50 ${r.delayP50Ms} ms / max ${r.delayMaxMs} ms, exactly once: ${r.exactlyOnce}`,
      )
      .join('\n');
  },
};

if (isMain(import.meta.url)) await main(flapBench);
