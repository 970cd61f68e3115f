/**
 * Child process: the load of the message benchmark. Opens connections to an echo server
 * and keeps `window` messages in flight on each (closed loop): every echo that comes back
 * is counted, its round trip recorded (the send time travels in the first 8 bytes of the
 * payload), and a new message goes out on the same connection.
 *
 *   --system NAME --port P --connections N --size BYTES --window W --addresses A,B,...
 *
 * Commands: connect, run {warmupMs, durationMs} (emits 'measuring' when the warm-up ends
 * and 'measured' when the measurement does), close.
 */

import { createHistogram } from 'node:perf_hooks';
import { childArgs, emit, numArg, serveParent } from '../lib/child.js';
import { sleep } from '../lib/stats.js';
import { isSystemName, loadSystem } from '../systems/index.js';
import type { EchoClientHandle } from '../systems/types.js';

const args = childArgs();
const name = args.system ?? '';
if (!isSystemName(name)) throw new Error(`unknown --system "${name}"`);
const system = await loadSystem(name);
if (!system.openEchoClient) throw new Error(`${name} has no echo client`);
const openEchoClient = system.openEchoClient;
const port = numArg(args, 'port');
const connections = numArg(args, 'connections');
const size = numArg(args, 'size');
const window = numArg(args, 'window');
const addresses = (args.addresses ?? '').split(',').filter(Boolean);
if (addresses.length === 0) throw new Error('missing --addresses');
if (size < 8) throw new Error('--size must leave room for the 8-byte timestamp');

/** Connection attempts in flight while connecting. */
const CONCURRENCY = 100;

const histogram = createHistogram();
const handles: EchoClientHandle[] = [];
let measuring = false;
let sending = false;
let received = 0;
let lost = 0;

/** A payload of `size` bytes stamped with the send time. */
function message(): Buffer {
  const payload = Buffer.allocUnsafe(size);
  payload.fill(0x2a, 8);
  payload.writeDoubleLE(performance.now(), 0);
  return payload;
}

async function openOne(i: number): Promise<void> {
  const holder: { handle: EchoClientHandle | null } = { handle: null };
  const handle = await openEchoClient({
    host: '127.0.0.1',
    port,
    localAddress: addresses[i % addresses.length]!,
    id: `e${i}`,
    onMessage: (payload) => {
      if (measuring) {
        const micros = (performance.now() - payload.readDoubleLE(0)) * 1000;
        histogram.record(Math.max(1, Math.round(micros)));
        received++;
      }
      if (sending) holder.handle?.send(message());
    },
    onLost: () => {
      lost++;
    },
  });
  holder.handle = handle;
  handles.push(handle);
}

async function connectAll(): Promise<{ open: number }> {
  let next = 0;
  const lane = async () => {
    while (next < connections) await openOne(next++);
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, connections) }, lane));
  return { open: handles.length };
}

async function run({ warmupMs, durationMs }: { warmupMs: number; durationMs: number }) {
  sending = true;
  for (const h of handles) for (let i = 0; i < window; i++) h.send(message());
  await sleep(warmupMs);
  histogram.reset();
  received = 0;
  measuring = true;
  emit('measuring');
  const t0 = performance.now();
  await sleep(durationMs);
  const elapsedMs = performance.now() - t0;
  measuring = false;
  sending = false;
  emit('measured');
  const count = received;
  const ms = (micros: number) => micros / 1000;
  return {
    messages: count,
    elapsedMs,
    perSecond: count / (elapsedMs / 1000),
    latencyMs: {
      p50: ms(histogram.percentile(50)),
      p99: ms(histogram.percentile(99)),
      mean: ms(histogram.mean),
      max: ms(histogram.max),
    },
    lost,
  };
}

serveParent({
  connect: connectAll,
  run,
  close: () => {
    for (const h of handles) h.close();
  },
});
emit('ready', { pid: process.pid });
