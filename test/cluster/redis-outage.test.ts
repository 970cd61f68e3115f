/**
 * Redis outages under a streaming CLI client, as an operator meets them: a real
 * redis-server, `heartline serve --echo --redis` nodes and `heartline connect --json`
 * (the built CLI) sending numbered lines every 10 ms while Redis is
 * - killed (SIGKILL) and restarted empty (no persistence),
 * - killed and restarted with its data (AOF),
 * - frozen (SIGSTOP) past the store timeout, then thawed,
 * - frozen for longer than the session TTL, so that its keys have expired when it thaws.
 * In each case every echo comes back exactly once and in order (each line reached the
 * application once, each reply the client once), the node reports how many sessions it
 * wrote back and how long that took, acknowledgements flow again (the client exits 0 at
 * stdin EOF, which it does only once the server acknowledged every line), and, after a
 * restart, the session resumes on another node with nothing lost or doubled.
 */

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, type TestContext, test } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisStore } from '../../src/cluster/redis-store.js';
import { type Child, type CliEvent, requireBuiltCli, run } from '../support/cli.js';
import { freePort, RedisServer, type RedisServerOptions, redisSkip } from '../support/redis.js';
import { waitFor, withTimeout } from '../support/wait.js';

const skip = redisSkip();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Lines sent before the outage, and once Redis answers again (more go during it). */
const BEFORE_OUTAGE = 100;
const AFTER_OUTAGE = 100;
/** Lines sent after the node holding the session was killed (when the case moves it). */
const AFTER_MOVE = 50;

interface Case {
  name: string;
  redis: RedisServerOptions;
  /** Extra `serve` flags. */
  serve: string[];
  /** Breaks Redis and repairs it; resolves once it answers again. */
  outage(redis: RedisServer, session: string): Promise<void>;
  /** Kill the node holding the session after the write-back: the client resumes elsewhere. */
  move: boolean;
  /** The session's keys expire during the outage. */
  expired?: boolean;
}

/** Asserts that Redis 7's AOF (appendonlydir/) holds the session: a restart loads it. */
function assertInAof(redis: RedisServer, session: string): void {
  const aof = join(redis.dir, 'appendonlydir');
  const text = readdirSync(aof)
    .map((f) => readFileSync(join(aof, f), 'latin1'))
    .join('');
  assert.ok(text.includes(session), 'the killed Redis had the session in its AOF');
}

const CASES: Case[] = [
  {
    name: 'Redis killed and restarted empty',
    redis: {},
    serve: [],
    outage: async (redis) => {
      await redis.stop('SIGKILL');
      await sleep(2000);
      await redis.resume();
    },
    move: true,
  },
  {
    name: 'Redis killed and restarted with its data (AOF)',
    redis: { appendonly: true },
    serve: [],
    outage: async (redis, session) => {
      await redis.stop('SIGKILL');
      assertInAof(redis, session);
      await sleep(2000);
      await redis.resume();
    },
    move: true,
  },
  {
    name: 'Redis frozen past the store timeout',
    redis: {},
    serve: ['--store-timeout', '300'],
    outage: async (redis) => {
      redis.signal('SIGSTOP');
      await sleep(1500);
      redis.signal('SIGCONT');
    },
    move: false,
  },
  {
    name: 'Redis unreachable for longer than the session TTL',
    redis: {},
    serve: ['--store-timeout', '300', '--session-ttl', '1000'],
    outage: async (redis) => {
      redis.signal('SIGSTOP');
      await sleep(2500);
      redis.signal('SIGCONT');
    },
    move: false,
    expired: true,
  },
];

/** One `serve --echo --json --redis` node. */
async function serveNode(
  t: TestContext,
  redis: RedisServer,
  nodeId: string,
  extra: string[],
): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const args = ['serve', '--echo', '--json', '--port', String(port), '--redis', redis.url];
  args.push('--node-id', nodeId, '--interval', '500', '--presence-ttl', '1500', ...extra);
  const child = run(t, args, `node ${nodeId}`);
  await child.event('"listening"', (e) => e.event === 'listening');
  return { child, port };
}

const storeEvents = (child: Child): CliEvent[] => child.events.filter((e) => e.event === 'store');

