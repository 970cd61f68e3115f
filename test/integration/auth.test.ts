/**
 * Authentication: a refused HELLO creates no session and is reported once; the hook may
 * be async or throw; and resume tokens are bound to the identity the hook returned, so
 * that a stolen session id and token are useless with someone else's credentials (the
 * thief gets a fresh session of its own, the owner's session is untouched), and a client
 * whose identity changed gets 'session-lost' with what was never acknowledged.
 */

import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { test } from 'node:test';
import type { ReconnectingEvent } from '../../src/connection.js';
import type { CloseInfo } from '../../src/link.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { encodePing } from '../../src/protocol/codec.js';
import { type Frame, FrameType, type WelcomeFrame } from '../../src/protocol/frames.js';
import type { PeerInfo, RejectEvent } from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { resetLink } from '../../src/testing.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor } from '../support/wait.js';

const FAST = { interval: 200, timeout: 600 };
const FAST_BACKOFF = { initialDelay: 10, maxDelay: 50 };
const TOKENS: Record<string, string> = { 'alice-token': 'alice', 'bob-token': 'bob' };
/**
 * How long a negative check waits for an event that must not come (a second 'rejected'
 * for one socket). Both report paths run within one close, so a duplicate would follow
 * at once; this is many times that on a loaded machine.
 */
const SETTLE_MS = 250;
const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));

function welcomeOf(frame: Frame): WelcomeFrame {
  assert.equal(frame.type, FrameType.WELCOME, `expected WELCOME, got ${JSON.stringify(frame)}`);
  return frame as WelcomeFrame;
}

const hex = (id: Uint8Array) => Buffer.from(id).toString('hex');

test('a refused HELLO (async hook) creates no session, is reported once, and the client does not retry', async (t) => {
  const { server, port } = await startServer(t, {
    ...FAST,
    authenticate: async (hello) => {
      await new Promise((r) => setTimeout(r, 20));
      return TOKENS[hello.auth.toString()] ?? false;
    },
  });
  const rejected: RejectEvent[] = [];
  server.on('rejected', (e) => rejected.push(e));
  let sessions = 0;
  server.on('connection', () => sessions++);

  const client = startClient(t, { port, auth: 'stolen?', backoff: FAST_BACKOFF });
  const retries: ReconnectingEvent[] = [];
  client.on('reconnecting', (e) => retries.push(e));
  const [info] = (await onceEvent(client, 'close')) as [CloseInfo];
  assert.equal(info.reason, 'auth-failed');
  assert.equal(info.error?.code, 'HL_ERR_AUTH_FAILED');
  assert.equal(retries.length, 0);
  await waitFor(() => rejected.length === 1);
  assert.equal(rejected[0]!.info.reason, 'auth-failed');
  assert.equal(rejected[0]!.info.code, CloseCode.AUTH_FAILED);
  assert.equal(rejected[0]!.info.error?.code, 'HL_ERR_AUTH_FAILED');
  assert.equal(sessions, 0);
  assert.equal(server.connections.size, 0);

  // A raw peer sees exactly one frame: the CLOSE, never a WELCOME.
  const peer = await RawPeer.connect(t, port);
  const answer = await peer.handshake({ auth: Buffer.from('nope') });
  assert.ok(answer.type === FrameType.CLOSE && answer.code === CloseCode.AUTH_FAILED);
  await waitFor(() => peer.closed);
  assert.equal(peer.frames.length, 1);
  assert.equal(sessions, 0);
  await waitFor(() => rejected.length >= 2, { message: 'the second refusal was not reported' });
  await settle();
  assert.equal(rejected.length, 2, 'one rejected event per refused socket');
});

test('a hook that throws refuses with CLOSE(internal error), reported once with the cause', async (t) => {
  const boom = new Error('directory unreachable');
  const { server, port } = await startServer(t, {
    ...FAST,
    authenticate: () => {
      throw boom;
    },
  });
  const rejected: RejectEvent[] = [];
  server.on('rejected', (e) => rejected.push(e));
  const peer = await RawPeer.connect(t, port);
  const answer = await peer.handshake({ auth: Buffer.from('alice-token') });
  assert.ok(answer.type === FrameType.CLOSE && answer.code === CloseCode.INTERNAL_ERROR);
  await waitFor(() => rejected.length === 1);
  await settle();
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0]!.info.reason, 'internal-error');
  assert.equal(rejected[0]!.info.error?.code, 'HL_ERR_INTERNAL');
  assert.equal(rejected[0]!.info.error?.cause, boom);
  assert.equal(server.connections.size, 0);
});

