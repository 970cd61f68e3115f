/**
 * Requests across lost links and lost sessions (PROTOCOL.md 6.4, 6.5): through the chaos
 * proxy a request reaches its handler once and its reply comes back once however often
 * the link is cut; a reply made while the link is down arrives after the resume; a
 * request whose session is lost rejects with HL_ERR_SESSION_LOST and says whether it may
 * have run; idempotency keys carry a reply across sessions, per identity, within bounds.
 */

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { type ChaosProxy, createChaosProxy } from '../../src/chaos/proxy.js';
import type { MessageInfo, SessionLostEvent } from '../../src/connection.js';
import { RequestError } from '../../src/errors.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { currentLink, resetLink } from '../../src/testing.js';
import { opened, startClient, startServer } from '../support/peers.js';
import { mulberry32 } from '../support/prng.js';
import { onceEvent, waitFor, withTimeout } from '../support/wait.js';

const FAST = { interval: 100, timeout: 400 };
const FAST_BACKOFF = { initialDelay: 10, maxDelay: 100 };

async function startProxy(t: TestContext, port: number): Promise<ChaosProxy> {
  const proxy = await createChaosProxy({ target: { host: '127.0.0.1', port } });
  t.after(() => proxy.close());
  return proxy;
}

/** The settled rejection of `promise`, which must reject with a RequestError. */
async function requestError(promise: Promise<unknown>, timeout = 10_000): Promise<RequestError> {
  try {
    const value = await withTimeout(promise, { timeout, message: 'never settled' });
    assert.fail(`expected a rejection, got ${String(value)}`);
  } catch (err) {
    assert.ok(err instanceof RequestError, `expected a RequestError, got ${String(err)}`);
    return err;
  }
}

/** Resets the server end of every link of `conns` at once, as a crashing server would. */
function resetLinks(conns: Iterable<ServerConnection>): void {
  for (const conn of conns) {
    if (currentLink(conn)) resetLink(conn);
  }
}

test('300 numbered requests while the link is cut by RST and FIN: each handler runs once, each reply arrives once', async (t) => {
  const N = 300;
  const { server, port } = await startServer(t, { ...FAST, sessionTtl: 60_000 });
  const proxy = await startProxy(t, port);
  const runs = new Map<number, number>();
  let sessions = 0;
  const random = mulberry32(7);
  server.on('connection', (conn) => {
    sessions++;
    conn.on('message', (data, info) => {
      const n = Number(data.toString());
      runs.set(n, (runs.get(n) ?? 0) + 1);
      // Some replies at once, some later, so that some are made while the link is down.
      const answer = () => info.reply(`r${n}`);
      if (random() < 0.5) answer();
      else setTimeout(answer, random() * 150);
    });
  });
  const client = startClient(t, { port: proxy.port, backoff: FAST_BACKOFF });
  let lost = 0;
  let resumes = 0;
  client.on('session-lost', () => lost++);
  client.on('resumed', () => resumes++);
  await opened(client);

  const results = new Map<number, string>();
  const failures: string[] = [];
  let settledTwice = 0;
  let sent = 0;
  const pump = setInterval(() => {
    for (let i = 0; i < 3 && sent < N; i++) {
      const n = ++sent;
      client.request(String(n), { timeout: 0 }).then(
        (reply) => {
          if (results.has(n)) settledTwice++;
          results.set(n, reply.toString());
        },
        (err: Error) => failures.push(`${n}: ${err.message}`),
      );
    }
  }, 10);
  t.after(() => clearInterval(pump));

  // Cuts alternate RST and FIN while requests and replies are in flight.
  const cuts = { reset: 0, fin: 0 };
  const deadline = performance.now() + 20_000;
  while ((cuts.reset < 3 || cuts.fin < 3 || sent < N) && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 60 + random() * 120));
    // Only cut a live link: a cut while reconnecting proves nothing new.
    if (client.state !== 'healthy') continue;
    if ((cuts.reset + cuts.fin) % 2 === 0) {
      cuts.reset++;
      proxy.reset();
    } else {
      cuts.fin++;
      proxy.fin();
    }
  }
  // A loaded machine runs the pump late: let it finish, cuts or not.
  await waitFor(() => sent === N, { timeout: 20_000, message: `${sent} of ${N} sent` });
  clearInterval(pump);
  await waitFor(() => results.size + failures.length >= N, {
    timeout: 20_000,
    message: `${results.size} replies, ${failures.length} failures of ${N}`,
  });
  assert.deepEqual(failures, []);
  for (let n = 1; n <= N; n++) {
    assert.equal(results.get(n), `r${n}`, `reply to request ${n}`);
    assert.equal(runs.get(n), 1, `handler runs of request ${n}`);
  }
  assert.equal(runs.size, N);
  assert.equal(settledTwice, 0);
  assert.equal(client.stats.messagesIn, N, 'each REPLY was delivered once');
  assert.equal(lost, 0, 'no session was lost');
  assert.equal(sessions, 1, 'one session throughout');
  assert.ok(cuts.reset >= 3 && cuts.fin >= 3, JSON.stringify(cuts));
  assert.ok(resumes >= 1);
  t.diagnostic(`cuts ${JSON.stringify(cuts)}; resumes ${resumes}; links ${client.stats.links}`);
});

