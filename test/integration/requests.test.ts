/**
 * Requests and replies (PROTOCOL.md 3.8, 3.9, 6.4) between a real client and server on
 * loopback: replies now or later, failures (fail(), a listener that throws or rejects, no
 * listener), the requester's timeout and AbortSignal, late and second answers, requests
 * from the server to the client, and the client's circuit breaker fed by failed requests.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClientConnection } from '../../src/client/client.js';
import type { CircuitState, MessageInfo } from '../../src/connection.js';
import { type ErrorCode, HeartlineError, RequestError } from '../../src/errors.js';
import type { Server, ServerOptions } from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { opened, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor, withTimeout } from '../support/wait.js';

/** The settled rejection of `promise`, which must reject with a RequestError. */
async function requestError(promise: Promise<unknown>): Promise<RequestError> {
  try {
    const value = await withTimeout(promise, { timeout: 10_000, message: 'never settled' });
    assert.fail(`expected a rejection, got ${String(value)}`);
  } catch (err) {
    assert.ok(err instanceof RequestError, `expected a RequestError, got ${String(err)}`);
    return err;
  }
}

function assertRequestError(err: RequestError, code: ErrorCode, mayHaveBeenHandled: boolean): void {
  assert.equal(err.code, code, err.message);
  assert.equal(err.mayHaveBeenHandled, mayHaveBeenHandled, `${code}: ${err.message}`);
}

/** A server whose connections run `onRequest` for each message, and a client connected to it. */
async function pair(
  t: Parameters<typeof startServer>[0],
  onRequest: ((conn: ServerConnection, data: Buffer, info: MessageInfo) => unknown) | null,
  serverOptions: ServerOptions = {},
  clientOptions: Parameters<typeof startClient>[1] = {},
): Promise<{ server: Server; client: ClientConnection; conn: ServerConnection }> {
  const { server, port } = await startServer(t, serverOptions);
  const accepted = new Promise<ServerConnection>((resolve) =>
    server.once('connection', (conn) => {
      if (onRequest) conn.on('message', (data, info) => onRequest(conn, data, info));
      resolve(conn);
    }),
  );
  const client = startClient(t, { port, ...clientOptions });
  await opened(client);
  const conn = await withTimeout(accepted, { message: 'no server connection' });
  return { server, client, conn };
}

/** The link survived: no disconnect on either end, still one link, and a round trip works. */
async function assertStillConnected(
  client: ClientConnection,
  conn: ServerConnection,
): Promise<void> {
  assert.equal(client.state, 'healthy');
  assert.equal(client.stats.links, 1, 'the client never reconnected');
  assert.equal(conn.stats.links, 1);
  assert.equal(conn.closed, false);
  client.send('still-there');
  await waitFor(() => client.unackedCount === 0, { message: 'the plain message was not acked' });
}

test('a request resolves with the reply, given at once or later; plain messages are not requests', async (t) => {
  const seen: Array<{ isRequest: boolean; key: string; seq: number }> = [];
  const { client } = await pair(t, (_conn, data, info) => {
    seen.push({ isRequest: info.isRequest, key: info.idempotencyKey, seq: info.seq });
    if (!info.isRequest) return;
    const text = data.toString();
    if (text.startsWith('later:')) setTimeout(() => info.reply(text.toUpperCase()), 50);
    else info.reply(Buffer.from(`echo:${text}`));
  });
  const now = await client.request('hello');
  assert.ok(Buffer.isBuffer(now));
  assert.equal(now.toString(), 'echo:hello');
  const later = await client.request('later:x', { timeout: 10_000 });
  assert.equal(later.toString(), 'LATER:X');
  client.send('plain');
  await waitFor(() => seen.length === 3);
  // Requests and DATA share one sequence per direction (PROTOCOL.md 6).
  assert.deepEqual(seen, [
    { isRequest: true, key: '', seq: 1 },
    { isRequest: true, key: '', seq: 2 },
    { isRequest: false, key: '', seq: 3 },
  ]);
  assert.equal(client.pendingRequests, 0);
});

