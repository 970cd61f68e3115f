/**
 * What RedisStore adds to the store contracts (those run in store-contract.test.ts):
 * arguments refused before they reach Redis, and an unreachable Redis rejecting with
 * HL_ERR_STORE and reported through onStatus, then answering again once it is back.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RedisStore } from '../../src/cluster/redis-store.js';
import { RedisServer, redisSkip } from '../support/redis.js';
import { firstCommit, sessionSnapshot } from '../support/sessions.js';
import { waitFor } from '../support/wait.js';

const skip = redisSkip();

const snapshot = sessionSnapshot;

describe('RedisStore', { skip }, () => {
  test('refuses bad arguments with InvalidArgumentError', async () => {
    assert.throws(() => new RedisStore('http://x'), { code: 'HL_ERR_INVALID_ARGUMENT' });
    assert.throws(() => new RedisStore({ keyPrefix: 'a{b}' }), { code: 'HL_ERR_INVALID_ARGUMENT' });
    const store = new RedisStore({ url: 'redis://127.0.0.1:1', redis: { lazyConnect: true } });
    await assert.rejects(store.load('not-hex'), { code: 'HL_ERR_INVALID_ARGUMENT' });
    await assert.rejects(store.presenceBeat('has space', 1000), {
      code: 'HL_ERR_INVALID_ARGUMENT',
    });
    await store.close();
  });

  test('an unreachable Redis rejects with HL_ERR_STORE and reports its status', async (t) => {
    const redis = await RedisServer.start(t);
    const store = new RedisStore(redis.url);
    t.after(() => store.close());
    const statuses: boolean[] = [];
    store.onStatus((s) => statuses.push(s.up));
    const snap = snapshot();
    assert.equal((await store.commit(snap.sessionId, firstCommit(snap, 'n1'))).status, 'ok');
    await redis.stop();
    await assert.rejects(store.load(snap.sessionId), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'HL_ERR_STORE');
      return true;
    });
    assert.deepEqual(statuses.slice(0, 2), [true, false]);
    // Back on the same port (empty: no persistence), the store answers again.
    await redis.resume();
    await waitFor(async () => (await store.load(snap.sessionId).catch(() => undefined)) === null, {
      timeout: 10_000,
      message: 'the store did not come back',
    });
    assert.equal(statuses.at(-1), true);
  });
});