test('a reply made while the link is down arrives after the resume', async (t) => {
  const { server, port } = await startServer(t, { ...FAST, sessionTtl: 60_000 });
  const proxy = await startProxy(t, port);
  const held: MessageInfo[] = [];
  const accepted = new Promise<ServerConnection>((resolve) =>
    server.once('connection', (conn) => {
      conn.on('message', (_data, info) => held.push(info));
      resolve(conn);
    }),
  );
  const client = startClient(t, { port: proxy.port, backoff: FAST_BACKOFF });
  await opened(client);
  const conn = await accepted;
  const order: string[] = [];
  const reply = client.request('question', { timeout: 0 }).then((r) => {
    order.push('reply');
    return r.toString();
  });
  client.on('resumed', () => order.push('resumed'));
  await waitFor(() => held.length === 1);

  // Down, and it stays down until the reply is made.
  proxy.refuseNew(true);
  const serverLost = onceEvent(conn, 'disconnect');
  const clientLost = onceEvent(client, 'disconnect');
  proxy.reset();
  await Promise.all([serverLost, clientLost]);
  assert.equal(held[0]!.reply('answered while down'), true);
  assert.equal(conn.unackedCount, 1, 'the REPLY waits in the replay buffer');
  assert.deepEqual(order, []);

  proxy.refuseNew(false);
  assert.equal(await withTimeout(reply, { timeout: 10_000 }), 'answered while down');
  assert.deepEqual(order, ['resumed', 'reply']);
  await waitFor(() => conn.unackedCount === 0);
  assert.equal(held.length, 1, 'the request was not delivered again');
});

test('session lost by a server restart on the same port: HL_ERR_SESSION_LOST; mayHaveBeenHandled says whether it was sent', async (t) => {
  const first = await startServer(t, FAST);
  let ran = 0;
  first.server.on('connection', (conn) => conn.on('message', () => ran++)); // never answers
  const client = startClient(t, { port: first.port, backoff: FAST_BACKOFF });
  await opened(client);
  const written = client.request('sent before the crash', { timeout: 0 });
  await waitFor(() => ran === 1);
  const plain = Buffer.from('plain, unacked');

  const disconnected = onceEvent(client, 'disconnect');
  resetLinks(first.server.connections.values());
  await first.server.close();
  await disconnected;
  // Queued while no link is up: it never left this end.
  const queued = client.request('queued while down', { timeout: 0 });
  client.send(plain);

  const lost = onceEvent(client, 'session-lost', { timeout: 10_000 });
  const second = await startServer(t, FAST, first.port);
  let ranAfter = 0;
  second.server.on('connection', (conn) => conn.on('message', () => ranAfter++));
  const [event] = (await lost) as [SessionLostEvent];
  const a = await requestError(written);
  assert.equal(a.code, 'HL_ERR_SESSION_LOST');
  assert.equal(a.mayHaveBeenHandled, true, 'it was written to a link: it may have run');
  const b = await requestError(queued);
  assert.equal(b.code, 'HL_ERR_SESSION_LOST');
  assert.equal(b.mayHaveBeenHandled, false, 'it was never written: it did not run');
  // Requests are not handed back as messages; their promises say what became of them.
  assert.deepEqual(
    event.unacked.map((m) => m.toString()),
    [plain.toString()],
  );
  assert.equal(client.pendingRequests, 0);
  assert.equal(ranAfter, 0, 'nothing of the lost session ran on the new server');
  await waitFor(() => client.state === 'healthy');
});