test('many concurrent requests answered in reverse order each get their own reply', async (t) => {
  const held: Array<{ info: MessageInfo; data: Buffer }> = [];
  const { client } = await pair(t, (_conn, data, info) => {
    held.push({ info, data: Buffer.from(data) });
  });
  const n = 50;
  const replies = Array.from({ length: n }, (_, i) => client.request(`q${i}`, { timeout: 20_000 }));
  await waitFor(() => held.length === n, { timeout: 10_000 });
  assert.equal(client.pendingRequests, n);
  for (const { info, data } of held.reverse()) info.reply(`a:${data.toString()}`);
  const got = await withTimeout(Promise.all(replies), { timeout: 10_000 });
  assert.deepEqual(
    got.map((b) => b.toString()),
    Array.from({ length: n }, (_, i) => `a:q${i}`),
  );
  assert.equal(client.pendingRequests, 0);
});

test('info.fail() rejects with HL_ERR_REMOTE carrying the message; it may have been handled', async (t) => {
  const { client, conn } = await pair(t, (_conn, _data, info) => {
    info.fail('no such account');
  });
  const err = await requestError(client.request('debit 5'));
  assertRequestError(err, 'HL_ERR_REMOTE', true);
  assert.match(err.message, /no such account/);
  await assertStillConnected(client, conn);
});

test('a listener that throws, or returns a rejected promise, fails the request; the connection stays open', async (t) => {
  const { client, conn } = await pair(t, (_conn, data, info) => {
    const text = data.toString();
    if (text === 'throw') throw new Error('sync boom');
    if (text === 'reject') return Promise.reject(new Error('async boom'));
    if (text === 'reply then throw') {
      info.reply('answered first');
      throw new Error('thrown after the answer');
    }
    return undefined;
  });
  // A second listener that answers, for the 'ok' case only.
  conn.on('message', (data, info) => {
    if (data.toString() === 'ok') info.reply('fine');
  });
  const closes: unknown[] = [];
  conn.on('close', (info) => closes.push(info));
  conn.on('disconnect', (info) => closes.push(info));

  const thrown = await requestError(client.request('throw'));
  assertRequestError(thrown, 'HL_ERR_REMOTE', true);
  assert.match(thrown.message, /sync boom/);
  const rejected = await requestError(client.request('reject'));
  assertRequestError(rejected, 'HL_ERR_REMOTE', true);
  assert.match(rejected.message, /async boom/);
  assert.equal((await client.request('ok')).toString(), 'fine');
  // Answered before it threw: the answer stands.
  assert.equal((await client.request('reply then throw')).toString(), 'answered first');
  assert.deepEqual(closes, [], 'the server connection neither closed nor lost its link');
  await assertStillConnected(client, conn);
});

test('no message listener: HL_ERR_NO_RESPONDER at once, and it was not handled', async (t) => {
  const { client, conn } = await pair(t, null);
  const err = await requestError(client.request('anyone?', { timeout: 10_000 }));
  assertRequestError(err, 'HL_ERR_NO_RESPONDER', false);
  await assertStillConnected(client, conn);
});

test('a second answer throws HL_ERR_ALREADY_REPLIED; the requester gets the first one only', async (t) => {
  const errors: unknown[] = [];
  let answers = 0;
  const { client, conn } = await pair(t, (_conn, _data, info) => {
    info.reply('first');
    answers++;
    for (const again of [() => info.reply('second'), () => info.fail('third')]) {
      try {
        again();
        answers++;
      } catch (err) {
        errors.push(err);
      }
    }
    // Later too.
    setTimeout(() => {
      try {
        info.reply('late second');
        answers++;
      } catch (err) {
        errors.push(err);
      }
    }, 20);
  });
  assert.equal((await client.request('once')).toString(), 'first');
  await waitFor(() => errors.length === 3);
  assert.equal(answers, 1);
  for (const err of errors) {
    assert.ok(err instanceof HeartlineError);
    assert.equal(err.code, 'HL_ERR_ALREADY_REPLIED');
  }
  // No second REPLY went out: everything the server sent is acknowledged and nothing more
  // came (a second REPLY to the same request would have been a second message in).
  await waitFor(() => conn.unackedCount === 0);
  assert.equal(client.stats.messagesIn, 1);
  await assertStillConnected(client, conn);
});

