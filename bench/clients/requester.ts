/**
 * Child process: the requester of bench/requests.ts, one connection to a reply server.
 * Every run is a closed loop: `window` operations in flight, each one followed at once by
 * the next; only those that complete inside the measured window count, and each one's
 * time from start to completion is recorded.
 *
 *   --system NAME --port P --address A   (started with --expose-gc for the memory reading)
 *
 * Commands:
 * - connect;
 * - requests {size, window, warmupMs, durationMs}: request() with `window` in flight;
 * - acked {size, mode, window, batch, warmupMs, durationMs} (heartline): sendAcked() with
 *   `window` in flight, or send() `batch` messages then whenAcked();
 * - pending {size, count}: `count` requests against a server that holds them; after two
 *   GCs, heap growth per request; emits 'pending-measured' (the parent then releases the
 *   server) and returns once every reply has come back.
 */

import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { childArgs, emit, numArg, serveParent } from '../lib/child.js';
import { sleep } from '../lib/stats.js';
import { isSystemName, loadSystem } from '../systems/index.js';
import type { AckedSender, Requester } from '../systems/types.js';

const args = childArgs();
const name = args.system ?? '';
if (!isSystemName(name)) throw new Error(`unknown --system "${name}"`);
const system = await loadSystem(name);
if (!system.openRequester) throw new Error(`${name} has no requester`);
const openRequester = system.openRequester;
const port = numArg(args, 'port');
const address = args.address ?? '127.0.0.1';

const gc = (globalThis as { gc?: () => void }).gc;

let requester: (Requester & Partial<AckedSender>) | null = null;
let lost = 0;

function opened(): Requester & Partial<AckedSender> {
  if (!requester) throw new Error('not connected');
  return requester;
}

/** A payload of `size` bytes in the form the system carries natively. */
function payloadOf(size: number): Buffer | string {
  const text = 'x'.repeat(size);
  return opened().payload === 'binary' ? Buffer.from(text) : text;
}

/** What a closed loop measured. */
export interface LoopResult {
  /** Units completed in the measured window (requests or messages). */
  count: number;
  elapsedMs: number;
  perSecond: number;
  /** Time from an operation's start to its completion (ms). */
  latencyMs: { p50: number; p99: number; mean: number; max: number };
  /** Connections lost during the run (none is expected). */
  lost: number;
}

/**
 * Runs `window` lanes, each doing `op` again and again; an `op` counts `weight` units.
 * Latencies are recorded in nanoseconds, reported in ms.
 */
async function closedLoop(
  window: number,
  op: () => Promise<void>,
  weight: number,
  warmupMs: number,
  durationMs: number,
): Promise<LoopResult> {
  const histogram: RecordableHistogram = createHistogram();
  let measuring = false;
  let stopping = false;
  let count = 0;
  let failure: unknown = null;
  const lane = async () => {
    try {
      while (!stopping) {
        const t0 = performance.now();
        await op();
        if (measuring) {
          histogram.record(Math.max(1, Math.round((performance.now() - t0) * 1e6)));
          count += weight;
        }
      }
    } catch (err) {
      failure ??= err;
      stopping = true;
    }
  };
  const lanes = Array.from({ length: window }, lane);
  await sleep(warmupMs);
  histogram.reset();
  measuring = true;
  const t0 = performance.now();
  await sleep(durationMs);
  measuring = false;
  const elapsedMs = performance.now() - t0;
  stopping = true;
  await Promise.all(lanes);
  if (failure) throw failure;
  const ms = (ns: number) => ns / 1e6;
  return {
    count,
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

interface RunArgs {
  size: number;
  window: number;
  warmupMs: number;
  durationMs: number;
}

function requests({ size, window, warmupMs, durationMs }: RunArgs): Promise<LoopResult> {
  const r = opened();
  const payload = payloadOf(size);
  return closedLoop(
    window,
    async () => {
      const reply = await r.request(payload);
      if (reply.length !== size) throw new Error(`a reply of ${reply.length} bytes, not ${size}`);
    },
    1,
    warmupMs,
    durationMs,
  );
}

function acked(a: RunArgs & { mode: 'sendAcked' | 'batch'; batch: number }): Promise<LoopResult> {
  const r = opened();
  const { send, sendAcked, whenAcked } = r;
  if (!send || !sendAcked || !whenAcked) throw new Error(`${name} has no acknowledged sends`);
  const payload = Buffer.alloc(a.size, 0x78);
  if (a.mode === 'sendAcked') {
    return closedLoop(a.window, () => sendAcked(payload), 1, a.warmupMs, a.durationMs);
  }
  return closedLoop(
    1,
    () => {
      for (let i = 0; i < a.batch; i++) send(payload);
      return whenAcked();
    },
    a.batch,
    a.warmupMs,
    a.durationMs,
  );
}

function heapNow(): number {
  if (!gc) throw new Error('start the requester with --expose-gc');
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function pending({ size, count }: { size: number; count: number }) {
  const r = opened();
  const payload = payloadOf(size);
  // The server holds every request from now on, so none can warm up here: the rows run
  // before this one made whatever the connection makes lazily.
  const replies: Array<Promise<Buffer | string>> = new Array(count);
  const before = heapNow();
  for (let i = 0; i < count; i++) replies[i] = r.request(payload);
  // Everything left this process (heartline: acknowledged, out of the replay buffer): what
  // remains is what each request costs while it waits for its reply.
  await r.flushed();
  const after = heapNow();
  emit('pending-measured');
  const answers = await Promise.all(replies);
  if (answers.some((a) => a.length !== size)) throw new Error('a reply of the wrong size');
  return {
    count,
    heapBefore: before,
    heapAfter: after,
    bytesPerRequest: (after - before) / count,
  };
}

serveParent({
  connect: async () => {
    requester = await openRequester({
      host: '127.0.0.1',
      port,
      localAddress: address,
      id: `requester-${process.pid}`,
      onLost: () => {
        lost++;
      },
    });
    return null;
  },
  requests,
  acked,
  pending,
  close: () => requester?.close(),
});
emit('ready', { pid: process.pid });