describe('Redis outages under a streaming CLI client', { skip }, () => {
  before(requireBuiltCli);

  for (const c of CASES) {
    test(`${c.name}: every line echoed once and acknowledged; the session written back`, async (t) => {
      const redis = await RedisServer.start(t, c.redis);
      const a = await serveNode(t, redis, 'a', c.serve);
      const b = await serveNode(t, redis, 'b', c.serve);
      const client = run(
        t,
        ['connect', `127.0.0.1:${a.port},127.0.0.1:${b.port}`, '--json'],
        'client',
      );
      const session = (await client.event('"open"', (e) => e.event === 'open')).session as string;
      const dump = () => `${client.dump()}\n${a.child.dump()}\n${b.child.dump()}`;
      // The client picks its node from the list: `holder` is the one it landed on.
      let holder = a.child;
      await waitFor(
        () => {
          holder = b.child.events.some((e) => e.event === 'connection') ? b.child : a.child;
          return holder.events.some((e) => e.event === 'connection');
        },
        { timeout: 10_000, message: `no node reported the connection\n${dump()}` },
      );

      let written = 0;
      const feed = async (more: number) => {
        for (const end = written + more; written < end; ) {
          client.proc.stdin!.write(`m${++written}\n`);
          await sleep(10);
        }
      };
      await feed(BEFORE_OUTAGE);
      // The lines keep coming through the outage and the recovery.
      let over = false;
      const outage = c
        .outage(redis, session)
        .finally(() => {
          over = true;
        })
        .then(() => Date.now());
      while (!over) await feed(1);
      const answeredAt = await outage;
      await feed(AFTER_OUTAGE);

      // The node says it wrote the session back, and how long that took.
      const wb = await holder.event(
        'store event with the write-back',
        (e) => e.event === 'store' && typeof e.wroteBack === 'number' && e.ts >= answeredAt,
        15_000,
      );
      const writeback = { sessions: wb.wroteBack as number, ms: wb.writebackMs as number };
      t.diagnostic(
        `the node wrote back ${writeback.sessions} session(s) in ${writeback.ms} ms, ` +
          `reported ${wb.ts - answeredAt} ms after Redis answered`,
      );
      assert.equal(writeback.sessions, 1, dump());
      assert.ok(writeback.ms >= 0 && writeback.ms < 10_000, `${writeback.ms} ms`);
      assert.ok(
        storeEvents(holder).some((e) => e.up === false),
        `the node reported the store down\n${dump()}`,
      );

      // The node commits to the store again (it no longer serves locally): the store
      // catches up with every line sent so far (received) and with the client's
      // acknowledgement of every echo (acked; echo k is server message k).
      const store = new RedisStore(redis.url);
      t.after(() => store.close());
      const sent = written;
      let stored: { received: number; acked: number } | null = null;
      await waitFor(
        async () => {
          stored = await store.load(session);
          return stored !== null && stored.received >= sent && stored.acked >= sent;
        },
        {
          timeout: 10_000,
          message: `the store did not catch up with line ${sent}: ${JSON.stringify(stored)}\n${dump()}`,
        },
      );
      if (c.expired) {
        // client() is typed by its shape (no ioredis types in heartline's declarations).
        const redis = (await store.client()) as Redis;
        const stats = await redis.info('stats');
        const expired = Number(/expired_keys:(\d+)/.exec(stats)?.[1]);
        assert.ok(expired >= 1, `the session's keys expired while Redis was frozen (${expired})`);
      }

      // Acknowledgements flow again on the node that holds the session: the client has
      // everything it sent acknowledged within a bounded time of Redis answering.
      if (c.move) {
        // ...and after a resume on another node: the store holds everything.
        await holder.kill();
        await feed(AFTER_MOVE);
        await client.event('a resume on the other node', (e) => e.event === 'resumed', 15_000);
      }
      const eof = performance.now();
      client.proc.stdin!.end();
      const exit = await withTimeout(client.exited, {
        timeout: 30_000,
        message: `the client did not exit after stdin EOF\n${dump()}`,
      });
      const exitMs = Math.round(performance.now() - eof);
      const recoveredMs = Date.now() - answeredAt;
      t.diagnostic(
        `client exit ${exitMs} ms after stdin EOF (${recoveredMs} ms after Redis answered)`,
      );

      assert.equal(exit.code, 0, `client exit ${JSON.stringify(exit)}\n${dump()}`);
      assert.deepEqual(
        client.events.filter((e) => e.event === 'session-lost'),
        [],
        'the session survived',
      );
      const echoes = client.events.filter((e) => e.event === 'message').map((e) => e.data);
      assert.deepEqual(
        echoes,
        Array.from({ length: written }, (_, i) => `m${i + 1}`),
        'every line echoed exactly once, in order',
      );
      assert.ok(exitMs < 10_000, `the client exited ${exitMs} ms after stdin EOF`);
    });
  }
});
