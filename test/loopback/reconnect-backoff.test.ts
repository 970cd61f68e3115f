/**
 * The backoff rule on a flapping link, on a fake clock over real loopback sockets: a link
 * that completed its handshake and then heard the server restarts the backoff, so the
 * next reconnect waits only the initial delay however often links break; a server that
 * accepts and drops before saying anything after its WELCOME still meets a growing delay.
 * Jitter is pinned (random() = 0.99, full jitter: delay = 0.99 x ceiling), so every delay
 * is exact; fake time moves only through advanceAsync, which lets socket I/O run.
 */

import assert from 'node:assert/strict';
import { type Server as NetServer, createServer as netServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type ClientConnection, connect } from '../../src/client/client.js';
import type { ReconnectingEvent } from '../../src/connection.js';
import { Decoder } from '../../src/protocol/codec.js';
import { FrameType } from '../../src/protocol/frames.js';
import { createServer, type Server } from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { resetLink } from '../../src/testing.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { welcomeBytes } from '../support/peers.js';

const INITIAL = 500;
/** Full jitter with random() = 0.99: every delay is 0.99 x its ceiling. */
const PIN = 0.99;

/** Fake time, the things opened on it, and their teardown (also on failure). */
class Rig {
  readonly clock = new FakeClock();
  readonly clients: ClientConnection[] = [];
  readonly servers: Server[] = [];
  readonly netServers: NetServer[] = [];
  readonly sockets: Socket[] = [];

  constructor(t: TestContext) {
    t.after(() => this.dispose());
  }

  client(port: number): { client: ClientConnection; delays: number[] } {
    const client = connect({
      port,
      clock: this.clock,
      random: () => PIN,
      backoff: { initialDelay: INITIAL, jitter: 'full' },
    });
    this.clients.push(client);
    const delays: number[] = [];
    client.on('reconnecting', (e: ReconnectingEvent) => delays.push(e.delayMs));
    return { client, delays };
  }

  /** Waits for `predicate`, moving fake time 10 ms per event-loop turn (5 s real at most). */
  async until(predicate: () => boolean, what: string): Promise<void> {
    const deadline = performance.now() + 5000;
    while (!predicate()) {
      if (performance.now() > deadline) assert.fail(`${what} not reached`);
      await this.clock.advanceAsync(10, 10);
    }
  }

  private async dispose(): Promise<void> {
    for (const c of this.clients) c.close();
    for (const s of this.sockets) s.destroy();
    let done = false;
    const closing = Promise.all([
      ...this.servers.map((s) => s.close()),
      ...this.netServers.map((s) => new Promise<void>((r) => s.close(() => r()))),
    ]).then(() => {
      done = true;
    });
    const deadline = performance.now() + 5000;
    while (!done && performance.now() < deadline) await this.clock.advanceAsync(100, 50);
    await closing;
  }
}

test('links that heard the server after their WELCOME keep every reconnect at the initial delay', async (t) => {
  const rig = new Rig(t);
  const server = createServer({ clock: rig.clock, interval: 1000, timeout: 3000 });
  rig.servers.push(server);
  const { port } = await server.listen(0, '127.0.0.1');
  let current: ServerConnection | null = null;
  server.on('connection', (conn) => {
    current = conn;
  });
  const { client, delays } = rig.client(port);
  await rig.until(() => client.state === 'healthy', 'first open');

  let links = 0;
  client.on('open', () => links++);
  for (let i = 1; i <= 6; i++) {
    // The link moves data: the server's ACK is heard after the WELCOME.
    client.send(`m${i}`);
    await rig.until(() => client.unackedCount === 0, `ack of m${i}`);
    // With current as the server side of this session's live link, reset it.
    resetLink(current!);
    await rig.until(() => delays.length === i, `reconnect ${i} scheduled`);
    await rig.until(() => client.state === 'healthy' && links === i, `link ${i + 1} open`);
  }
  // Without the rule: 495, 990, 1980, 3960, 7920, 15840 (the attempt climbs until
  // stableAfter, 10 s of health, which no link here reached).
  assert.deepEqual(delays, [495, 495, 495, 495, 495, 495]);
});

test('on an idle link a heartbeat heard after the WELCOME is proof enough', async (t) => {
  const rig = new Rig(t);
  const server = createServer({ clock: rig.clock, interval: 1000, timeout: 3000 });
  rig.servers.push(server);
  const { port } = await server.listen(0, '127.0.0.1');
  let current: ServerConnection | null = null;
  server.on('connection', (conn) => {
    current = conn;
  });
  const { client, delays } = rig.client(port);
  let links = 0;
  client.on('open', () => links++);
  const heard = () => {
    const beat = client.heartbeatStats;
    return beat.pongsReceived + beat.pingsReceived;
  };
  for (let i = 1; i <= 4; i++) {
    await rig.until(() => client.state === 'healthy' && links === i, `link ${i} open`);
    // No message: only the heartbeat speaks (a PONG to the client's idle PING).
    const before = heard();
    await rig.until(() => heard() > before, `a heartbeat on link ${i}`);
    resetLink(current!);
    await rig.until(() => delays.length === i, `reconnect ${i} scheduled`);
  }
  assert.deepEqual(delays, [495, 495, 495, 495]);
});

test('a server that accepts and drops before saying anything after WELCOME meets a growing delay', async (t) => {
  const rig = new Rig(t);
  let accepted = 0;
  const raw = netServer((socket) => {
    rig.sockets.push(socket);
    socket.on('error', () => {});
    accepted++;
    const decoder = new Decoder();
    socket.on('data', (chunk) => {
      if (!decoder.push(chunk).some((f) => f.type === FrameType.HELLO)) return;
      // The handshake succeeds, then the link dies before the server says anything else.
      socket.write(welcomeBytes(), () => socket.destroy());
    });
  });
  rig.netServers.push(raw);
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  const address = raw.address();
  assert.ok(address && typeof address === 'object');
  const { client, delays } = rig.client(address.port);
  let opens = 0;
  client.on('open', () => opens++);
  await rig.until(() => delays.length >= 4, 'four reconnects');
  assert.ok(opens >= 4, `every handshake succeeded (${opens} opens)`);
  assert.deepEqual(delays.slice(0, 4), [495, 990, 1980, 3960]);
  assert.ok(accepted >= 4);
});
