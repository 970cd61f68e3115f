/**
 * Slow peers: slowloris (many sockets sending their HELLO a byte at a time), the
 * trickle after the handshake (a DATA frame a byte at a time, which must not count as
 * life forever), and maximum-size frames cut in 64-byte pieces (what a decoder that
 * re-joins its chunks on every read pays for quadratically).
 */

import { encodeAck, writeDataAt } from '../../src/protocol/codec.js';
import { percentile, round, sleep } from '../lib/stats.js';
import {
  type Attack,
  type AttackContext,
  HANDSHAKE_TIMEOUT_MS,
  HEARTBEAT_TIMEOUT_MS,
} from './harness.js';
import { MAX_PAYLOAD } from './oversize.js';
import { helloBytes, type RawPeer, runLanes } from './raw.js';

/** Grace beyond a deadline before a socket still open counts against the server (ms). */
const GRACE_MS = 2000;

/**
 * Writes `bytes` to every peer, `step` bytes each `everyMs`, until the deadline or until
 * each is closed; returns when every peer is closed or the time is up.
 */
async function dribble(
  ctx: AttackContext,
  peers: RawPeer[],
  bytes: Buffer,
  step: number,
  everyMs: number,
): Promise<void> {
  let offset = 0;
  while (performance.now() < ctx.deadline && !ctx.signal.aborted) {
    const open = peers.filter((p) => !p.closed);
    if (open.length === 0) return;
    if (offset < bytes.length) {
      const piece = bytes.subarray(offset, offset + step);
      for (const p of open) p.socket.write(piece);
      offset += step;
    }
    await sleep(everyMs);
  }
}

/** "closed after 3.0 s (p50) to 3.1 s (max)": how long the server let them live. */
function lifetimes(peers: RawPeer[], since: number): string {
  const ages = peers.filter((p) => p.closedAt !== null).map((p) => p.closedAt! - since);
  if (ages.length === 0) return 'none closed';
  return `closed after ${round(percentile(ages, 50) / 1000, 1)} s (p50) to ${round(Math.max(...ages) / 1000, 1)} s (max)`;
}

/** Opens `count` sockets, 20 at a time. */
async function openMany(ctx: AttackContext, count: number): Promise<RawPeer[]> {
  const peers: RawPeer[] = [];
  let next = 0;
  await runLanes(20, ctx, async () => {
    if (next >= count) return false;
    next++;
    peers.push(await ctx.pool.open());
    return true;
  });
  return peers;
}

/** Every attack of this family. */
export const slowAttacks: Attack[] = [
  {
    id: 'slowloris',
    family: 'slow',
    label: 'slowloris: HELLO one byte per 100 ms',
    seconds: () => (HANDSHAKE_TIMEOUT_MS + GRACE_MS + 1000) / 1000,
    async run(ctx) {
      const count = ctx.quick ? 50 : 300;
      const peers = await openMany(ctx, count);
      const since = performance.now();
      await dribble(ctx, peers, helloBytes({ clientId: 'slowloris' }), 1, 100);
      const open = peers.filter((p) => !p.closed).length;
      ctx.note(
        `${peers.length} sockets, ${lifetimes(peers, since)}; attacker got ${ctx.pool.describeCodes()}`,
      );
      if (open > 0) {
        ctx.violation(
          `${open}/${peers.length} slowloris sockets open ${Math.round((performance.now() - since) / 1000)} s after connecting (handshake timeout ${HANDSHAKE_TIMEOUT_MS / 1000} s)`,
        );
      }
    },
  },
  {
    id: 'trickle',
    family: 'slow',
    label: 'trickle: a DATA frame one byte per 250 ms after HELLO',
    // The default partial-frame deadline is 30 s; a shorter one shows the same rule in
    // the time of a row (a frame must make its deadline however it trickles).
    serverArgs: ['--partial-frame-timeout', String(HEARTBEAT_TIMEOUT_MS)],
    // Full: twice the timeout, so that a close at the timeout is not missed by a hair.
    seconds: (quick) => ((quick ? 1 : 2) * HEARTBEAT_TIMEOUT_MS + GRACE_MS + 1000) / 1000,
    async run(ctx) {
      // What the most generous grant is: a trickler would ask for it.
      const greedy = await ctx.pool.open();
      const grant = await greedy.handshake({ interval: 0xffff_ffff, timeout: 0xffff_ffff });
      greedy.destroy();
      if (grant) {
        ctx.note(
          `asking for the most grants interval ${grant.interval / 1000} s, timeout ${grant.timeout / 1000} s`,
        );
      }
      const count = ctx.quick ? 30 : 100;
      const peers = await openMany(ctx, count);
      const welcomed = (await Promise.all(peers.map((p) => p.handshake()))).filter(Boolean).length;
      const since = performance.now();
      const frame = Buffer.allocUnsafe(13 + MAX_PAYLOAD);
      writeDataAt(frame, 0, 1, Buffer.alloc(MAX_PAYLOAD, 0x74));
      await dribble(ctx, peers, frame, 1, 250);
      const open = peers.filter((p) => !p.closed).length;
      ctx.note(
        `${welcomed} trickling sockets (granted timeout ${HEARTBEAT_TIMEOUT_MS / 1000} s), ${lifetimes(peers, since)}; attacker got ${ctx.pool.describeCodes()}`,
      );
      if (open > 0) {
        ctx.violation(
          `${open}/${peers.length} trickling sockets still open after ${Math.round((performance.now() - since) / 1000)} s (granted timeout ${HEARTBEAT_TIMEOUT_MS / 1000} s)`,
        );
      }
    },
  },
  {
    id: 'fragmented-frame',
    family: 'slow',
    label: '1 MiB DATA frames in 64-byte writes',
    seconds: (quick) => (quick ? 2 : 5),
    async run(ctx) {
      const lanes = ctx.quick ? 4 : 8;
      const payload = Buffer.alloc(MAX_PAYLOAD, 0x66);
      let frames = 0;
      let pieces = 0;
      await runLanes(lanes, ctx, async () => {
        const peer = await ctx.pool.open();
        if (!(await peer.handshake())) return true;
        let seq = 0;
        while (performance.now() < ctx.deadline && !peer.closed && !ctx.signal.aborted) {
          // A buffer per frame: pieces of the last one may still wait in the socket.
          const frame = Buffer.allocUnsafe(13 + MAX_PAYLOAD);
          writeDataAt(frame, 0, ++seq, payload);
          for (let o = 0; o < frame.length && !peer.closed; o += 64) {
            if (!(await peer.write(frame.subarray(o, o + 64)))) break;
            pieces++;
            // A separate turn per piece, so that pieces leave as separate segments.
            if (pieces % 16 === 0) await new Promise((r) => setImmediate(r));
            if (performance.now() >= ctx.deadline) break;
          }
          frames++;
          if (peer.lastData > 0) await peer.write(encodeAck(peer.lastData));
        }
        peer.destroy();
        return true;
      });
      ctx.note(`${frames} frames in ${pieces} pieces; attacker got ${ctx.pool.describeCodes()}`);
    },
  },
];
