/**
 * The idempotency window on a real redis-server, as two nodes see it: two windows, each on
 * its own connection (a RedisStore's client, as a server shares it), on one Redis. A reply
 * kept by one node answers the other; one claim wins a race; abandon and expiry release a
 * key; a late handler never overwrites a newer claim; and a Redis that is stopped or frozen
 * gives typed errors, never a crash or an unhandled rejection.
 */

import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import type { Redis } from 'ioredis';
import { joinCluster } from '../../src/cluster/node.js';
import {
  createRedisWindow,
  type RedisIdempotencyWindow,
  type RedisWindowOptions,
} from '../../src/cluster/redis-idempotency.js';
import { RedisStore } from '../../src/cluster/redis-store.js';
import { HeartlineError, RequestError } from '../../src/errors.js';
import type { IdempotencyClaim, KeptReply } from '../../src/session/idempotency.js';
import { opened, startClient, startServer } from '../support/peers.js';
import { RedisServer, redisSkip } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

const skip = redisSkip();

const reply = (text: string, status = 0): KeptReply => ({
  status,
  payload: new Uint8Array(Buffer.from(text)),
});
const text = (r: KeptReply | null | undefined): string | null =>
  r ? Buffer.from(r.payload).toString() : null;

function expectKind<K extends IdempotencyClaim['kind']>(
  claim: IdempotencyClaim,
  kind: K,
): Extract<IdempotencyClaim, { kind: K }> {
  assert.equal(claim.kind, kind);
  return claim as Extract<IdempotencyClaim, { kind: K }>;
}

const isStoreError = (err: unknown): boolean =>
  err instanceof HeartlineError && err.code === 'HL_ERR_STORE';

interface Cluster {
  redis: RedisServer;
  stores: [RedisStore, RedisStore];
  nodes: [RedisIdempotencyWindow, RedisIdempotencyWindow];
}

/** One Redis, two nodes (each a RedisStore connection and a window on it). */
async function cluster(t: TestContext, options: RedisWindowOptions = {}): Promise<Cluster> {
  const redis = await RedisServer.start(t);
  const stores: [RedisStore, RedisStore] = [new RedisStore(redis.url), new RedisStore(redis.url)];
  const nodes: [RedisIdempotencyWindow, RedisIdempotencyWindow] = [
    createRedisWindow(() => stores[0].client(), options),
    createRedisWindow(() => stores[1].client(), options),
  ];
  t.after(async () => {
    for (const node of nodes) await node.close();
    for (const store of stores) await store.close();
  });
  return { redis, stores, nodes };
}

/** Fails the test on any unhandled rejection while it runs. */
function noUnhandledRejections(t: TestContext): unknown[] {
  const seen: unknown[] = [];
  const listener = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', listener);
  t.after(() => {
    process.off('unhandledRejection', listener);
  });
  return seen;
}