test("resume tokens are bound to the identity: bob cannot resume alice's session with her stolen token", async (t) => {
  const { server, port } = await startServer(t, {
    ...FAST,
    sessionTtl: 30_000,
    authenticate: (hello) => TOKENS[hello.auth.toString()] ?? false,
  });
  const conns: ServerConnection[] = [];
  server.on('connection', (c) => conns.push(c));

  const alice = await RawPeer.connect(t, port);
  const aliceWelcome = welcomeOf(await alice.handshake({ auth: Buffer.from('alice-token') }));
  await waitFor(() => conns.length === 1);
  const aliceConn = conns[0]!;
  assert.equal(aliceConn.identity, 'alice');
  const stolen = {
    sessionId: aliceWelcome.sessionId,
    token: aliceWelcome.token,
    lastReceived: 0,
  };

  // Bob presents alice's session id and token with his own (valid) credentials.
  const bob = await RawPeer.connect(t, port);
  const bobWelcome = welcomeOf(
    await bob.handshake({ auth: Buffer.from('bob-token'), resume: stolen }),
  );
  assert.equal(bobWelcome.resumed, false, 'refused as a resume: answered like an unknown session');
  assert.notEqual(hex(bobWelcome.sessionId), hex(aliceWelcome.sessionId));
  assert.equal(bobWelcome.lastReceived, 0);
  await waitFor(() => conns.length === 2);
  assert.equal(conns[1]!.identity, 'bob');

  // Alice's session and link are untouched: not superseded, nothing handed over. A PING
  // round trip on her link after bob's WELCOME is the barrier: a CLOSE the server wrote
  // her while it took bob on would reach her before the PONG.
  alice.socket.write(encodePing(7, 1));
  await waitFor(
    () =>
      alice.closed ||
      alice.frames.some((f) => f.type === FrameType.CLOSE || f.type === FrameType.PONG),
  );
  assert.ok(alice.frames.some((f) => f.type === FrameType.PONG && f.seq === 7));
  assert.equal(alice.closed, false);
  assert.ok(!alice.frames.some((f) => f.type === FrameType.CLOSE));
  assert.equal(aliceConn.closed, false);
  assert.equal(aliceConn.state, 'healthy');
  assert.equal(server.connections.size, 2);

  // An unauthenticated thief is refused outright.
  const thief = await RawPeer.connect(t, port);
  const refused = await thief.handshake({ auth: Buffer.from('guess'), resume: stolen });
  assert.ok(refused.type === FrameType.CLOSE && refused.code === CloseCode.AUTH_FAILED);

  // Alice herself resumes her session with the same token (a new link supersedes the old).
  const again = await RawPeer.connect(t, port);
  const resumed = welcomeOf(
    await again.handshake({ auth: Buffer.from('alice-token'), resume: stolen }),
  );
  assert.equal(resumed.resumed, true);
  assert.equal(hex(resumed.sessionId), hex(aliceWelcome.sessionId));
  await waitFor(() =>
    alice.frames.some((f) => f.type === FrameType.CLOSE && f.code === CloseCode.SUPERSEDED),
  );
  assert.equal(conns.length, 2, 'no third session');
});

test('a client whose identity changed while it was away gets session-lost with exactly what was not acknowledged', async (t) => {
  // The directory maps the same token to a new identity (say the account was re-assigned).
  const directory = new Map([['token-1', 'alice']]);
  const { server, port } = await startServer(t, {
    ...FAST,
    sessionTtl: 30_000,
    authenticate: (hello) => directory.get(hello.auth.toString()) ?? false,
  });
  const conns: ServerConnection[] = [];
  server.on('connection', (c) => conns.push(c));
  const client = startClient(t, { port, auth: 'token-1', backoff: FAST_BACKOFF });
  await opened(client);
  client.send('acked');
  await waitFor(() => client.unackedCount === 0);
  const firstSession = client.sessionId;

  directory.set('token-1', 'mallory');
  // The server drops the link without a word; messages sent meanwhile stay unacknowledged.
  const disconnected = onceEvent(client, 'disconnect');
  const serverSide = conns[0]!;
  client.on('disconnect', () => {
    for (const m of ['p1', 'p2']) client.send(m);
  });
  resetLink(serverSide);
  await disconnected;

  const [lost] = (await onceEvent(client, 'session-lost', { timeout: 5000 })) as [
    { sessionId: string; unacked: Buffer[] },
  ];
  assert.equal(lost.sessionId, firstSession);
  assert.deepEqual(
    lost.unacked.map((b) => b.toString()),
    ['p1', 'p2'],
  );
  await waitFor(() => client.state === 'healthy' && conns.length === 2);
  assert.notEqual(client.sessionId, firstSession);
  assert.equal(conns[1]!.identity, 'mallory');
  assert.equal(conns[0]!.closed, false, "alice's session waits for alice, until its TTL");
});

test('authenticate sees the TCP peer: its address and port, and its socket', async (t) => {
  const peers: PeerInfo[] = [];
  const { port } = await startServer(t, {
    ...FAST,
    authenticate: (_hello, peer) => {
      peers.push(peer);
      return true;
    },
  });
  const client = startClient(t, { port, backoff: FAST_BACKOFF });
  await client.ready();
  assert.equal(peers.length, 1);
  const [peer] = peers as [PeerInfo];
  assert.equal(peer.remoteAddress, '127.0.0.1');
  assert.ok(peer.socket instanceof Socket, 'a net.Socket over TCP');
  assert.equal(peer.remotePort, peer.socket.remotePort);
  assert.equal(peer.tls, null);
});