test('session lost by sessionTtl expiry: the pending request rejects HL_ERR_SESSION_LOST, may have been handled', async (t) => {
  const { server, port } = await startServer(t, { ...FAST, sessionTtl: 200 });
  const proxy = await startProxy(t, port);
  let ran = 0;
  const accepted = new Promise<ServerConnection>((resolve) =>
    server.once('connection', (conn) => {
      conn.on('message', () => ran++);
      resolve(conn);
    }),
  );
  const client = startClient(t, { port: proxy.port, backoff: FAST_BACKOFF });
  await opened(client);
  const conn = await accepted;
  const pending = client.request('will be lost', { timeout: 0 });
  await waitFor(() => ran === 1);

  proxy.refuseNew(true);
  const expired = onceEvent(conn, 'close', { timeout: 10_000 });
  proxy.reset();
  const [info] = (await expired) as [{ reason: string }];
  assert.equal(info.reason, 'session-expired');
  const lost = onceEvent(client, 'session-lost', { timeout: 10_000 });
  proxy.refuseNew(false);
  await lost;
  const err = await requestError(pending);
  assert.equal(err.code, 'HL_ERR_SESSION_LOST');
  assert.equal(err.mayHaveBeenHandled, true);
  assert.equal(ran, 1);
});

test('an idempotency key outlives a lost session: same identity gets the kept reply unrun, another identity runs it', async (t) => {
  const { server, port } = await startServer(t, {
    ...FAST,
    sessionTtl: 200,
    // The identity is the auth string: alice, bob.
    authenticate: (hello) => hello.auth.toString() || null,
  });
  const proxy = await startProxy(t, port);
  const runs: string[] = [];
  const held: MessageInfo[] = [];
  const conns: ServerConnection[] = [];
  server.on('connection', (conn) => {
    conns.push(conn);
    conn.on('message', (data, info) => {
      runs.push(`${conn.identity}:${data.toString()}:${info.idempotencyKey}`);
      if (data.toString() === 'hold') held.push(info);
      else info.reply(`${conn.identity} paid #${runs.length}`);
    });
  });
  const alice = startClient(t, {
    port: proxy.port,
    backoff: FAST_BACKOFF,
    auth: 'alice',
    clientId: 'alice-phone',
  });
  await opened(alice);
  const first = alice.request('hold', { idempotencyKey: 'pay-42', timeout: 0 });
  await waitFor(() => held.length === 1);

  // The link drops; the handler answers while it is down; the session then expires, and
  // the reply with it.
  proxy.refuseNew(true);
  const expired = onceEvent(conns[0]!, 'close', { timeout: 10_000 });
  proxy.reset();
  await onceEvent(conns[0]!, 'disconnect');
  held[0]!.reply('alice paid once');
  await expired;
  const lost = onceEvent(alice, 'session-lost', { timeout: 10_000 });
  proxy.refuseNew(false);
  await lost;
  const err = await requestError(first);
  assert.equal(err.code, 'HL_ERR_SESSION_LOST');
  assert.equal(err.mayHaveBeenHandled, true);
  await waitFor(() => alice.state === 'healthy');

  // The retry in the new session: the kept reply, the handler not run again.
  const again = await alice.request('hold', { idempotencyKey: 'pay-42' });
  assert.equal(again.toString(), 'alice paid once');
  assert.deepEqual(runs, ['alice:hold:pay-42']);
  // Another client of the same identity gets it too.
  const laptop = startClient(t, { port, auth: 'alice', clientId: 'alice-laptop' });
  await opened(laptop);
  assert.equal(
    (await laptop.request('hold', { idempotencyKey: 'pay-42' })).toString(),
    'alice paid once',
  );
  assert.equal(runs.length, 1);

  // Bob's key of the same name is his own: it runs.
  const bob = startClient(t, { port, auth: 'bob', clientId: 'alice-phone' });
  await opened(bob);
  const bobs = await bob.request('charge', { idempotencyKey: 'pay-42' });
  assert.equal(bobs.toString(), 'bob paid #2');
  assert.deepEqual(runs, ['alice:hold:pay-42', 'bob:charge:pay-42']);
  // And Bob's retry is deduplicated in his scope.
  assert.equal(
    (await bob.request('charge', { idempotencyKey: 'pay-42' })).toString(),
    'bob paid #2',
  );
  assert.equal(runs.length, 2);
});

