/**
 * The real Server and the real Client, end to end over the in-memory transport pair on
 * one FakeClock, with no socket anywhere: the client's `createSocket` hands it a fresh
 * MemoryPair end on every attempt and `server.acceptTransport()` takes the other end
 * through the same admission, handshake and sessions as an accepted TCP socket. Time
 * moves only through the fake clock, a wheel tick at a time.
 */

import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { ClientConnection } from '../../src/client/client.js';
import type {
  Connection,
  OpenEvent,
  ReconnectingEvent,
  SessionLostEvent,
} from '../../src/connection.js';
import type { HealthState } from '../../src/health/index.js';
import { type CloseInfo, Link } from '../../src/link.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import type { PeerInfo, ServerOptions } from '../../src/server/server.js';
import { TcpLink } from '../../src/tcp-link.js';
import { linkOf } from '../../src/testing.js';
import type { FakeClock } from '../../src/time/fake-clock.js';
import { MemoryPair } from '../../src/transport/memory.js';
import { inbox, MemoryWorld, TICK } from '../support/memory-session.js';

const INTERVAL = 1000;
const TIMEOUT = 3000;

function within(value: number, lo: number, hi: number, what: string): void {
  assert.ok(value >= lo && value <= hi, `${what}: ${value} not in [${lo}, ${hi}]`);
}

/** A world whose server grants INTERVAL and TIMEOUT, closed (and checked) after the test. */
function worldOf(t: TestContext, options: ServerOptions = {}): MemoryWorld {
  const w = new MemoryWorld({ interval: INTERVAL, timeout: TIMEOUT, ...options });
  t.after(() => w.close());
  return w;
}

/** A client of `w` that asks for INTERVAL and TIMEOUT. */
function clientOf(w: MemoryWorld): ClientConnection {
  return w.client({ interval: INTERVAL, timeout: TIMEOUT });
}

/** Fake time of each health state `conn` enters. */
function states(conn: Connection, clock: FakeClock): Array<{ to: HealthState; at: number }> {
  const seen: Array<{ to: HealthState; at: number }> = [];
  conn.on('state', ({ to }) => seen.push({ to, at: clock.now() }));
  return seen;
}

