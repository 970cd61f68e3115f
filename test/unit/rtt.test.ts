import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { RTT_ESTIMATOR_DEFAULTS, RttEstimator } from '../../src/health/index.js';

describe('RttEstimator', () => {
  it('has no estimate before the first sample and uses the initial RTO (RFC 6298 §2.1)', () => {
    const rtt = new RttEstimator();
    assert.equal(rtt.srtt, undefined);
    assert.equal(rtt.rttvar, undefined);
    assert.equal(rtt.latest, undefined);
    assert.equal(rtt.min, undefined);
    assert.equal(rtt.samples, 0);
    assert.equal(rtt.rto, 1000);
  });

  it('follows the RFC 6298 §2.2/§2.3 worked values', () => {
    const rtt = new RttEstimator({ minRto: 0 });
    // First sample R: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4 RTTVAR).
    rtt.update(100);
    assert.equal(rtt.srtt, 100);
    assert.equal(rtt.rttvar, 50);
    assert.equal(rtt.rto, 300);
    // RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5 (with the old SRTT); SRTT = 7/8 * 100 + 1/8 * 200.
    rtt.update(200);
    assert.equal(rtt.rttvar, 62.5);
    assert.equal(rtt.srtt, 112.5);
    assert.equal(rtt.rto, 362.5);
    // RTTVAR = 3/4 * 62.5 + 1/4 * |112.5 - 100| = 50; SRTT = 7/8 * 112.5 + 1/8 * 100.
    rtt.update(100);
    assert.equal(rtt.rttvar, 50);
    assert.equal(rtt.srtt, 110.9375);
    assert.equal(rtt.rto, 310.9375);
    assert.equal(rtt.latest, 100);
    assert.equal(rtt.min, 100);
    assert.equal(rtt.samples, 3);
  });

  it('keeps the RTO at least G above SRTT when the variation vanishes', () => {
    const rtt = new RttEstimator({ minRto: 0, granularity: 1 });
    for (let i = 0; i < 100; i++) rtt.update(10);
    assert.equal(rtt.srtt, 10);
    assert.ok(rtt.rttvar !== undefined && 4 * rtt.rttvar < 1);
    assert.equal(rtt.rto, 11);

    const coarse = new RttEstimator({ minRto: 0, granularity: 5 });
    for (let i = 0; i < 100; i++) coarse.update(10);
    assert.equal(coarse.rto, 15);
  });

  it('clamps the RTO to [minRto, maxRto]', () => {
    const low = new RttEstimator();
    low.update(1); // raw RTO = 1 + max(1, 2) = 3
    assert.equal(low.rto, RTT_ESTIMATOR_DEFAULTS.minRto);

    const high = new RttEstimator();
    high.update(100_000);
    assert.equal(high.rto, RTT_ESTIMATOR_DEFAULTS.maxRto);

    const custom = new RttEstimator({ minRto: 50, maxRto: 400 });
    custom.update(10);
    assert.equal(custom.rto, 50);
    custom.update(1000);
    assert.equal(custom.rto, 400);

    assert.equal(new RttEstimator({ initialRto: 10 }).rto, 200);
    assert.equal(new RttEstimator({ initialRto: 90_000 }).rto, 60_000);
  });

  it('ignores negative, NaN and infinite samples', () => {
    const rtt = new RttEstimator();
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      rtt.update(bad);
    }
    assert.equal(rtt.samples, 0);
    assert.equal(rtt.srtt, undefined);
    rtt.update(40);
    rtt.update(-5);
    rtt.update(Number.NaN);
    assert.equal(rtt.samples, 1);
    assert.equal(rtt.srtt, 40);
    assert.equal(rtt.latest, 40);
  });

  it('accepts a zero sample (same-tick PONG) and tracks latest and min', () => {
    const rtt = new RttEstimator();
    rtt.update(30);
    rtt.update(0);
    rtt.update(20);
    assert.equal(rtt.latest, 20);
    assert.equal(rtt.min, 0);
    assert.equal(rtt.samples, 3);
  });

  it('validates options up front, naming the option, and never mutates them', () => {
    const cases: Array<[object, RegExp]> = [
      [{ granularity: -1 }, /granularity/],
      [{ minRto: Number.NaN }, /minRto/],
      [{ minRto: 500, maxRto: 100 }, /maxRto/],
      [{ initialRto: 0 }, /initialRto/],
    ];
    for (const [options, name] of cases) {
      assert.throws(
        () => new RttEstimator(options),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.code === 'HL_ERR_INVALID_ARGUMENT' &&
          name.test(err.message),
      );
    }
    const frozen = Object.freeze({ minRto: 10 });
    const rtt = new RttEstimator(frozen);
    rtt.update(1);
    assert.equal(rtt.rto, 10);
    assert.deepEqual(frozen, { minRto: 10 });
  });
});
