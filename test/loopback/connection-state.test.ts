/**
 * Every transition of the per-connection health machine, as it happens in real
 * Connections: real loopback sockets, but every timer of both ends (heartbeat, handshake,
 * backoff, session TTL, close grace) on one FakeClock. Fake time moves only through
 * `advanceAsync`, which yields to the event loop between 10 ms steps so socket I/O runs;
 * whatever depends on I/O alone is awaited in real time while fake time stands still.
 * A frozen peer is a raw protocol peer that handshakes and then says nothing.
 */

import assert from 'node:assert/strict';
import { type Server as NetServer, createServer as netServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type ClientConnection, type ClientOptions, connect } from '../../src/client/client.js';
import type { Connection } from '../../src/connection.js';
import type { HealthState } from '../../src/health/index.js';
import type { CloseInfo } from '../../src/link.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { Decoder, encodePing } from '../../src/protocol/codec.js';
import { type Frame, FrameType } from '../../src/protocol/frames.js';
import { createServer, type Server, type ServerOptions } from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { linkOf } from '../../src/testing.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { RawPeer, welcomeBytes } from '../support/peers.js';
import { onceEvent, waitFor } from '../support/wait.js';

const INTERVAL = 1000;
const TIMEOUT = 3000;
const SUSPECT_AFTER = 1500;
const TICK = 10;
/** Fake ms per advanceAsync step: one wheel tick, with an event-loop turn after each. */
const STEP = 10;
const BACKOFF = 500;

/** One observed 'state' event, with the fake time it happened at. */
interface Seen {
  from: HealthState;
  to: HealthState;
  reason: string;
  at: number;
}

/** Records every 'state' event of `conn`, stamped with fake time. */
function track(conn: Connection, clock: FakeClock): Seen[] {
  const seen: Seen[] = [];
  conn.on('state', ({ from, to, reason }) => seen.push({ from, to, reason, at: clock.now() }));
  return seen;
}

/** The transitions as 'from>to' strings, for whole-sequence assertions. */
function moves(seen: Seen[]): string[] {
  return seen.map((s) => `${s.from}>${s.to}`);
}

function within(value: number, lo: number, hi: number, what: string): void {
  assert.ok(value >= lo && value <= hi, `${what}: ${value} not in [${lo}, ${hi}]`);
}

/**
 * One test's world: a fake clock, and everything opened on it, torn down in a safe order
 * (clients, raw sockets, then servers, pumping fake time so close-grace timers can fire).
 */
class Rig {
  readonly clock = new FakeClock();
  private readonly clients: ClientConnection[] = [];
  private readonly sockets: Socket[] = [];
  private readonly servers: Server[] = [];
  private readonly netServers: NetServer[] = [];

  constructor(t: TestContext) {
    t.after(() => this.dispose());
  }

  /** A heartline server on 127.0.0.1:0 with a 1 s / 3 s heartbeat on the fake clock. */
  async server(options: ServerOptions = {}): Promise<{ server: Server; port: number }> {
    const server = createServer({
      clock: this.clock,
      interval: INTERVAL,
      timeout: TIMEOUT,
      ...options,
    });
    this.servers.push(server);
    const { port } = await server.listen(0, '127.0.0.1');
    return { server, port };
  }

  /** A client on the fake clock with a deterministic 500 ms first backoff. */
  client(port: number, options: Partial<ClientOptions> = {}): ClientConnection {
    const client = connect({
      port,
      clock: this.clock,
      backoff: { jitter: 'none', initialDelay: BACKOFF },
      ...options,
    });
    this.clients.push(client);
    return client;
  }

  /** A raw client that handshakes and then stays silent unless told otherwise. */
  async rawPeer(t: TestContext, port: number): Promise<RawPeer> {
    const peer = await RawPeer.connect(t, port);
    this.sockets.push(peer.socket);
    return peer;
  }

