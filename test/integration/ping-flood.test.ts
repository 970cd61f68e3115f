/**
 * Heartbeat-flood enforcement over real sockets: a peer pinging in a loop gets
 * CLOSE(POLICY_VIOLATION) and its session ends at once, while a real client whose path
 * stalls (so that it suspects the server, probes every quarter interval, and has all its
 * probes delivered at once when the path heals) is never closed for it.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createChaosProxy } from '../../src/chaos/proxy.js';
import type { CloseInfo } from '../../src/link.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { encodePing } from '../../src/protocol/codec.js';
import { FrameType } from '../../src/protocol/frames.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor } from '../support/wait.js';

test('a peer that pings in a loop gets CLOSE(policy violation) and its session ends at once', async (t) => {
  const { server, port } = await startServer(t, { interval: 1000, timeout: 3000 });
  const conns: ServerConnection[] = [];
  server.on('connection', (c) => conns.push(c));
  const peer = await RawPeer.connect(t, port);
  const welcome = await peer.handshake();
  assert.equal(welcome.type, FrameType.WELCOME);
  await waitFor(() => conns.length === 1);
  const conn = conns[0]!;
  const closed = onceEvent(conn, 'close', { timeout: 10_000 });
  const lost = onceEvent(conn, 'session-lost', { timeout: 10_000 });
  conn.send('unacknowledged');

  let seq = 0;
  while (!peer.closed && !peer.ended && seq < 100_000) {
    peer.socket.write(encodePing(++seq, 1));
    if (seq % 10 === 0) await new Promise((r) => setImmediate(r));
  }
  const [info] = (await closed) as [CloseInfo];
  assert.equal(info.reason, 'policy-violation');
  assert.equal(info.code, CloseCode.POLICY_VIOLATION);
  assert.equal(info.error?.code, 'HL_ERR_POLICY_VIOLATION');
  const [event] = (await lost) as [{ unacked: Buffer[] }];
  assert.deepEqual(
    event.unacked.map((b) => b.toString()),
    ['unacknowledged'],
    'what the client never acknowledged is handed back',
  );
  assert.equal(server.connections.size, 0, 'the session ended at once, no TTL wait');

  await waitFor(() => peer.frames.some((f) => f.type === FrameType.CLOSE), { timeout: 5000 });
  const close = peer.frames.find((f) => f.type === FrameType.CLOSE)!;
  assert.ok(close.type === FrameType.CLOSE && close.code === CloseCode.POLICY_VIOLATION);
  const pongs = peer.frames.filter((f) => f.type === FrameType.PONG).length;
  // The allowance for a 1 s / 3 s grant is 14 PINGs, then 3 strikes (PINGs may be
  // answered while the server catches up on the buffered flood, but not many).
  assert.ok(pongs <= 14 + 3, `${pongs} PONGs before the close`);
});

test('maxPingStrikes: 0 turns policing off', async (t) => {
  const { port } = await startServer(t, { interval: 1000, timeout: 3000, maxPingStrikes: 0 });
  const peer = await RawPeer.connect(t, port);
  await peer.handshake();
  for (let seq = 1; seq <= 500; seq++) peer.socket.write(encodePing(seq, 1));
  await waitFor(() => peer.frames.filter((f) => f.type === FrameType.PONG).length === 500);
  assert.equal(peer.closed, false);
  assert.ok(!peer.frames.some((f) => f.type === FrameType.CLOSE));
});

test('a real client that suspects the server and probes, with its probes delivered in bursts, is never closed for pinging', async (t) => {
  const interval = 200;
  const timeout = 1000;
  const { server, port } = await startServer(t, { interval, timeout, sessionTtl: 30_000 });
  const proxy = await createChaosProxy({ target: { host: '127.0.0.1', port } });
  t.after(() => proxy.close());
  const serverCloses: CloseInfo[] = [];
  const serverDisconnects: CloseInfo[] = [];
  let sessions = 0;
  server.on('connection', (conn) => {
    sessions++;
    conn.on('disconnect', (i) => serverDisconnects.push(i));
    conn.on('close', (i) => serverCloses.push(i));
  });
  const client = startClient(t, { port: proxy.port, backoff: { initialDelay: 10, maxDelay: 50 } });
  const clientDisconnects: CloseInfo[] = [];
  client.on('disconnect', (i) => clientDisconnects.push(i));
  await opened(client);
  const probesBefore = client.heartbeatStats.probes;
  let suspected = 0;
  client.on('state', (s) => {
    if (s.to === 'suspect') suspected++;
  });

  for (let round = 0; round < 3; round++) {
    // Server -> client stalls: the client suspects after 300 ms and probes every 50 ms,
    // and the server receives every probe.
    proxy.freeze('down');
    await new Promise((r) => setTimeout(r, 650));
    proxy.heal('down');
    await new Promise((r) => setTimeout(r, 400));
    // Both ways stall: the client's probes pile up in the proxy and arrive at once.
    proxy.freeze('both');
    await new Promise((r) => setTimeout(r, 650));
    proxy.heal('both');
    await new Promise((r) => setTimeout(r, 400));
  }
  await waitFor(() => client.state === 'healthy');
  assert.ok(suspected >= 3, `the client suspected the server ${suspected} times`);
  assert.ok(client.heartbeatStats.probes - probesBefore >= 15, 'the client probed');
  const all = [...serverCloses, ...serverDisconnects, ...clientDisconnects];
  assert.ok(
    all.every((i) => i.reason !== 'policy-violation'),
    JSON.stringify(all.map((i) => i.reason)),
  );
  assert.equal(client.closed, false);
  assert.equal(sessions, 1, 'one session throughout');
  assert.deepEqual(serverCloses, []);
});