describe('Redis idempotency window', { skip }, () => {
  test('a reply finished on one node is done on the other', async (t) => {
    const {
      nodes: [a, b],
    } = await cluster(t);
    expectKind(await a.begin('alice', 'order-1'), 'run');
    await a.finish('alice', 'order-1', reply('shipped', 201));
    const done = expectKind(await b.begin('alice', 'order-1'), 'done');
    assert.equal(done.reply.status, 201);
    assert.equal(text(done.reply), 'shipped');
    // same key, other identity: its own claim
    expectKind(await b.begin('bob', 'order-1'), 'run');
    await b.finish('bob', 'order-1', { status: 0xffff_ffff, payload: new Uint8Array(0) });
    const empty = expectKind(await a.begin('bob', 'order-1'), 'done');
    assert.deepEqual([empty.reply.status, empty.reply.payload.byteLength], [0xffff_ffff, 0]);
    assert.equal(a.stats.keys, 0, 'no claim left open once finished');
  });

  test('concurrent begin on two nodes: one runs, the other waits for its reply', async (t) => {
    const {
      nodes: [a, b],
    } = await cluster(t);
    for (let round = 0; round < 20; round++) {
      const key = `race-${round}`;
      const claims = await Promise.all([a.begin('alice', key), b.begin('alice', key)]);
      const runs = claims.filter((c) => c.kind === 'run').length;
      assert.equal(runs, 1, `round ${round}: exactly one node runs`);
      const runner = claims[0].kind === 'run' ? a : b;
      const waiter = expectKind(claims[0].kind === 'run' ? claims[1] : claims[0], 'pending');
      await runner.finish('alice', key, reply(`answer-${round}`));
      assert.equal(text(await waiter.settled), `answer-${round}`);
    }
  });

  test('abandon releases the key: the waiting node gets null and its retry runs', async (t) => {
    const {
      nodes: [a, b],
    } = await cluster(t);
    expectKind(await a.begin('alice', 'k'), 'run');
    const waiting = expectKind(await b.begin('alice', 'k'), 'pending');
    await a.abandon('alice', 'k');
    assert.equal(await waiting.settled, null);
    expectKind(await b.begin('alice', 'k'), 'run');
    await b.finish('alice', 'k', reply('second try'));
    assert.equal(text(expectKind(await a.begin('alice', 'k'), 'done').reply), 'second try');
    // finish/abandon of a key this node never claimed do nothing
    await a.abandon('alice', 'k');
    await a.finish('alice', 'k', reply('not mine'));
    assert.equal(text(expectKind(await b.begin('alice', 'k'), 'done').reply), 'second try');
  });

  test('keys expire with the window; a late handler never overwrites a newer claim', async (t) => {
    const windowMs = 300;
    const {
      nodes: [a, b],
      stores,
    } = await cluster(t, { windowMs });
    const redis = (await stores[0].client()) as Redis;
    expectKind(await a.begin('alice', 'k'), 'run');
    await a.finish('alice', 'k', reply('r'));
    const keys = await redis.keys('hl:idem:{*');
    assert.equal(keys.length, 1);
    assert.match(keys[0]!, /^hl:idem:\{[A-Za-z0-9_-]{43}\}$/);
    const ttl = await redis.pttl(keys[0]!);
    assert.ok(ttl > 0 && ttl <= windowMs, `PTTL ${ttl} in (0, ${windowMs}]`);
    expectKind(await b.begin('alice', 'k'), 'done');
    await waitFor(async () => (await redis.exists(keys[0]!)) === 0, { timeout: 5000 });

    // A claim nobody finishes lapses too: the waiter gets null.
    expectKind(await a.begin('alice', 'k'), 'run');
    const waiting = expectKind(await b.begin('alice', 'k'), 'pending');
    assert.equal(await waiting.settled, null);
    // Node b claims anew; a's handler finishing late must not replace b's claim.
    expectKind(await b.begin('alice', 'k'), 'run');
    await a.finish('alice', 'k', reply('late'));
    const second = expectKind(await a.begin('alice', 'k'), 'pending');
    await b.finish('alice', 'k', reply('fresh'));
    assert.equal(text(await second.settled), 'fresh');
    assert.equal(text(expectKind(await a.begin('alice', 'k'), 'done').reply), 'fresh');
  });

  test('Redis stopped: begin, finish and abandon reject with HL_ERR_STORE, waits end with null', async (t) => {
    const unhandled = noUnhandledRejections(t);
    const {
      redis,
      nodes: [a, b],
    } = await cluster(t, { timeoutMs: 1000 });
    expectKind(await a.begin('alice', 'held'), 'run');
    expectKind(await a.begin('alice', 'dropped'), 'run');
    const waiting = expectKind(await b.begin('alice', 'held'), 'pending');
    await redis.stop('SIGKILL');
    await assert.rejects(b.begin('alice', 'new'), isStoreError);
    await assert.rejects(a.finish('alice', 'held', reply('x')), isStoreError);
    await assert.rejects(a.abandon('alice', 'dropped'), isStoreError);
    assert.equal(await waiting.settled, null, 'a wait that cannot reach Redis ends');
    await redis.resume();
    // Back (empty, no persistence): keys work again.
    await waitFor(async () => {
      try {
        return (await a.begin('alice', 'after')).kind === 'run';
      } catch {
        return false;
      }
    });
    await a.finish('alice', 'after', reply('ok'));
    assert.equal(text(expectKind(await b.begin('alice', 'after'), 'done').reply), 'ok');
    assert.deepEqual(unhandled, []);
  });

  test('Redis frozen past timeoutMs: begin rejects, and the claim made late is released', async (t) => {
    const unhandled = noUnhandledRejections(t);
    const {
      redis,
      stores,
      nodes: [a, b],
    } = await cluster(t, { timeoutMs: 300 });
    const conn = (await stores[0].client()) as Redis;
    await conn.ping(); // connected before the freeze
    redis.signal('SIGSTOP');
    try {
      const started = performance.now();
      await assert.rejects(a.begin('alice', 'k'), (err: unknown) => {
        assert.ok(isStoreError(err));
        assert.match((err as Error).message, /within 300 ms/);
        return true;
      });
      assert.ok(performance.now() - started < 5000);
    } finally {
      redis.signal('SIGCONT');
    }
    // The SET NX ran once Redis thawed; a's window released it, so a retry runs
    // rather than waiting a whole window for a handler that never started.
    await waitFor(async () => (await conn.keys('hl:idem:{*')).length === 0, { timeout: 5000 });
    expectKind(await b.begin('alice', 'k'), 'run');
    assert.deepEqual(unhandled, []);
  });

  test('options and keys are validated; a closed window refuses', async (t) => {
    const { stores } = await cluster(t);
    const client = () => stores[0].client();
    for (const [name, value] of [
      ['windowMs', 0],
      ['timeoutMs', 1],
      ['pollMs', 0],
      ['keyPrefix', 'a{b}'],
      ['maxKeys', 0],
      ['maxBytes', 1023],
      ['maxKeysPerScope', 0],
      ['maxReplyBytes', -1],
    ] as const) {
      assert.throws(
        () => createRedisWindow(client, { [name]: value }),
        (err: unknown) =>
          err instanceof HeartlineError &&
          err.code === 'HL_ERR_INVALID_ARGUMENT' &&
          err.message.includes(`"${name}"`),
      );
    }
    const w = createRedisWindow(client, { keyPrefix: 'app:' });
    await assert.rejects(async () => w.begin('alice', ''), /idempotency key/);
    expectKind(await w.begin('alice', 'k'), 'run');
    assert.equal(w.stats.keys, 1);
    const conn = (await stores[0].client()) as Redis;
    assert.equal((await conn.keys('app:idem:{*')).length, 1);
    // and the counters under the same prefix: claims, this scope's claims
    assert.equal(await conn.get('app:idem:n'), '1');
    assert.equal((await conn.keys('app:idem:s:{*')).length, 1);
    await w.close();
    expectKind(await w.begin('alice', 'other'), 'full');
    assert.equal(w.stats.keys, 0);
  });
});

