/**
 * A device reporting telemetry over a flaky link. Every 50 ms the device sends a numbered
 * reading to a collector; between them sits a fault-injecting TCP proxy that, at random
 * moments, resets the connection (RST), closes it (FIN), or freezes it for a while and
 * then heals it (a freeze longer than the heartbeat timeout turns the link dead).
 *
 * The device just calls send(). The reconnecting client does the rest: it notices the
 * broken link (at once for RST/FIN, by heartbeat for a freeze), reconnects with backoff,
 * resumes its session and re-sends what the collector had not acknowledged. When the run
 * ends, the collector checks that it received every reading exactly once, in order.
 *
 *   node --import tsx examples/telemetry.ts                 # 5 s run
 *   node --import tsx examples/telemetry.ts --duration 10000 --seed 42
 *
 * Prints the faults as they happen and a summary; exits 0 when every reading arrived
 * exactly once and in order, 1 otherwise. The same proxy is `heartline chaos` on the
 * command line, for breaking links between your own processes.
 */

import { parseArgs } from 'node:util';
import { createChaosProxy } from '../src/entries/chaos.js';
import { connect, createServer } from '../src/index.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5000' },
    seed: { type: 'string' },
  },
});
const duration = Number(values.duration);
if (!Number.isInteger(duration) || duration < 500) {
  console.error('--duration must be an integer of at least 500 (ms)');
  process.exit(2);
}
const seed = values.seed === undefined ? Date.now() % 100_000 : Number(values.seed);
const random = mulberry32(seed);

// ---- collector ---------------------------------------------------------------------

// Heartbeats every 200 ms, dead after 600 ms of silence: a long freeze is noticed fast.
const collector = createServer({ interval: 200, timeout: 600, sessionTtl: 60_000 });
const received: number[] = [];
let sessions = 0;
collector.on('connection', (conn) => {
  sessions++;
  conn.on('message', (data) => {
    const reading = JSON.parse(data.toString()) as Reading;
    received.push(reading.n);
  });
});
const { port } = await collector.listen(0, '127.0.0.1');

// ---- the flaky link ----------------------------------------------------------------

const proxy = await createChaosProxy({ target: { host: '127.0.0.1', port } });
const faults = { reset: 0, fin: 0, freeze: 0 };
let chaosTimer: NodeJS.Timeout | undefined;
const scheduleFault = (): void => {
  chaosTimer = setTimeout(breakTheLink, 300 + random() * 500);
};
const breakTheLink = (): void => {
  const pick = random();
  if (pick < 0.35) {
    faults.reset++;
    console.log(`fault: reset (RST) ${proxy.reset()} link(s)`);
    scheduleFault();
  } else if (pick < 0.6) {
    faults.fin++;
    console.log(`fault: close (FIN) ${proxy.fin()} link(s)`);
    scheduleFault();
  } else {
    // 200-1000 ms: below the 600 ms timeout the link survives, above it it is declared dead.
    const ms = Math.round(200 + random() * 800);
    faults.freeze++;
    console.log(`fault: freeze both ways for ${ms} ms`);
    proxy.freeze();
    chaosTimer = setTimeout(() => {
      proxy.heal();
      scheduleFault();
    }, ms);
  }
};

// ---- device --------------------------------------------------------------------------

interface Reading {
  /** Reading number, from 1. */
  n: number;
  /** Wall-clock time of the reading (ms). */
  at: number;
  celsius: number;
}

const device = connect({
  port: proxy.port,
  clientId: 'device-17',
  // Ask for the collector's fast heartbeat, and retry quickly: the demo breaks links often.
  interval: 200,
  timeout: 600,
  backoff: { initialDelay: 50, maxDelay: 500 },
});
const counts = { reconnects: 0, resumes: 0, sessionsLost: 0 };
device.on('reconnecting', ({ reason, delayMs }) => {
  counts.reconnects++;
  console.log(`device: link lost (${reason}), reconnecting in ${delayMs.toFixed(0)} ms`);
});
device.on('resumed', ({ replayed }) => {
  counts.resumes++;
  console.log(`device: session resumed, ${replayed} reading(s) re-sent`);
});
device.on('session-lost', ({ unacked }) => {
  // Only past the collector's sessionTtl; re-send what it never acknowledged
  // (at-least-once from here on, which the check below would report).
  counts.sessionsLost++;
  for (const payload of unacked) device.send(payload);
});

let sent = 0;
let celsius = 21;
const sampler = setInterval(() => {
  celsius += (random() - 0.5) / 10;
  const reading: Reading = { n: ++sent, at: Date.now(), celsius: Number(celsius.toFixed(2)) };
  device.send(JSON.stringify(reading));
}, 50);

console.log(`running for ${duration} ms (seed ${seed})`);
scheduleFault();
await new Promise((resolve) => setTimeout(resolve, duration));

// ---- the end: stop, heal, wait for the last acknowledgement, check ------------------

clearInterval(sampler);
clearTimeout(chaosTimer);
proxy.heal();
let drainTimer: NodeJS.Timeout | undefined;
const drained = await new Promise<boolean>((resolve) => {
  drainTimer = setTimeout(resolve, 10_000, false);
  device.whenAcked().then(
    () => resolve(true),
    () => resolve(false),
  );
});
clearTimeout(drainTimer);

const inOrder = received.every((n, i) => n === i + 1);
const ok = drained && inOrder && received.length === sent;
console.log(
  `device: ${sent} readings sent, ${counts.reconnects} reconnects, ${counts.resumes} resumes, ${counts.sessionsLost} sessions lost`,
);
console.log(`faults: ${faults.reset} resets, ${faults.fin} fins, ${faults.freeze} freezes`);
console.log(
  `collector: ${received.length} readings in ${sessions} session(s), ${inOrder ? 'each exactly once and in order' : 'NOT exactly once in order'}`,
);
if (!drained) console.log('the collector did not acknowledge every reading within 10 s');

device.close();
await collector.close();
await proxy.close();
console.log(ok ? 'telemetry ok' : 'telemetry FAILED');
process.exitCode = ok ? 0 : 1;

/** A small seeded PRNG (mulberry32), so that a run can be repeated with --seed. */
function mulberry32(a: number): () => number {
  let state = a >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
