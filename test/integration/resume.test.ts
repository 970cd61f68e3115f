/**
 * Reconnect and resume: exactly-once, in-order delivery across links broken at random
 * (RST, FIN, freezes) through the fault-injecting proxy; session loss handing back
 * exactly the unacknowledged set; final reasons; GOING_AWAY and OVERLOADED handling.
 */

import assert from 'node:assert/strict';
import { createServer as netServer } from 'node:net';
import { test } from 'node:test';
import { createChaosProxy } from '../../src/chaos/proxy.js';
import type { ReconnectingEvent } from '../../src/connection.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { encodeClose } from '../../src/protocol/codec.js';
import { FrameType } from '../../src/protocol/frames.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { resetLink } from '../../src/testing.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { mulberry32 } from '../support/prng.js';
import { onceEvent, waitFor } from '../support/wait.js';

const FAST = { interval: 100, timeout: 300 };
const FAST_BACKOFF = { initialDelay: 10, maxDelay: 100 };

test('5,000 numbered messages each way arrive exactly once, in order, while the link breaks at random', async (t) => {
  const N = 5000;
  const { server, port } = await startServer(t, { ...FAST, sessionTtl: 60_000 });
  const proxy = await createChaosProxy({ target: { host: '127.0.0.1', port } });
  t.after(() => proxy.close());

  const atServer: number[] = [];
  const atClient: number[] = [];
  let serverConn: ServerConnection | null = null;
  let sessions = 0;
  server.on('connection', (conn) => {
    sessions++;
    serverConn = conn;
    conn.on('message', (m) => atServer.push(Number(m.toString())));
  });
  const client = startClient(t, {
    port: proxy.port,
    backoff: FAST_BACKOFF,
    maxBufferedBytes: 64 * 1024 * 1024,
    highWaterMark: 64 * 1024 * 1024,
  });
  let reconnects = 0;
  let resumes = 0;
  let lost = 0;
  client.on('reconnecting', () => reconnects++);
  client.on('resumed', () => resumes++);
  client.on('session-lost', () => lost++);
  client.on('message', (m) => atClient.push(Number(m.toString())));
  await opened(client);
  await waitFor(() => serverConn !== null);

  // Both directions stream about 500 messages a second for ten seconds, so that some
  // forty faults land mid-stream.
  let sentUp = 0;
  let sentDown = 0;
  const pump = setInterval(() => {
    for (let i = 0; i < 10 && sentUp < N; i++) client.send(String(++sentUp));
    for (let i = 0; i < 10 && sentDown < N; i++) serverConn!.send(String(++sentDown));
  }, 20);
  t.after(() => clearInterval(pump));

  const random = mulberry32(42);
  const faults = { reset: 0, fin: 0, freeze: 0, freezeUp: 0 };
  const done = () => atServer.length >= N && atClient.length >= N;
  const deadline = performance.now() + 60_000;
  while (!done() && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100 + random() * 300));
    if (done()) break;
    const pick = random();
    if (pick < 0.35) {
      faults.reset++;
      proxy.reset();
    } else if (pick < 0.65) {
      faults.fin++;
      proxy.fin();
    } else {
      // A freeze is only noticed by the heartbeat; then the client reconnects through a
      // healed proxy.
      const direction = pick < 0.85 ? 'both' : 'up';
      if (direction === 'both') faults.freeze++;
      else faults.freezeUp++;
      proxy.freeze(direction);
      await new Promise((r) => setTimeout(r, FAST.timeout + 100));
      proxy.heal(direction);
    }
  }
  clearInterval(pump);
  await waitFor(done, {
    timeout: 30_000,
    message: `up ${atServer.length}, down ${atClient.length}`,
  });
  await waitFor(() => client.unackedCount === 0 && serverConn!.unackedCount === 0, {
    timeout: 10_000,
  });

  const expected = Array.from({ length: N }, (_, i) => i + 1);
  assert.deepEqual(atServer, expected, 'client -> server sequence');
  assert.deepEqual(atClient, expected, 'server -> client sequence');
  assert.equal(lost, 0, 'no session was lost');
  assert.equal(sessions, 1, 'one session throughout');
  assert.ok(resumes > 0 && reconnects > 0);
  t.diagnostic(
    `faults ${JSON.stringify(faults)}; reconnects ${reconnects}; resumes ${resumes}; links ${client.stats.links}`,
  );
});

