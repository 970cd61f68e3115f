/**
 * Acknowledgements on the wire, seen by a raw peer: a server acknowledges once per write,
 * in front of the DATA it writes, with values that never decrease; a burst it does not
 * answer is acknowledged at the end of the chunk it arrived in.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeData } from '../../src/protocol/codec.js';
import { type Frame, FrameType } from '../../src/protocol/frames.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { RawPeer, startServer } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

const burst = (n: number): Buffer =>
  Buffer.concat(Array.from({ length: n }, (_, i) => encodeData(i + 1, Buffer.from(`m${i + 1}`))));

const acks = (frames: Frame[]): number[] =>
  frames.filter((f) => f.type === FrameType.ACK).map((f) => (f as { seq: number }).seq);

function assertIncreasing(values: number[]): void {
  for (let i = 1; i < values.length; i++) {
    assert.ok(values[i]! > values[i - 1]!, `ACK values decrease or repeat: ${values.join(', ')}`);
  }
}

test('an echoed burst: one ACK per write, in front of the echoes', async (t) => {
  const { server, port } = await startServer(t);
  const accepted: Promise<ServerConnection> = new Promise((r) => server.once('connection', r));
  server.on('connection', (conn) => conn.on('message', (m) => conn.send(m)));
  const peer = await RawPeer.connect(t, port);
  const welcome = await peer.handshake();
  assert.equal(welcome.type, FrameType.WELCOME);
  const conn = await accepted;
  const n = 20;
  peer.socket.write(burst(n));
  await waitFor(() => peer.frames.filter((f) => f.type === FrameType.DATA).length === n);
  await waitFor(() => conn.stats.messagesIn === n);

  const after = peer.frames.slice(1).filter((f) => f.type !== FrameType.PING);
  assert.equal(after[0]!.type, FrameType.ACK, 'the ACK comes before the echoes');
  const seen = acks(after);
  assertIncreasing(seen);
  assert.equal(seen.at(-1), n);
  // One write per chunk the server read: a 20-message burst arrives in one or two.
  assert.ok(seen.length <= 2, `${seen.length} ACKs for ${n} messages`);
  assert.deepEqual(
    after
      .filter((f) => f.type === FrameType.DATA)
      .map((f) => (f.type === FrameType.DATA ? Buffer.from(f.payload).toString() : '')),
    Array.from({ length: n }, (_, i) => `m${i + 1}`),
  );
});

test('a burst without replies is acknowledged at the end of its chunk, past ackEvery', async (t) => {
  const { server, port } = await startServer(t);
  const delivered: string[] = [];
  server.on('connection', (conn) => conn.on('message', (m) => delivered.push(m.toString())));
  const peer = await RawPeer.connect(t, port);
  await peer.handshake();
  const n = 40; // past the default ackEvery (32): acknowledged without waiting for ackDelay
  peer.socket.write(burst(n));
  await waitFor(() => acks(peer.frames).includes(n));
  assert.equal(delivered.length, n);
  const seen = acks(peer.frames);
  assertIncreasing(seen);
  assert.ok(seen.length <= 2, `${seen.length} ACKs for one burst: ${seen.join(', ')}`);
});
