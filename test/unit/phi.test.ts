import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  elapsedForPhi,
  PHI_ACCRUAL_DEFAULTS,
  PhiAccrualDetector,
  type PhiAccrualOptions,
  phiDetector,
  phiOf,
} from '../../src/health/index.js';

const settings = Object.freeze({ interval: 1000, timeout: 10_000, suspectAfter: 1500 });

/** Akka's PhiAccrualFailureDetector.phi, transcribed literally, as the reference. */
function akkaPhi(timeDiff: number, mean: number, stdDeviation: number): number {
  const y = (timeDiff - mean) / stdDeviation;
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  if (timeDiff > mean) return -Math.log10(e / (1.0 + e));
  return -Math.log10(1.0 - 1.0 / (1.0 + e));
}

/** Deterministic jitter in [-amplitude, amplitude] (a 32-bit LCG; no Math.random in tests). */
function jitter(seed: number, amplitude: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 0xffffffff) * 2 * amplitude - amplitude;
  };
}

/** Feeds `gaps` as heartbeats on an idle link, the way the heartbeat module reports them. */
function feed(d: PhiAccrualDetector, start: number, gaps: Iterable<number>): number {
  let now = start;
  for (const gap of gaps) {
    now += gap;
    d.sample(gap);
    d.heard(now);
  }
  return now;
}

function repeat(n: number, f: (i: number) => number): number[] {
  return Array.from({ length: n }, (_, i) => f(i));
}