test('timeout: HL_ERR_REQUEST_TIMEOUT, may have been handled; the late reply is dropped quietly', async (t) => {
  const held: MessageInfo[] = [];
  const { client, conn } = await pair(t, (_conn, _data, info) => {
    held.push(info);
  });
  const started = performance.now();
  const err = await requestError(client.request('slow', { timeout: 100 }));
  const took = performance.now() - started;
  assertRequestError(err, 'HL_ERR_REQUEST_TIMEOUT', true);
  assert.ok(took >= 95, `timed out after ${took.toFixed(0)} ms, before its 100 ms`);
  assert.equal(client.pendingRequests, 0);
  await waitFor(() => held.length === 1);
  // The responder answers after the requester stopped waiting: acknowledged and dropped.
  assert.equal(held[0]!.reply('too late'), true);
  await waitFor(() => conn.unackedCount === 0, { message: 'the late REPLY was not acknowledged' });
  await waitFor(() => client.stats.messagesIn === 1);
  t.diagnostic(`timed out after ${took.toFixed(0)} ms`);
  await assertStillConnected(client, conn);
});

test('abort: HL_ERR_ABORTED, before sending (not handled) and while waiting (may have been)', async (t) => {
  const held: MessageInfo[] = [];
  const { client, conn } = await pair(t, (_conn, _data, info) => {
    held.push(info);
  });
  const early = await requestError(client.request('never', { signal: AbortSignal.abort() }));
  assertRequestError(early, 'HL_ERR_ABORTED', false);
  assert.equal(client.unackedCount, 0, 'an aborted request is not queued');

  const controller = new AbortController();
  const waiting = client.request('abort me', { signal: controller.signal, timeout: 0 });
  await waitFor(() => held.length === 1, { message: 'the request never reached the server' });
  controller.abort(new Error('user gave up'));
  const err = await requestError(waiting);
  assertRequestError(err, 'HL_ERR_ABORTED', true);
  assert.equal((err.cause as Error).message, 'user gave up');
  assert.equal(client.pendingRequests, 0);
  held[0]!.reply('ignored');
  await waitFor(() => conn.unackedCount === 0);
  await assertStillConnected(client, conn);
});

test('requests go from server to client too; a client without a listener answers NO_RESPONDER', async (t) => {
  const { client, conn } = await pair(t, null);
  const noOne = await requestError(conn.request('ping?', { timeout: 10_000 }));
  assertRequestError(noOne, 'HL_ERR_NO_RESPONDER', false);

  const seen: boolean[] = [];
  client.on('message', (data, info) => {
    seen.push(info.isRequest);
    if (data.toString() === 'fail me') info.fail('client says no');
    else setTimeout(() => info.reply(`client:${data.toString()}`), 10);
  });
  assert.equal((await conn.request('status?')).toString(), 'client:status?');
  const failed = await requestError(conn.request('fail me'));
  assertRequestError(failed, 'HL_ERR_REMOTE', true);
  assert.match(failed.message, /client says no/);
  assert.deepEqual(seen, [true, true]);
  client.removeAllListeners('message');
  client.on('message', () => {}); // takes requests, never answers
  const timedOut = await requestError(conn.request('silence', { timeout: 100 }));
  assertRequestError(timedOut, 'HL_ERR_REQUEST_TIMEOUT', true);
  assert.equal(conn.pendingRequests, 0);
});

