/**
 * Floods of every frame type after a valid handshake: a few attacker connections write
 * one kind of frame as fast as TCP lets them and start over when the server closes them.
 * Frames a client may send (DATA, ACK, PING, PONG, CLOSE) and frames it may not (WELCOME,
 * SETTINGS, a second HELLO) alike; plus DATA with an empty payload that is never
 * acknowledged, whose echoes cost the server per message, not per byte.
 */

import {
  encodeAck,
  encodeClose,
  encodePing,
  encodePong,
  encodeSettings,
  encodeWelcome,
  writeDataAt,
} from '../../src/protocol/codec.js';
import { DEFAULT_MAX_FRAME, PROTOCOL_VERSION } from '../../src/protocol/frames.js';
import { type Attack, type AttackContext, DEFAULT_PEAK_BUDGET_MIB } from './harness.js';
import { helloBytes, type RawPeer, runLanes } from './raw.js';

/** Bytes written per batch: one write of many frames, like a fast client's. */
const BATCH_BYTES = 64 * 1024;
/** Attacker connections per flood. */
const LANES = 4;

/** A batch of copies of `frame` about {@link BATCH_BYTES} long. */
function repeat(frame: Buffer): Buffer {
  const n = Math.max(1, Math.floor(BATCH_BYTES / frame.length));
  return Buffer.concat(Array.from({ length: n }, () => frame));
}

/** A batch of DATA frames numbered from `seq` (the frames a real sender would write). */
function dataBatch(seq: number, payload: Buffer, count: number): Buffer {
  const size = 13 + payload.length;
  const buf = Buffer.allocUnsafe(size * count);
  for (let i = 0; i < count; i++) writeDataAt(buf, i * size, seq + i, payload);
  return buf;
}

/**
 * One connection's flood: handshake, then `next(peer)` batches until the server closes
 * the socket or the time is up. Returns false when the time is up.
 */
async function floodOne(
  ctx: AttackContext,
  next: (peer: RawPeer) => Buffer | null,
): Promise<boolean> {
  const peer = await ctx.pool.open();
  const welcome = await peer.handshake();
  if (!welcome) {
    peer.destroy();
    return true;
  }
  while (performance.now() < ctx.deadline && !ctx.signal.aborted) {
    const batch = next(peer);
    if (batch === null || !(await peer.write(batch))) break;
  }
  peer.destroy();
  return performance.now() < ctx.deadline;
}

/** Counts of the flood for the notes. */
interface FloodStats {
  connections: number;
  batches: number;
}

function floodAttack(
  id: string,
  label: string,
  makeNext: () => (peer: RawPeer, stats: FloodStats) => Buffer | null,
): Attack {
  return {
    id,
    family: 'floods',
    label,
    seconds: (quick) => (quick ? 1 : 5),
    async run(ctx) {
      const stats: FloodStats = { connections: 0, batches: 0 };
      const { errors } = await runLanes(LANES, ctx, async () => {
        stats.connections++;
        const next = makeNext();
        return floodOne(ctx, (peer) => {
          stats.batches++;
          return next(peer, stats);
        });
      });
      ctx.note(
        `${stats.connections} connections, ${stats.batches} batches of ${BATCH_BYTES / 1024} KiB; attacker got ${ctx.pool.describeCodes()}${errors > 0 ? `; ${errors} failed connects` : ''}`,
      );
    },
  };
}

/** A fixed frame repeated. */
const same = (frame: Buffer) => () => {
  const batch = repeat(frame);
  return () => batch;
};

const ZERO_ID = new Uint8Array(16);

/** Every flood, one row each. */
export const floodAttacks: Attack[] = [
  {
    ...floodAttack('flood-data', 'flood: DATA 1 KiB, echoes acknowledged', () => {
      const payload = Buffer.alloc(1024, 0x61);
      const count = Math.floor(BATCH_BYTES / (13 + payload.length));
      let seq = 1;
      return (peer) => {
        const batch = dataBatch(seq, payload, count);
        seq += count;
        // A well-behaved fast sender: acknowledges what the echo sent back so far.
        return peer.lastData > 0 ? Buffer.concat([batch, encodeAck(peer.lastData)]) : batch;
      };
    }),
    // Echoes wait in each connection's replay buffer until this sender reads and
    // acknowledges them: four connections may hold their 16 MiB caps (64 MiB) on top of
    // what any max-rate flood costs the heap.
    peakBudgetMiB: DEFAULT_PEAK_BUDGET_MIB + 4 * 16,
  },
  {
    ...floodAttack('flood-empty-data', 'flood: empty DATA, never acknowledged', () => {
      const empty = Buffer.alloc(0);
      const count = Math.floor(BATCH_BYTES / 13);
      let seq = 1;
      return () => {
        const batch = dataBatch(seq, empty, count);
        seq += count;
        return batch;
      };
    }),
    seconds: (quick: boolean) => (quick ? 3 : 10),
    // Each of the four lanes may fill its connection's 16 MiB cap before the server
    // closes it, and the lanes reconnect and fill again as fast as closes come.
    peakBudgetMiB: DEFAULT_PEAK_BUDGET_MIB + 4 * 16,
  },
  floodAttack('flood-ack', 'flood: ACK 0', same(encodeAck(0))),
  // One frame repeated: numbering each would cost the attacker more CPU than the server.
  floodAttack('flood-ping', 'flood: PING', same(encodePing(1, 1000))),
  floodAttack('flood-pong', 'flood: unsolicited PONG', same(encodePong(1, 1000))),
  floodAttack('flood-settings', 'flood: SETTINGS (server-only)', same(encodeSettings(1000, 3000))),
  floodAttack('flood-close', 'flood: CLOSE', same(encodeClose(1000, 'bye'))),
  floodAttack(
    'flood-welcome',
    'flood: WELCOME (server-only)',
    same(
      encodeWelcome({
        version: PROTOCOL_VERSION,
        resumed: false,
        sessionId: ZERO_ID,
        token: ZERO_ID,
        interval: 1000,
        timeout: 3000,
        lastReceived: 0,
        sessionTtl: 1000,
        maxFrame: DEFAULT_MAX_FRAME,
      }),
    ),
  ),
  floodAttack('flood-hello', 'flood: HELLO after the handshake', same(helloBytes())),
];
