/**
 * The store contracts (test/support/store-contract.ts) run against both implementations:
 * MemoryStore, and RedisStore on a real redis-server.
 */

import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { RedisStore } from '../../src/cluster/redis-store.js';
import { MemoryStore } from '../../src/session/memory-store.js';
import { RedisServer, redisSkip } from '../support/redis.js';
import { presenceStoreContract, sessionStoreContract } from '../support/store-contract.js';

const skip = redisSkip();

async function memoryStore(): Promise<MemoryStore> {
  return new MemoryStore();
}

async function redisStore(t: TestContext): Promise<RedisStore> {
  const redis = await RedisServer.start(t);
  const store = new RedisStore({
    url: redis.url,
    keyPrefix: `t${randomBytes(3).toString('hex')}:`,
  });
  t.after(() => store.close());
  return store;
}

sessionStoreContract('MemoryStore', memoryStore);
presenceStoreContract('MemoryStore', memoryStore);
sessionStoreContract('RedisStore on redis-server', redisStore, { skip });
presenceStoreContract('RedisStore on redis-server', redisStore, { skip });
