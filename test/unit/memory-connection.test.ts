/**
 * The transport seam, proved: the real Client and Server, each end on a real Link, over
 * the in-memory transport pair on one FakeClock, with no socket anywhere. The handshake,
 * DATA exactly once and in order under backpressure, the heartbeat timeout of a peer gone
 * silent (a pulled cable) to the wheel tick, and resume after it. The world they run in
 * (a client whose every attempt dials a new pair, the server accepting the other end) is
 * test/support/memory-session.ts.
 */

import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { ClientConnection } from '../../src/client/client.js';
import type { Connection } from '../../src/connection.js';
import type { HealthState } from '../../src/health/index.js';
import type { CloseInfo } from '../../src/link.js';
import type { CommonOptions } from '../../src/options.js';
import { linkOf, resetLink } from '../../src/testing.js';
import type { MemoryPairOptions } from '../../src/transport/memory.js';
import { inbox, MemoryWorld, TICK } from '../support/memory-session.js';

const INTERVAL = 1000;
const TIMEOUT = 3000;
/**
 * The client's first reconnect delay: long, so that a test that cuts a link sees the
 * client wait, disconnected, before it redials by itself (full jitter, random 0.5: half).
 */
const REDIAL = 20_000;

function within(value: number, lo: number, hi: number, what: string): void {
  assert.ok(value >= lo && value <= hi, `${what}: ${value} not in [${lo}, ${hi}]`);
}

/**
 * A client and the world (the server) it runs in, with `options` on both ends and `pair`
 * for the memory pairs; torn down (and checked for timers left armed) after.
 */
function rig(
  t: TestContext,
  options: CommonOptions = {},
  pair: MemoryPairOptions = {},
): { world: MemoryWorld; client: ClientConnection } {
  const heartbeat = { interval: INTERVAL, timeout: TIMEOUT };
  const world = new MemoryWorld({ ...options, ...heartbeat });
  world.pairOptions = pair;
  const client = world.client({
    ...options,
    ...heartbeat,
    backoff: { initialDelay: REDIAL, maxDelay: REDIAL },
  });
  t.after(() => world.close());
  return { world, client };
}

/** Fake time of each health state `conn` enters. */
function states(conn: Connection, world: MemoryWorld): Array<{ to: HealthState; at: number }> {
  const seen: Array<{ to: HealthState; at: number }> = [];
  conn.on('state', ({ to }) => seen.push({ to, at: world.clock.now() }));
  return seen;
}

/** Resolves with the info of `conn`'s next 'disconnect'. */
function nextDisconnect(conn: Connection): Promise<CloseInfo> {
  return new Promise((resolve) => conn.once('disconnect', resolve));
}

