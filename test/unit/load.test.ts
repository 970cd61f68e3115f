import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  classifyLoad,
  LOAD_DEFAULTS,
  type LoadEvent,
  LoadLevels,
  LoadMonitor,
  type LoadSample,
  type ProcessSample,
  resolveLoad,
} from '../../src/server/load.js';
import { FakeClock } from '../../src/time/fake-clock.js';

const GiB = 1024 ** 3;
const calm: LoadSample = { connections: 0, heapUsed: 0, rss: 0, eventLoopDelay: 0 };
const at = (o: Partial<LoadSample>): LoadSample => ({ ...calm, ...o });

describe('resolveLoad', () => {
  it('derives thresholds from maxConnections and the V8 heap limit', () => {
    const r = resolveLoad({}, 1000, 4 * GiB);
    assert.deepEqual(
      { ...r.warning },
      {
        connections: 800,
        heapUsed: Math.floor(4 * GiB * 0.7),
        rss: Number.POSITIVE_INFINITY,
        eventLoopDelay: 100,
      },
    );
    assert.deepEqual(
      { ...r.danger },
      {
        connections: 1000,
        heapUsed: Math.floor(4 * GiB * 0.85),
        rss: Number.POSITIVE_INFINITY,
        eventLoopDelay: 1000,
      },
    );
    assert.equal(r.sampleInterval, LOAD_DEFAULTS.sampleInterval);
    assert.equal(r.recoverAfter, LOAD_DEFAULTS.recoverAfter);
    assert.equal(r.sampler, null);
    assert.ok(Object.isFrozen(r) && Object.isFrozen(r.warning) && Object.isFrozen(r.danger));
    const unlimited = resolveLoad({}, Number.POSITIVE_INFINITY, GiB);
    assert.equal(unlimited.warning.connections, Number.POSITIVE_INFINITY);
  });

  it('lowers a default warning below an explicit danger, and the other way round', () => {
    const r = resolveLoad({ danger: { eventLoopDelay: 50 } }, 1000, GiB);
    assert.equal(r.warning.eventLoopDelay, 50);
    const s = resolveLoad({ warning: { connections: 5000 } }, 1000, GiB);
    assert.equal(s.danger.connections, 5000);
  });

  it('refuses bad values and explicit thresholds in the wrong order', () => {
    const bad: Array<[object, string]> = [
      [{ warning: { rss: -1 } }, 'load.warning.rss'],
      [{ danger: { heapUsed: Number.NaN } }, 'load.danger.heapUsed'],
      [{ warning: { connections: 10 }, danger: { connections: 5 } }, 'load.warning.connections'],
      [{ sampleInterval: -1 }, 'load.sampleInterval'],
      [{ recoverAfter: 1.5 }, 'load.recoverAfter'],
      [{ sampler: 42 }, 'load.sampler'],
    ];
    for (const [o, name] of bad) {
      assert.throws(
        () => resolveLoad(o as never, 100, GiB),
        (err: unknown) => err instanceof InvalidArgumentError && err.message.includes(`"${name}"`),
        JSON.stringify(o),
      );
    }
  });
});

describe('classifyLoad', () => {
  const config = resolveLoad(
    { warning: { rss: 100 }, danger: { rss: 200, eventLoopDelay: 500 } },
    10,
    1000,
  );

  it('names every metric at or over the level it reached', () => {
    assert.deepEqual(classifyLoad(config, calm), { level: 'normal', reasons: [] });
    assert.deepEqual(classifyLoad(config, at({ connections: 8 })), {
      level: 'warning',
      reasons: [{ metric: 'connections', value: 8, threshold: 8 }],
    });
    assert.deepEqual(classifyLoad(config, at({ rss: 250, eventLoopDelay: 120 })), {
      level: 'danger',
      reasons: [{ metric: 'rss', value: 250, threshold: 200 }],
    });
    assert.deepEqual(classifyLoad(config, at({ connections: 10, eventLoopDelay: 600 })).reasons, [
      { metric: 'connections', value: 10, threshold: 10 },
      { metric: 'eventLoopDelay', value: 600, threshold: 500 },
    ]);
  });
});

