/**
 * The wire rules that protocol 1.1 settles (PROTOCOL.md, "Changes"), checked by a raw peer
 * against the real server: nothing before WELCOME, even for frames pipelined behind HELLO;
 * a duplicate DATA is always acknowledged at once; DATA seq 0 is a protocol error; a wrong
 * token never touches the live session it names; a malformed CLOSE is answered like any
 * other malformed frame.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CloseInfo } from '../../src/link.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { encodeData } from '../../src/protocol/codec.js';
import { type CloseFrame, type Frame, FrameType } from '../../src/protocol/frames.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { helloBytes, RawPeer, startServer } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

const data = (seq: number, text = `m${seq}`): Buffer => encodeData(seq, Buffer.from(text));

const burst = (from: number, to: number): Buffer =>
  Buffer.concat(Array.from({ length: to - from + 1 }, (_, i) => data(from + i)));

const acks = (frames: Frame[]): number[] =>
  frames.filter((f) => f.type === FrameType.ACK).map((f) => (f as { seq: number }).seq);

const texts = (frames: Frame[]): string[] =>
  frames
    .filter((f) => f.type === FrameType.DATA)
    .map((f) => (f.type === FrameType.DATA ? Buffer.from(f.payload).toString() : ''));

function closeOf(peer: RawPeer): CloseFrame | undefined {
  return peer.frames.find((f): f is CloseFrame => f.type === FrameType.CLOSE);
}

for (const mode of ['without', 'with'] as const) {
  // Without a hook the handshake completes within the read of HELLO; with one it waits.
  test(`HELLO + DATA(1) + DATA(2) in one write (${mode} an authenticate hook): WELCOME comes first, then the ACK and the echoes`, async (t) => {
    const { server, port } = await startServer(
      t,
      mode === 'with' ? { authenticate: () => new Promise((r) => setTimeout(r, 20, true)) } : {},
    );
    server.on('connection', (conn) => conn.on('message', (m) => conn.send(m)));
    const peer = await RawPeer.connect(t, port);
    peer.socket.write(Buffer.concat([helloBytes(), data(1), data(2)]));
    await waitFor(() => texts(peer.frames).length === 2, { message: 'no echoes' });
    const frames = peer.frames.filter((f) => f.type !== FrameType.PING);
    assert.equal(frames[0]!.type, FrameType.WELCOME, `frames: ${frames.map((f) => f.type)}`);
    assert.deepEqual(texts(frames), ['m1', 'm2']);
    await waitFor(() => acks(peer.frames).includes(2));
    assert.equal(closeOf(peer), undefined);
  });
}

test('a second HELLO pipelined behind the first: WELCOME, then CLOSE(PROTOCOL_ERROR)', async (t) => {
  const { port } = await startServer(t);
  const peer = await RawPeer.connect(t, port);
  peer.socket.write(Buffer.concat([helloBytes(), helloBytes()]));
  await waitFor(() => closeOf(peer) !== undefined, { message: 'no CLOSE' });
  assert.deepEqual(
    peer.frames.map((f) => f.type),
    [FrameType.WELCOME, FrameType.CLOSE],
  );
  assert.equal(closeOf(peer)!.code, CloseCode.PROTOCOL_ERROR);
});

test('frames pipelined behind a HELLO that is refused are discarded: CLOSE(AUTH_FAILED) is all that comes back', async (t) => {
  const { server, port } = await startServer(t, {
    authenticate: () => new Promise((r) => setTimeout(r, 20, false)),
  });
  let delivered = 0;
  server.on('connection', (conn) => conn.on('message', () => delivered++));
  const rejected = new Promise((r) => server.once('rejected', r));
  const peer = await RawPeer.connect(t, port);
  peer.socket.write(Buffer.concat([helloBytes(), data(1), data(2)]));
  await waitFor(() => peer.closed, { message: 'the refused connection stayed open' });
  await rejected;
  assert.deepEqual(
    peer.frames.map((f) => f.type),
    [FrameType.CLOSE],
  );
  assert.equal(closeOf(peer)!.code, CloseCode.AUTH_FAILED);
  assert.equal(delivered, 0);
  assert.equal(server.connections.size, 0);
});

test('a duplicate resent after ACK(50) is acknowledged at once with ACK(50)', async (t) => {
  // A long ackDelay: an ACK that comes at all within the wait below did not wait for it.
  const { port } = await startServer(t, { ackDelay: 60_000 });
  const peer = await RawPeer.connect(t, port);
  await peer.handshake();
  peer.socket.write(burst(1, 50));
  await waitFor(() => acks(peer.frames).includes(50), { message: 'no ACK(50)' });
  const before = acks(peer.frames).length;
  const sent = performance.now();
  peer.socket.write(data(3, 'again'));
  await waitFor(() => acks(peer.frames).length > before, {
    timeout: 10_000,
    message: 'the duplicate got no ACK',
  });
  const took = performance.now() - sent;
  assert.equal(acks(peer.frames).at(-1), 50);
  t.diagnostic(`duplicate acknowledged after ${took.toFixed(1)} ms`);
  assert.equal(closeOf(peer), undefined);
});

test('duplicates resent after a resume are acknowledged at once', async (t) => {
  const { server, port } = await startServer(t, { ackDelay: 60_000, sessionTtl: 30_000 });
  const received: string[] = [];
  server.on('connection', (conn) => conn.on('message', (m) => received.push(m.toString())));
  const first = await RawPeer.connect(t, port);
  const welcome = await first.handshake();
  assert.equal(welcome.type, FrameType.WELCOME);
  if (welcome.type !== FrameType.WELCOME) return;
  first.socket.write(burst(1, 40)); // past ackEvery: acknowledged without the timer
  await waitFor(() => acks(first.frames).includes(40));
  first.socket.destroy();

  const second = await RawPeer.connect(t, port);
  const resumed = await second.handshake({
    resume: { sessionId: welcome.sessionId, token: welcome.token, lastReceived: 0 },
  });
  assert.ok(resumed.type === FrameType.WELCOME && resumed.resumed, 'the session resumed');
  // The client resends what it thinks was lost: 38..40 are duplicates.
  second.socket.write(burst(38, 40));
  await waitFor(() => acks(second.frames).length > 0, {
    timeout: 10_000,
    message: 'the duplicates got no ACK',
  });
  assert.equal(acks(second.frames)[0], 40);
  assert.equal(received.length, 40, 'the duplicates were not delivered again');
  assert.equal(closeOf(second), undefined);
});

test('DATA with seq 0 is a protocol error: CLOSE(PROTOCOL_ERROR), nothing delivered', async (t) => {
  const { server, port } = await startServer(t);
  const received: string[] = [];
  const lost = new Promise<CloseInfo>((r) =>
    server.on('connection', (conn) => {
      conn.on('message', (m) => received.push(m.toString()));
      conn.on('disconnect', r);
    }),
  );
  const peer = await RawPeer.connect(t, port);
  await peer.handshake();
  peer.socket.write(data(0, 'zero'));
  await waitFor(() => closeOf(peer) !== undefined, { message: 'no CLOSE' });
  assert.equal(closeOf(peer)!.code, CloseCode.PROTOCOL_ERROR);
  assert.match(closeOf(peer)!.reason, /seq 0/);
  assert.deepEqual(received, []);
  const info = await lost;
  assert.equal(info.error?.code, 'HL_ERR_UNEXPECTED_FRAME');
});

test('a resume with a wrong token for a live session gets a new session; the owner keeps its link', async (t) => {
  const { server, port } = await startServer(t, { sessionTtl: 30_000 });
  const conns: ServerConnection[] = [];
  server.on('connection', (conn) => {
    conns.push(conn);
    conn.on('message', (m) => conn.send(m));
  });
  const owner = await RawPeer.connect(t, port);
  const welcome = await owner.handshake();
  if (welcome.type !== FrameType.WELCOME) assert.fail('no WELCOME');
  owner.socket.write(data(1, 'before'));
  await waitFor(() => texts(owner.frames).includes('before'));

  const intruder = await RawPeer.connect(t, port);
  const answer = await intruder.handshake({
    resume: { sessionId: welcome.sessionId, token: Buffer.alloc(16, 7), lastReceived: 0 },
  });
  if (answer.type !== FrameType.WELCOME) assert.fail(`got frame type ${answer.type}`);
  assert.equal(answer.resumed, false);
  assert.notDeepEqual(Buffer.from(answer.sessionId), Buffer.from(welcome.sessionId));
  assert.equal(answer.lastReceived, 0);
  assert.equal(conns.length, 2, 'the intruder has a session of its own');

  // The owner was not superseded: its link carries on as before.
  owner.socket.write(data(2, 'after'));
  await waitFor(() => texts(owner.frames).includes('after'));
  assert.equal(closeOf(owner), undefined, 'the owner got no CLOSE');
  assert.equal(owner.closed, false);
  assert.equal(conns[0]!.stats.links, 1);
  assert.equal(conns[0]!.state, 'healthy');
});

for (const [what, frame] of [
  // length 3: type and a 2-byte code, no retryAfter
  ['truncated', Buffer.from([0, 0, 0, 3, 0x07, 0x03, 0xe8])],
  // code 1000, retryAfter 0, reason 0xff (not UTF-8)
  ['with an ill-formed reason', Buffer.from([0, 0, 0, 8, 0x07, 0x03, 0xe8, 0, 0, 0, 0, 0xff])],
] as const) {
  test(`a malformed CLOSE (${what}) is answered with CLOSE(PROTOCOL_ERROR), like any malformed frame`, async (t) => {
    const { server, port } = await startServer(t);
    const lost = new Promise<CloseInfo>((r) =>
      server.on('connection', (conn) => conn.on('disconnect', r)),
    );
    const peer = await RawPeer.connect(t, port);
    await peer.handshake();
    peer.socket.write(frame);
    await waitFor(() => closeOf(peer) !== undefined, { message: 'no CLOSE' });
    assert.equal(closeOf(peer)!.code, CloseCode.PROTOCOL_ERROR);
    const info = await lost;
    assert.equal(info.error?.code, 'HL_ERR_MALFORMED_FRAME');
  });
}
