/**
 * Big things: the echo crash (a client that sends 17 maximum-size messages and never
 * acknowledges their echoes, so that the echo's replay buffer passes its hard cap),
 * oversize frames before and after the handshake, and hundreds of HELLOs with the
 * largest client and trace ids the wire allows, held open while /api/connections is read.
 */

import { writeDataAt } from '../../src/protocol/codec.js';
import { DEFAULT_MAX_FRAME } from '../../src/protocol/frames.js';
import { round } from '../lib/stats.js';
import type { Attack, AttackContext } from './harness.js';
import { runLanes } from './raw.js';

/** The largest DATA payload in a default frame (1 MiB minus the type byte and the seq). */
export const MAX_PAYLOAD = DEFAULT_MAX_FRAME - 1 - 8;
/** Messages of the echo crash: 17 MiB, one more than the 16 MiB hard cap of a replay buffer. */
const ECHO_CRASH_MESSAGES = 17;
/**
 * Most bytes /api/connections may answer with: a page of connections with sane ids is
 * well under a MiB; tens of MiB means one request can make the server build a response
 * as large as every attacker's HELLOs together.
 */
const ADMIN_RESPONSE_BUDGET = 4 * 1024 * 1024;
/** The largest string field of a HELLO on the wire (u16 length). */
const MAX_FIELD = 0xffff;

/**
 * One echo crash: HELLO, then 17 maximum-size DATA frames, never an ACK (the echoes are
 * read, so the server is never blocked on its socket, only on the missing ACKs).
 * Resolves with what happened to the socket.
 */
export async function echoCrashOnce(
  ctx: AttackContext,
): Promise<{ code: number | null; echoed: number; closed: boolean }> {
  const peer = await ctx.pool.open();
  const welcome = await peer.handshake();
  if (!welcome) return { code: peer.closeCode, echoed: 0, closed: true };
  const payload = Buffer.alloc(MAX_PAYLOAD, 0x78);
  for (let seq = 1; seq <= ECHO_CRASH_MESSAGES; seq++) {
    // A buffer per frame: the socket may still hold the previous one.
    const frame = Buffer.allocUnsafe(13 + MAX_PAYLOAD);
    writeDataAt(frame, 0, seq, payload);
    if (!(await peer.write(frame))) break;
  }
  // Give the server time to echo (or to refuse) the lot.
  await peer.waitUntil(() => peer.closed || peer.lastData >= ECHO_CRASH_MESSAGES, 3000);
  await peer.waitClosed(500);
  const result = { code: peer.closeCode, echoed: peer.lastData, closed: peer.closed };
  peer.destroy();
  return result;
}

/** Opens `count` sockets over `lanes` lanes, each doing `each(i)`; stops at the deadline. */
async function forEachSocket(
  ctx: AttackContext,
  count: number,
  lanes: number,
  each: (i: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  await runLanes(lanes, ctx, async () => {
    if (next >= count) return false;
    await each(next++);
    return true;
  });
  return next;
}

/** Every attack of this family. */
export const oversizeAttacks: Attack[] = [
  {
    id: 'echo-crash',
    family: 'oversize',
    label: 'echo crash: 17 x 1 MiB DATA, never acknowledged',
    seconds: () => 5,
    async run(ctx) {
      const r = await echoCrashOnce(ctx);
      ctx.note(
        `attacker got ${r.code === null ? (r.closed ? 'a close without CLOSE' : 'no close') : `CLOSE ${r.code}`} after ${r.echoed} echoes`,
      );
    },
  },
  {
    id: 'oversize-frame',
    family: 'oversize',
    label: 'oversize frames (length FFFFFFFF / max+1), before and after HELLO',
    seconds: (quick) => (quick ? 2 : 4),
    async run(ctx) {
      const count = ctx.quick ? 50 : 200;
      let unclosed = 0;
      const opened = await forEachSocket(ctx, count, 10, async (i) => {
        const peer = await ctx.pool.open();
        if (i % 2 === 1 && !(await peer.handshake())) return;
        const header = Buffer.alloc(5 + 16, 0x41);
        header.writeUInt32BE(i % 4 < 2 ? 0xffff_ffff : DEFAULT_MAX_FRAME + 1, 0);
        header[4] = 0x05;
        await peer.write(header);
        if (!(await peer.waitClosed(5000))) unclosed++;
        peer.destroy();
      });
      ctx.note(`${opened} sockets; attacker got ${ctx.pool.describeCodes()}`);
      if (unclosed > 0) ctx.violation(`${unclosed} oversize sockets still open after 5 s`);
    },
  },
  {
    id: 'max-hello',
    family: 'oversize',
    label: 'HELLOs with 64 KiB clientId + traceId, then /api/connections',
    serverArgs: ['--admin', '127.0.0.1:0'],
    seconds: (quick) => (quick ? 4 : 10),
    async run(ctx) {
      const count = ctx.quick ? 100 : 300;
      const clientId = 'c'.repeat(MAX_FIELD);
      const traceId = 't'.repeat(MAX_FIELD);
      let welcomed = 0;
      await forEachSocket(ctx, count, 10, async () => {
        const peer = await ctx.pool.open();
        if (await peer.handshake({ clientId, traceId })) welcomed++;
      });
      ctx.note(`${welcomed}/${count} accepted (${ctx.pool.describeCodes()})`);
      if (!ctx.adminUrl) throw new Error('the server has no admin endpoint');
      const t0 = performance.now();
      const response = await fetch(new URL('/api/connections', ctx.adminUrl), {
        signal: ctx.signal,
      });
      const bytes = (await response.arrayBuffer()).byteLength;
      const ms = performance.now() - t0;
      ctx.note(
        `/api/connections: HTTP ${response.status}, ${round(bytes / 1024 / 1024, 1)} MiB in ${Math.round(ms)} ms`,
      );
      if (bytes > ADMIN_RESPONSE_BUDGET) {
        ctx.violation(
          `/api/connections answered ${round(bytes / 1024 / 1024, 1)} MiB (budget ${ADMIN_RESPONSE_BUDGET / 1024 / 1024})`,
        );
      }
    },
  },
];