/** Redis's `used_memory` (INFO memory), in bytes. */
async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  const match = /^used_memory:(\d+)\r?$/m.exec(info);
  assert.ok(match, 'INFO memory has used_memory');
  return Number(match[1]);
}

describe('Redis idempotency window: bounds', { skip }, () => {
  test('full past maxKeys claims per window, on all nodes together; known keys still answer', async (t) => {
    const windowMs = 1500;
    const {
      nodes: [a, b],
      stores,
    } = await cluster(t, { windowMs, maxKeys: 4 });
    const redis = (await stores[0].client()) as Redis;
    expectKind(await a.begin('alice', 'k1'), 'run');
    await a.finish('alice', 'k1', reply('one'));
    expectKind(await b.begin('bob', 'k2'), 'run');
    expectKind(await a.begin('carol', 'k3'), 'run');
    expectKind(await b.begin('dave', 'k4'), 'run');
    expectKind(await a.begin('erin', 'k5'), 'full');
    expectKind(await b.begin('alice', 'k6'), 'full');
    assert.equal(await redis.get('hl:idem:n'), '4', 'refusals are not counted');
    // Past the cap, keys already claimed are still answered: dedupe is not lost.
    assert.equal(text(expectKind(await b.begin('alice', 'k1'), 'done').reply), 'one');
    const waiting = expectKind(await a.begin('bob', 'k2'), 'pending');
    await b.finish('bob', 'k2', reply('two'));
    assert.equal(text(await waiting.settled), 'two');
    // The counter lives one window from its first claim; then claims run again.
    const ttl = await redis.pttl('hl:idem:n');
    assert.ok(ttl > 0 && ttl <= windowMs, `PTTL ${ttl} in (0, ${windowMs}]`);
    await waitFor(async () => (await redis.exists('hl:idem:n')) === 0, { timeout: 10_000 });
    expectKind(await b.begin('erin', 'k5'), 'run');
    assert.equal(await redis.get('hl:idem:n'), '1');
  });

  test('past maxKeysPerScope that scope is refused while another scope still runs', async (t) => {
    const {
      nodes: [a, b],
      stores,
    } = await cluster(t, { maxKeysPerScope: 3 });
    const redis = (await stores[0].client()) as Redis;
    expectKind(await a.begin('mallory', 'm1'), 'run');
    expectKind(await b.begin('mallory', 'm2'), 'run');
    await b.abandon('mallory', 'm2'); // abandoning gives no claim back
    expectKind(await a.begin('mallory', 'm3'), 'run');
    for (const node of [a, b]) expectKind(await node.begin('mallory', 'm4'), 'full');
    expectKind(await b.begin('alice', 'a1'), 'run');
    await b.finish('alice', 'a1', reply('alice ok'));
    assert.equal(text(expectKind(await a.begin('alice', 'a1'), 'done').reply), 'alice ok');
    expectKind(await a.begin('alice', 'a2'), 'run');
    const scopes = await redis.keys('hl:idem:s:{*');
    assert.equal(scopes.length, 2);
    const counts = (await Promise.all(scopes.map((k) => redis.get(k)))).sort();
    assert.deepEqual(counts, ['2', '3']);
    assert.equal(await redis.get('hl:idem:n'), '5');
  });

  test('past maxBytes a reply is answered but not kept: waiters get null, a retry runs', async (t) => {
    const {
      nodes: [a, b],
      stores,
    } = await cluster(t, { maxBytes: 1024 });
    const redis = (await stores[0].client()) as Redis;
    const big = 'x'.repeat(300); // kept as 305 bytes: three fit in 1024, not four
    for (const key of ['k1', 'k2', 'k3']) {
      expectKind(await a.begin('alice', key), 'run');
      await a.finish('alice', key, reply(big));
    }
    assert.equal(await redis.get('hl:idem:b'), String(3 * 305));
    expectKind(await a.begin('alice', 'k4'), 'run');
    const waiting = expectKind(await b.begin('alice', 'k4'), 'pending');
    await a.finish('alice', 'k4', reply(big));
    assert.equal(await waiting.settled, null, 'the claim is gone: the waiter runs itself');
    assert.deepEqual([a.stats.unkept, a.stats.keys], [1, 0]);
    assert.equal((await redis.keys('hl:idem:{*')).length, 3);
    expectKind(await b.begin('alice', 'k4'), 'run');
    // A reply that still fits (109 bytes left) is kept.
    await b.finish('alice', 'k4', reply('y'.repeat(100)));
    assert.equal(b.stats.unkept, 0);
    assert.equal(text(expectKind(await a.begin('alice', 'k4'), 'done').reply), 'y'.repeat(100));
    assert.equal(await redis.get('hl:idem:b'), String(3 * 305 + 105));
    assert.equal(text(expectKind(await a.begin('alice', 'k1'), 'done').reply), big);
  });

  test('a reply larger than maxReplyBytes is answered but not kept', async (t) => {
    const {
      nodes: [a, b],
      stores,
    } = await cluster(t, { maxReplyBytes: 100 });
    const redis = (await stores[0].client()) as Redis;
    expectKind(await a.begin('alice', 'large'), 'run');
    const waiting = expectKind(await b.begin('alice', 'large'), 'pending');
    await a.finish('alice', 'large', reply('z'.repeat(101)));
    assert.equal(await waiting.settled, null);
    assert.equal(a.stats.unkept, 1);
    assert.equal(await redis.exists('hl:idem:b'), 0, 'nothing was charged');
    expectKind(await b.begin('alice', 'large'), 'run');
    await b.finish('alice', 'large', reply('z'.repeat(100)));
    assert.equal(text(expectKind(await a.begin('alice', 'large'), 'done').reply), 'z'.repeat(100));
    assert.equal(b.stats.unkept, 0);
  });
});