describe('LoadLevels', () => {
  const config = resolveLoad(
    { warning: { eventLoopDelay: 100 }, danger: { eventLoopDelay: 1000 }, recoverAfter: 3000 },
    Number.POSITIVE_INFINITY,
    GiB,
  );

  it('goes up at once, straight to danger if need be', () => {
    const l = new LoadLevels(config);
    assert.equal(l.level, 'normal');
    const e = l.update(at({ eventLoopDelay: 2000 }), 0);
    assert.deepEqual(e && { from: e.from, to: e.to, reasons: e.reasons }, {
      from: 'normal',
      to: 'danger',
      reasons: [{ metric: 'eventLoopDelay', value: 2000, threshold: 1000 }],
    });
    assert.equal(l.level, 'danger');
    assert.equal(l.update(at({ eventLoopDelay: 1500 }), 1000), null, 'no event while it stays');
  });

  it('comes down only after recoverAfter of calm samples, to the highest seen', () => {
    const l = new LoadLevels(config);
    l.update(at({ eventLoopDelay: 2000 }), 0);
    const seen: Array<LoadEvent | null> = [];
    seen.push(l.update(at({ eventLoopDelay: 0 }), 1000)); // calm from 1000
    seen.push(l.update(at({ eventLoopDelay: 200 }), 2000)); // a warning sample in the window
    seen.push(l.update(at({ eventLoopDelay: 0 }), 3000));
    assert.deepEqual(seen, [null, null, null]);
    const down = l.update(at({ eventLoopDelay: 0 }), 4000);
    assert.equal(down?.from, 'danger');
    assert.equal(down?.to, 'warning');
    assert.deepEqual(down?.reasons, [{ metric: 'eventLoopDelay', value: 200, threshold: 100 }]);
    // And from warning to normal after another calm stretch.
    assert.equal(l.update(calm, 5000), null);
    assert.equal(l.update(calm, 7000), null);
    const normal = l.update(calm, 8000);
    assert.deepEqual([normal?.from, normal?.to, normal?.reasons], ['warning', 'normal', []]);
  });

  it('does not flap with a metric hovering at its threshold', () => {
    const l = new LoadLevels(config);
    const changes: string[] = [];
    for (let t = 0; t < 60_000; t += 1000) {
      const e = l.update(at({ eventLoopDelay: t % 2000 === 0 ? 101 : 99 }), t);
      if (e) changes.push(`${e.from}->${e.to}`);
    }
    assert.deepEqual(changes, ['normal->warning']);
  });

  it('a spike during recovery restarts the calm window', () => {
    const l = new LoadLevels(config);
    l.update(at({ eventLoopDelay: 2000 }), 0);
    l.update(calm, 1000);
    l.update(calm, 3000);
    assert.equal(l.update(at({ eventLoopDelay: 5000 }), 3500), null);
    assert.equal(l.update(calm, 4000), null);
    assert.equal(l.update(calm, 6500), null);
    assert.equal(l.update(calm, 7000)?.to, 'normal');
  });

  it('with recoverAfter 0 follows every sample', () => {
    const l = new LoadLevels({ ...config, recoverAfter: 0 });
    assert.equal(l.update(at({ eventLoopDelay: 150 }), 0)?.to, 'warning');
    assert.equal(l.update(calm, 0)?.to, 'normal');
  });
});

describe('LoadMonitor', () => {
  function monitor(
    o: Parameters<typeof resolveLoad>[0],
    process: { sample: ProcessSample },
    connections = () => 0,
  ) {
    const clock = new FakeClock();
    const events: LoadEvent[] = [];
    const m = new LoadMonitor(
      resolveLoad({ ...o, sampler: () => process.sample }, 100, GiB),
      clock,
      connections,
      (e) => events.push(e),
    );
    return { clock, events, m };
  }

  it('samples once per interval with the injected sampler and the connection count', () => {
    const p = { sample: { heapUsed: 1, rss: 2, eventLoopDelay: 3 } };
    let open = 0;
    const { clock, events, m } = monitor(
      { sampleInterval: 1000, recoverAfter: 2000 },
      p,
      () => open,
    );
    m.start();
    m.start(); // idempotent
    assert.equal(clock.pending, 1);
    clock.advance(999);
    assert.equal(m.lastSample, null);
    clock.advance(1);
    assert.deepEqual(m.lastSample, { connections: 0, heapUsed: 1, rss: 2, eventLoopDelay: 3 });
    open = 100;
    clock.advance(1000);
    assert.equal(m.level, 'danger');
    assert.deepEqual(
      events.map((e) => [e.from, e.to, e.sample.connections]),
      [['normal', 'danger', 100]],
    );
    open = 10;
    clock.advance(3000);
    assert.equal(m.level, 'normal');
    m.stop();
    assert.equal(clock.pending, 0, 'no timer left');
    clock.advance(10_000);
    assert.equal(events.length, 2);
  });

  it('a listener that stops the monitor leaves no timer behind', () => {
    const clock = new FakeClock();
    const p = { heapUsed: 0, rss: 0, eventLoopDelay: 5000 };
    const m: LoadMonitor = new LoadMonitor(
      resolveLoad({ sampler: () => p }, 100, GiB),
      clock,
      () => 0,
      () => m.stop(),
    );
    m.start();
    clock.advance(1000);
    assert.equal(m.level, 'danger');
    assert.equal(clock.pending, 0);
  });

  it('with sampleInterval 0 never samples and stays normal', () => {
    const { clock, m } = monitor(
      { sampleInterval: 0 },
      { sample: { heapUsed: 0, rss: 0, eventLoopDelay: 1e6 } },
    );
    m.start();
    assert.equal(clock.pending, 0);
    assert.equal(m.level, 'normal');
  });

  it('measures this process by default: heap, RSS and event-loop delay', async () => {
    const clock = new FakeClock();
    const m = new LoadMonitor(
      resolveLoad({}, 100),
      clock,
      () => 0,
      () => {},
    );
    m.start();
    // Busy-wait 30 ms so the histogram records a delay of about that much.
    await new Promise((r) => setTimeout(r, 20));
    const until = performance.now() + 30;
    while (performance.now() < until) {
      // spin
    }
    await new Promise((r) => setTimeout(r, 20));
    clock.advance(1000);
    const s = m.lastSample!;
    m.stop();
    assert.ok(s.heapUsed > 0 && s.rss >= s.heapUsed, JSON.stringify(s));
    assert.ok(s.eventLoopDelay > 0, JSON.stringify(s));
  });
});