/** Equal to within 1e-9 ms: `(last + offset) - last` rounds in the last bit. */
function near(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} != ${expected}`);
}

function invalid(name: string) {
  return (err: unknown) =>
    err instanceof InvalidArgumentError &&
    err.code === 'HL_ERR_INVALID_ARGUMENT' &&
    err.message.startsWith(name);
}

describe('phiOf / elapsedForPhi', () => {
  it('agrees with Akka’s formula where Akka’s is finite', () => {
    for (let t = 0; t <= 3000; t += 7) {
      const ours = phiOf(t, 1000, 150);
      const akka = akkaPhi(t, 1000, 150);
      assert.ok(Math.abs(ours - akka) <= 1e-9 * Math.max(1, akka), `t=${t}: ${ours} vs ${akka}`);
    }
  });

  it('is log10(2) at the mean and stays finite far past it', () => {
    assert.ok(Math.abs(phiOf(1000, 1000, 100) - Math.log10(2)) < 1e-15);
    const far = phiOf(100_000, 1000, 100); // Akka's direct form gives Infinity here
    assert.ok(Number.isFinite(far) && far > 1000);
  });

  it('is strictly increasing in silence', () => {
    let previous = -1;
    for (let t = 0; t <= 20_000; t += 1) {
      const p = phiOf(t, 1000, 100);
      assert.ok(p > previous, `phi not increasing at ${t}`);
      previous = p;
    }
  });

  it('inverts phiOf (property)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 40, noNaN: true }),
        fc.double({ min: 0, max: 100_000, noNaN: true }),
        fc.double({ min: 1, max: 10_000, noNaN: true }),
        (phi, mean, sd) => {
          const t = elapsedForPhi(phi, mean, sd);
          assert.ok(Math.abs(phiOf(t, mean, sd) - phi) <= 1e-9 * Math.max(1, phi));
          // ... and it is the crossing: below 1 us before, above 1 us after.
          assert.ok(phiOf(t - 1e-3, mean, sd) < phi);
          assert.ok(phiOf(t + 1e-3, mean, sd) > phi);
        },
      ),
      { seed: 6298, numRuns: 2000 },
    );
  });
});

describe('PhiAccrualDetector', () => {
  it('seeds the window from the interval as Akka does: mean = estimate, deviation = estimate/4', () => {
    const d = new PhiAccrualDetector(settings, 0);
    assert.equal(d.sampleCount, 2);
    assert.equal(d.mean, 1000);
    assert.equal(d.stdDeviation, 250);
    assert.equal(d.deadAt(), elapsedForPhi(8, 1000, 250));
    assert.equal(d.threshold, PHI_ACCRUAL_DEFAULTS.threshold);
    assert.equal(d.suspectThreshold, 4);

    const explicit = new PhiAccrualDetector(settings, 0, { firstHeartbeatEstimate: 2000 });
    assert.equal(explicit.mean, 2000);
    assert.equal(explicit.stdDeviation, 500);
  });

  it('phi grows monotonically with silence and is ~0 right after a heartbeat', () => {
    const d = new PhiAccrualDetector(settings, 0);
    const last = feed(
      d,
      0,
      repeat(50, () => 1000),
    );
    assert.ok(d.suspicion(last) < 1e-6);
    let previous = d.suspicion(last);
    for (let t = last + 10; t <= last + 5000; t += 10) {
      const p = d.suspicion(t);
      assert.ok(p > previous);
      previous = p;
    }
  });

  it('with regular 1000 ms heartbeats and small jitter, places suspect and dead shortly after the mean', () => {
    const d = new PhiAccrualDetector(settings, 0);
    const noise = jitter(42, 20);
    const last = feed(
      d,
      0,
      repeat(150, () => 1000 + noise()),
    );
    assert.ok(Math.abs(d.mean - 1000) < 5);
    const suspect = d.suspectAt() - last;
    const dead = d.deadAt() - last;
    assert.ok(d.mean < suspect && suspect < dead, `${suspect} ${dead}`);
    assert.ok(dead < d.mean + 3000, `dead ${dead} too late`);
    // The floor (100 ms) governs, since the jitter's deviation is ~12 ms.
    assert.ok(Math.abs(dead - elapsedForPhi(8, d.mean, 100)) < 1e-6);
  });

  it('suspectAt() and deadAt() are where phi(now) crosses the thresholds, to within 1 ms', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const noise = jitter(seed, 300);
      const d = new PhiAccrualDetector(settings, 0, { threshold: 6 + seed, maxSampleSize: 50 });
      feed(
        d,
        0,
        repeat(80, () => 1000 + noise()),
      );
      for (const [at, threshold] of [
        [d.suspectAt(), d.suspectThreshold],
        [d.deadAt(), d.threshold],
      ] as const) {
        assert.ok(d.suspicion(at - 1) < threshold, `seed ${seed}: phi already crossed 1 ms early`);
        assert.ok(d.suspicion(at + 1) >= threshold, `seed ${seed}: phi not crossed 1 ms late`);
        assert.ok(Math.abs(d.suspicion(at) - threshold) < 1e-6);
      }
    }
  });

  it('never places deadAt after last + timeout, nor suspectAt after deadAt', () => {
    const d = new PhiAccrualDetector({ ...settings, timeout: 1200, suspectAfter: 1200 }, 0);
    const last = feed(
      d,
      0,
      repeat(20, () => 1000),
    );
    assert.equal(d.deadAt(), last + 1200);
    assert.ok(d.suspicion(d.deadAt()) < d.threshold); // the hard bound wins over phi

    const late = new PhiAccrualDetector({ ...settings, timeout: 1100, suspectAfter: 1100 }, 0, {
      suspectThreshold: 7,
    });
    feed(
      late,
      0,
      repeat(20, () => 1000),
    );
    assert.equal(late.suspectAt(), late.deadAt());
  });

  it('floors the deviation at minStdDeviation', () => {
    const regular = repeat(10, () => 1000);
    const d = new PhiAccrualDetector(settings, 0, { maxSampleSize: 10 });
    const last = feed(d, 0, regular);
    assert.equal(d.stdDeviation, 0); // the seed has slid out; every gap is 1000
    near(d.deadAt() - last, elapsedForPhi(8, 1000, 100));

    const tight = new PhiAccrualDetector(settings, 0, { maxSampleSize: 10, minStdDeviation: 20 });
    const tightLast = feed(tight, 0, regular);
    near(tight.deadAt() - tightLast, elapsedForPhi(8, 1000, 20));

    // Above the floor, the measured deviation is used.
    const wide = new PhiAccrualDetector(settings, 0, { maxSampleSize: 10, minStdDeviation: 1 });
    const wideLast = feed(
      wide,
      0,
      repeat(10, (i) => (i % 2 === 0 ? 900 : 1100)),
    );
    assert.equal(wide.stdDeviation, 100);
    near(wide.deadAt() - wideLast, elapsedForPhi(8, 1000, 100));
  });

  it('adds acceptableHeartbeatPause to the mean', () => {
    const plain = new PhiAccrualDetector(settings, 0);
    const paused = new PhiAccrualDetector(settings, 0, { acceptableHeartbeatPause: 500 });
    near(paused.deadAt() - plain.deadAt(), 500);
    near(paused.suspectAt() - plain.suspectAt(), 500);
  });

  it('slides the window: old gaps (and the seed) fall out after maxSampleSize', () => {
    const d = new PhiAccrualDetector(settings, 0, { maxSampleSize: 5 });
    feed(
      d,
      0,
      repeat(3, () => 1200),
    );
    assert.equal(d.sampleCount, 5);
    assert.equal(d.mean, (750 + 1250 + 3 * 1200) / 5);
    feed(
      d,
      0,
      repeat(2, () => 1200),
    );
    assert.equal(d.mean, 1200);
    assert.equal(d.stdDeviation, 0);
    feed(
      d,
      0,
      repeat(5, () => 1100),
    );
    assert.equal(d.mean, 1100);
    assert.equal(d.sampleCount, 5);
  });

  it('keeps exact window statistics over a long run', () => {
    const size = 64;
    const d = new PhiAccrualDetector(settings, 0, { maxSampleSize: size });
    const noise = jitter(7, 250);
    const gaps = repeat(10_007, () => 1000 + noise());
    feed(d, 0, gaps);
    const window = gaps.slice(-size);
    const mean = window.reduce((a, b) => a + b, 0) / size;
    const variance = window.reduce((a, b) => a + (b - mean) ** 2, 0) / size;
    assert.ok(Math.abs(d.mean - mean) < 1e-9);
    assert.ok(Math.abs(d.stdDeviation - Math.sqrt(variance)) < 1e-6);
  });

  it('ignores negative and non-finite gaps, and gaps past the dead crossing', () => {
    const d = new PhiAccrualDetector(settings, 0);
    for (const gap of [-1, Number.NaN, Number.POSITIVE_INFINITY]) d.sample(gap);
    assert.equal(d.sampleCount, 2);
    const deadGap = d.deadAt(); // last = 0
    d.sample(deadGap + 1);
    assert.equal(d.sampleCount, 2);
    d.sample(deadGap - 1);
    assert.equal(d.sampleCount, 3);
  });

  it('heard() never moves backwards; reset() reseeds; suspicion is 0-ish before the mean', () => {
    const d = new PhiAccrualDetector(settings, 0, { firstHeartbeatEstimate: 1000 });
    const last = feed(
      d,
      0,
      repeat(10, () => 1300),
    );
    const dead = d.deadAt();
    d.heard(last - 500);
    assert.equal(d.deadAt(), dead);
    assert.equal(d.lastHeard, last);

    d.reset(50_000);
    assert.equal(d.sampleCount, 2);
    assert.equal(d.mean, 1000);
    assert.equal(d.lastHeard, 50_000);
    near(d.deadAt(), 50_000 + elapsedForPhi(8, 1000, 250));
    assert.ok(d.suspicion(40_000) < 1e-3); // before the last arrival counts as no silence
  });

  it('configure(): same interval keeps the window, a new one reseeds, the timeout bounds deadAt', () => {
    const d = new PhiAccrualDetector(settings, 0);
    const last = feed(
      d,
      0,
      repeat(10, () => 1100),
    );
    const mean = d.mean;
    d.configure({ interval: 1000, timeout: 1500, suspectAfter: 1500 });
    assert.equal(d.mean, mean);
    assert.equal(d.deadAt(), last + 1500);

    d.configure({ interval: 4000, timeout: 40_000, suspectAfter: 6000 });
    assert.equal(d.sampleCount, 2);
    assert.equal(d.mean, 4000);
    assert.equal(d.stdDeviation, 1000);
    near(d.deadAt(), last + elapsedForPhi(8, 4000, 1000));
    d.reset(last);
    assert.equal(d.mean, 4000); // the reseed estimate follows the configured interval

    assert.throws(
      () => d.configure({ interval: 0, timeout: 1, suspectAfter: 1 }),
      invalid('interval'),
    );
    assert.equal(d.mean, 4000);
  });

  it('validates options up front, naming the option', () => {
    const cases: Array<[PhiAccrualOptions, string]> = [
      [{ threshold: 0 }, 'threshold'],
      [{ threshold: Number.NaN }, 'threshold'],
      [{ threshold: 4, suspectThreshold: 5 }, 'suspectThreshold'],
      [{ suspectThreshold: 0 }, 'suspectThreshold'],
      [{ maxSampleSize: 1 }, 'maxSampleSize'],
      [{ maxSampleSize: 2.5 }, 'maxSampleSize'],
      [{ minStdDeviation: 0 }, 'minStdDeviation'],
      [{ acceptableHeartbeatPause: -1 }, 'acceptableHeartbeatPause'],
      [{ firstHeartbeatEstimate: 0 }, 'firstHeartbeatEstimate'],
    ];
    for (const [options, name] of cases) {
      assert.throws(() => new PhiAccrualDetector(settings, 0, options), invalid(name));
      assert.throws(() => phiDetector(options), invalid(name)); // at configuration, not first link
    }
    assert.throws(() => new PhiAccrualDetector({ ...settings, timeout: 0 }, 0), invalid('timeout'));
  });

  it('phiDetector() copies its options and seeds each link from that link’s interval', () => {
    const options: PhiAccrualOptions = { threshold: 10 };
    const factory = phiDetector(options);
    options.threshold = 1;
    const a = factory(settings, 0);
    const b = factory({ interval: 2000, timeout: 20_000, suspectAfter: 3000 }, 0);
    assert.ok(a instanceof PhiAccrualDetector && b instanceof PhiAccrualDetector);
    assert.equal(a.threshold, 10);
    assert.equal(a.suspectThreshold, 5);
    assert.equal(a.mean, 1000);
    assert.equal(b.mean, 2000);
    assert.deepEqual(options, { threshold: 1 });
  });
});