  /**
   * A raw server: calls `onHello` with each accepted socket once its HELLO arrived.
   * Sockets it accepts are destroyed at the end of the test.
   */
  async rawServer(onHello: (socket: Socket, n: number) => void): Promise<number> {
    let accepted = 0;
    const server = netServer((socket) => {
      this.sockets.push(socket);
      socket.on('error', () => {});
      const n = ++accepted;
      const decoder = new Decoder();
      let hello = false;
      socket.on('data', (chunk) => {
        if (hello) return;
        let frames: Frame[] = [];
        try {
          frames = decoder.push(chunk);
        } catch {
          socket.destroy();
        }
        if (frames.some((f) => f.type === FrameType.HELLO)) {
          hello = true;
          onHello(socket, n);
        }
      });
    });
    this.netServers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    assert.ok(address && typeof address === 'object');
    return address.port;
  }

  /** Moves fake time by `ms` in wheel-tick steps, letting socket I/O run between steps. */
  advance(ms: number): Promise<void> {
    return this.clock.advanceAsync(ms, STEP);
  }

  /** Moves fake time to exactly `at` (no-op if already there). */
  advanceTo(at: number): Promise<void> {
    return this.advance(Math.max(0, at - this.clock.now()));
  }

  /**
   * Waits for `predicate`, moving fake time one step per event-loop turn meanwhile (for
   * outcomes that may hang on a timer, such as the close grace of a peer that never
   * answers). Gives up after 5 s of real time or 60 s of fake time.
   */
  async until(predicate: () => boolean, what = 'condition'): Promise<void> {
    const realDeadline = performance.now() + 5000;
    const fakeDeadline = this.clock.now() + 60_000;
    while (!predicate()) {
      if (performance.now() > realDeadline || this.clock.now() > fakeDeadline) {
        assert.fail(`${what} not reached`);
      }
      await this.advance(STEP);
    }
  }

  private async dispose(): Promise<void> {
    for (const client of this.clients) client.close();
    for (const socket of this.sockets) socket.destroy();
    let done = false;
    const closing = Promise.all([
      ...this.servers.map((s) => s.close()),
      ...this.netServers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    ]).then(() => {
      done = true;
    });
    const deadline = performance.now() + 5000;
    while (!done && performance.now() < deadline) await this.clock.advanceAsync(100, 50);
    await closing;
  }
}

/** A WELCOME for a fresh session with this file's heartbeat. */
function welcome(): Buffer {
  return welcomeBytes({ interval: INTERVAL, timeout: TIMEOUT });
}

/** Resolves with the server's Connection for the next session, tracked from its first event. */
function nextConnection(
  server: Server,
  clock: FakeClock,
): Promise<{ conn: ServerConnection; seen: Seen[] }> {
  return new Promise((resolve) => {
    server.once('connection', (conn) => resolve({ conn, seen: track(conn, clock) }));
  });
}

test('connect: connecting>healthy on both ends, and an idle link stays healthy', async (t) => {
  const rig = new Rig(t);
  const { server, port } = await rig.server();
  const serverSide = nextConnection(server, rig.clock);
  const client = rig.client(port);
  assert.equal(client.state, 'connecting');
  const clientSeen = track(client, rig.clock);
  const { conn, seen: serverSeen } = await serverSide;
  await waitFor(() => client.state === 'healthy');

  assert.deepEqual(moves(clientSeen), ['connecting>healthy']);
  assert.equal(clientSeen[0]!.reason, 'handshake complete');
  assert.deepEqual(moves(serverSeen), ['connecting>healthy']);
  assert.equal(conn.state, 'healthy');
  assert.deepEqual(client.settings, { interval: INTERVAL, timeout: TIMEOUT, suspectAfter: 1500 });

  // Twenty idle intervals: both ends ping, both answer, nobody turns suspect.
  await rig.advance(20 * INTERVAL);
  assert.deepEqual(moves(clientSeen), ['connecting>healthy']);
  assert.deepEqual(moves(serverSeen), ['connecting>healthy']);
  assert.ok(client.rtt !== undefined && conn.rtt !== undefined, 'no RTT sample on fake time');
  assert.ok(client.rtt < 100, `client rtt ${client.rtt} fake ms`);
});

