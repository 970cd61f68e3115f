/**
 * Per-message acknowledgements: `send(data, onAck)` and `sendAcked(data, { signal })`.
 * A server played by hand decides exactly when each ACK goes out, so the test sees that a
 * callback fires once, in order, only after the ACK that covers its message; the real
 * server shows the same over a long run and a session loss (HL_ERR_SESSION_LOST, the
 * messages in 'session-lost'), and an AbortSignal stops the wait, not the message.
 */

import assert from 'node:assert/strict';
import { createServer as netServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { SessionLostEvent } from '../../src/connection.js';
import { HeartlineError } from '../../src/errors.js';
import { Decoder, encodeAck, encodePong } from '../../src/protocol/codec.js';
import { type Frame, FrameType } from '../../src/protocol/frames.js';
import { resetLink } from '../../src/testing.js';
import { opened, startClient, startServer, welcomeBytes } from '../support/peers.js';
import { onceEvent, waitFor, withTimeout } from '../support/wait.js';

const FAST = { interval: 100, timeout: 400 };
const FAST_BACKOFF = { initialDelay: 10, maxDelay: 100 };

/** A server played by hand: WELCOME to the HELLO, PONG to each PING, ACKs when told. */
interface HandServer {
  port: number;
  /** DATA payloads received, in order. */
  data: string[];
  /** The server end of the (first) connection, once there is one. */
  socket: Socket | null;
  ack(seq: number): void;
}

async function handServer(t: TestContext): Promise<HandServer> {
  const hand: HandServer = {
    port: 0,
    data: [],
    socket: null,
    ack(seq) {
      hand.socket?.write(encodeAck(seq));
    },
  };
  const sockets: Socket[] = [];
  const server = netServer((socket) => {
    sockets.push(socket);
    hand.socket ??= socket;
    const decoder = new Decoder();
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const f of frames) {
        if (f.type === FrameType.HELLO) socket.write(welcomeBytes());
        else if (f.type === FrameType.PING) socket.write(encodePong(f.seq, f.timestamp));
        else if (f.type === FrameType.DATA) hand.data.push(Buffer.from(f.payload).toString());
        else if (f.type === FrameType.CLOSE) socket.end();
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await onceEvent(server, 'listening');
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  hand.port = address.port;
  return hand;
}

test('send(data, onAck): each callback fires once, in order, only once an ACK covers its message', async (t) => {
  const hand = await handServer(t);
  const client = startClient(t, { port: hand.port, backoff: FAST_BACKOFF });
  await opened(client);
  const calls: Array<[number, Error | null]> = [];
  for (let i = 1; i <= 5; i++) {
    assert.equal(
      client.send(`m${i}`, (err) => calls.push([i, err])),
      true,
    );
  }
  await waitFor(() => hand.data.length === 5, { message: 'the messages never arrived' });
  // Delivered, not acknowledged: nothing is called yet.
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual([...calls], []);
  assert.equal(client.unackedCount, 5);

  hand.ack(2);
  await waitFor(() => calls.length === 2, { message: 'ACK(2) called nothing' });
  assert.deepEqual(
    [...calls],
    [
      [1, null],
      [2, null],
    ],
  );
  assert.equal(client.unackedCount, 3);
  hand.ack(5);
  await waitFor(() => calls.length === 5);
  assert.deepEqual(
    [...calls],
    [1, 2, 3, 4, 5].map((i) => [i, null]),
  );
  // An ACK that repeats changes nothing: no callback runs twice.
  hand.ack(5);
  client.send('m6', (err) => calls.push([6, err]));
  await waitFor(() => hand.data.length === 6);
  hand.ack(6);
  await waitFor(() => calls.length === 6);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    calls.map(([i]) => i),
    [1, 2, 3, 4, 5, 6],
  );
  assert.equal(client.state, 'healthy');
});

test('sendAcked resolves after the ACK, not before', async (t) => {
  const hand = await handServer(t);
  const client = startClient(t, { port: hand.port, backoff: FAST_BACKOFF });
  await opened(client);
  let settled = false;
  const acked = client.sendAcked('one').then(() => {
    settled = true;
  });
  await waitFor(() => hand.data.length === 1);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(settled, false, 'resolved before any ACK');
  hand.ack(1);
  await withTimeout(acked);
  assert.equal(settled, true);
  assert.equal(client.unackedCount, 0);
});

test('against the real server: 500 callbacks and sendAcked promises settle once each, each kind in send order', async (t) => {
  const { server, port } = await startServer(t, FAST);
  let received = 0;
  server.on('connection', (conn) => conn.on('message', () => received++));
  const client = startClient(t, { port });
  await opened(client);
  const order: number[] = [];
  const errors: unknown[] = [];
  const promises: Promise<void>[] = [];
  for (let i = 1; i <= 500; i++) {
    if (i % 5 === 0) promises.push(client.sendAcked(`m${i}`).then(() => void order.push(i)));
    else client.send(`m${i}`, (err) => (err ? errors.push(err) : order.push(i)));
  }
  await withTimeout(Promise.all(promises), { timeout: 10_000 });
  await waitFor(() => order.length === 500, { timeout: 10_000 });
  assert.deepEqual(errors, []);
  // Callbacks run in send order, and so do the promises (which settle a microtask later,
  // so the two kinds interleave differently).
  const all = Array.from({ length: 500 }, (_, i) => i + 1);
  assert.deepEqual(
    order.filter((i) => i % 5 !== 0),
    all.filter((i) => i % 5 !== 0),
  );
  assert.deepEqual(
    order.filter((i) => i % 5 === 0),
    all.filter((i) => i % 5 === 0),
  );
  assert.equal(new Set(order).size, 500, 'each settled once');
  assert.equal(received, 500);
  assert.equal(client.unackedCount, 0);
});

test('on session loss the waits reject with HL_ERR_SESSION_LOST and the messages are in session-lost', async (t) => {
  // A long ack delay keeps the first messages unacknowledged when the server dies.
  const options = { ...FAST, ackDelay: 60_000, ackEvery: 1000 };
  const first = await startServer(t, options);
  let received = 0;
  first.server.on('connection', (conn) => conn.on('message', () => received++));
  const client = startClient(t, { port: first.port, backoff: FAST_BACKOFF });
  await opened(client);
  const errors = new Map<string, unknown>();
  const callbacks = new Map<string, number>();
  const track = (name: string) => (err: Error | null) => {
    callbacks.set(name, (callbacks.get(name) ?? 0) + 1);
    errors.set(name, err);
  };
  client.send('sent-1', track('sent-1'));
  const sentAcked = client.sendAcked('sent-2').then(
    () => 'resolved',
    (err: unknown) => err,
  );
  await waitFor(() => received === 2);
  assert.equal(client.unackedCount, 2);

  const disconnected = onceEvent(client, 'disconnect');
  for (const conn of first.server.connections.values()) {
    resetLink(conn);
  }
  await first.server.close();
  await disconnected;
  client.send('queued-3', track('queued-3'));
  const queuedAcked = client.sendAcked('queued-4').then(
    () => 'resolved',
    (err: unknown) => err,
  );

  const lost = onceEvent(client, 'session-lost', { timeout: 10_000 });
  await startServer(t, FAST, first.port);
  const [event] = (await lost) as [SessionLostEvent];
  assert.deepEqual(
    event.unacked.map((m) => m.toString()),
    ['sent-1', 'sent-2', 'queued-3', 'queued-4'],
  );
  for (const outcome of [await sentAcked, await queuedAcked]) {
    assert.ok(outcome instanceof HeartlineError, String(outcome));
    assert.equal(outcome.code, 'HL_ERR_SESSION_LOST');
  }
  await waitFor(() => callbacks.size === 2);
  for (const name of ['sent-1', 'queued-3']) {
    const err = errors.get(name);
    assert.ok(err instanceof HeartlineError, `${name}: ${String(err)}`);
    assert.equal(err.code, 'HL_ERR_SESSION_LOST');
  }
  // Once each, also after the new session goes on.
  await waitFor(() => client.state === 'healthy');
  await client.sendAcked('new session');
  assert.deepEqual([...callbacks.values()], [1, 1]);
});

test('close() with messages unacknowledged: their waits reject and the messages are handed back', async (t) => {
  const hand = await handServer(t);
  const client = startClient(t, { port: hand.port, backoff: FAST_BACKOFF });
  await opened(client);
  const outcomes: unknown[] = [];
  client.send('a', (err) => outcomes.push(err));
  const b = client.sendAcked('b').catch((err: unknown) => err);
  await waitFor(() => hand.data.length === 2);
  const lost = onceEvent(client, 'session-lost');
  client.close();
  const [event] = (await lost) as [SessionLostEvent];
  assert.deepEqual(
    event.unacked.map((m) => m.toString()),
    ['a', 'b'],
  );
  outcomes.push(await b);
  await waitFor(() => outcomes.length === 2);
  for (const err of outcomes) {
    assert.ok(err instanceof HeartlineError, String(err));
    assert.ok(
      err.code === 'HL_ERR_SESSION_LOST' || err.code === 'HL_ERR_CONNECTION_CLOSED',
      err.code,
    );
  }
});

test('abort: sendAcked rejects HL_ERR_ABORTED; the message stays queued and still arrives', async (t) => {
  const hand = await handServer(t);
  const client = startClient(t, { port: hand.port, backoff: FAST_BACKOFF });
  await opened(client);

  // Aborted before the call: rejected, nothing sent.
  const early = await client.sendAcked('never', { signal: AbortSignal.abort() }).catch((e) => e);
  assert.ok(early instanceof HeartlineError);
  assert.equal(early.code, 'HL_ERR_ABORTED');
  assert.equal(client.unackedCount, 0);

  const controller = new AbortController();
  const waiting = client.sendAcked('kept', { signal: controller.signal }).catch((e) => e);
  await waitFor(() => hand.data.length === 1);
  controller.abort(new Error('not waiting any more'));
  const err = await withTimeout(waiting);
  assert.ok(err instanceof HeartlineError);
  assert.equal(err.code, 'HL_ERR_ABORTED');
  assert.equal((err.cause as Error).message, 'not waiting any more');
  assert.deepEqual(hand.data, ['kept'], 'only the message that was not aborted up front');
  assert.equal(client.unackedCount, 1, 'the message is still held for replay');
  // Its ACK later is no error, and frees it.
  hand.ack(1);
  await waitFor(() => client.unackedCount === 0);
  assert.equal(client.state, 'healthy');
});
