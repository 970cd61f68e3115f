/**
 * The multi-process server (`serve --workers 2`): the echo crash repeated, so that a
 * worker that dies of it dies again as soon as it is back (the primary must stay up and
 * keep serving newcomers), and maximum-size HELLOs cut in 64-byte pieces, which the
 * primary reads before it knows which worker a socket goes to (a primary that re-joins
 * what it has read on every piece pays quadratically, and every newcomer waits).
 */

import { percentile, round, sleep } from '../lib/stats.js';
import type { Attack, AttackContext } from './harness.js';
import { echoCrashOnce } from './oversize.js';
import { helloBytes, runLanes } from './raw.js';

/** How long a newcomer keeps trying after the crashes (workers re-fork with backoff) (ms). */
const NEWCOMER_PATIENCE_MS = 10_000;

/** True when a fresh client completes a handshake within the patience. */
async function newcomerGetsIn(ctx: AttackContext): Promise<boolean> {
  const until = performance.now() + NEWCOMER_PATIENCE_MS;
  while (performance.now() < until && !ctx.signal.aborted) {
    try {
      const peer = await ctx.pool.open();
      const welcome = await peer.handshake({ clientId: 'newcomer' });
      peer.destroy();
      if (welcome) return true;
    } catch {
      // refused while nothing listens: try again
    }
    await sleep(250);
  }
  return false;
}

/** Every attack of this family. */
export const workerAttacks: Attack[] = [
  {
    id: 'workers-crash-loop',
    family: 'workers',
    label: 'workers 2: the echo crash, repeated',
    workers: 2,
    // A slot gives up after 5 crashes in a row (none stable), so the full run makes each
    // of the two slots crash about 6 times.
    seconds: (quick) => (quick ? 5 : 25),
    async run(ctx) {
      const rounds = ctx.quick ? 2 : 12;
      const codes: string[] = [];
      for (let i = 0; i < rounds && performance.now() < ctx.deadline; i++) {
        try {
          const r = await echoCrashOnce(ctx);
          codes.push(r.code === null ? `no CLOSE after ${r.echoed}` : `CLOSE ${r.code}`);
        } catch {
          codes.push('refused');
        }
        await sleep(200);
      }
      const gotIn = await newcomerGetsIn(ctx);
      ctx.note(
        `${codes.length} rounds (${codes.join(', ')}); newcomer ${gotIn ? 'got in' : 'did not get in'}`,
      );
      if (!gotIn)
        ctx.violation(
          `no newcomer got in within ${NEWCOMER_PATIENCE_MS / 1000} s after the crashes`,
        );
    },
  },
  {
    id: 'workers-chunked-hello',
    family: 'workers',
    label: 'workers 2: 128 KiB HELLOs in 64-byte pieces',
    workers: 2,
    seconds: (quick) => (quick ? 3 : 6),
    async run(ctx) {
      const count = ctx.quick ? 5 : 20;
      const hello = helloBytes({ clientId: 'c'.repeat(0xffff), traceId: 't'.repeat(0xffff) });
      const waits: number[] = [];
      let refused = 0;
      let next = 0;
      await runLanes(count, ctx, async () => {
        if (next >= count) return false;
        next++;
        const peer = await ctx.pool.open();
        const t0 = performance.now();
        for (let o = 0; o < hello.length && !peer.closed; o += 64) {
          await peer.write(hello.subarray(o, o + 64));
          // A turn between pieces, so that they arrive as separate reads.
          await new Promise((r) => setImmediate(r));
        }
        const got = await peer.waitUntil(() => peer.welcome !== null || peer.closed, 10_000);
        if (got && peer.welcome) waits.push(performance.now() - t0);
        else refused++;
        return true;
      });
      ctx.note(
        `${waits.length} WELCOMEs after ${waits.length > 0 ? `p50 ${round(percentile(waits, 50))} ms, max ${round(Math.max(...waits))} ms` : '-'}${refused > 0 ? `; ${refused} refused (${ctx.pool.describeCodes()})` : ''}`,
      );
    },
  },
];