test('an idle link: the client leads, one exchange per interval; the server samples RTT every 8 intervals', async (t) => {
  const rig = new Rig(t);
  const { server, port } = await rig.server();
  const serverSide = nextConnection(server, rig.clock);
  const client = rig.client(port);
  const { conn } = await serverSide;
  await waitFor(() => client.state === 'healthy');
  const rtts: number[] = [];
  conn.on('rtt', (ms) => rtts.push(ms));

  const intervals = 40;
  await rig.advance(intervals * INTERVAL);
  const s = conn.heartbeatStats;
  const c = client.heartbeatStats;
  // Every PING the server answered is the client's; the client never waits for the server.
  within(s.pingsReceived, intervals - 1, intervals + 1, 'client PINGs the server answered');
  assert.equal(c.pingsSent, s.pingsReceived);
  // The server's only PINGs are its RTT refreshes, which ride with its PONGs: one with
  // the first PONG, then one per RTT_REFRESH_INTERVALS (8) intervals.
  within(s.pingsSent, intervals / 8, intervals / 8 + 1, 'server PINGs');
  assert.equal(c.pingsReceived, s.pingsSent);
  assert.equal(s.pongsReceived, s.pingsSent);
  assert.equal(rtts.length, s.pingsSent, 'one RTT sample per refresh');
  assert.ok(conn.rtt !== undefined && conn.rtt < 100, `server rtt ${conn.rtt} fake ms`);
  assert.equal(s.probes + c.probes, 0, 'nobody was ever suspected');
});

test('server end, peer silent: healthy>suspect>dead>disconnected (heartbeat-timeout)', async (t) => {
  const rig = new Rig(t);
  const { server, port } = await rig.server({ sessionTtl: 10_000 });
  const serverSide = nextConnection(server, rig.clock);
  const peer = await rig.rawPeer(t, port);
  await peer.handshake();
  const { conn, seen } = await serverSide;
  peer.freeze();
  const start = rig.clock.now();
  assert.deepEqual(moves(seen), ['connecting>healthy']);

  await rig.advanceTo(start + SUSPECT_AFTER - STEP);
  assert.equal(conn.state, 'healthy', 'suspect before suspectAfter');
  await rig.advanceTo(start + SUSPECT_AFTER + STEP);
  assert.deepEqual(moves(seen), ['connecting>healthy', 'healthy>suspect']);
  within(seen[1]!.at, start + SUSPECT_AFTER, start + SUSPECT_AFTER + TICK, 'suspect');

  await rig.advanceTo(start + TIMEOUT - STEP);
  assert.equal(conn.state, 'suspect', 'dead before the timeout');
  const disconnected = onceEvent(conn, 'disconnect');
  await rig.advanceTo(start + TIMEOUT + STEP);
  const [info] = (await disconnected) as [CloseInfo];
  assert.equal(info.reason, 'heartbeat-timeout');
  assert.equal(info.code, CloseCode.HEARTBEAT_TIMEOUT);
  assert.deepEqual(moves(seen), [
    'connecting>healthy',
    'healthy>suspect',
    'suspect>dead',
    'dead>disconnected',
  ]);
  within(seen[2]!.at, start + TIMEOUT, start + TIMEOUT + TICK, 'dead');
  assert.equal(seen[3]!.reason, 'heartbeat-timeout');

  // The frozen peer finds the CLOSE(heartbeat timeout) once it reads again.
  peer.socket.resume();
  await waitFor(() => peer.frames.some((f) => f.type === FrameType.CLOSE));
  const close = peer.frames.find((f) => f.type === FrameType.CLOSE);
  assert.equal(close?.type === FrameType.CLOSE && close.code, CloseCode.HEARTBEAT_TIMEOUT);

  // Nobody resumes: the session expires after its TTL, disconnected>closed.
  await rig.advanceTo(seen[3]!.at + 10_000 - STEP);
  assert.equal(conn.state, 'disconnected');
  await rig.advance(2 * STEP);
  assert.deepEqual(moves(seen).slice(4), ['disconnected>closed']);
  assert.equal(seen[4]!.reason, 'session-expired');
  assert.equal(server.connections.size, 0);
});