test('a server restart (in-memory store gone) gives "session-lost" with exactly the unacknowledged set', async (t) => {
  const first = await startServer(t, FAST);
  const client = startClient(t, { port: first.port, backoff: FAST_BACKOFF });
  await opened(client);
  client.send('acked-1');
  client.send('acked-2');
  await waitFor(() => client.unackedCount === 0);

  // The server dies without a word: every socket is reset.
  const disconnected = onceEvent(client, 'disconnect');
  for (const conn of first.server.connections.values()) {
    resetLink(conn);
  }
  await first.server.close();
  await disconnected;
  const pending = ['p1', 'p2', 'p3'];
  for (const m of pending) client.send(m);
  assert.equal(client.unackedCount, 3);

  const lost = onceEvent(client, 'session-lost', { timeout: 5000 });
  await startServer(t, FAST, first.port);
  const [event] = (await lost) as [{ unacked: Buffer[]; sessionId: string }];
  assert.deepEqual(
    event.unacked.map((b) => b.toString()),
    pending,
  );
  await waitFor(() => client.state === 'healthy');
  assert.notEqual(client.sessionId, event.sessionId, 'a fresh session follows');
  assert.equal(client.unackedCount, 0, 'the lost messages were handed back, not kept');
});

test('final close reasons stop reconnecting: auth failed, and a normal close by the server', async (t) => {
  const refusing = await startServer(t, { ...FAST, authenticate: () => false });
  const denied = startClient(t, { port: refusing.port, backoff: FAST_BACKOFF, auth: 'nope' });
  const retries: ReconnectingEvent[] = [];
  denied.on('reconnecting', (e) => retries.push(e));
  const [info] = (await onceEvent(denied, 'close')) as [{ reason: string; code: number }];
  assert.equal(info.reason, 'auth-failed');
  assert.equal(info.code, CloseCode.AUTH_FAILED);
  assert.equal(retries.length, 0);
  assert.equal(denied.state, 'closed');

  const { server, port } = await startServer(t, FAST);
  const serverSide: Promise<ServerConnection> = new Promise((r) => server.once('connection', r));
  const client = startClient(t, { port, backoff: FAST_BACKOFF });
  await opened(client);
  const conn = await serverSide;
  client.on('reconnecting', (e) => retries.push(e));
  const closed = onceEvent(client, 'close');
  conn.close(CloseCode.NORMAL, 'bye');
  const [normal] = (await closed) as [{ reason: string; message: string }];
  assert.equal(normal.reason, 'remote');
  assert.equal(normal.message, 'bye');
  assert.equal(retries.length, 0);
});

test('GOING_AWAY reconnects at once to another server; OVERLOADED waits at least retry-after', async (t) => {
  const a = await startServer(t, FAST);
  const b = await startServer(t, FAST);
  const client = startClient(t, {
    servers: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
    backoff: { initialDelay: 5000, maxDelay: 5000 },
  });
  await opened(client);
  const onA = a.server.connections.size === 1;
  const from = onA ? a : b;
  const to = onA ? b : a;
  const retry = onceEvent(client, 'reconnecting');
  const reopened = onceEvent(client, 'open', { timeout: 2000 });
  void from.server.close();
  const [event] = (await retry) as [ReconnectingEvent];
  assert.equal(event.reason, 'going-away');
  assert.equal(event.delayMs, 0);
  await reopened;
  assert.equal(to.server.connections.size, 1);

  // A server that answers every HELLO with CLOSE(overloaded, retry-after 400 ms).
  const overloaded = netServer((socket) => {
    socket.once('data', () => socket.end(encodeClose(CloseCode.OVERLOADED, 'busy', 400)));
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => overloaded.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => overloaded.close(() => r())));
  const port = (overloaded.address() as { port: number }).port;
  const busy = startClient(t, { port, backoff: { initialDelay: 1, maxDelay: 10 } });
  const [busyRetry] = (await onceEvent(busy, 'reconnecting')) as [ReconnectingEvent];
  assert.equal(busyRetry.reason, 'overloaded');
  assert.ok(busyRetry.delayMs >= 400, `waited ${busyRetry.delayMs} ms`);
  busy.close();
});

