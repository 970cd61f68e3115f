/**
 * Child process: a group of idle clients of one system (at most a few thousand per
 * process, under the 20,000 open-files limit), spread over the source addresses given.
 *
 *   --system NAME --port P --count N --addresses A,B,... --interval MS --prefix ID
 *   [--concurrency C]   connection attempts in flight (default 200)
 *   [--rate R]          connection attempts started per second (default: no pacing)
 *
 * Commands: connect (opens them all; 'progress' events meanwhile), status, close.
 */

import { childArgs, emit, numArg, serveParent } from '../lib/child.js';
import { sleep } from '../lib/stats.js';
import { isSystemName, loadSystem } from '../systems/index.js';
import type { ClientHandle } from '../systems/types.js';

const args = childArgs();
const name = args.system ?? '';
if (!isSystemName(name)) throw new Error(`unknown --system "${name}"`);
const system = await loadSystem(name);
const port = numArg(args, 'port');
const count = numArg(args, 'count');
const interval = numArg(args, 'interval');
const concurrency = numArg(args, 'concurrency', 200);
const rate = numArg(args, 'rate', 0);
const addresses = (args.addresses ?? '').split(',').filter(Boolean);
if (addresses.length === 0) throw new Error('missing --addresses');
const prefix = args.prefix ?? `c${process.pid}-`;

/** A failed attempt is retried this many times (a SYN queue overflow under a burst, say). */
const RETRIES = 3;

/**
 * An attempt that has neither opened nor failed after this long counts as failed (and is
 * retried): some client libraries can wait forever on a handshake the server dropped.
 * heartline's own attempts may wait out the server's overload hints for longer.
 */
const ATTEMPT_TIMEOUT_MS = name === 'heartline' ? 150_000 : 20_000;

/** Resolves with the client, or rejects after ATTEMPT_TIMEOUT_MS (closing it if it opens later). */
function bounded(attempt: Promise<ClientHandle>): Promise<ClientHandle> {
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new Error(`no connection within ${ATTEMPT_TIMEOUT_MS} ms`));
    }, ATTEMPT_TIMEOUT_MS);
    attempt.then(
      (handle) => {
        clearTimeout(timer);
        if (late) handle.close();
        else resolve(handle);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (!late) reject(err);
      },
    );
  });
}

const handles: ClientHandle[] = [];
let failed = 0;
let retried = 0;
let lost = 0;
const lostReasons: Record<string, number> = {};
let lastError = '';

async function openOne(i: number): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    // Only a client this process kept counts when lost (not one that opened too late).
    let kept = false;
    try {
      const handle = await bounded(
        system.openIdleClient({
          host: '127.0.0.1',
          port,
          localAddress: addresses[i % addresses.length]!,
          interval,
          id: `${prefix}${i}`,
          onLost: (reason) => {
            if (!kept) return;
            lost++;
            lostReasons[reason] = (lostReasons[reason] ?? 0) + 1;
          },
        }),
      );
      kept = true;
      handles.push(handle);
      return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
      if (attempt >= RETRIES) {
        failed++;
        return;
      }
      retried++;
      await sleep(100 * (attempt + 1));
    }
  }
}

async function connectAll(): Promise<unknown> {
  let next = 0;
  const ticker = setInterval(() => emit('progress', { open: handles.length, failed }), 250);
  const t0 = performance.now();
  const lane = async () => {
    while (next < count) {
      const i = next++;
      // Paced: attempt i starts i / rate seconds after the first.
      const wait = rate > 0 ? t0 + (i / rate) * 1000 - performance.now() : 0;
      if (wait > 0) await sleep(wait);
      await openOne(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  clearInterval(ticker);
  return status();
}

function status() {
  return {
    open: handles.length - lost,
    opened: handles.length,
    failed,
    retried,
    lost,
    lostReasons,
    lastError,
  };
}

serveParent({
  connect: connectAll,
  status,
  close: () => {
    for (const h of handles) h.close();
  },
});
emit('ready', { pid: process.pid });
