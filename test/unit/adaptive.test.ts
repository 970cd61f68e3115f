import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { fixedDetector } from '../../src/health/index.js';
import { resolveCommon } from '../../src/options.js';
import {
  ADAPTIVE_DEFAULTS,
  AdaptiveHeartbeat,
  type HeartbeatPolicy,
  nextFactor,
  type RetuneEvent,
  resolveAdaptive,
  stretchGrant,
} from '../../src/server/adaptive.js';
import type { GrantPolicy } from '../../src/server/grant.js';
import { ServerConnection } from '../../src/server/server-connection.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { TimingWheel } from '../../src/time/wheel.js';

const POLICY: GrantPolicy = {
  interval: 1000,
  timeout: 3000,
  minInterval: 1000,
  maxInterval: 60_000,
  maxTimeout: 300_000,
};
const BASE = { interval: 1000, timeout: 3000 };

describe('nextFactor', () => {
  it('stays at 1 within the budget and with no budget', () => {
    assert.equal(nextFactor(19, 1, 20), 1);
    assert.equal(nextFactor(20, 1, 20), 1);
    assert.equal(nextFactor(1e9, 1, Number.POSITIVE_INFINITY), 1);
  });

  it('stretches past the budget to land at 80% of it', () => {
    assert.equal(nextFactor(50, 1, 20), 50 / 16);
    assert.equal(nextFactor(21, 1, 20), 21 / 16);
  });

  it('holds within [50%, 100%] of the budget and relaxes below it', () => {
    const f = 50 / 16;
    assert.equal(nextFactor(50, f, 20), f); // 16/s
    assert.equal(nextFactor(62.5, f, 20), f); // 20/s: at the budget, not over
    assert.equal(nextFactor(32, f, 20), f); // 10.24/s
    assert.equal(nextFactor(30, f, 20), 30 / 16); // 9.6/s: below half, shrink
    assert.equal(nextFactor(10, f, 20), 1); // never below 1
  });

  it('does not flap when the cost goes up and down around the budget', () => {
    let f = 1;
    let changes = 0;
    for (let i = 0; i < 1000; i++) {
      const demand = 20 + (i % 2 === 0 ? 1 : -1);
      const next = nextFactor(demand, f, 20);
      if (next !== f) changes++;
      f = next;
    }
    assert.equal(changes, 1);
  });
});

describe('stretchGrant', () => {
  it('stretches the interval and keeps the timeout ratio', () => {
    assert.deepEqual(stretchGrant(BASE, 1, POLICY), BASE);
    assert.deepEqual(stretchGrant(BASE, 3.125, POLICY), { interval: 3125, timeout: 9375 });
    assert.deepEqual(stretchGrant({ interval: 2000, timeout: 10_000 }, 1.5, POLICY), {
      interval: 3000,
      timeout: 15_000,
    });
  });

  it('never goes past maxInterval', () => {
    assert.deepEqual(stretchGrant(BASE, 1000, POLICY), { interval: 60_000, timeout: 180_000 });
  });
});

describe('resolveAdaptive', () => {
  it('defaults to a budget of 10,000 a second and no policy hook', () => {
    assert.deepEqual(
      { ...resolveAdaptive({}) },
      { maxHeartbeatsPerSecond: ADAPTIVE_DEFAULTS.maxHeartbeatsPerSecond, heartbeatPolicy: null },
    );
    assert.equal(
      resolveAdaptive({ maxHeartbeatsPerSecond: Number.POSITIVE_INFINITY }).maxHeartbeatsPerSecond,
      Number.POSITIVE_INFINITY,
    );
  });

  it('refuses a bad budget or hook, naming the option', () => {
    for (const [o, name] of [
      [{ maxHeartbeatsPerSecond: 0 }, 'maxHeartbeatsPerSecond'],
      [{ maxHeartbeatsPerSecond: Number.NaN }, 'maxHeartbeatsPerSecond'],
      [{ heartbeatPolicy: 'short' }, 'heartbeatPolicy'],
    ] as const) {
      assert.throws(
        () => resolveAdaptive(o as never),
        (err: unknown) => err instanceof InvalidArgumentError && err.message.includes(`"${name}"`),
      );
    }
  });
});

/** A server's adaptive heartbeat on a fake clock, with real (link-less) server connections. */
function harness(
  t: TestContext,
  budget: number,
  heartbeatPolicy?: HeartbeatPolicy,
): {
  clock: FakeClock;
  adaptive: AdaptiveHeartbeat;
  events: RetuneEvent[];
  open: (clientId?: string) => ServerConnection;
} {
  const clock = new FakeClock();
  const wheel = new TimingWheel(clock);
  const config = resolveCommon({}, clock, fixedDetector());
  const events: RetuneEvent[] = [];
  const adaptive = new AdaptiveHeartbeat(
    POLICY,
    resolveAdaptive({
      maxHeartbeatsPerSecond: budget,
      ...(heartbeatPolicy ? { heartbeatPolicy } : {}),
    }),
    wheel,
    (e) => events.push(e),
  );
  t.after(() => {
    adaptive.stop();
    wheel.clear();
  });
  let n = 0;
  const open = (clientId = '') => {
    n++;
    const conn = new ServerConnection(
      config,
      wheel,
      // What the server's host does: a lost link or a closed connection stops counting.
      {
        opened: () => {},
        disconnected: (c) => adaptive.forget(c),
        release: (c) => adaptive.forget(c),
      },
      60_000,
      {
        sessionId: n.toString(16).padStart(32, '0'),
        token: new Uint8Array(16),
        clientId,
        traceId: '',
        identity: null,
        remote: `127.0.0.1:${1000 + n}`,
      },
    );
    // A connection without a link: retune() only records the settings.
    conn.retune(adaptive.settingsFor(conn, { ...BASE }));
    return conn;
  };
  return { clock, adaptive, events, open };
}