test('client end, peer silent: healthy>suspect>dead>disconnected, then it reconnects', async (t) => {
  const rig = new Rig(t);
  const port = await rig.rawServer((socket) => {
    socket.write(welcome());
    socket.pause(); // frozen: reads nothing, answers nothing
  });
  const client = rig.client(port);
  const seen = track(client, rig.clock);
  await waitFor(() => client.state === 'healthy');
  const start = rig.clock.now();

  await rig.advanceTo(start + SUSPECT_AFTER - STEP);
  assert.equal(client.state, 'healthy');
  await rig.advanceTo(start + TIMEOUT - STEP);
  assert.deepEqual(moves(seen), ['connecting>healthy', 'healthy>suspect']);
  within(seen[1]!.at, start + SUSPECT_AFTER, start + SUSPECT_AFTER + TICK, 'suspect');

  const disconnected = onceEvent(client, 'disconnect');
  await rig.advanceTo(start + TIMEOUT + STEP);
  const [info] = (await disconnected) as [CloseInfo];
  assert.equal(info.reason, 'heartbeat-timeout');
  within(seen[2]!.at, start + TIMEOUT, start + TIMEOUT + TICK, 'dead');
  assert.deepEqual(moves(seen).slice(2), ['suspect>dead', 'dead>disconnected']);
  assert.equal(seen[3]!.reason, 'heartbeat-timeout');

  // The backoff (500 ms, no jitter) runs on the fake clock too.
  const lostAt = seen[3]!.at;
  await rig.advanceTo(lostAt + BACKOFF - STEP);
  assert.equal(client.state, 'disconnected', 'redialled before the backoff delay');
  await rig.advance(2 * STEP);
  await waitFor(() => client.state === 'healthy');
  assert.deepEqual(moves(seen).slice(4), ['disconnected>connecting', 'connecting>healthy']);
  within(seen[4]!.at, lostAt + BACKOFF, lostAt + BACKOFF + STEP, 'redial');
});

test('suspect>healthy as soon as the silent peer speaks again (both ends)', async (t) => {
  const rig = new Rig(t);
  // Server end: a raw client that goes quiet, then sends one PING.
  const { server, port } = await rig.server();
  const serverSide = nextConnection(server, rig.clock);
  const peer = await rig.rawPeer(t, port);
  await peer.handshake();
  const { conn, seen: serverSeen } = await serverSide;
  await rig.advance(SUSPECT_AFTER + 100);
  assert.equal(conn.state, 'suspect');
  const speakAt = rig.clock.now();
  peer.socket.write(encodePing(1, 0));
  await waitFor(() => conn.state === 'healthy');
  assert.equal(rig.clock.now(), speakAt, 'healthy only after fake time moved');
  assert.deepEqual(moves(serverSeen), ['connecting>healthy', 'healthy>suspect', 'suspect>healthy']);
  assert.equal(serverSeen[2]!.reason, 'traffic resumed');
  // The PING was answered at once.
  await waitFor(() => peer.frames.some((f) => f.type === FrameType.PONG));

  // Client end: a raw server that goes quiet, then sends one PING.
  let serverSocket: Socket | null = null;
  const rawPort = await rig.rawServer((socket) => {
    serverSocket = socket;
    socket.write(welcome());
  });
  const client = rig.client(rawPort);
  const clientSeen = track(client, rig.clock);
  await waitFor(() => client.state === 'healthy');
  await rig.advance(SUSPECT_AFTER + 100);
  assert.equal(client.state, 'suspect');
  (serverSocket as Socket | null)?.write(encodePing(1, 0));
  await waitFor(() => client.state === 'healthy');
  assert.deepEqual(moves(clientSeen), ['connecting>healthy', 'healthy>suspect', 'suspect>healthy']);
});