test('without authentication the client id scopes keys: the same clientId after a restart of the client gets the kept reply', async (t) => {
  const { server, port } = await startServer(t, FAST);
  let runs = 0;
  server.on('connection', (conn) =>
    conn.on('message', (_data, info) => info.reply(`run ${++runs}`)),
  );
  const one = startClient(t, { port, clientId: 'worker-7' });
  await opened(one);
  assert.equal((await one.request('job', { idempotencyKey: 'job-1' })).toString(), 'run 1');
  one.close();
  await onceEvent(one, 'close');
  const two = startClient(t, { port, clientId: 'worker-7' });
  await opened(two);
  assert.equal((await two.request('job', { idempotencyKey: 'job-1' })).toString(), 'run 1');
  // Another client id, or no key at all, runs.
  const other = startClient(t, { port, clientId: 'worker-8' });
  await opened(other);
  assert.equal((await other.request('job', { idempotencyKey: 'job-1' })).toString(), 'run 2');
  assert.equal((await two.request('job')).toString(), 'run 3');
  assert.equal((await two.request('job')).toString(), 'run 4');
  assert.equal(runs, 4);
});

test("a client flooding keys past maxKeysPerScope evicts only its own oldest; another client's key stays deduplicated", async (t) => {
  const perScope = 20;
  const { server, port } = await startServer(t, {
    ...FAST,
    idempotency: { maxKeysPerScope: perScope },
  });
  const runs = new Map<string, number>();
  server.on('connection', (conn) =>
    conn.on('message', (data, info) => {
      const k = `${conn.clientId}/${info.idempotencyKey}`;
      runs.set(k, (runs.get(k) ?? 0) + 1);
      info.reply(`${data.toString()}#${runs.get(k)}`);
    }),
  );
  const quiet = startClient(t, { port, clientId: 'quiet' });
  const flood = startClient(t, { port, clientId: 'flood' });
  await Promise.all([opened(quiet), opened(flood)]);
  assert.equal((await quiet.request('q', { idempotencyKey: 'keep-me' })).toString(), 'q#1');

  const n = perScope * 3;
  const replies = await Promise.all(
    Array.from({ length: n }, (_, i) => flood.request(`f${i}`, { idempotencyKey: `k${i}` })),
  );
  assert.deepEqual(
    replies.map((r) => r.toString()),
    Array.from({ length: n }, (_, i) => `f${i}#1`),
  );
  // The flood's newest keys are still deduplicated; its oldest were evicted and run again.
  assert.equal(
    (await flood.request('x', { idempotencyKey: `k${n - 1}` })).toString(),
    `f${n - 1}#1`,
  );
  assert.equal(runs.get(`flood/k${n - 1}`), 1);
  assert.equal((await flood.request('again', { idempotencyKey: 'k0' })).toString(), 'again#2');
  assert.equal(runs.get('flood/k0'), 2);
  // The quiet client's key survived the flood.
  assert.equal((await quiet.request('q2', { idempotencyKey: 'keep-me' })).toString(), 'q#1');
  assert.equal(runs.get('quiet/keep-me'), 1);
});

test('a full idempotency window (maxKeys) answers HL_ERR_OVERLOADED, not handled, without running the handler', async (t) => {
  const { server, port } = await startServer(t, { ...FAST, idempotency: { maxKeys: 3 } });
  const ran: string[] = [];
  server.on('connection', (conn) =>
    conn.on('message', (data, info) => {
      ran.push(data.toString());
      info.reply('ok');
    }),
  );
  const client = startClient(t, { port, clientId: 'c' });
  await opened(client);
  for (const k of ['a', 'b', 'c']) await client.request(k, { idempotencyKey: k });
  const err = await requestError(client.request('d', { idempotencyKey: 'd' }));
  assert.equal(err.code, 'HL_ERR_OVERLOADED');
  assert.equal(err.mayHaveBeenHandled, false);
  assert.deepEqual(ran, ['a', 'b', 'c'], 'the refused request never ran');
  // Kept keys still answer, and a request without a key still runs.
  assert.equal((await client.request('a again', { idempotencyKey: 'a' })).toString(), 'ok');
  assert.equal((await client.request('no key')).toString(), 'ok');
  assert.deepEqual(ran, ['a', 'b', 'c', 'no key']);
  assert.equal(client.state, 'healthy');
});

