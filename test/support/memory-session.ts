/**
 * The real Server and the real Client over the in-memory transport, on one FakeClock,
 * with no socket anywhere: every attempt of a client made by {@link MemoryWorld.client}
 * dials a new MemoryPair (its `createSocket` returns one end) and the server takes the
 * other end through `server.acceptTransport()`, the same admission, handshake and
 * sessions as an accepted TCP socket. Time moves only when the test moves it.
 */

import assert from 'node:assert/strict';
import { type ClientConnection, type ClientOptions, connect } from '../../src/client/client.js';
import type { Connection } from '../../src/connection.js';
import {
  createServer,
  type RejectEvent,
  type Server,
  type ServerOptions,
} from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { wheelOf } from '../../src/testing.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { MemoryPair, type MemoryPairOptions } from '../../src/transport/memory.js';
import type { Transport } from '../../src/transport/transport.js';

/** The wheel's tick: deadlines hold to within one. */
export const TICK = 10;

/** The close grace of a link (src/link.ts CLOSE_GRACE_MS). */
export const CLOSE_GRACE = 1000;

/** Every message `conn` receives, as text. */
export function inbox(conn: Connection): string[] {
  const got: string[] = [];
  conn.on('message', (data) => got.push(data.toString()));
  return got;
}

/** One test's world: a fake clock, a real server, and the memory pairs its clients dial. */
export class MemoryWorld {
  readonly clock = new FakeClock();
  readonly server: Server;
  /** Every pair a client dialled, in order. */
  readonly pairs: MemoryPair[] = [];
  /** Options of the pairs dialled from now on (a small window, say). */
  pairOptions: MemoryPairOptions = {};
  /** While true, a dial finds nobody listening: the server's end resets at once. */
  away = false;
  /** Sessions the server opened ('connection'), in order. */
  readonly opened: ServerConnection[] = [];
  /** What each session received, from its first message on. */
  readonly received = new Map<ServerConnection, string[]>();
  /** The server's 'rejected' events. */
  readonly rejected: RejectEvent[] = [];
  private readonly clients: ClientConnection[] = [];

  /** `options` go to the server (the clock is the world's). */
  constructor(options: ServerOptions = {}) {
    this.server = createServer({ ...options, clock: this.clock });
    this.server.on('connection', (conn) => {
      this.opened.push(conn);
      this.received.set(conn, inbox(conn));
    });
    this.server.on('rejected', (e) => this.rejected.push(e));
  }

  /** A client whose every attempt dials a new memory pair into this world's server. */
  client(options: Partial<ClientOptions> = {}): ClientConnection {
    const client = connect({
      port: 1,
      random: () => 0.5,
      ...options,
      clock: this.clock,
      createSocket: () => this.dial(),
    });
    this.clients.push(client);
    return client;
  }

  /** A new pair: the client gets one end, the server accepts the other. */
  dial(): Transport {
    const pair = new MemoryPair(this.pairOptions);
    this.pairs.push(pair);
    // Nobody listens: as a refused TCP connect, the attempt fails at once.
    if (this.away) pair.b.resetAndDestroy();
    else this.server.acceptTransport(pair.b);
    return pair.a;
  }

  /** The server's only session. */
  session(): ServerConnection {
    const conns = [...this.server.connections.values()];
    assert.equal(conns.length, 1, 'sessions on the server');
    return conns[0]!;
  }

  /** Moves fake time by `ms` one tick at a time, letting deliveries run between ticks. */
  advance(ms: number): Promise<void> {
    return this.clock.advanceAsync(ms, TICK);
  }

  /**
   * Moves fake time a tick at a time until `predicate` holds.
   * @throws Error after `limitMs` of fake time.
   */
  async until(predicate: () => boolean, what: string, limitMs = 60_000): Promise<void> {
    const deadline = this.clock.now() + limitMs;
    while (!predicate()) {
      if (this.clock.now() >= deadline) throw new Error(`${what}: not within ${limitMs} ms`);
      await this.advance(TICK);
    }
  }

  /**
   * Closes every client and every session, waits for both ends to close, then lets the
   * close grace pass; then checks that no timer of theirs is left armed.
   */
  async closeEnds(): Promise<void> {
    for (const client of this.clients) client.close();
    const sessions = [...this.server.connections.values()];
    for (const conn of sessions) conn.close();
    await this.until(
      () => this.clients.every((c) => c.closed) && this.server.connections.size === 0,
      'both ends closed',
      10 * CLOSE_GRACE,
    );
    await this.advance(2 * CLOSE_GRACE);
    for (const conn of [...this.clients, ...this.opened]) {
      assert.equal(wheelOf(conn).size, 0, 'timers left armed after both ends closed');
    }
  }

  /** {@link closeEnds}, then closes the server (with the fake clock moving). */
  async close(): Promise<void> {
    await this.closeEnds();
    let done = false;
    void this.server.close().then(() => {
      done = true;
    });
    await this.until(() => done, 'the server closed', 10 * CLOSE_GRACE);
  }
}