test('server drops the link: the client goes disconnected>connecting>healthy and resumes', async (t) => {
  const rig = new Rig(t);
  const { server, port } = await rig.server();
  const serverSide = nextConnection(server, rig.clock);
  const client = rig.client(port);
  const clientSeen = track(client, rig.clock);
  const { conn, seen: serverSeen } = await serverSide;
  await waitFor(() => client.state === 'healthy');
  const sessionId = client.sessionId;
  let newSessions = 0;
  server.on('connection', () => newSessions++);

  linkOf(conn).transport.destroy();
  await waitFor(() => client.state === 'disconnected' && conn.state === 'disconnected');
  const lostAt = rig.clock.now();
  assert.deepEqual(moves(serverSeen), ['connecting>healthy', 'healthy>disconnected']);
  assert.deepEqual(moves(clientSeen), ['connecting>healthy', 'healthy>disconnected']);
  assert.equal(clientSeen[1]!.reason, 'eof');

  await rig.advance(BACKOFF - STEP);
  assert.equal(client.state, 'disconnected', 'redialled before the backoff delay');
  await rig.advance(2 * STEP);
  await waitFor(() => client.state === 'healthy' && conn.state === 'healthy');
  assert.deepEqual(moves(clientSeen), [
    'connecting>healthy',
    'healthy>disconnected',
    'disconnected>connecting',
    'connecting>healthy',
  ]);
  within(clientSeen[2]!.at, lostAt + BACKOFF, lostAt + BACKOFF + STEP, 'redial');
  assert.equal(clientSeen[3]!.reason, 'session resumed');
  // The server resumed the same Connection: disconnected>healthy, no new session.
  assert.deepEqual(moves(serverSeen), [
    'connecting>healthy',
    'healthy>disconnected',
    'disconnected>healthy',
  ]);
  assert.equal(serverSeen[2]!.reason, 'session resumed');
  assert.equal(client.sessionId, sessionId);
  assert.equal(newSessions, 0);
});

test('close(): healthy>closed on both ends, with no disconnect in between', async (t) => {
  const rig = new Rig(t);
  const { server, port } = await rig.server();
  const serverSide = nextConnection(server, rig.clock);
  const client = rig.client(port);
  const clientSeen = track(client, rig.clock);
  const { conn, seen: serverSeen } = await serverSide;
  await waitFor(() => client.state === 'healthy');

  const serverClosed = onceEvent(conn, 'close');
  client.close();
  // 'closed' may wait for the closing handshake (the peer's FIN): no fake time needed.
  await waitFor(() => client.state === 'closed');
  assert.deepEqual(moves(clientSeen), ['connecting>healthy', 'healthy>closed']);
  assert.equal(clientSeen[1]!.reason, 'local');
  const [info] = (await serverClosed) as [CloseInfo];
  assert.equal(info.reason, 'remote');
  // A close that ends the session is reported as such, not as a lost link first.
  assert.deepEqual(moves(serverSeen), ['connecting>healthy', 'healthy>closed']);
  // Closed is terminal: more time, nothing more.
  await rig.advance(10 * INTERVAL);
  assert.equal(clientSeen.length, 2);
  assert.equal(serverSeen.length, 2);
});

