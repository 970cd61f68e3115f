import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { stretchGrant } from '../../src/server/adaptive.js';
import {
  DEFAULT_MAX_TIMEOUT,
  defaultMaxTimeout,
  type GrantPolicy,
  grantHeartbeat,
  validatePolicy,
} from '../../src/server/grant.js';
import { createServer } from '../../src/server/server.js';

const POLICY: GrantPolicy = {
  interval: 10_000,
  timeout: 30_000,
  minInterval: 1000,
  maxInterval: 120_000,
  maxTimeout: DEFAULT_MAX_TIMEOUT,
};

describe('grantHeartbeat: maxTimeout', () => {
  it('caps a requested timeout at maxTimeout, whatever the interval', () => {
    // 10 x 120 s used to be granted: a silent peer held its socket for 20 minutes.
    assert.deepEqual(grantHeartbeat(POLICY, 120_000, 1_200_000), {
      interval: 120_000,
      timeout: 300_000,
    });
    assert.deepEqual(grantHeartbeat(POLICY, 60_000, 0xffff_ffff), {
      interval: 60_000,
      timeout: 300_000,
    });
  });

  it('still grants at least 2 intervals and leaves requests below the cap alone', () => {
    assert.deepEqual(grantHeartbeat(POLICY, 120_000, 1), { interval: 120_000, timeout: 240_000 });
    assert.deepEqual(grantHeartbeat(POLICY, 20_000, 100_000), {
      interval: 20_000,
      timeout: 100_000,
    });
    assert.deepEqual(grantHeartbeat(POLICY, 0, 0), { interval: 10_000, timeout: 30_000 });
  });

  it('validates maxTimeout against maxInterval and timeout', () => {
    assert.throws(
      () => validatePolicy({ ...POLICY, maxTimeout: 200_000 }),
      (e: unknown) => e instanceof InvalidArgumentError && /maxTimeout/.test(e.message),
    );
    assert.throws(
      () => validatePolicy({ ...POLICY, maxInterval: 10_000, maxTimeout: 20_000, timeout: 30_000 }),
      (e: unknown) => e instanceof InvalidArgumentError && /timeout/.test(e.message),
    );
  });

  it('defaults to 5 minutes, raised to 2 x maxInterval or an explicit longer timeout', () => {
    assert.equal(defaultMaxTimeout(120_000), 300_000);
    assert.equal(defaultMaxTimeout(600_000), 1_200_000);
    assert.equal(createServer().policy.maxTimeout, 300_000);
    assert.equal(createServer({ maxInterval: 600_000 }).policy.maxTimeout, 1_200_000);
    assert.equal(
      createServer({ interval: 60_000, maxTimeout: 250_000 }).policy.maxTimeout,
      250_000,
    );
    assert.equal(createServer({ timeout: 400_000 }).policy.maxTimeout, 400_000);
    assert.throws(
      () => createServer({ maxTimeout: 100_000 }),
      (e: unknown) => e instanceof InvalidArgumentError && /maxTimeout/.test(e.message),
    );
  });

  it('an adaptive stretch never goes past maxTimeout', () => {
    const stretched = stretchGrant({ interval: 60_000, timeout: 300_000 }, 4, POLICY);
    assert.equal(stretched.interval, 120_000);
    assert.equal(stretched.timeout, 300_000);
  });
});