test('send() while disconnected buffers with backpressure: false past the high-water mark, drain, hard cap', async (t) => {
  const client = startClient(t, {
    port: 1, // nothing listens on port 1: the client stays disconnected
    backoff: { initialDelay: 50, maxDelay: 50 },
    // Each message counts its payload plus 160 bytes of overhead.
    highWaterMark: 400,
    maxBufferedBytes: 1000,
  });
  assert.equal(client.send(Buffer.alloc(60)), true);
  assert.equal(client.send(Buffer.alloc(60)), false, 'past the high-water mark');
  assert.equal(client.send(Buffer.alloc(100)), false);
  assert.throws(
    () => client.send(Buffer.alloc(200)),
    (err: { code?: string }) => err.code === 'HL_ERR_BUFFER_FULL',
  );
  assert.equal(client.bufferedBytes, 220, 'the refused message was not kept');
  assert.equal(client.bufferedMemory, 220 + 3 * 160);
});

test('drain follows once acknowledgements bring the buffer below the high-water mark', async (t) => {
  const { port } = await startServer(t, FAST);
  const client = startClient(t, { port, highWaterMark: 1000 });
  await opened(client);
  let ok = true;
  for (let i = 0; i < 20; i++) ok = client.send(Buffer.alloc(100));
  assert.equal(ok, false);
  await onceEvent(client, 'drain');
  await waitFor(() => client.bufferedBytes === 0);
});

test('max attempts: "give-up" hands back every unacknowledged message; circuit opens; failFast refuses', async (t) => {
  const client = startClient(t, {
    port: 1,
    backoff: { initialDelay: 5, maxDelay: 10 },
    maxAttempts: 3,
    circuitThreshold: 2,
  });
  const circuit: string[] = [];
  client.on('circuit', (s) => circuit.push(s));
  client.send('a');
  client.send('b');
  const [gaveUp] = (await onceEvent(client, 'give-up')) as [
    { attempts: number; unacked: Buffer[] },
  ];
  assert.equal(gaveUp.attempts, 3);
  assert.deepEqual(
    gaveUp.unacked.map((b) => b.toString()),
    ['a', 'b'],
  );
  assert.equal(client.state, 'closed');
  assert.ok(circuit.includes('open'), `circuit went ${circuit.join(',')}`);
  assert.ok(circuit.includes('half-open'));

  const fast = startClient(t, {
    port: 1,
    backoff: { initialDelay: 50, maxDelay: 50 },
    circuitThreshold: 1,
    failFast: true,
  });
  await waitFor(() => fast.circuit === 'open');
  assert.throws(
    () => fast.send('x'),
    (err: { code?: string }) => err.code === 'HL_ERR_CIRCUIT_OPEN',
  );
});

test('a newer connection resuming a session supersedes the older one', async (t) => {
  const { server, port } = await startServer(t, { interval: 1000, timeout: 3000 });
  const serverSide: Promise<ServerConnection> = new Promise((r) => server.once('connection', r));
  // The first link stays open (the server cannot tell it is half-open) while a second
  // connection resumes the same session with its token.
  const first = await RawPeer.connect(t, port);
  const welcome = await first.handshake();
  assert.equal(welcome.type, FrameType.WELCOME);
  if (welcome.type !== FrameType.WELCOME) return;
  const conn = await serverSide;
  const second = await RawPeer.connect(t, port);
  const resumed = await second.handshake({
    resume: { sessionId: welcome.sessionId, token: welcome.token, lastReceived: 0 },
  });
  assert.equal(resumed.type, FrameType.WELCOME);
  assert.equal(resumed.type === FrameType.WELCOME && resumed.resumed, true);
  await waitFor(() => first.closed);
  const close = first.frames.find((f) => f.type === FrameType.CLOSE);
  assert.equal(close?.type === FrameType.CLOSE && close.code, CloseCode.SUPERSEDED);
  assert.equal(server.connections.size, 1);
  assert.equal(conn.state, 'healthy');

  // A wrong token does not resume: the server starts a fresh session instead.
  const third = await RawPeer.connect(t, port);
  const fresh = await third.handshake({
    resume: { sessionId: welcome.sessionId, token: new Uint8Array(16), lastReceived: 0 },
  });
  assert.equal(fresh.type === FrameType.WELCOME && fresh.resumed, false);
  assert.equal(second.closed, false, 'the rightful owner keeps the session');
});