describe('a session over the memory transport (no sockets)', () => {
  it('handshakes: both ends open the same session, healthy, on memory links', async (t) => {
    const { world, client } = rig(t);
    const opened: unknown[] = [];
    client.on('open', (e) => opened.push(e));
    await world.until(() => client.state === 'healthy', 'client healthy');
    const pair = world.pairs[0]!;
    const conn = world.session();
    assert.equal(conn.state, 'healthy');
    assert.equal(conn.sessionId, client.sessionId);
    assert.deepEqual(opened, [{ sessionId: client.sessionId, resumed: false, replayed: 0 }]);
    assert.equal(linkOf(client).remote, `memory:${pair.b.localPort}`);
    assert.equal(linkOf(conn).remote, `memory:${pair.a.localPort}`);
    assert.equal(client.tcpOptions(), null, 'a memory link has no TCP options');
    // The idle exchange runs: the client pings once per interval and hears the PONGs.
    await world.advance(5 * INTERVAL);
    const beat = linkOf(client).beat;
    assert.ok(beat);
    within(beat.stats.pingsSent, 4, 5, 'client pings in 5 intervals');
    assert.equal(beat.stats.pongsReceived, beat.stats.pingsSent);
    assert.equal(client.state, 'healthy');
  });

  it('DATA both ways arrives exactly once and in order through backpressure', async (t) => {
    // A small window and high-water: the writers queue, drain and resume many times.
    const { world, client } = rig(t, {}, { highWater: 512, window: 2048 });
    await world.until(() => client.state === 'healthy', 'client healthy');
    const conn = world.session();
    const atServer = inbox(conn);
    const atClient = inbox(client);
    const N = 400;
    const pad = 'x'.repeat(300);
    const up: string[] = [];
    const down: string[] = [];
    for (let i = 1; i <= N; i++) {
      up.push(`c${i} ${pad}`);
      down.push(`s${i} ${pad}`);
      client.send(up[i - 1]!);
      conn.send(down[i - 1]!);
    }
    await world.until(
      () => atServer.length >= N && atClient.length >= N,
      'every message delivered',
    );
    await world.until(
      () => client.unackedCount === 0 && conn.unackedCount === 0,
      'every message acknowledged',
    );
    assert.deepEqual(atServer, up);
    assert.deepEqual(atClient, down);
    const linkStats = linkOf(client).stats;
    assert.ok(linkStats.bytesOut > N * pad.length, 'the client link did not carry the data');
  });

  it('a pulled cable: each end declares the silent peer dead at its timeout, to the tick', async (t) => {
    const { world, client } = rig(t);
    await world.until(() => client.state === 'healthy', 'client healthy');
    const pair = world.pairs[0]!;
    const conn = world.session();
    await world.advance(2.5 * INTERVAL);
    const clientStates = states(client, world);
    const serverStates = states(conn, world);
    const clientLost = nextDisconnect(client);
    const serverLost = nextDisconnect(conn);
    const droppedAt = world.clock.now();
    pair.drop();
    await world.until(
      () => client.state === 'disconnected' && conn.state === 'disconnected',
      'both ends disconnected',
      2 * TIMEOUT,
    );
    for (const [name, end, seen] of [
      ['client', client, clientStates],
      ['server', conn, serverStates],
    ] as const) {
      const heard = end.lastHeardAt;
      assert.ok(heard <= droppedAt, `${name} heard something after the cable was pulled`);
      const dead = seen.find((s) => s.to === 'dead');
      assert.ok(dead, `${name} never declared the peer dead`);
      within(dead.at, heard + TIMEOUT, heard + TIMEOUT + TICK, `${name} dead`);
      assert.deepEqual(
        seen.map((s) => s.to),
        ['suspect', 'dead', 'disconnected'],
        `${name} states`,
      );
    }
    assert.equal((await clientLost).reason, 'heartbeat-timeout');
    assert.equal((await serverLost).reason, 'heartbeat-timeout');
  });

  it('resumes after a silent drop: what was sent into the dead link arrives once, in order', async (t) => {
    const { world, client } = rig(t);
    await world.until(() => client.state === 'healthy', 'client healthy');
    const pair = world.pairs[0]!;
    const conn = world.session();
    const atServer = inbox(conn);
    const atClient = inbox(client);
    client.send('c1');
    conn.send('s1');
    await world.until(() => client.unackedCount === 0 && conn.unackedCount === 0, 'acked');
    pair.drop();
    // Written into a link whose cable is gone: never acknowledged, kept for the resume.
    for (const m of ['c2', 'c3', 'c4']) client.send(m);
    for (const m of ['s2', 's3']) conn.send(m);
    await world.until(
      () => client.state === 'disconnected' && conn.state === 'disconnected',
      'both ends disconnected',
      2 * TIMEOUT,
    );
    assert.equal(client.unackedCount, 3);
    assert.equal(conn.unackedCount, 2);
    const resumed = new Promise<{ replayed: number; resumed: boolean }>((resolve) =>
      client.once('resumed', resolve),
    );
    // The client redials by itself, on a new pair, after its backoff.
    await world.until(() => client.state === 'healthy', 'client healthy again');
    const event = await resumed;
    assert.equal(event.resumed, true);
    assert.equal(event.replayed, 3);
    assert.equal(world.session(), conn, 'the resume made a new session');
    client.send('c5');
    conn.send('s4');
    await world.until(
      () => client.unackedCount === 0 && conn.unackedCount === 0,
      'everything acknowledged after the resume',
    );
    assert.deepEqual(atServer, ['c1', 'c2', 'c3', 'c4', 'c5']);
    assert.deepEqual(atClient, ['s1', 's2', 's3', 's4']);
  });

  it('a peer that stops reading: the writer fails with write-stall at writeTimeout, to the tick', async (t) => {
    const WRITE_TIMEOUT = 2000;
    const { world, client } = rig(t, { writeTimeout: WRITE_TIMEOUT }, { window: 4096 });
    await world.until(() => client.state === 'healthy', 'client healthy');
    const pair = world.pairs[0]!;
    world.session();
    // The server's process stops reading its socket: its receive buffer fills, then the
    // client's queue, which never drains.
    pair.b.pause();
    const lost = new Promise<{ info: CloseInfo; at: number }>((resolve) =>
      client.once('disconnect', (info) => resolve({ info, at: world.clock.now() })),
    );
    const sentAt = world.clock.now();
    for (let i = 0; i < 40; i++) client.send('z'.repeat(1000));
    await world.until(() => client.state === 'disconnected', 'client disconnected', 2 * TIMEOUT);
    const { info, at } = await lost;
    assert.equal(info.reason, 'write-stall');
    within(at, sentAt + WRITE_TIMEOUT, sentAt + WRITE_TIMEOUT + TICK, 'write-stall');
    assert.equal(client.unackedCount, 40, 'the stalled messages are kept for a resume');
  });

  it('resetLink() (the suite hook) resets a memory link: the peer reads ECONNRESET and resumes', async (t) => {
    const { world, client } = rig(t);
    await world.until(() => client.state === 'healthy', 'client healthy');
    const conn = world.session();
    const atServer = inbox(conn);
    const clientLost = nextDisconnect(client);
    resetLink(conn);
    const info = await clientLost;
    assert.equal(info.reason, 'reset');
    assert.equal(info.errno, 'ECONNRESET');
    client.send('after reset');
    // The client redials by itself, on a new pair, after its backoff.
    await world.until(() => atServer.length === 1, 'the message sent while disconnected');
    assert.deepEqual(atServer, ['after reset']);
    assert.equal(world.session(), conn);
  });
});