describe('the real Client and Server over the memory transport (no sockets)', () => {
  it('handshake, then 200 messages each way arrive exactly once and in order', async (t) => {
    const world = worldOf(t);
    const client = clientOf(world);
    const opens: unknown[] = [];
    client.on('open', (e) => opens.push(e));
    const atClient = inbox(client);
    const up: string[] = [];
    const down: string[] = [];
    // Half before the handshake (queued, then sent behind HELLO), half after.
    for (let i = 1; i <= 100; i++) up.push(`c${i}`);
    for (const m of up) client.send(m);
    await world.until(() => client.state === 'healthy', 'client healthy');
    const conn = world.session();
    const atServer = world.received.get(conn)!;
    assert.equal(conn.sessionId, client.sessionId);
    // What was queued before the WELCOME goes out behind it, counted as replayed.
    assert.deepEqual(opens, [{ sessionId: client.sessionId, resumed: false, replayed: 100 }]);
    assert.deepEqual(world.opened, [conn]);
    // Plain links on both ends: TCP's tuning is for sockets only.
    for (const link of [linkOf(client), linkOf(conn)]) {
      assert.ok(link instanceof Link && !(link instanceof TcpLink), 'a plain Link');
    }
    assert.equal(client.tcpOptions(), null);
    assert.equal(world.server.admissionStats.connections, 1);
    for (let i = 101; i <= 200; i++) {
      up.push(`c${i}`);
      client.send(`c${i}`);
    }
    for (let i = 1; i <= 200; i++) {
      down.push(`s${i}`);
      conn.send(`s${i}`);
    }
    await world.until(
      () => client.unackedCount === 0 && conn.unackedCount === 0,
      'everything acknowledged',
    );
    assert.deepEqual(atServer, up);
    assert.deepEqual(atClient, down);
    assert.equal(world.pairs.length, 1);
    assert.deepEqual(world.rejected, []);
  });

  it('a pulled cable: both ends declare the peer dead at its timeout, the client resumes on a new pair', async (t) => {
    const world = worldOf(t);
    const client = clientOf(world);
    const atClient = inbox(client);
    await world.until(() => client.state === 'healthy', 'client healthy');
    const conn = world.session();
    const atServer = world.received.get(conn)!;
    client.send('c1');
    conn.send('s1');
    await world.until(() => client.unackedCount === 0 && conn.unackedCount === 0, 'acked');
    await world.advance(2.5 * INTERVAL);
    const clientStates = states(client, world.clock);
    const serverStates = states(conn, world.clock);
    const losses: Array<[string, CloseInfo]> = [];
    client.once('disconnect', (info) => losses.push(['client', info]));
    conn.once('disconnect', (info) => losses.push(['server', info]));
    const resumed: OpenEvent[] = [];
    client.on('resumed', (e) => resumed.push(e));
    const droppedAt = world.clock.now();
    const [first] = world.pairs;
    first!.drop();
    // Sent into a link whose cable is gone: never acknowledged, kept for the resume.
    for (const m of ['c2', 'c3', 'c4']) client.send(m);
    for (const m of ['s2', 's3']) conn.send(m);
    await world.until(() => losses.length === 2, 'both ends lost the link', 2 * TIMEOUT);
    for (const [name, end, seen] of [
      ['client', client, clientStates],
      ['server', conn, serverStates],
    ] as const) {
      const heard = end.lastHeardAt;
      assert.ok(heard <= droppedAt, `${name} heard something after the cable was pulled`);
      const dead = seen.find((s) => s.to === 'dead');
      assert.ok(dead, `${name} never declared the peer dead`);
      within(dead.at, heard + TIMEOUT, heard + TIMEOUT + TICK, `${name} dead`);
    }
    for (const [name, info] of losses) assert.equal(info.reason, 'heartbeat-timeout', name);
    await world.until(
      () => resumed.length === 1 && client.state === 'healthy',
      'client resumed',
      2 * TIMEOUT,
    );
    assert.equal(world.pairs.length, 2, 'the client dialled a new pair');
    assert.equal(resumed[0]!.resumed, true);
    assert.equal(resumed[0]!.replayed, 3);
    assert.equal(world.session(), conn, 'the resume kept the session');
    assert.deepEqual(world.opened, [conn], 'the server opened no second session');
    assert.equal(linkOf(conn).transport, world.pairs[1]!.b, 'the session runs on the new pair');
    client.send('c5');
    conn.send('s4');
    await world.until(
      () => client.unackedCount === 0 && conn.unackedCount === 0,
      'everything acknowledged after the resume',
    );
    assert.deepEqual(atServer, ['c1', 'c2', 'c3', 'c4', 'c5']);
    assert.deepEqual(atClient, ['s1', 's2', 's3', 's4']);
    // The dead link's server end was closed: admission counts the new one only.
    assert.equal(world.server.admissionStats.connections, 1);
  });

  it("the server's sessionTtl expires while the client stays away: session-lost with the unacked messages", async (t) => {
    const TTL = 5000;
    const world = worldOf(t, { sessionTtl: TTL });
    const client = clientOf(world);
    await world.until(() => client.state === 'healthy', 'client healthy');
    const conn = world.session();
    const firstSession = client.sessionId;
    client.send('c1');
    await world.until(() => client.unackedCount === 0, 'c1 acknowledged');
    let serverLostAt = -1;
    conn.once('disconnect', () => {
      serverLostAt = world.clock.now();
    });
    const serverClosed: Array<{ info: CloseInfo; at: number }> = [];
    conn.once('close', (info) => serverClosed.push({ info, at: world.clock.now() }));
    const lost: SessionLostEvent[] = [];
    client.on('session-lost', (e) => lost.push(e));
    // The client stays away: every attempt is refused until the session expired.
    world.away = true;
    world.pairs[0]!.drop();
    for (const m of ['c2', 'c3']) client.send(m);
    await world.until(() => serverClosed.length === 1, 'the session expired', TIMEOUT + 2 * TTL);
    const [{ info, at }] = serverClosed as [{ info: CloseInfo; at: number }];
    assert.equal(info.reason, 'session-expired');
    assert.ok(serverLostAt >= 0);
    within(at, serverLostAt + TTL, serverLostAt + TTL + TICK, 'session expiry');
    assert.equal(world.server.connections.size, 0);
    assert.equal(lost.length, 0, 'the client cannot know yet');
    assert.ok(world.pairs.length > 1, 'the client kept trying');
    world.away = false;
    await world.until(() => lost.length === 1 && client.state === 'healthy', 'client back', 60_000);
    assert.equal(lost[0]!.sessionId, firstSession);
    assert.deepEqual(
      lost[0]!.unacked.map((b) => b.toString()),
      ['c2', 'c3'],
    );
    assert.notEqual(client.sessionId, firstSession, 'a new session');
    assert.equal(world.session().sessionId, client.sessionId);
    assert.equal(world.opened.length, 2);
  });

  it('admission: a server at maxConnections refuses a memory peer with CLOSE(overloaded)', async (t) => {
    const world = worldOf(t, { maxConnections: 1 });
    const first = clientOf(world);
    await world.until(() => first.state === 'healthy', 'first client healthy');
    const second = clientOf(world);
    const retries: ReconnectingEvent[] = [];
    second.on('reconnecting', (e) => retries.push(e));
    await world.until(() => retries.length > 0, 'the second client refused', 1000);
    const retry = retries[0]!;
    assert.equal(retry.reason, 'overloaded');
    assert.equal(retry.info.code, CloseCode.OVERLOADED);
    assert.ok((retry.info.retryAfter ?? 0) > 0, 'a retry hint');
    assert.ok(retry.delayMs >= retry.info.retryAfter!, 'the client waits for the hint');
    second.close();
    assert.equal(world.rejected.length, 1);
    assert.equal(world.rejected[0]!.limit, 'max-connections');
    assert.equal(world.rejected[0]!.info.reason, 'overloaded');
    assert.equal(world.server.admissionStats.refused['max-connections'], 1);
    assert.equal(world.server.admissionStats.connections, 1);
    assert.equal(world.session().sessionId, first.sessionId);
    assert.equal(first.state, 'healthy');
  });

  it('authenticate sees a memory peer: its name and port, and no socket', async (t) => {
    const peers: PeerInfo[] = [];
    const world = worldOf(t, {
      authenticate: (hello, peer) => {
        peers.push(peer);
        return hello.auth.toString() === 'ok' ? 'alice' : false;
      },
    });
    const client = world.client({ interval: INTERVAL, timeout: TIMEOUT, auth: 'ok' });
    await world.until(() => client.state === 'healthy', 'client healthy');
    assert.equal(peers.length, 1);
    const [peer] = peers as [PeerInfo];
    assert.equal(peer.remoteAddress, 'memory');
    assert.equal(peer.remotePort, world.pairs[0]!.a.localPort);
    assert.equal(peer.socket, null, 'a memory transport is no socket');
    assert.equal(peer.tls, null);
    assert.equal(world.session().identity, 'alice');
  });

  it('a memory peer that never sends HELLO is turned away at handshakeTimeout, to the tick', async (t) => {
    const HANDSHAKE = 2000;
    const world = worldOf(t, { handshakeTimeout: HANDSHAKE });
    const pair = new MemoryPair();
    const acceptedAt = world.clock.now();
    world.server.acceptTransport(pair.b);
    assert.equal(world.server.admissionStats.connections, 1);
    let closedAt = -1;
    pair.a.on('close', () => {
      closedAt = world.clock.now();
    });
    pair.a.on('data', () => {});
    await world.until(() => world.rejected.length === 1, 'the silent peer rejected', 2 * HANDSHAKE);
    assert.equal(world.rejected[0]!.info.reason, 'handshake-timeout');
    within(world.clock.now(), acceptedAt + HANDSHAKE, acceptedAt + HANDSHAKE + TICK, 'rejected');
    await world.until(() => closedAt >= 0, 'the memory peer closed', 2 * HANDSHAKE);
    assert.equal(world.server.admissionStats.connections, 0);
    assert.equal(world.server.connections.size, 0);
  });
});
