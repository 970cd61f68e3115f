/**
 * A peer flooding empty DATA frames while the session store does not answer (a real
 * redis-server frozen with SIGSTOP). Two places hold what arrives meanwhile: the journal's
 * queue of messages waiting for their commit, and the queue behind a request waiting for
 * the idempotency window's decision. Empty messages have no payload bytes, so each must be
 * charged its bookkeeping (ENTRY_OVERHEAD) or neither queue ever pauses the socket: the
 * peer then makes the server hold about 150 bytes per 13-byte frame for as long as Redis
 * is slow. Each test measures what the server read from the attacker while frozen, then
 * thaws Redis and checks every message is delivered once, in order, and acknowledged.
 */

import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { joinCluster } from '../../src/cluster/node.js';
import { encodeData, encodeRequest } from '../../src/protocol/codec.js';
import { FrameType } from '../../src/protocol/frames.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { RawPeer, startServer } from '../support/peers.js';
import { RedisServer, redisSkip } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

const skip = redisSkip();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The per-connection cap: 256 KiB is 1,638 empty messages at 160 bytes each. */
const MAX_BUFFERED = 256 * 1024;
/** Frames written per chunk (one empty DATA frame is 13 bytes on the wire). */
const CHUNK = 20_000;
/** How long the flood runs while Redis is frozen (ms): shorter than the store timeouts. */
const FLOOD_MS = 800;
/**
 * What the server may read while frozen: the queue's cap in frames (1,638 × 13 B = 21 KB)
 * plus what it had read before the pause took effect (one socket read of up to 64 KiB,
 * whose frames are all decoded) and one more read in flight: 256 KiB. Without charging
 * the overhead it reads the whole flood (several MB).
 */
const READ_BOUND = 256 * 1024;

interface Rig {
  redis: RedisServer;
  peer: RawPeer;
  conn: ServerConnection;
  /** Seqs delivered to the application, in delivery order. */
  seqs: number[];
}

async function rig(t: TestContext, storeTimeout: number): Promise<Rig> {
  const redis = await RedisServer.start(t);
  const { server, port } = await startServer(t, {
    cluster: joinCluster({ redis: redis.url, storeTimeout }),
    maxBufferedBytes: MAX_BUFFERED,
  });
  const seqs: number[] = [];
  server.on('connection', (c) =>
    c.on('message', (_data, info) => {
      seqs.push(info.seq);
      if (info.isRequest) info.reply('ok');
    }),
  );
  const peer = await RawPeer.connect(t, port);
  const welcome = await peer.handshake();
  assert.equal(welcome.type, FrameType.WELCOME);
  await waitFor(() => server.connections.size === 1);
  const conn = [...server.connections.values()][0]!;
  // Thawed even when the test fails, so that the server's close does not wait on it (the
  // hooks run in order: Redis's own stop may have run first).
  t.after(() => {
    if (redis.pid !== null) redis.signal('SIGCONT');
  });
  return { redis, peer, conn, seqs };
}

/** Writes empty DATA frames from `first` for FLOOD_MS, never more than 4 MiB unread. */
async function flood(peer: RawPeer, first: number): Promise<number> {
  const empty = new Uint8Array(0);
  const until = performance.now() + FLOOD_MS;
  let next = first;
  while (performance.now() < until) {
    if (peer.socket.writableLength > 4 * 1024 * 1024) {
      await sleep(5);
      continue;
    }
    const frames: Buffer[] = [];
    for (let i = 0; i < CHUNK; i++) frames.push(encodeData(next++, empty));
    peer.socket.write(Buffer.concat(frames));
    await sleep(0);
  }
  return next - 1;
}

/**
 * Waits until `last` is delivered and acknowledged; checks each seq came once, in order.
 * `refused`: a request's seq that is not delivered if the window refused it (OVERLOADED).
 */
async function allDelivered(r: Rig, last: number, refused = 0): Promise<void> {
  await waitFor(() => r.seqs.at(-1) === last, {
    timeout: 60_000,
    message: `seq ${last} was never delivered`,
  });
  const expected: number[] = [];
  for (let seq = 1; seq <= last; seq++) {
    if (seq !== refused || r.seqs.includes(seq)) expected.push(seq);
  }
  assert.equal(r.seqs.length, expected.length, 'a message was delivered twice or lost');
  for (let i = 0; i < expected.length; i++) {
    if (r.seqs[i] !== expected[i])
      assert.fail(`delivery ${i} was seq ${r.seqs[i]}, not ${expected[i]}`);
  }
  await waitFor(() => r.peer.frames.some((f) => f.type === FrameType.ACK && f.seq === last), {
    timeout: 30_000,
    message: `seq ${last} was never acknowledged`,
  });
}

describe('a flood of empty messages while the session store is frozen', { skip }, () => {
  test('the journal queue charges each message its overhead and stops reading at the cap', async (t) => {
    const r = await rig(t, 20_000);
    // One message committed and acknowledged: the session is in the store.
    r.peer.socket.write(encodeData(1, Buffer.from('first')));
    await waitFor(() => r.peer.frames.some((f) => f.type === FrameType.ACK && f.seq === 1));

    r.redis.signal('SIGSTOP');
    const before = r.conn.traffic.bytesIn;
    const last = await flood(r.peer, 2);
    const read = r.conn.traffic.bytesIn - before;
    t.diagnostic(`sent ${last - 1} empty frames (${(last - 1) * 13} B); the server read ${read} B`);
    assert.ok(read < READ_BOUND, `the server read ${read} bytes while the store was frozen`);
    assert.equal(r.seqs.length, 1, 'nothing is delivered before its commit');

    r.redis.signal('SIGCONT');
    await allDelivered(r, last);
  });

  test('the queue behind a pending idempotency decision charges each message its overhead', async (t) => {
    // The journal gives up on the frozen store after 300 ms and serves the session
    // locally; the window's own call waits up to its 2 s timeout.
    const r = await rig(t, 300);
    r.peer.socket.write(encodeData(1, Buffer.from('first')));
    await waitFor(() => r.peer.frames.some((f) => f.type === FrameType.ACK && f.seq === 1));

    r.redis.signal('SIGSTOP');
    r.peer.socket.write(encodeData(2, Buffer.from('degraded')));
    await waitFor(() => r.seqs.length === 2, {
      timeout: 10_000,
      message: 'the journal never served the session locally',
    });
    r.peer.socket.write(encodeRequest(3, Buffer.from('key-1'), Buffer.from('ask')));
    await sleep(50);
    const before = r.conn.traffic.bytesIn;
    const last = await flood(r.peer, 4);
    const read = r.conn.traffic.bytesIn - before;
    t.diagnostic(`sent ${last - 3} empty frames behind the request; the server read ${read} B`);
    // The gate pauses at 1 MiB: 6,553 empty messages, 85 KB of frames, plus a read.
    assert.ok(read < 1024 * 1024, `the server read ${read} bytes behind the decision`);
    assert.equal(r.seqs.length, 2, 'nothing behind the request is delivered before it');

    r.redis.signal('SIGCONT');
    await allDelivered(r, last, 3);
    const reply = r.peer.frames.find((f) => f.type === FrameType.REPLY);
    assert.ok(reply, 'the request was answered');
  });
});
