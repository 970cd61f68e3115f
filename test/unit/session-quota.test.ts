import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixedDetector } from '../../src/health/index.js';
import { resolveCommon } from '../../src/options.js';
import { ServerConnection } from '../../src/server/server-connection.js';
import { SessionQuota } from '../../src/server/session-quota.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { TimingWheel } from '../../src/time/wheel.js';

const clock = new FakeClock();
const config = resolveCommon({ clock }, clock, fixedDetector());
const wheel = new TimingWheel(clock);
const host = { opened: () => {}, disconnected: () => {}, release: () => {} };
let n = 0;

/** A session as the server creates it (no link: the quota only reads its identity). */
function session(identity: string | null = null): ServerConnection {
  n++;
  return new ServerConnection(config, wheel, host, 60_000, {
    sessionId: n.toString(16).padStart(32, '0'),
    token: new Uint8Array(16),
    clientId: `c${n}`,
    traceId: '',
    identity,
    remote: '127.0.0.1:1',
  });
}

const INF = Number.POSITIVE_INFINITY;

describe('SessionQuota', () => {
  it('at maxSessions names the oldest disconnected anonymous session, never a live or identified one', () => {
    const q = new SessionQuota({
      maxSessions: 4,
      maxSessionsPerAddress: INF,
      maxSessionsPerIdentity: INF,
    });
    const [live, a, b, alice] = [session(), session(), session(), session('alice')];
    for (const c of [live, a, b, alice]) q.added(c, '10.0.0.1');
    assert.equal(q.check('10.0.0.2', null, 3), null);
    assert.deepEqual(q.check('10.0.0.2', null, 4), { limit: 'max-sessions', victim: null });
    q.disconnected(alice);
    assert.equal(q.check('10.0.0.2', null, 4)?.victim, null, 'identified: not a victim');
    q.disconnected(b);
    q.disconnected(a);
    // b disconnected first: it is the oldest.
    assert.equal(q.check('10.0.0.2', null, 4)?.victim, b);
    // A resume takes b out of the candidates; a disconnecting again goes last.
    q.connected(b);
    assert.equal(q.check('10.0.0.2', null, 4)?.victim, a);
    q.removed(a);
    assert.equal(q.check('10.0.0.2', null, 4)?.victim, null);
  });

  it('per address: counts and evicts within the address only', () => {
    const q = new SessionQuota({
      maxSessions: INF,
      maxSessionsPerAddress: 2,
      maxSessionsPerIdentity: INF,
    });
    const [x1, x2, y1] = [session(), session(), session()];
    q.added(x1, 'x');
    q.added(x2, 'x');
    q.added(y1, 'y');
    assert.equal(q.sessionsFrom('x'), 2);
    assert.deepEqual(q.check('x', null, 3), { limit: 'max-sessions-per-address', victim: null });
    assert.equal(q.check('y', null, 3), null);
    q.disconnected(y1);
    assert.equal(q.check('x', null, 3)?.victim, null, "another address's session is no victim");
    q.disconnected(x2);
    assert.equal(q.check('x', null, 3)?.victim, x2);
    q.removed(x2);
    assert.equal(q.sessionsFrom('x'), 1);
    assert.equal(q.check('x', null, 2), null);
  });

  it('per identity: checked only once the identity is known, and only its own sessions are victims', () => {
    const q = new SessionQuota({
      maxSessions: INF,
      maxSessionsPerAddress: INF,
      maxSessionsPerIdentity: 2,
    });
    const [m1, m2, anon] = [session('mallory'), session('mallory'), session()];
    for (const c of [m1, m2, anon]) q.added(c, 'x');
    q.disconnected(anon);
    assert.equal(q.sessionsOf('mallory'), 2);
    assert.equal(q.check('x', undefined, 3), null, 'before authenticate');
    assert.deepEqual(q.check('x', 'mallory', 3), {
      limit: 'max-sessions-per-identity',
      victim: null,
    });
    assert.equal(q.check('x', 'alice', 3), null);
    q.disconnected(m2);
    assert.equal(q.check('x', 'mallory', 3)?.victim, m2);
    for (const c of [m1, m2, anon]) q.removed(c);
    assert.equal(q.sessionsOf('mallory'), 0);
  });
});
