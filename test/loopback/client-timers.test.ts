/**
 * The client's own timers (connect deadline, backoff, stableAfter, circuit) run on the
 * timing wheel of its links, on a fake clock: the connect deadline fires on time (never
 * early, at most one tick late), and a healthy client holds one clock timer, its wheel's,
 * however many of its timers are armed. Real loopback sockets; fake time moves only
 * through advanceAsync, which lets socket I/O run.
 */

import assert from 'node:assert/strict';
import {
  type AddressInfo,
  type Socket as NetSocket,
  createServer as netServer,
  Socket,
} from 'node:net';
import { test } from 'node:test';
import { type ClientConnection, connect } from '../../src/client/client.js';
import type { ReconnectingEvent } from '../../src/connection.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { DEFAULT_TICK_MS, MAX_TIMER_DELAY_MS } from '../../src/time/wheel.js';
import { welcomeBytes } from '../support/peers.js';

const CONNECT_TIMEOUT = 2000;

/** Moves fake time in wheel ticks, an event-loop turn each, until `predicate` (5 s real). */
async function until(clock: FakeClock, predicate: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 5000;
  while (!predicate()) {
    if (performance.now() > deadline) assert.fail(`${what} not reached`);
    await clock.advanceAsync(DEFAULT_TICK_MS, DEFAULT_TICK_MS);
  }
}

test('the connect deadline is a wheel timer: it fires on time and the client retries', async (t) => {
  const clock = new FakeClock();
  // A socket that never connects: the attempt can only end by the connect deadline.
  const sockets: Socket[] = [];
  const client: ClientConnection = connect({
    port: 1,
    clock,
    connectTimeout: CONNECT_TIMEOUT,
    random: () => 0.5,
    createSocket: () => {
      const socket = new Socket();
      sockets.push(socket);
      return socket;
    },
  });
  t.after(() => {
    client.close();
    for (const s of sockets) s.destroy();
  });
  const retries: Array<{ at: number; event: ReconnectingEvent }> = [];
  client.on('reconnecting', (event) => retries.push({ at: clock.now(), event }));
  await until(clock, () => retries.length >= 2, 'two connect deadlines');
  const [first, second] = retries;
  assert.equal(first!.event.reason, 'connect-timeout');
  assert.match(first!.event.info.message, /within 2000 ms/);
  assert.ok(
    first!.at >= CONNECT_TIMEOUT && first!.at <= CONNECT_TIMEOUT + DEFAULT_TICK_MS,
    `first deadline at ${first!.at}`,
  );
  // The second attempt dialled after the backoff delay, and timed out a deadline later.
  const dialledAt = first!.at + first!.event.delayMs;
  assert.ok(
    second!.at >= dialledAt + CONNECT_TIMEOUT &&
      second!.at <= dialledAt + CONNECT_TIMEOUT + 2 * DEFAULT_TICK_MS,
    `second deadline at ${second!.at}, dialled at ${dialledAt}`,
  );
  assert.equal(sockets.length, 2, 'one socket per attempt');
});

test("a healthy client holds one clock timer, its wheel's, with stableAfter, the circuit and the heartbeat armed", async (t) => {
  const clock = new FakeClock();
  // A raw server (so the clock holds the client's timers only): WELCOME, then it answers
  // nothing; requests time out and trip the circuit breaker, which arms its reset timer.
  const sockets: NetSocket[] = [];
  const raw = netServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    socket.once('data', () => socket.write(welcomeBytes({ interval: 1000, timeout: 60_000 })));
  });
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => raw.close(() => resolve()));
  });
  const { port } = raw.address() as AddressInfo;
  const client = connect({
    port,
    clock,
    stableAfter: 60_000,
    circuitThreshold: 1,
    circuitResetAfter: 60_000,
  });
  t.after(() => client.close());
  await until(clock, () => client.state === 'healthy', 'healthy');
  const failed = client.request('x', { timeout: 100 }).catch((err: unknown) => err);
  await until(clock, () => client.circuit === 'open', 'the circuit opened');
  assert.equal(((await failed) as { code?: string }).code, 'HL_ERR_REQUEST_TIMEOUT');
  // Armed now: the heartbeat's beat, stableAfter and the circuit reset, all on the wheel.
  assert.equal(client.state, 'healthy');
  assert.equal(clock.pending, 1, 'one clock timer: the wheel of the client');
  client.close();
  await until(clock, () => client.closed, 'closed');
  assert.equal(clock.pending, 0, 'no clock timer left behind');
});

test('timer options are bounded by the longest delay a wheel timer takes', () => {
  for (const name of ['connectTimeout', 'stableAfter', 'circuitResetAfter'] as const) {
    assert.throws(
      () => connect({ port: 1, [name]: MAX_TIMER_DELAY_MS + 1 }),
      (err: unknown) => err instanceof InvalidArgumentError && err.message.includes(`"${name}"`),
      name,
    );
  }
});
