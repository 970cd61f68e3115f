import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  ADMISSION_DEFAULTS,
  Admission,
  addressKey,
  defaultMaxConnections,
  parseOpenFileLimit,
  type ResolvedAdmission,
  readOpenFileLimit,
  refusalInfo,
  resolveAdmission,
  TokenBucket,
} from '../../src/server/admission.js';
import { mulberry32 } from '../support/prng.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
`;

/** A resolved config with everything unlimited except what `o` sets. */
function config(o: Partial<ResolvedAdmission> = {}): ResolvedAdmission {
  return {
    maxConnections: Number.POSITIVE_INFINITY,
    maxConnectionsPerAddress: Number.POSITIVE_INFINITY,
    maxSessions: Number.POSITIVE_INFINITY,
    maxSessionsPerAddress: Number.POSITIVE_INFINITY,
    maxSessionsPerIdentity: Number.POSITIVE_INFINITY,
    acceptRate: Number.POSITIVE_INFINITY,
    acceptBurst: Number.POSITIVE_INFINITY,
    retryAfter: 5000,
    ...o,
  };
}

describe('default maxConnections from the open-file limit', () => {
  it('parses the soft "Max open files" limit of /proc/self/limits', () => {
    assert.equal(parseOpenFileLimit(LIMITS), 20_000);
    assert.equal(parseOpenFileLimit(LIMITS.replace('20000 ', 'unlimited ')), undefined);
    assert.equal(parseOpenFileLimit('nothing here'), undefined);
  });

  it('keeps 256 descriptors free, caps at 100,000 and halves a tiny limit', () => {
    assert.equal(defaultMaxConnections(20_000), 19_744);
    assert.equal(defaultMaxConnections(1_048_576), 100_000);
    assert.equal(defaultMaxConnections(undefined), 100_000);
    assert.equal(defaultMaxConnections(256), 128);
    assert.equal(defaultMaxConnections(1), 1);
  });

  it('reads this process limit, or undefined when it cannot', () => {
    assert.equal(
      readOpenFileLimit(() => LIMITS),
      20_000,
    );
    assert.equal(
      readOpenFileLimit(() => {
        throw new Error('ENOENT');
      }),
      undefined,
    );
    const here = readOpenFileLimit();
    if (process.platform === 'linux') assert.ok(Number.isInteger(here) && here! > 0);
  });
});

describe('resolveAdmission', () => {
  it('derives the defaults: sessions 2 x connections, burst = rate, hint 5 s', () => {
    const r = resolveAdmission({}, 20_000);
    assert.deepEqual(
      { ...r },
      {
        maxConnections: 19_744,
        maxConnectionsPerAddress: Number.POSITIVE_INFINITY,
        maxSessions: 39_488,
        maxSessionsPerAddress: Number.POSITIVE_INFINITY,
        maxSessionsPerIdentity: 1000,
        acceptRate: ADMISSION_DEFAULTS.acceptRate,
        acceptBurst: ADMISSION_DEFAULTS.acceptRate,
        retryAfter: 5000,
      },
    );
    assert.ok(Object.isFrozen(r));
    assert.equal(resolveAdmission({ maxConnections: 10 }).maxSessions, 20);
    // Per address in proportion to connections per address, as sessions to connections.
    assert.equal(resolveAdmission({ maxConnectionsPerAddress: 5 }).maxSessionsPerAddress, 10);
    assert.equal(resolveAdmission({ acceptRate: 0.5 }).acceptBurst, 1);
    const open = resolveAdmission({
      maxConnections: Number.POSITIVE_INFINITY,
      acceptRate: Number.POSITIVE_INFINITY,
    });
    assert.equal(open.maxSessions, Number.POSITIVE_INFINITY);
    assert.equal(open.acceptBurst, Number.POSITIVE_INFINITY);
  });

  it('refuses bad values with an error naming the option', () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ maxConnections: 0 }, 'maxConnections'],
      [{ maxConnections: 1.5 }, 'maxConnections'],
      [{ maxConnections: Number.NaN }, 'maxConnections'],
      [{ maxConnectionsPerAddress: -1 }, 'maxConnectionsPerAddress'],
      [{ maxSessions: '10' }, 'maxSessions'],
      [{ maxSessionsPerAddress: 0 }, 'maxSessionsPerAddress'],
      [{ maxSessionsPerIdentity: 2.5 }, 'maxSessionsPerIdentity'],
      [{ acceptRate: 0 }, 'acceptRate'],
      [{ acceptRate: Number.NaN }, 'acceptRate'],
      [{ acceptBurst: 0 }, 'acceptBurst'],
      [{ acceptBurst: Number.POSITIVE_INFINITY }, 'acceptBurst'],
      [{ retryAfter: -1 }, 'retryAfter'],
      [{ retryAfter: 2 ** 32 }, 'retryAfter'],
    ];
    for (const [o, name] of bad) {
      assert.throws(
        () => resolveAdmission(o),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.code === 'HL_ERR_INVALID_ARGUMENT' &&
          err.message.includes(`"${name}"`),
        JSON.stringify(o),
      );
    }
  });

  it('never mutates the caller options', () => {
    const o = Object.freeze({ maxConnections: 5 });
    assert.equal(resolveAdmission(o).maxSessions, 10);
    assert.deepEqual(o, { maxConnections: 5 });
  });
});

describe('addressKey', () => {
  it('counts IPv4 as is, also mapped into IPv6', () => {
    assert.equal(addressKey('127.0.0.1'), '127.0.0.1');
    assert.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(addressKey('::FFFF:10.1.2.3'), '10.1.2.3');
  });

  it('counts IPv6 by its /64 prefix, whatever the spelling', () => {
    const key = '2001:db8:0:1::/64';
    assert.equal(addressKey('2001:db8:0:1::1'), key);
    assert.equal(addressKey('2001:0DB8:0000:0001:ffff:ffff:ffff:ffff'), key);
    assert.equal(addressKey('2001:db8::1:0:0:0:7'), key);
    assert.equal(addressKey('2001:db8:0:1:1:2:3.4.5.6'), key);
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.notEqual(addressKey('2001:db8:0:2::1'), key);
  });

  it('keeps a malformed address as its own key', () => {
    for (const a of ['1::2::3', '1:2:3', 'zz::1', '1:2:3:4:5:6:7:8:9', '::1.2.3.999']) {
      assert.equal(addressKey(a), a);
    }
  });
});

describe('TokenBucket', () => {
  it('allows a burst, then refills at the rate', () => {
    const b = new TokenBucket(10, 3, 0);
    assert.deepEqual([b.take(0), b.take(0), b.take(0), b.take(0)], [true, true, true, false]);
    assert.equal(b.take(99), false);
    assert.equal(b.take(100), true);
    assert.equal(b.take(100), false);
    assert.equal(b.available(10_000), 3); // capped at the burst
  });

  it('spreads refused callers one token time apart', () => {
    const b = new TokenBucket(100, 1, 0);
    assert.equal(b.take(0), true);
    const hints = Array.from({ length: 5 }, () => b.reserve(0));
    assert.deepEqual(hints, [10, 20, 30, 40, 50]);
    // Promises already made keep later callers behind them.
    assert.equal(b.reserve(25), 35);
    // Long after every promise, a refusal waits for one token only.
    assert.equal(b.take(10_000), true);
    assert.equal(b.reserve(10_000), 10);
  });

  it('a refused caller that comes back at its slot finds a token', () => {
    const b = new TokenBucket(50, 1, 0);
    assert.equal(b.take(0), true);
    const at = [0, 0, 0].map(() => b.reserve(0));
    for (const t of at) assert.equal(b.take(t), true, `slot ${t}`);
  });
});

describe('Admission', () => {
  it('counts sockets in total and per address, and forgets closed ones', () => {
    const a = new Admission(config(), 0);
    a.opened('10.0.0.1');
    a.opened('10.0.0.1');
    a.opened('10.0.0.2');
    assert.equal(a.connections, 3);
    assert.equal(a.connectionsFrom('10.0.0.1'), 2);
    a.closed('10.0.0.1');
    a.closed('10.0.0.1');
    assert.equal(a.connectionsFrom('10.0.0.1'), 0);
    assert.equal(a.connections, 1);
    a.closed('10.0.0.2');
    a.closed('10.0.0.2'); // never below zero
    assert.equal(a.connections, 0);
  });

  it('whenIdle calls back once the last counted socket closes (at once when none is open)', () => {
    const a = new Admission(config(), 0);
    let calls = 0;
    a.whenIdle(() => calls++);
    assert.equal(calls, 1);
    a.opened('10.0.0.1');
    a.opened('10.0.0.2');
    a.whenIdle(() => calls++);
    a.whenIdle(() => calls++);
    a.closed('10.0.0.1');
    assert.equal(calls, 1, 'one socket is still open');
    a.closed('10.0.0.2');
    assert.equal(calls, 3);
    a.opened('10.0.0.3');
    a.closed('10.0.0.3');
    assert.equal(calls, 3, 'each waiter is called once');
  });

  it('refuses at maxConnections, with the configured hint jittered upwards', () => {
    const a = new Admission(config({ maxConnections: 2 }), 0, () => 0.5);
    assert.equal(a.checkSocket('x', 0), null);
    a.opened('x');
    assert.equal(a.checkSocket('y', 0), null);
    a.opened('y');
    const r = a.checkSocket('z', 0);
    assert.deepEqual(r, {
      limit: 'max-connections',
      retryAfter: 6250,
      message: 'connection limit reached',
    });
    a.closed('x');
    assert.equal(a.checkSocket('z', 0), null);
    assert.equal(a.refusals['max-connections'], 1);
  });

  it('refuses one address at its limit while others still get in', () => {
    const a = new Admission(config({ maxConnectionsPerAddress: 1 }), 0);
    assert.equal(a.checkSocket('10.0.0.1', 0), null);
    a.opened('10.0.0.1');
    assert.equal(a.checkSocket('10.0.0.1', 0)?.limit, 'max-connections-per-address');
    assert.equal(a.checkSocket('10.0.0.2', 0), null);
  });

  it('limits the accept rate, hinting at each refused client its own slot', () => {
    const a = new Admission(config({ acceptRate: 100, acceptBurst: 2 }), 0);
    assert.equal(a.checkSocket('x', 0), null);
    assert.equal(a.checkSocket('x', 0), null);
    const refused = [a.checkSocket('x', 0), a.checkSocket('x', 0), a.checkSocket('x', 0)];
    assert.deepEqual(
      refused.map((r) => [r?.limit, r?.retryAfter]),
      [
        ['accept-rate', 10],
        ['accept-rate', 20],
        ['accept-rate', 30],
      ],
    );
    assert.equal(a.checkSocket('x', 10), null);
  });

  it('checks the hard limits before taking an accept token', () => {
    const a = new Admission(config({ maxConnections: 1, acceptRate: 1, acceptBurst: 1 }), 0);
    a.opened('x');
    assert.equal(a.checkSocket('y', 0)?.limit, 'max-connections');
    a.closed('x');
    assert.equal(a.checkSocket('y', 0), null, 'the refusal did not spend the only token');
  });

  it('caps a hint at 60 s, jittered below the cap so capped clients spread', () => {
    const rng = mulberry32(7);
    const a = new Admission(config({ acceptRate: 1, acceptBurst: 1 }), 0, rng);
    assert.equal(a.checkSocket('x', 0), null);
    const hints: number[] = [];
    for (let i = 0; i < 200; i++) hints.push(a.checkSocket('x', 0)!.retryAfter);
    assert.equal(hints[0], 1000);
    assert.equal(hints[59], 60_000);
    const capped = hints.slice(60);
    assert.ok(capped.every((h) => h >= 40_000 && h <= 60_000));
    assert.ok(new Set(capped).size > 100, 'capped hints are spread');
  });

  it('admits sessions up to maxSessions; in danger only with a hint past recovery', () => {
    const a = new Admission(config({ maxSessions: 2 }), 0, () => 0);
    assert.equal(a.checkSession(1), null);
    assert.equal(a.checkSession(2)?.limit, 'max-sessions');
    const danger = a.checkSession(0, true, 8000);
    assert.deepEqual(danger, { limit: 'load', retryAfter: 8000, message: 'server overloaded' });
    assert.equal(a.checkSession(0, true, 1000)?.retryAfter, 5000);
    assert.deepEqual(a.refusals, {
      'max-connections': 0,
      'max-connections-per-address': 0,
      'max-sessions': 1,
      'max-sessions-per-address': 0,
      'max-sessions-per-identity': 0,
      'accept-rate': 0,
      load: 2,
    });
  });

  it('sends no hint when retryAfter is 0', () => {
    const a = new Admission(config({ maxConnections: 1, retryAfter: 0 }), 0);
    a.opened('x');
    assert.equal(a.checkSocket('x', 0)?.retryAfter, 0);
    assert.equal(refusalInfo(a.checkSocket('x', 0)!).retryAfter, undefined);
  });

  it('reports a refusal as overloaded, with HL_ERR_OVERLOADED and the hint', () => {
    const info = refusalInfo({ limit: 'accept-rate', retryAfter: 40, message: 'm' });
    assert.equal(info.reason, 'overloaded');
    assert.equal(info.code, 1007);
    assert.equal(info.retryAfter, 40);
    assert.equal(info.error?.code, 'HL_ERR_OVERLOADED');
    assert.match(info.error!.message, /accept-rate/);
  });
});
