/**
 * HELLO field limits over real sockets: a clientId, traceId or auth field over the
 * server's limit is refused with CLOSE(policy violation) before authenticate, creates no
 * session, is reported once as 'rejected', and leaves a connected bystander alone; a field
 * at exactly the limit (counted in UTF-8 bytes) is accepted; the client refuses an id
 * over its limit at connect() time; bad limits are refused up front.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from '../../src/client/client.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import {
  DEFAULT_MAX_AUTH_BYTES,
  DEFAULT_MAX_HELLO_FIELD_BYTES,
  FrameType,
} from '../../src/protocol/frames.js';
import { createServer, type RejectEvent } from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

/** Steady heartbeats: a loaded machine must not make the bystander suspect. */
const STEADY = { interval: 1000, timeout: 10_000 } as const;
/** The largest field the wire can carry (u16 length). */
const WIRE_MAX = 0xffff;

test('an oversized clientId, traceId or auth is refused with CLOSE(policy violation); a bystander keeps working', async (t) => {
  let hookCalls = 0;
  const { server, port } = await startServer(t, {
    ...STEADY,
    authenticate: () => {
      hookCalls++;
      return true;
    },
  });
  const rejected: RejectEvent[] = [];
  server.on('rejected', (e) => rejected.push(e));
  const accepted = new Promise<ServerConnection>((r) => server.once('connection', r));
  const bystander = startClient(t, { port, clientId: 'bystander', ...STEADY });
  await opened(bystander);
  const conn = await accepted;
  conn.on('message', (m) => conn.send(m));
  const calls = hookCalls;

  const cases = [
    { field: 'clientId', hello: { clientId: 'x'.repeat(WIRE_MAX) }, bytes: WIRE_MAX },
    { field: 'traceId', hello: { traceId: '\u0001'.repeat(WIRE_MAX) }, bytes: WIRE_MAX },
    {
      field: 'auth',
      hello: { auth: new Uint8Array(DEFAULT_MAX_AUTH_BYTES + 1) },
      bytes: DEFAULT_MAX_AUTH_BYTES + 1,
    },
  ];
  for (const [i, c] of cases.entries()) {
    const peer = await RawPeer.connect(t, port);
    const answer = await peer.handshake(c.hello);
    assert.equal(answer.type, FrameType.CLOSE, `${c.field}: CLOSE, never WELCOME`);
    assert.ok(answer.type === FrameType.CLOSE);
    assert.equal(answer.code, CloseCode.POLICY_VIOLATION);
    assert.match(answer.reason, new RegExp(`${c.field} is ${c.bytes} bytes`));
    await waitFor(() => peer.closed, { message: `${c.field}: the server closes the socket` });
    await waitFor(() => rejected.length === i + 1, { message: `${c.field}: one 'rejected'` });
    const { info } = rejected[i]!;
    assert.equal(info.reason, 'policy-violation');
    assert.equal(info.code, CloseCode.POLICY_VIOLATION);
    assert.equal(info.error?.code, 'HL_ERR_POLICY_VIOLATION');
  }
  assert.equal(hookCalls, calls, 'refused before authenticate');
  assert.equal(server.connections.size, 1, 'no session for a refused HELLO');
  assert.equal(server.admissionStats.connections, 1, 'every refused socket is released');

  // The bystander never noticed.
  let echoed = 0;
  bystander.on('message', () => echoed++);
  bystander.send('still here');
  await waitFor(() => echoed === 1, { timeout: 10_000 });
  assert.equal(bystander.state, 'healthy');
  assert.equal(rejected.length, cases.length);
});

test('a field at exactly the limit, in UTF-8 bytes, is accepted; one byte more is refused', async (t) => {
  const { server, port } = await startServer(t, STEADY);
  // 'é' is two UTF-8 bytes: 128 of them are exactly 256 bytes (and 128 UTF-16 units).
  const atCap = 'é'.repeat(DEFAULT_MAX_HELLO_FIELD_BYTES / 2);
  assert.equal(Buffer.byteLength(atCap), DEFAULT_MAX_HELLO_FIELD_BYTES);
  const accepted = new Promise<ServerConnection>((r) => server.once('connection', r));
  const client = startClient(t, { port, clientId: atCap, traceId: atCap, ...STEADY });
  await opened(client);
  const conn = await accepted;
  assert.equal(conn.clientId, atCap);
  assert.equal(conn.traceId, atCap);

  // An auth field at its limit passes too.
  const raw = await RawPeer.connect(t, port);
  const welcome = await raw.handshake({ auth: new Uint8Array(DEFAULT_MAX_AUTH_BYTES) });
  assert.equal(welcome.type, FrameType.WELCOME);

  const over = await RawPeer.connect(t, port);
  const answer = await over.handshake({ clientId: `${atCap}a` });
  assert.ok(answer.type === FrameType.CLOSE && answer.code === CloseCode.POLICY_VIOLATION);
  assert.match(answer.reason, /clientId is 257 bytes, over the server's limit of 256/);

  // A client told the same larger limit as its server gets through.
  const { port: widePort } = await startServer(t, { ...STEADY, maxHelloFieldBytes: 1024 });
  const wide = startClient(t, {
    port: widePort,
    clientId: 'w'.repeat(1024),
    maxHelloFieldBytes: 1024,
    ...STEADY,
  });
  await opened(wide);
});

test('the final close stops the client: an id over a raised client limit is refused by the server once', async (t) => {
  const { server, port } = await startServer(t, STEADY);
  const rejected: RejectEvent[] = [];
  server.on('rejected', (e) => rejected.push(e));
  const client = startClient(t, {
    port,
    clientId: 'c'.repeat(300),
    maxHelloFieldBytes: 300,
    backoff: { initialDelay: 10, maxDelay: 20 },
    ...STEADY,
  });
  let retries = 0;
  client.on('reconnecting', () => retries++);
  const info = await new Promise<{ reason: string }>((r) => client.once('close', r));
  assert.equal(info.reason, 'policy-violation');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(retries, 0, 'policy-violation is final');
  assert.equal(rejected.length, 1);
});

test('connect() refuses an id over maxHelloFieldBytes at once; bad limits are refused up front', () => {
  const tooLong = 'x'.repeat(DEFAULT_MAX_HELLO_FIELD_BYTES + 1);
  assert.throws(
    () => connect({ port: 1, clientId: tooLong }),
    (err: unknown) =>
      err instanceof InvalidArgumentError &&
      /option "clientId" must be at most 256 UTF-8 bytes/.test(err.message),
  );
  // Counted in bytes, not characters: 86 three-byte characters are 258 bytes.
  assert.throws(() => connect({ port: 1, traceId: '€'.repeat(86) }), /option "traceId"/);
  assert.throws(
    () => connect({ port: 1, clientId: 42 as unknown as string }),
    /option "clientId" must be a string/,
  );
  for (const maxHelloFieldBytes of [0, WIRE_MAX + 1, 1.5]) {
    assert.throws(() => connect({ port: 1, maxHelloFieldBytes }), /maxHelloFieldBytes/);
    assert.throws(() => createServer({ maxHelloFieldBytes }), /option "maxHelloFieldBytes"/);
  }
  for (const maxAuthBytes of [-1, WIRE_MAX + 1]) {
    assert.throws(() => createServer({ maxAuthBytes }), /option "maxAuthBytes"/);
  }
});