test('argument and state errors reject unsent: key too long, bad timeout, closed', async (t) => {
  let ran = 0;
  const { client } = await pair(t, (_conn, _data, info) => {
    ran++;
    info.reply('x');
  });
  const longKey = await requestError(client.request('a', { idempotencyKey: 'k'.repeat(257) }));
  assertRequestError(longKey, 'HL_ERR_INVALID_ARGUMENT', false);
  const badTimeout = await requestError(client.request('a', { timeout: -1 }));
  assertRequestError(badTimeout, 'HL_ERR_INVALID_ARGUMENT', false);
  assert.equal(client.unackedCount, 0);
  // The longest key the frame allows is fine.
  assert.equal((await client.request('a', { idempotencyKey: 'k'.repeat(256) })).toString(), 'x');
  client.close();
  await onceEvent(client, 'close');
  const closed = await requestError(client.request('after close'));
  assertRequestError(closed, 'HL_ERR_CONNECTION_CLOSED', false);
  assert.equal(ran, 1);
});

test('circuit breaker: two timed-out requests open it, it fails fast, half-opens after circuitResetAfter, a success closes it', async (t) => {
  const resetAfter = 300;
  let answer = false;
  const handled: string[] = [];
  const { client, conn } = await pair(
    t,
    (_conn, data, info) => {
      handled.push(data.toString());
      if (answer) info.reply('ok');
    },
    {},
    { failFast: true, circuitThreshold: 2, circuitResetAfter: resetAfter, requestTimeout: 100 },
  );
  const states: CircuitState[] = [];
  client.on('circuit', (s) => states.push(s));
  assert.equal(client.circuit, 'closed');

  const first = await requestError(client.request('t1'));
  assertRequestError(first, 'HL_ERR_REQUEST_TIMEOUT', true);
  assert.equal(client.circuit, 'closed', 'one failure is below the threshold');
  const opening = onceEvent(client, 'circuit', { timeout: 10_000 });
  const second = await requestError(client.request('t2'));
  assertRequestError(second, 'HL_ERR_REQUEST_TIMEOUT', true);
  assert.deepEqual(await opening, ['open']);
  const openedAt = performance.now();
  assert.equal(client.circuit, 'open');

  // Open: rejected at once, never sent.
  const before = client.unackedCount;
  const started = performance.now();
  const fast = await requestError(client.request('t3'));
  assertRequestError(fast, 'HL_ERR_CIRCUIT_OPEN', false);
  assert.ok(performance.now() - started < 90, 'failing fast does not wait for a timeout');
  assert.equal(client.unackedCount, before, 'nothing was queued');
  assert.throws(
    () => client.send('plain while open'),
    (err: unknown) => err instanceof HeartlineError && err.code === 'HL_ERR_CIRCUIT_OPEN',
  );

  await onceEvent(client, 'circuit', { timeout: 10_000 });
  const waited = performance.now() - openedAt;
  assert.equal(client.circuit, 'half-open');
  assert.ok(waited >= resetAfter - 20, `half-open after ${waited.toFixed(0)} ms`);

  // The probe succeeds: closed again.
  answer = true;
  assert.equal((await client.request('probe')).toString(), 'ok');
  assert.equal(client.circuit, 'closed');
  assert.deepEqual(states, ['open', 'half-open', 'closed']);
  assert.deepEqual(handled, ['t1', 't2', 'probe'], 'the refused request never reached the server');
  t.diagnostic(`half-open after ${waited.toFixed(0)} ms (circuitResetAfter ${resetAfter})`);
  await assertStillConnected(client, conn);
});

test('circuit breaker: a failed probe while half-open opens it again', async (t) => {
  const { client } = await pair(
    t,
    () => {},
    {},
    {
      failFast: true,
      circuitThreshold: 2,
      circuitResetAfter: 200,
      requestTimeout: 80,
    },
  );
  await requestError(client.request('a'));
  await requestError(client.request('b'));
  assert.equal(client.circuit, 'open');
  await waitFor(() => client.circuit === 'half-open', { timeout: 10_000 });
  const probe = await requestError(client.request('probe'));
  assertRequestError(probe, 'HL_ERR_REQUEST_TIMEOUT', true);
  assert.equal(client.circuit, 'open', 'one failure while half-open reopens it');
});