describe('AdaptiveHeartbeat', () => {
  it('stretches every interval past the budget and relaxes when links go', (t) => {
    const { clock, adaptive, events, open } = harness(t, 20);
    const conns = Array.from({ length: 50 }, () => open());
    assert.ok(
      conns.every((c) => c.settings?.interval === 1000),
      'granted before any decision',
    );
    assert.equal(adaptive.load.demand, 50);
    clock.advance(ADAPTIVE_DEFAULTS.evaluateDelay);
    assert.equal(adaptive.factor, 50 / 16);
    for (const c of conns) {
      assert.deepEqual([c.settings?.interval, c.settings?.timeout], [3125, 9375]);
    }
    assert.deepEqual(events, [
      { from: 1, to: 50 / 16, interval: 3125, connections: 50, demand: 50, budget: 20 },
    ]);
    const load = adaptive.load;
    assert.ok(Math.abs(load.rate - 16) < 1e-9, `${load.rate}`);
    assert.equal(load.interval, 3125);
    // A new connection is granted the stretched values at once.
    assert.equal(open().settings?.interval, 3125);

    for (const c of conns.slice(0, 41)) c.close();
    assert.equal(adaptive.load.connections, 10);
    clock.advance(ADAPTIVE_DEFAULTS.evaluateDelay);
    assert.equal(adaptive.factor, 1);
    for (const c of conns.slice(41)) assert.equal(c.settings?.interval, 1000);
    assert.equal(events.length, 2);
    assert.equal(events[1]?.to, 1);
  });

  it('decides at most once per evaluateDelay however many links arrive', (t) => {
    const { clock, events, open } = harness(t, 20);
    for (let i = 0; i < 25; i++) open();
    clock.advance(500);
    for (let i = 0; i < 25; i++) open();
    assert.equal(events.length, 0);
    clock.advance(500);
    assert.equal(events.length, 1);
    assert.equal(events[0]?.connections, 50);
    clock.advance(10_000);
    assert.equal(events.length, 1, 'nothing changed, nothing decided');
  });

  it('applies the policy hook before the budget and bounds what it returns', (t) => {
    const policy: HeartbeatPolicy = (conn, base) => {
      if (conn.clientId === 'idle')
        return { interval: base.interval * 10, timeout: base.timeout * 10 };
      if (conn.clientId === 'huge') return { interval: 1e9, timeout: 3e9 };
      if (conn.clientId === 'tiny') return { interval: 1, timeout: 2 };
      return undefined;
    };
    const { clock, adaptive, open } = harness(t, 20, policy);
    assert.equal(open('idle').settings?.interval, 10_000);
    assert.equal(open('huge').settings?.interval, POLICY.maxInterval);
    assert.deepEqual(
      [open('tiny').settings?.interval, open('tiny').settings?.timeout],
      [POLICY.minInterval, 2 * POLICY.minInterval],
    );
    const busy = open('busy');
    assert.equal(busy.settings?.interval, 1000);
    // 0.1 + 1/60 + 2 + 1 = 3.1 a second: far within the budget.
    assert.ok(Math.abs(adaptive.load.demand - (0.1 + 1 / 60 + 3)) < 1e-9);
    clock.advance(1000);
    assert.equal(adaptive.factor, 1);
  });

  it('refreshHeartbeat asks the hook again and retunes only on a change', (t) => {
    let matters = false;
    const { adaptive, open } = harness(t, 1000, () =>
      matters ? { interval: 1000, timeout: 3000 } : { interval: 30_000, timeout: 90_000 },
    );
    const conn = open();
    assert.equal(conn.settings?.interval, 30_000);
    const before = conn.settings;
    assert.equal(adaptive.refresh(conn), true);
    assert.equal(conn.settings, before, 'unchanged: no SETTINGS');
    matters = true;
    adaptive.refresh(conn);
    assert.equal(conn.settings?.interval, 1000);
    conn.close();
    assert.equal(adaptive.refresh(conn), false, 'no link: nothing to refresh');
  });

  it('a hook returning nonsense is a typed error', (t) => {
    const { open } = harness(t, 20, () => ({ interval: Number.NaN, timeout: 1 }));
    assert.throws(
      () => open(),
      (err: unknown) =>
        err instanceof Error &&
        (err as { code?: string }).code === 'HL_ERR_INVALID_ARGUMENT' &&
        /heartbeatPolicy/.test(err.message),
    );
  });

  it('a lost link stops counting; the resumed one counts again', (t) => {
    const { adaptive, open } = harness(t, 20);
    const conn = open();
    assert.equal(adaptive.load.connections, 1);
    adaptive.forget(conn);
    assert.equal(adaptive.load.connections, 0);
    adaptive.forget(conn);
    assert.equal(adaptive.load.connections, 0, 'forgetting twice is harmless');
    adaptive.settingsFor(conn, { ...BASE });
    adaptive.settingsFor(conn, { ...BASE });
    assert.equal(adaptive.load.connections, 1, 'counted once');
    // The server calls forget() directly: the connection carries no listener of ours.
    assert.equal(conn.listenerCount('disconnect') + conn.listenerCount('close'), 0);
  });

  it('with no budget never arms a timer', (t) => {
    const { clock, adaptive, open } = harness(t, Number.POSITIVE_INFINITY);
    for (let i = 0; i < 100; i++) open();
    assert.equal(clock.pending, 0);
    assert.equal(adaptive.load.demand, 100);
  });
});