describe('Redis idempotency window: a flood of keys through a server', { skip }, () => {
  test('one client flooding keyed 8 KiB requests is capped per scope and in bytes; others still dedupe', async (t) => {
    const redis = await RedisServer.start(t);
    const maxKeysPerScope = 50;
    const maxBytes = 256 * 1024;
    const { server, port } = await startServer(t, {
      cluster: joinCluster({ redis: redis.url }),
      idempotency: { maxKeysPerScope, maxBytes },
    });
    const runs = new Map<string, number>();
    server.on('connection', (conn) =>
      conn.on('message', (data, info) => {
        if (!info.isRequest) return;
        const scope = conn.clientId;
        runs.set(scope, (runs.get(scope) ?? 0) + 1);
        info.reply(data); // serve --echo: the reply is as large as the request
      }),
    );
    const probe = new RedisStore(redis.url);
    t.after(() => probe.close());
    const conn = (await probe.client()) as Redis;
    const flooder = startClient(t, { port, clientId: 'flooder' });
    const other = startClient(t, { port, clientId: 'other' });
    await Promise.all([opened(flooder), opened(other)]);
    const before = await usedMemory(conn);

    const flood = 500;
    const payload = Buffer.alloc(8192, 0x41);
    const outcomes = await Promise.allSettled(
      Array.from({ length: flood }, (_, i) =>
        flooder.request(payload, { idempotencyKey: `flood-${i}`, timeout: 60_000 }),
      ),
    );
    const answered = outcomes.filter((o) => o.status === 'fulfilled');
    const refused = outcomes.filter((o) => o.status === 'rejected');
    assert.equal(answered.length, maxKeysPerScope, 'the scope runs its cap, no more');
    assert.equal(runs.get('flooder'), maxKeysPerScope);
    for (const o of answered) assert.equal((o.value as Buffer).byteLength, 8192);
    assert.equal(refused.length, flood - maxKeysPerScope);
    for (const o of refused) {
      const err = o.reason as RequestError;
      assert.ok(err instanceof RequestError, String(err));
      assert.equal(err.code, 'HL_ERR_OVERLOADED');
      assert.equal(err.mayHaveBeenHandled, false);
    }
    // Kept: as many 8,197-byte values (payload + status) as fit in maxBytes; the other runs
    // were answered but not kept.
    const kept = Math.floor(maxBytes / 8197);
    assert.equal((await conn.keys('hl:idem:{*')).length, kept);
    assert.equal(await conn.get('hl:idem:b'), String(kept * 8197));

    // Another client (its own scope) still gets its keyed request deduplicated: the handler
    // runs once, the retry gets the kept reply.
    const first = await other.request('other 1', { idempotencyKey: 'op-1' });
    const again = await other.request('other 2', { idempotencyKey: 'op-1' });
    assert.equal(first.toString(), 'other 1');
    assert.equal(again.toString(), 'other 1');
    assert.equal(runs.get('other'), 1);

    // What the window holds in Redis: the values kept (maxBytes; jemalloc stores them in
    // size classes up to 25% larger: an 8,197-byte value takes MEMORY USAGE 10,344) and per
    // claim at most 330 bytes of key and scope counter (bench/redis-idempotency-memory.ts).
    // Without the caps it would hold 500 values: over 5 MB.
    const idemKeys = await conn.keys('hl:idem:*');
    let held = 0;
    for (const k of idemKeys) held += Number(await conn.call('MEMORY', 'USAGE', k));
    const heldBound = maxBytes * 1.25 + (maxKeysPerScope + 4) * 330;
    t.diagnostic(`${idemKeys.length} window keys hold ${held} bytes (bound ${heldBound})`);
    assert.ok(held < heldBound, `window keys hold ${held} bytes, bound ${heldBound}`);
    // And used_memory as a whole: that bound plus 1 MiB for the session store's own traffic
    // (measured: the same flood without keys leaves about 0.5 MB, 1.4 MB before its
    // acknowledged logs are trimmed), so wait for that to settle.
    await Promise.all([flooder.whenAcked(), other.whenAcked()]);
    const bound = heldBound + 1024 * 1024;
    let grown = 0;
    await waitFor(
      async () => {
        grown = (await usedMemory(conn)) - before;
        return grown < bound;
      },
      { timeout: 20_000, interval: 100, message: `used_memory stayed ${bound} bytes or more over` },
    );
    t.diagnostic(`used_memory grew ${grown} bytes (bound ${bound})`);
  });
});