test("a key still running is joined: the second request gets the first one's reply; if the first is abandoned, the second runs", async (t) => {
  const { server, port } = await startServer(t, FAST);
  const held: Array<{ data: string; info: MessageInfo }> = [];
  server.on('connection', (conn) =>
    conn.on('message', (data, info) => held.push({ data: data.toString(), info })),
  );
  const phone = startClient(t, { port, clientId: 'same' });
  const laptop = startClient(t, { port, clientId: 'same' });
  await Promise.all([opened(phone), opened(laptop)]);

  const first = phone.request('from phone', { idempotencyKey: 'k1', timeout: 0 });
  await waitFor(() => held.length === 1);
  const second = laptop.request('from laptop', { idempotencyKey: 'k1', timeout: 0 });
  // The laptop's request waits for the phone's answer instead of running.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(held.length, 1);
  held[0]!.info.reply('answer one');
  assert.equal((await withTimeout(first)).toString(), 'answer one');
  assert.equal((await withTimeout(second)).toString(), 'answer one');
  assert.equal(held.length, 1);

  // The phone leaves without answering k2: the laptop's request waiting on it runs.
  const abandoned = phone.request('from phone', { idempotencyKey: 'k2', timeout: 0 });
  await waitFor(() => held.length === 2);
  const waiting = laptop.request('from laptop', { idempotencyKey: 'k2', timeout: 0 });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(held.length, 2);
  phone.close();
  const gone = await requestError(abandoned);
  assert.ok(gone.code === 'HL_ERR_SESSION_LOST' || gone.code === 'HL_ERR_CONNECTION_CLOSED');
  await waitFor(() => held.length === 3, { message: 'the waiting request never ran' });
  assert.equal(held[2]!.data, 'from laptop');
  held[2]!.info.reply('answer two');
  assert.equal((await withTimeout(waiting)).toString(), 'answer two');
});

test('a kept failure answers a retry unrun; a refusal (no responder) is not kept, so the retry runs', async (t) => {
  const { server, port } = await startServer(t, FAST);
  let runs = 0;
  const accepted = new Promise<ServerConnection>((resolve) => server.once('connection', resolve));
  const client = startClient(t, { port, clientId: 'c' });
  await opened(client);
  const conn = await withTimeout(accepted);

  // No listener yet: NO_RESPONDER, which means it did not run, so nothing is kept.
  const refused = await requestError(client.request('x', { idempotencyKey: 'k' }));
  assert.equal(refused.code, 'HL_ERR_NO_RESPONDER');
  conn.on('message', (_data, info) => {
    runs++;
    info.fail(`failure #${runs}`);
  });
  const failed = await requestError(client.request('x', { idempotencyKey: 'k' }));
  assert.equal(failed.code, 'HL_ERR_REMOTE');
  assert.match(failed.message, /failure #1/);
  const again = await requestError(client.request('x', { idempotencyKey: 'k' }));
  assert.equal(again.code, 'HL_ERR_REMOTE');
  assert.match(again.message, /failure #1/, 'the kept failure, not a new run');
  assert.equal(runs, 1);
});

test('a server request made while the client is away is answered after the resume', async (t) => {
  const { server, port } = await startServer(t, { ...FAST, sessionTtl: 60_000 });
  const proxy = await startProxy(t, port);
  const accepted = new Promise<ServerConnection>((resolve) => server.once('connection', resolve));
  const client = startClient(t, { port: proxy.port, backoff: FAST_BACKOFF });
  const asked: string[] = [];
  client.on('message', (data, info) => {
    asked.push(data.toString());
    info.reply(`client saw ${data.toString()}`);
  });
  await opened(client);
  const conn = await withTimeout(accepted);
  proxy.refuseNew(true);
  const down = onceEvent(conn, 'disconnect');
  proxy.reset();
  await down;
  const reply = conn.request('while you were away', { timeout: 0 });
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(asked, []);
  proxy.refuseNew(false);
  assert.equal((await withTimeout(reply)).toString(), 'client saw while you were away');
  assert.deepEqual(asked, ['while you were away']);
});
