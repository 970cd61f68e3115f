/**
 * The core over real loopback sockets: handshake, messages both ways, heartbeats and
 * RTT, and each way a link can end (frozen peer, FIN, RST, garbage).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { encodePing } from '../../src/protocol/codec.js';
import { FrameType } from '../../src/protocol/frames.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { linkOf } from '../../src/testing.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor } from '../support/wait.js';

const INTERVAL = 200;
const TIMEOUT = 600;
/** The bound the core issue sets for a frozen peer: [timeout, timeout + interval + 250 ms]. */
const UPPER = TIMEOUT + INTERVAL + 250;

test('messages flow both ways, in order, with RTT from heartbeats', async (t) => {
  const { server, port } = await startServer(t, { interval: INTERVAL, timeout: TIMEOUT });
  const serverSide: Promise<ServerConnection> = new Promise((r) => server.once('connection', r));
  const client = startClient(t, { port });
  await opened(client);
  const conn = await serverSide;
  assert.equal(conn.sessionId, client.sessionId);
  assert.deepEqual(client.settings, { interval: INTERVAL, timeout: TIMEOUT, suspectAfter: 300 });

  const atServer: string[] = [];
  const atClient: string[] = [];
  conn.on('message', (m) => {
    atServer.push(m.toString());
    conn.send(`echo:${m.toString()}`);
  });
  client.on('message', (m) => atClient.push(m.toString()));
  for (let i = 0; i < 100; i++) client.send(`m${i}`);
  await waitFor(() => atClient.length === 100);
  assert.deepEqual(
    atServer,
    Array.from({ length: 100 }, (_, i) => `m${i}`),
  );
  assert.deepEqual(
    atClient,
    atServer.map((m) => `echo:${m}`),
  );
  await waitFor(() => client.unackedCount === 0 && conn.unackedCount === 0);

  // Idle now: heartbeats flow and give RTT samples on both ends.
  await waitFor(() => client.rtt !== undefined && conn.rtt !== undefined, { timeout: 3000 });
  assert.ok(client.rtt! >= 0 && client.rtt! < 100, `client rtt ${client.rtt}`);
  assert.equal(client.state, 'healthy');

  const closed = onceEvent(conn, 'close');
  client.close();
  const [info] = (await closed) as [{ reason: string; code: number }];
  assert.equal(info.reason, 'remote');
  assert.equal(info.code, CloseCode.NORMAL);
  assert.equal(server.connections.size, 0);
});

test('a busy link sends no heartbeats', async (t) => {
  const { server, port } = await startServer(t, { interval: INTERVAL, timeout: TIMEOUT });
  const serverSide: Promise<ServerConnection> = new Promise((r) => server.once('connection', r));
  const client = startClient(t, { port });
  await opened(client);
  const conn = await serverSide;
  conn.on('message', (m) => conn.send(m));
  const beat = linkOf(client).beat;
  assert.ok(beat, 'the client link runs no heartbeat');
  const before = beat.stats.pingsSent;
  // Two full intervals of continuous traffic in both directions.
  const end = performance.now() + 2 * INTERVAL;
  let sent = 0;
  while (performance.now() < end) {
    client.send(`x${sent++}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(beat.stats.pingsSent, before, 'the client pinged although it was sending');
});

test('a frozen peer (socket open, no reads, no writes) is DEAD within [timeout, timeout + interval + 250 ms]', async (t) => {
  const { server, port } = await startServer(t, { interval: INTERVAL, timeout: TIMEOUT });
  const serverSide: Promise<ServerConnection> = new Promise((r) => server.once('connection', r));
  const peer = await RawPeer.connect(t, port);
  const welcome = await peer.handshake();
  assert.equal(welcome.type, FrameType.WELCOME);
  const conn = await serverSide;
  const states: string[] = [];
  conn.on('state', (c) => states.push(c.to));
  // Send one last frame, then freeze: the server last heard us at `frozenAt`.
  peer.socket.write(encodePing(1, 1));
  const frozenAt = performance.now();
  peer.freeze();
  const [info] = (await onceEvent(conn, 'disconnect', { timeout: 5000 })) as [{ reason: string }];
  const elapsed = performance.now() - frozenAt;
  assert.equal(info.reason, 'heartbeat-timeout');
  assert.deepEqual(states, ['suspect', 'dead', 'disconnected']);
  assert.ok(elapsed >= TIMEOUT && elapsed <= UPPER, `detected after ${elapsed.toFixed(0)} ms`);
});

test('FIN is "eof" at once, RST is "reset" at once', async (t) => {
  const { server, port } = await startServer(t, { interval: 1000, timeout: 3000 });
  for (const [cut, expected] of [
    ['fin', 'eof'],
    ['rst', 'reset'],
  ] as const) {
    const serverSide: Promise<ServerConnection> = new Promise((r) => server.once('connection', r));
    const peer = await RawPeer.connect(t, port);
    await peer.handshake();
    const conn = await serverSide;
    const lost = onceEvent(conn, 'disconnect', { timeout: 500 });
    const at = performance.now();
    if (cut === 'fin') peer.socket.end();
    else peer.socket.resetAndDestroy();
    const [info] = (await lost) as [{ reason: string }];
    assert.equal(info.reason, expected);
    assert.ok(performance.now() - at < 500);
    assert.equal(conn.state, 'disconnected');
  }
});

test('garbage bytes close that connection with protocol-error; others are served', async (t) => {
  const { server, port } = await startServer(t, { interval: 1000, timeout: 3000 });
  const rejected = onceEvent(server, 'rejected');
  const bad = await RawPeer.connect(t, port);
  bad.socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  const [event] = (await rejected) as [{ info: { reason: string; code: number } }];
  assert.equal(event.info.reason, 'frame-too-large');
  await waitFor(() => bad.closed);
  const close = bad.frames.find((f) => f.type === FrameType.CLOSE);
  assert.ok(close && close.type === FrameType.CLOSE);
  assert.equal(close.code, CloseCode.FRAME_TOO_LARGE);

  const rejected2 = onceEvent(server, 'rejected');
  const bad2 = await RawPeer.connect(t, port);
  bad2.socket.write(Buffer.from([0, 0, 0, 2, 0x7f, 0]));
  const [event2] = (await rejected2) as [{ info: { reason: string } }];
  assert.equal(event2.info.reason, 'protocol-error');

  const client = startClient(t, { port });
  await opened(client);
  const echoed = onceEvent(client, 'message');
  server.connections.get([...server.connections.keys()][0]!)!.send('still serving');
  const [msg] = (await echoed) as [Buffer];
  assert.equal(msg.toString(), 'still serving');
});
