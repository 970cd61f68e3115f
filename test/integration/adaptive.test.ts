/**
 * The adaptive heartbeat over real loopback sockets: a heartbeat budget stretches every
 * interval and tells connected clients with SETTINGS, new clients are granted the
 * stretched values, the interval shrinks back when clients leave, a tightening never
 * kills a client that is still on its old schedule, and the per-connection policy hook.
 */

import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { test } from 'node:test';
import type { ClientConnection } from '../../src/client/client.js';
import { heartbeatSettings } from '../../src/options.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { type Frame, FrameType } from '../../src/protocol/frames.js';
import type { RetuneEvent } from '../../src/server/adaptive.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

test('a budget of 20/s stretches 50 clients at 1 s to >= 2.5 s in-band, and shrinks back', async (t) => {
  const { server, port } = await startServer(t, {
    interval: 1000,
    timeout: 3000,
    maxHeartbeatsPerSecond: 20,
  });
  const retunes: RetuneEvent[] = [];
  server.on('retune', (e) => retunes.push(e));
  const clients: ClientConnection[] = [];
  for (let i = 0; i < 50; i++) clients.push(startClient(t, { port }));
  await Promise.all(clients.map((c) => opened(c, 10_000)));
  const drops: string[] = [];
  for (const c of clients) c.on('disconnect', (i) => drops.push(`${c.id}: ${i.reason}`));

  // Each client learns the new interval from a SETTINGS frame.
  await waitFor(() => clients.every((c) => (c.settings?.interval ?? 0) >= 2500), {
    timeout: 10_000,
    message: 'clients did not get the stretched interval',
  });
  assert.equal(retunes.length, 1);
  const up = retunes[0]!;
  assert.equal(up.from, 1);
  assert.ok(up.to >= 2.5, `factor ${up.to}`);
  assert.equal(up.connections, 50);
  assert.equal(up.budget, 20);
  const stretched = clients[0]!.settings!;
  assert.equal(stretched.interval, up.interval);
  assert.equal(stretched.timeout, Math.round(3000 * (stretched.interval / 1000)));
  for (const c of clients) assert.deepEqual(c.settings, stretched);
  const load = server.heartbeatLoad;
  assert.equal(load.connections, 50);
  assert.ok(load.rate <= 20, `rate ${load.rate}`);

  // A newcomer is granted the stretched values in its WELCOME.
  const newcomer = startClient(t, { port });
  await opened(newcomer);
  assert.equal(newcomer.settings?.interval, stretched.interval);

  // Most clients leave: the interval shrinks back, again in-band, and nobody is cut off
  // by the tighter timeout while its old, slower schedule was still running.
  for (const c of clients.slice(0, 41)) c.close();
  const stay = [...clients.slice(41), newcomer];
  await waitFor(() => stay.every((c) => c.settings?.interval === 1000), {
    timeout: 10_000,
    message: 'the interval did not shrink back',
  });
  assert.equal(retunes.length, 2);
  assert.equal(retunes[1]!.to, 1);
  assert.equal(server.heartbeatLoad.factor, 1);
  for (const c of stay) assert.equal(c.state, 'healthy');
  // Stay connected for more than the new timeout: the shrink must not kill anyone.
  await new Promise((r) => setTimeout(r, 3500));
  assert.deepEqual(drops, []);
  for (const c of stay) assert.equal(c.state, 'healthy');
});

test('a tighter retune judges the client by the old timeout until it can have learned the new one', async (t) => {
  const clock = new FakeClock();
  const { server, port } = await startServer(t, {
    clock,
    interval: 2000,
    timeout: 10_000,
    load: { sampleInterval: 0 },
  });
  const serverSide: Promise<ServerConnection> = new Promise((r) => server.once('connection', r));
  const peer = await RawPeer.connect(t, port);
  const welcome = await peer.handshake();
  assert.equal(welcome.type, FrameType.WELCOME);
  const conn = await serverSide;
  // The peer stays silent (it neither pings nor answers).
  clock.advance(3000);
  assert.equal(conn.state, 'suspect');
  conn.retune(heartbeatSettings(1000, 2000));
  assert.notEqual(conn.state, 'dead', 'killed by a timeout the client has not heard of yet');
  await waitFor(() => peer.frames.some((f: Frame) => f.type === FrameType.SETTINGS));
  const settings = peer.frames.find((f) => f.type === FrameType.SETTINGS);
  assert.deepEqual(settings, { type: FrameType.SETTINGS, interval: 1000, timeout: 2000 });
  assert.equal(conn.settings?.timeout, 2000);
  clock.advance(6990); // 9,990 ms of silence: within the old timeout
  assert.equal(conn.state, 'suspect');
  clock.advance(20); // past the old timeout
  assert.equal(conn.state, 'dead');
});

