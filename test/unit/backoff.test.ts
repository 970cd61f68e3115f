import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BACKOFF_DEFAULTS,
  Backoff,
  type BackoffOptions,
  type JitterMode,
  MAX_BACKOFF_DELAY,
} from '../../src/client/backoff.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { mulberry32 } from '../support/prng.js';

/** A random source that replays `values` in a loop and counts its calls. */
function scripted(values: number[]): { random: () => number; calls: () => number } {
  let i = 0;
  return {
    random: () => values[i++ % values.length]!,
    calls: () => i,
  };
}

function draws(backoff: Backoff, n: number): number[] {
  return Array.from({ length: n }, () => backoff.next());
}

/** The delay drawn on attempt `attempt` (1-based) by each of `clients` fresh Backoffs. */
function fleet(clients: number, attempt: number, options: BackoffOptions): number[] {
  const out: number[] = [];
  for (let c = 0; c < clients; c++) {
    const b = new Backoff(options);
    let d = 0;
    for (let i = 0; i < attempt; i++) d = b.next();
    out.push(d);
  }
  return out;
}

/** Counts delays into `n` equal buckets of [lo, hi); anything at or above hi goes last. */
function buckets(delays: number[], lo: number, hi: number, n = 10): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const d of delays) {
    const i = Math.min(n - 1, Math.max(0, Math.floor(((d - lo) / (hi - lo)) * n)));
    counts[i]!++;
  }
  return counts;
}

describe('Backoff defaults', () => {
  it('exposes frozen named defaults', () => {
    assert.deepEqual(BACKOFF_DEFAULTS, {
      initialDelay: 500,
      maxDelay: 30_000,
      multiplier: 2,
      jitter: 'full',
    });
    assert.ok(Object.isFrozen(BACKOFF_DEFAULTS));
  });

  it('uses the defaults when no options are given (full jitter over 500 ms doubling to 30 s)', () => {
    const s = scripted([0.5]);
    const b = new Backoff({ random: s.random });
    assert.deepEqual(draws(b, 8), [250, 500, 1000, 2000, 4000, 8000, 15_000, 15_000]);
  });

  it('uses Math.random by default and stays in range', () => {
    const b = new Backoff();
    for (let i = 0; i < 50; i++) {
      const d = b.next();
      assert.ok(d >= 0 && d <= BACKOFF_DEFAULTS.maxDelay, `delay ${d}`);
    }
  });

  it('does not mutate or keep the caller options', () => {
    const options = Object.freeze({ initialDelay: 100, jitter: 'none' as const });
    const b = new Backoff(options);
    assert.deepEqual(options, { initialDelay: 100, jitter: 'none' });
    assert.equal(b.next(), 100);
  });
});