test('close() from every other state: connecting, suspect, disconnected, dead', async (t) => {
  const rig = new Rig(t);

  // connecting>closed: the server never answers the HELLO.
  const mutePort = await rig.rawServer(() => {});
  const early = rig.client(mutePort);
  const earlySeen = track(early, rig.clock);
  early.close();
  await rig.until(() => early.state === 'closed');
  assert.deepEqual(moves(earlySeen), ['connecting>closed']);

  // suspect>closed: a silent server, which never answers the CLOSE either: the link's
  // close grace (fake time) ends it.
  const silentPort = await rig.rawServer((socket) => {
    socket.write(welcome());
    socket.pause();
  });
  const quiet = rig.client(silentPort);
  const quietSeen = track(quiet, rig.clock);
  await waitFor(() => quiet.state === 'healthy');
  await rig.advance(SUSPECT_AFTER + 100);
  quiet.close();
  await rig.until(() => quiet.state === 'closed');
  assert.deepEqual(moves(quietSeen), ['connecting>healthy', 'healthy>suspect', 'suspect>closed']);

  // disconnected>closed: closed while waiting for the backoff.
  const { server, port } = await rig.server();
  const serverSide = nextConnection(server, rig.clock);
  const waiting = rig.client(port);
  const waitingSeen = track(waiting, rig.clock);
  const { conn } = await serverSide;
  await waitFor(() => waiting.state === 'healthy');
  linkOf(conn).transport.destroy();
  await waitFor(() => waiting.state === 'disconnected');
  waiting.close();
  await rig.until(() => waiting.state === 'closed');
  assert.deepEqual(moves(waitingSeen), [
    'connecting>healthy',
    'healthy>disconnected',
    'disconnected>closed',
  ]);
  await rig.advance(2 * BACKOFF);
  assert.equal(waitingSeen.length, 3, 'redialled after close()');

  // dead>closed: closed from the listener that sees 'dead'; the link's end is then ignored.
  const deadSide = nextConnection(server, rig.clock);
  const peer = await rig.rawPeer(t, port);
  await peer.handshake();
  const { conn: dying, seen: dyingSeen } = await deadSide;
  dying.on('state', ({ to }) => {
    if (to === 'dead') dying.close();
  });
  await rig.advance(TIMEOUT + STEP);
  await rig.until(() => dying.state === 'closed');
  assert.deepEqual(moves(dyingSeen), [
    'connecting>healthy',
    'healthy>suspect',
    'suspect>dead',
    'dead>closed',
  ]);
});

test('connecting>disconnected: no WELCOME within the handshake timeout', async (t) => {
  const rig = new Rig(t);
  let accepted = 0;
  const port = await rig.rawServer(() => {
    accepted++;
  });
  const client = rig.client(port, { handshakeTimeout: 2000 });
  const seen = track(client, rig.clock);
  await waitFor(() => accepted === 1);
  const start = rig.clock.now();
  await rig.advance(2000 - STEP);
  assert.equal(client.state, 'connecting');
  const failed = onceEvent(client, 'reconnecting');
  await rig.advance(2 * STEP);
  await failed;
  assert.deepEqual(moves(seen), ['connecting>disconnected']);
  assert.equal(seen[0]!.reason, 'handshake-timeout');
  within(seen[0]!.at, start + 2000, start + 2000 + STEP, 'handshake timeout');
  // And it tries again after the backoff.
  await rig.advance(BACKOFF);
  await waitFor(() => accepted === 2);
  assert.deepEqual(moves(seen), ['connecting>disconnected', 'disconnected>connecting']);
});

test('healthy>dead directly when the event loop stalls past the whole timeout', async (t) => {
  const rig = new Rig(t);
  const { server, port } = await rig.server();
  const serverSide = nextConnection(server, rig.clock);
  const peer = await rig.rawPeer(t, port);
  await peer.handshake();
  const { seen } = await serverSide;
  rig.clock.jump(TIMEOUT + 500);
  await rig.advance(STEP);
  await waitFor(() => seen.length >= 3);
  assert.deepEqual(moves(seen), ['connecting>healthy', 'healthy>dead', 'dead>disconnected']);
  assert.equal(seen[1]!.reason, 'heartbeat-timeout');
});

test('suspect>disconnected: the peer hangs up while suspected', async (t) => {
  const rig = new Rig(t);
  const { server, port } = await rig.server();
  const serverSide = nextConnection(server, rig.clock);
  const peer = await rig.rawPeer(t, port);
  await peer.handshake();
  const { conn, seen } = await serverSide;
  await rig.advance(SUSPECT_AFTER + 100);
  assert.equal(conn.state, 'suspect');
  peer.socket.end();
  await waitFor(() => conn.state === 'disconnected');
  assert.deepEqual(moves(seen), ['connecting>healthy', 'healthy>suspect', 'suspect>disconnected']);
  assert.equal(seen[2]!.reason, 'eof');
});
