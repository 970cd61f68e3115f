/**
 * Slowloris and over-size frames: sockets that never send HELLO, or send it one byte a
 * second, are closed with CLOSE(HANDSHAKE_TIMEOUT) at the handshake deadline (an absolute
 * one: a trickle does not extend it), an announced length above maxFrame is refused from
 * its 4 header bytes, a frame trickled after the handshake is cut by the minimum data
 * rate, and a client already connected, or connecting meanwhile, does not notice any of it.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StateChange } from '../../src/health/index.js';
import type { CloseInfo } from '../../src/link.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { encodeData } from '../../src/protocol/codec.js';
import { FrameType } from '../../src/protocol/frames.js';
import type { RejectEvent } from '../../src/server/server.js';
import { helloBytes, opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

const HANDSHAKE_TIMEOUT = 1500;

test('silent sockets and a HELLO sent one byte a second are closed at the handshake timeout; other clients are unaffected', async (t) => {
  const { server, port } = await startServer(t, {
    interval: 200,
    timeout: 600,
    handshakeTimeout: HANDSHAKE_TIMEOUT,
  });
  server.on('connection', (conn) => conn.on('message', (m) => conn.send(m)));
  const rejected: Array<RejectEvent & { at: number }> = [];
  server.on('rejected', (e) => rejected.push({ ...e, at: performance.now() }));

  // A client connected before the attack keeps exchanging messages throughout.
  const client = startClient(t, { port });
  await opened(client);
  const changes: StateChange[] = [];
  client.on('state', (c) => changes.push(c));
  const echoed: number[] = [];
  client.on('message', (m) => echoed.push(Number(m.toString())));
  let sent = 0;
  const pump = setInterval(() => client.send(String(++sent)), 20);
  t.after(() => clearInterval(pump));

  const started = performance.now();
  const silent = await Promise.all(Array.from({ length: 50 }, () => RawPeer.connect(t, port)));
  const trickler = await RawPeer.connect(t, port);
  const hello = helloBytes({ clientId: 'slow' });
  let trickled = 0;
  const trickle = setInterval(() => {
    if (trickler.closed || trickled >= hello.length) return;
    trickler.socket.write(hello.subarray(trickled, trickled + 1));
    trickled++;
  }, 1000);
  trickle.unref();
  t.after(() => clearInterval(trickle));
  trickler.socket.write(hello.subarray(0, 1));
  trickled = 1;

  // A client connecting during the attack gets in at once.
  const late = startClient(t, { port });
  const lateStart = performance.now();
  await opened(late);
  assert.ok(performance.now() - lateStart < 1000, 'a new client is not held up');

  const peers = [...silent, trickler];
  await waitFor(() => peers.every((p) => p.closed), { timeout: HANDSHAKE_TIMEOUT + 5000 });
  const elapsed = performance.now() - started;
  assert.ok(trickled < 5, `the trickle did not extend the deadline (${trickled} bytes sent)`);
  for (const p of peers) {
    assert.equal(p.frames.length, 1, 'exactly one frame: the CLOSE');
    const f = p.frames[0]!;
    assert.ok(f.type === FrameType.CLOSE && f.code === CloseCode.HANDSHAKE_TIMEOUT);
  }
  await waitFor(() => rejected.length === peers.length);
  for (const r of rejected) {
    assert.equal(r.info.reason, 'handshake-timeout');
    assert.equal(r.info.error?.code, 'HL_ERR_HANDSHAKE_TIMEOUT');
    const after = r.at - started;
    assert.ok(after >= HANDSHAKE_TIMEOUT - 50 && after < HANDSHAKE_TIMEOUT + 2000, `${after} ms`);
  }
  assert.ok(elapsed < HANDSHAKE_TIMEOUT + 2500);

  // The connected client never left 'healthy', and every message came back.
  clearInterval(pump);
  await waitFor(() => echoed.length === sent);
  assert.deepEqual(
    echoed,
    Array.from({ length: sent }, (_, i) => i + 1),
  );
  assert.deepEqual(changes, [], 'no state change on the client connected before the attack');
  assert.equal(server.connections.size, 2);
});

test('a length prefix above maxFrame is refused from its 4 header bytes with CLOSE(frame too large)', async (t) => {
  const maxFrame = 4096;
  const { server, port } = await startServer(t, { maxFrame, handshakeTimeout: 10_000 });
  const rejected: RejectEvent[] = [];
  server.on('rejected', (e) => rejected.push(e));
  for (const when of ['before HELLO', 'after HELLO'] as const) {
    const peer = await RawPeer.connect(t, port);
    if (when === 'after HELLO') await peer.handshake();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(maxFrame + 1);
    // Only the header: the server must not wait for (or buffer) the body.
    peer.socket.write(header);
    await waitFor(() => peer.closed, { message: `${when}: not closed` });
    const close = peer.frames.find((f) => f.type === FrameType.CLOSE);
    assert.ok(close && close.type === FrameType.CLOSE && close.code === CloseCode.FRAME_TOO_LARGE);
  }
  await waitFor(() => rejected.length === 1);
  assert.equal(rejected[0]!.info.reason, 'frame-too-large');
  assert.equal(rejected[0]!.info.error?.code, 'HL_ERR_FRAME_TOO_LARGE');
  // The second peer had a session: FRAME_TOO_LARGE is final (PROTOCOL.md 2), so the
  // session is discarded rather than kept for a resume that would resend the same frame.
  await waitFor(() => server.connections.size === 0, { message: 'the session was kept' });
  const next = await RawPeer.connect(t, port);
  const welcome = await next.handshake();
  assert.equal(welcome.type, FrameType.WELCOME, 'the server keeps serving');
});

test('a frame trickled after the handshake is cut by the minimum data rate although its bytes keep the heartbeat alive; a slow honest frame and a bystander are served', async (t) => {
  const PARTIAL = 1000;
  const { server, port } = await startServer(t, {
    interval: 200,
    timeout: 600,
    partialFrameTimeout: PARTIAL,
    minDataRate: 1024,
  });
  const received = new Map<string, Buffer[]>();
  const disconnects = new Map<string, CloseInfo>();
  server.on('connection', (conn) => {
    received.set(conn.clientId, []);
    conn.on('message', (m) => {
      received.get(conn.clientId)!.push(Buffer.from(m));
      if (conn.clientId === '') conn.send(m);
    });
    conn.on('disconnect', (info) => disconnects.set(conn.clientId, info));
  });

  // The bystander: a real client echoing messages throughout.
  const client = startClient(t, { port });
  await opened(client);
  const changes: StateChange[] = [];
  client.on('state', (c) => changes.push(c));
  const echoed: number[] = [];
  client.on('message', (m) => echoed.push(Number(m.toString())));
  let sent = 0;
  const pump = setInterval(() => client.send(String(++sent)), 20);
  t.after(() => clearInterval(pump));

  // The trickler announces a 1,000-byte DATA frame and sends one byte of it every 150 ms:
  // each byte is heard within the 600 ms heartbeat timeout, so only the rate cuts it.
  const trickler = await RawPeer.connect(t, port);
  await trickler.handshake({ clientId: 'trickler' });
  const frame = encodeData(1, Buffer.alloc(995, 7));
  const started = performance.now();
  let trickled = 0;
  const trickle = setInterval(() => {
    if (trickler.closed || trickled >= frame.length) return;
    trickler.socket.write(frame.subarray(trickled, trickled + 1));
    trickled++;
  }, 150);
  t.after(() => clearInterval(trickle));

  // The honest one sends a 64 KiB frame at about 40 KB/s: 1.6 s, past partialFrameTimeout,
  // but above the minimum rate all along.
  const honest = await RawPeer.connect(t, port);
  await honest.handshake({ clientId: 'honest' });
  const big = encodeData(1, Buffer.alloc(64 * 1024, 9));
  let offset = 0;
  const feed = setInterval(() => {
    if (honest.closed || offset >= big.length) return;
    honest.socket.write(big.subarray(offset, offset + 2048));
    offset += 2048;
  }, 50);
  t.after(() => clearInterval(feed));

  await waitFor(() => trickler.closed, { timeout: PARTIAL + 5000, message: 'trickler not cut' });
  const cutAfter = performance.now() - started;
  assert.ok(
    cutAfter >= PARTIAL - 50,
    `outlived the heartbeat timeout, cut by the rate (${cutAfter} ms)`,
  );
  assert.ok(cutAfter < PARTIAL + 3000, `${cutAfter} ms`);
  const close = trickler.frames.find((f) => f.type === FrameType.CLOSE);
  assert.ok(close && close.type === FrameType.CLOSE && close.code === CloseCode.PROTOCOL_ERROR);
  await waitFor(() => disconnects.has('trickler'));
  const info = disconnects.get('trickler')!;
  assert.equal(info.reason, 'protocol-error');
  assert.equal(info.error?.code, 'HL_ERR_SLOW_FRAME');
  assert.deepEqual(received.get('trickler'), []);

  await waitFor(() => (received.get('honest')?.length ?? 0) === 1, { timeout: 10_000 });
  assert.equal(received.get('honest')![0]!.length, 64 * 1024);
  assert.ok(!honest.closed, 'the slow honest sender is not cut');
  assert.ok(!disconnects.has('honest'));

  clearInterval(pump);
  await waitFor(() => echoed.length === sent);
  assert.deepEqual(
    echoed,
    Array.from({ length: sent }, (_, i) => i + 1),
  );
  assert.deepEqual(changes, [], 'no state change on the bystander');
});

test('a client asking for a 20-minute heartbeat timeout is granted maxTimeout at most', async (t) => {
  const { server, port } = await startServer(t, { maxTimeout: 250_000 });
  const greedy = await RawPeer.connect(t, port);
  const welcome = await greedy.handshake({ interval: 120_000, timeout: 1_200_000 });
  assert.ok(welcome.type === FrameType.WELCOME);
  assert.equal(welcome.interval, 120_000);
  assert.equal(welcome.timeout, 250_000);
  // The default: 5 minutes.
  const { port: port2 } = await startServer(t);
  const other = await RawPeer.connect(t, port2);
  const w2 = await other.handshake({ interval: 120_000, timeout: 1_200_000 });
  assert.ok(w2.type === FrameType.WELCOME && w2.timeout === 300_000);
  assert.equal(server.policy.maxTimeout, 250_000);
});