describe('Backoff policies with a scripted random', () => {
  it("'none' returns the capped exponential ceiling", () => {
    const s = scripted([0.5]);
    const b = new Backoff({ jitter: 'none', random: s.random });
    assert.deepEqual(draws(b, 9), [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(s.calls(), 0, "'none' draws no random numbers");
  });

  it("'full' returns random * ceiling", () => {
    const s = scripted([0.5, 0.25, 0.75, 0]);
    const b = new Backoff({ jitter: 'full', random: s.random });
    // ceilings 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000
    assert.deepEqual(draws(b, 8), [250, 250, 1500, 0, 4000, 4000, 22_500, 0]);
  });

  it("'equal' returns ceiling/2 + random * ceiling/2", () => {
    const s = scripted([0.5, 0, 0.75]);
    const b = new Backoff({ jitter: 'equal', random: s.random });
    assert.deepEqual(draws(b, 7), [375, 500, 1750, 3000, 4000, 14_000, 22_500]);
  });

  it("'decorrelated' draws in [initialDelay, min(maxDelay, 3 x previous))", () => {
    const s = scripted([0.5, 0.5, 0.5, 1, 0, 0.5]);
    const b = new Backoff({
      jitter: 'decorrelated',
      initialDelay: 100,
      maxDelay: 1000,
      random: s.random,
    });
    // prev 100 -> [100, 300): 200; prev 200 -> [100, 600): 350; prev 350 -> [100, 1000): 550;
    // prev 550 -> [100, 1000), r = 1: 1000; prev 1000, r = 0: 100; prev 100 -> [100, 300): 200
    assert.deepEqual(draws(b, 6), [200, 350, 550, 1000, 100, 200]);
  });

  it('matches the gRPC schedule (1 s x1.6 up to 120 s) within float rounding', () => {
    const b = new Backoff({
      initialDelay: 1000,
      multiplier: 1.6,
      maxDelay: 120_000,
      jitter: 'none',
    });
    const expected = [1000, 1600, 2560, 4096, 6553.6, 10_485.76, 16_777.216, 26_843.5456];
    for (const e of expected) assert.ok(Math.abs(b.next() - e) < 1e-6);
    for (let i = 0; i < 5; i++) b.next();
    assert.equal(b.next(), 120_000);
  });

  it('multiplier 1 gives a constant ceiling', () => {
    const b = new Backoff({ initialDelay: 200, maxDelay: 5000, multiplier: 1, jitter: 'none' });
    assert.deepEqual(draws(b, 4), [200, 200, 200, 200]);
  });

  it('re-draws the random part on every attempt, including at the cap', () => {
    for (const jitter of ['full', 'equal', 'decorrelated'] as const) {
      const s = scripted([0.1, 0.9]);
      const b = new Backoff({ jitter, random: s.random });
      const ds = draws(b, 40);
      assert.equal(s.calls(), 40, `${jitter}: one draw per attempt`);
      // At the cap consecutive delays still differ: nothing is frozen once the cap is hit.
      assert.notEqual(ds[38], ds[39], `${jitter}: delays at the cap differ`);
    }
  });

  it('clamps a random source that strays outside [0, 1]', () => {
    const s = scripted([2, -1, Number.NaN]);
    const b = new Backoff({ jitter: 'full', initialDelay: 100, maxDelay: 100, random: s.random });
    assert.deepEqual(draws(b, 3), [100, 0, 0]);
    const d = new Backoff({
      jitter: 'decorrelated',
      initialDelay: 100,
      maxDelay: 1000,
      random: () => 5,
    });
    assert.deepEqual(draws(d, 3), [300, 900, 1000]);
  });
});

describe('Backoff cap and overflow', () => {
  it('never exceeds maxDelay for any policy over many attempts', () => {
    for (const jitter of ['full', 'equal', 'decorrelated', 'none'] as const) {
      const b = new Backoff({ jitter, random: mulberry32(7) });
      for (let i = 0; i < 5000; i++) {
        const d = b.next();
        assert.ok(d >= 0 && d <= 30_000, `${jitter} attempt ${i}: ${d}`);
      }
      assert.equal(b.attempt, 5000);
    }
  });

  it('stays finite for huge attempt counts and extreme multipliers', () => {
    const b = new Backoff({
      initialDelay: 1,
      maxDelay: MAX_BACKOFF_DELAY,
      multiplier: 1e308,
      jitter: 'none',
    });
    assert.equal(b.next(), 1);
    assert.equal(b.next(), MAX_BACKOFF_DELAY);
    for (let i = 0; i < 100_000; i++) b.next();
    assert.equal(b.next(), MAX_BACKOFF_DELAY);
    const f = new Backoff({
      initialDelay: 1,
      maxDelay: MAX_BACKOFF_DELAY,
      multiplier: 10,
      random: () => 0.5,
    });
    for (let i = 0; i < 10_000; i++) assert.ok(Number.isFinite(f.next()));
    assert.equal(f.next(), MAX_BACKOFF_DELAY / 2);
  });

  it('applies full jitter after the cap: late attempts spread over [0, maxDelay)', () => {
    const b = new Backoff({ random: mulberry32(42) });
    for (let i = 0; i < 100; i++) b.next();
    const late = draws(b, 1000);
    assert.ok(Math.min(...late) < 0.05 * 30_000, 'some late delays near 0');
    assert.ok(Math.max(...late) > 0.95 * 30_000, 'some late delays near the cap');
    assert.ok(late.every((d) => d < 30_000));
    assert.ok(new Set(late).size > 990, 'no value repeats: jitter is not applied before the cap');
  });
});

describe('Backoff reset and attempt', () => {
  it('counts attempts and starts over after reset', () => {
    const b = new Backoff({ jitter: 'none' });
    assert.equal(b.attempt, 0);
    draws(b, 10);
    assert.equal(b.attempt, 10);
    b.reset();
    assert.equal(b.attempt, 0);
    assert.deepEqual(draws(b, 3), [500, 1000, 2000]);
    assert.equal(b.attempt, 3);
  });

  it('resets the decorrelated previous delay too', () => {
    const b = new Backoff({
      jitter: 'decorrelated',
      initialDelay: 100,
      maxDelay: 10_000,
      random: () => 0.5,
    });
    assert.deepEqual(draws(b, 3), [200, 350, 575]);
    b.reset();
    assert.deepEqual(draws(b, 2), [200, 350]);
  });
});

describe('Backoff validation', () => {
  const bad: [string, BackoffOptions][] = [
    ['initialDelay', { initialDelay: 0 }],
    ['initialDelay', { initialDelay: -1 }],
    ['initialDelay', { initialDelay: Number.NaN }],
    ['initialDelay', { initialDelay: Number.POSITIVE_INFINITY }],
    ['initialDelay', { initialDelay: '500' as unknown as number }],
    ['maxDelay', { maxDelay: 499 }],
    ['maxDelay', { initialDelay: 1000, maxDelay: 999 }],
    ['maxDelay', { maxDelay: Number.NaN }],
    ['maxDelay', { maxDelay: Number.POSITIVE_INFINITY }],
    ['maxDelay', { maxDelay: MAX_BACKOFF_DELAY + 1 }],
    ['multiplier', { multiplier: 0.5 }],
    ['multiplier', { multiplier: 0 }],
    ['multiplier', { multiplier: Number.NaN }],
    ['multiplier', { multiplier: Number.POSITIVE_INFINITY }],
    ['jitter', { jitter: 'bogus' as JitterMode }],
    ['random', { random: 0.5 as unknown as () => number }],
  ];
  for (const [name, options] of bad) {
    it(`rejects ${name} = ${String(Object.values(options)[Object.values(options).length - 1])}`, () => {
      assert.throws(
        () => new Backoff(options),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.code === 'HL_ERR_INVALID_ARGUMENT' &&
          err.message.includes(`backoff.${name}`),
      );
    });
  }

  it('accepts the edges: maxDelay === initialDelay, multiplier 1, maxDelay at the timer limit', () => {
    assert.equal(new Backoff({ initialDelay: 100, maxDelay: 100, jitter: 'none' }).next(), 100);
    assert.equal(new Backoff({ multiplier: 1, jitter: 'none' }).next(), 500);
    assert.equal(new Backoff({ maxDelay: MAX_BACKOFF_DELAY, jitter: 'none' }).next(), 500);
  });

  it('treats undefined as the default (??), not as an error', () => {
    const b = new Backoff({ initialDelay: undefined, jitter: undefined, random: () => 0.5 });
    assert.equal(b.next(), 250);
  });
});

describe('Backoff spreads a fleet instead of bunching', () => {
  const CLIENTS = 1000;
  const FAIR = CLIENTS / 10;

  it('1,000 clients: first retries (full jitter) spread over [0, initialDelay)', () => {
    const delays = fleet(CLIENTS, 1, { random: mulberry32(1) });
    const counts = buckets(delays, 0, BACKOFF_DEFAULTS.initialDelay);
    assert.ok(delays.every((d) => d >= 0 && d < BACKOFF_DEFAULTS.initialDelay));
    assert.ok(Math.max(...counts) <= 2 * FAIR, `buckets ${counts.join(',')}`);
    assert.ok(Math.min(...counts) > 0, `buckets ${counts.join(',')}`);
  });

  it('1,000 clients: 8th retries at the cap (full jitter) spread over [0, maxDelay)', () => {
    const delays = fleet(CLIENTS, 8, { random: mulberry32(2) });
    const counts = buckets(delays, 0, BACKOFF_DEFAULTS.maxDelay);
    assert.ok(Math.max(...counts) <= 2 * FAIR, `buckets ${counts.join(',')}`);
  });

  it("1,000 clients with 'none' bunch into one instant, first retry and at the cap", () => {
    const first = fleet(CLIENTS, 1, { jitter: 'none' });
    assert.ok(first.every((d) => d === BACKOFF_DEFAULTS.initialDelay));
    assert.equal(Math.max(...buckets(first, 0, BACKOFF_DEFAULTS.initialDelay)), CLIENTS);
    const eighth = fleet(CLIENTS, 8, { jitter: 'none' });
    assert.equal(Math.max(...buckets(eighth, 0, BACKOFF_DEFAULTS.maxDelay)), CLIENTS);
  });

  it("'equal' spreads the 8th retries over [maxDelay/2, maxDelay)", () => {
    const delays = fleet(CLIENTS, 8, { jitter: 'equal', random: mulberry32(3) });
    const max = BACKOFF_DEFAULTS.maxDelay;
    assert.ok(delays.every((d) => d >= max / 2 && d < max));
    assert.ok(Math.max(...buckets(delays, max / 2, max)) <= 2 * FAIR);
  });

  it("'decorrelated' has no point mass at the cap, unlike clamping after the draw", () => {
    const random = mulberry32(4);
    const initialDelay = 500;
    const maxDelay = 30_000;
    const ours = fleet(CLIENTS, 30, { jitter: 'decorrelated', random });
    assert.ok(ours.every((d) => d >= initialDelay && d < maxDelay));
    // Decorrelated jitter is a random walk and skews low, but no instant is shared.
    assert.ok(new Set(ours).size > 990, 'clients do not share a retry instant');
    assert.ok(Math.max(...buckets(ours, initialDelay, maxDelay)) < 3 * FAIR);

    // The literal AWS formula min(cap, random_between(base, prev * 3)) for comparison:
    // about a third of the fleet retries at exactly the same instant, the cap.
    const literal: number[] = [];
    for (let c = 0; c < CLIENTS; c++) {
      let prev = initialDelay;
      for (let i = 0; i < 30; i++) {
        prev = Math.min(maxDelay, initialDelay + random() * (prev * 3 - initialDelay));
      }
      literal.push(prev);
    }
    assert.ok(literal.filter((d) => d === maxDelay).length > CLIENTS / 4);
  });
});