test('heartbeatPolicy sets the interval per connection, and refreshHeartbeat changes it in-band', async (t) => {
  const vip = new Set(['vip']);
  const { server, port } = await startServer(t, {
    interval: 1000,
    timeout: 3000,
    maxInterval: 20_000,
    heartbeatPolicy: (conn, base) =>
      vip.has(conn.clientId) ? base : { interval: base.interval * 5, timeout: base.timeout * 5 },
  });
  const conns = new Map<string, ServerConnection>();
  server.on('connection', (c) => conns.set(c.clientId, c));
  const important = startClient(t, { port, clientId: 'vip' });
  const idle = startClient(t, { port, clientId: 'idle' });
  await Promise.all([opened(important), opened(idle)]);
  assert.equal(important.settings?.interval, 1000);
  assert.deepEqual([idle.settings?.interval, idle.settings?.timeout], [5000, 15_000]);

  // The idle one starts to matter: the application asks the hook again.
  vip.add('idle');
  assert.equal(server.refreshHeartbeat(conns.get('idle')!), true);
  await waitFor(() => idle.settings?.interval === 1000);
  assert.equal(idle.settings?.timeout, 3000);
  assert.equal(conns.get('idle')!.settings?.interval, 1000);
  assert.equal(idle.state, 'healthy');
});

test('a throwing heartbeatPolicy refuses that client with CLOSE(internal error) and keeps no session', async (t) => {
  const { server, port } = await startServer(t, {
    heartbeatPolicy: (conn) => {
      if (conn.clientId === 'bad') throw new Error('policy bug');
      return undefined;
    },
  });
  const rejected: string[] = [];
  server.on('rejected', (e) => rejected.push(`${e.info.reason}: ${e.info.error?.code}`));
  const bad = await RawPeer.connect(t, port);
  const answer = await bad.handshake({ clientId: 'bad' });
  assert.deepEqual(
    { type: answer.type, code: (answer as { code?: number }).code },
    { type: FrameType.CLOSE, code: CloseCode.INTERNAL_ERROR },
  );
  await waitFor(() => rejected.length === 1);
  assert.deepEqual(rejected, ['internal-error: HL_ERR_INTERNAL']);
  assert.equal(server.connections.size, 0);
  assert.equal(server.admissionStats.sessions, 0);
  assert.equal(server.heartbeatLoad.connections, 0);
  const good = startClient(t, { port, clientId: 'good' });
  await opened(good);
  assert.equal(server.admissionStats.sessions, 1);
});

test('a lost link stops counting and its resume counts again, with no listener of ours on the connection', async (t) => {
  const { server, port } = await startServer(t, { interval: 1000, timeout: 3000 });
  const sockets: Socket[] = [];
  const client = startClient(t, {
    port,
    clientId: 'resumer',
    createSocket: (a) => {
      const s = netConnect({ host: a.host, port: a.port });
      sockets.push(s);
      return s;
    },
  });
  const onServer = new Promise<ServerConnection>((resolve) => server.on('connection', resolve));
  await opened(client);
  const conn = await onServer;
  // The server's bookkeeping (adaptive heartbeat, cluster presence) is called directly:
  // a connection the application does not listen to holds no listeners.
  assert.deepEqual(conn.eventNames(), []);
  assert.equal(server.heartbeatLoad.connections, 1);

  const events: string[] = [];
  conn.on('disconnect', () => events.push(`disconnect ${server.heartbeatLoad.connections}`));
  conn.on('open', (e) => events.push(`open resumed=${e.resumed}`));
  sockets[0]!.resetAndDestroy();
  await waitFor(() => events.length === 2 && conn.state === 'healthy', {
    timeout: 10_000,
    message: `the session did not resume: ${events.join(', ')}`,
  });
  // Forgotten before the application heard of the lost link; counted again on resume.
  assert.deepEqual(events, ['disconnect 0', 'open resumed=true']);
  assert.equal(server.heartbeatLoad.connections, 1);
  assert.ok(sockets.length >= 2);

  const closed = new Promise((resolve) => conn.once('close', resolve));
  client.close();
  await closed;
  assert.equal(server.heartbeatLoad.connections, 0);
});
