/**
 * Memory Redis holds per key of the Redis idempotency window (src/cluster/redis-idempotency.ts),
 * for the figures its docs give:
 *
 *   node --import tsx bench/redis-idempotency-memory.ts --url redis://127.0.0.1:6379 \
 *     [--keys 100000] [--reply 16] [--scopes 10]
 *
 * Against an empty, disposable Redis (it runs FLUSHALL first): claims and finishes `--keys`
 * keys (replies of `--reply` bytes) over `--scopes` scopes (one scope per key when equal to
 * `--keys`, an attacker's worst case), then prints the growth of `used_memory` per key and
 * the `MEMORY USAGE` of one reply key and of one scope counter.
 */

import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createRedisWindow } from '../src/cluster/redis-idempotency.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    keys: { type: 'string', default: '100000' },
    reply: { type: 'string', default: '16' },
    scopes: { type: 'string', default: '10' },
  },
});
if (!values.url) throw new Error('--url redis://HOST:PORT of a disposable Redis is required');
const n = Number(values.keys);
const scopes = Number(values.scopes);
const payload = new Uint8Array(Number(values.reply)).fill(0x61);

const redis = new Redis(values.url);
async function usedMemory(): Promise<number> {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1]);
}

await redis.flushall();
const window = createRedisWindow(redis, {
  maxKeys: n + 1, // the warm-up's claim too
  maxKeysPerScope: n + 1,
  maxBytes: 2 ** 40,
  maxReplyBytes: payload.byteLength,
});
// Warm up: load the scripts and create the counters, so the growth is the keys alone.
await window.begin('warm-up', 'k');
await window.finish('warm-up', 'k', { status: 0, payload });
const before = await usedMemory();
const batch = 500;
for (let i = 0; i < n; i += batch) {
  await Promise.all(
    Array.from({ length: Math.min(batch, n - i) }, async (_, j) => {
      const scope = `scope-${(i + j) % scopes}`;
      const key = `key-${String(i + j).padStart(32, '0')}`; // 36 bytes, a UUID's length
      const claim = await window.begin(scope, key);
      if (claim.kind !== 'run') throw new Error(`claim ${i + j}: ${claim.kind}`);
      await window.finish(scope, key, { status: 0, payload });
    }),
  );
}
const after = await usedMemory();
const [replyKey] = await redis.keys('hl:idem:{*').then((k) => k.slice(0, 1));
const [scopeKey] = await redis.keys('hl:idem:s:{*').then((k) => k.slice(0, 1));
const usage = async (key: string | undefined) =>
  key === undefined ? null : await redis.call('MEMORY', 'USAGE', key);
console.log(
  JSON.stringify({
    keys: n,
    scopes,
    replyBytes: payload.byteLength,
    usedMemoryPerKey: Math.round((after - before) / n),
    memoryUsageReplyKey: await usage(replyKey),
    memoryUsageScopeCounter: await usage(scopeKey),
  }),
);
window.close();
redis.disconnect();
