import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  checkDetectorSettings,
  type DetectorFactory,
  type FailureDetector,
  FixedTimeoutDetector,
  fixedDetector,
} from '../../src/health/index.js';

const settings = Object.freeze({ interval: 1000, timeout: 3000, suspectAfter: 1500 });

function invalid(name: string) {
  return (err: unknown) =>
    err instanceof InvalidArgumentError &&
    err.code === 'HL_ERR_INVALID_ARGUMENT' &&
    err.message.startsWith(name);
}

describe('FixedTimeoutDetector', () => {
  it('counts the start as a sign of life', () => {
    const d = new FixedTimeoutDetector(settings, 1000);
    assert.equal(d.lastHeard, 1000);
    assert.equal(d.suspectAt(), 2500);
    assert.equal(d.deadAt(), 4000);
  });

  it('moves suspectAt and deadAt with heard(), never backwards', () => {
    const d = new FixedTimeoutDetector(settings, 1000);
    d.heard(2000);
    assert.equal(d.suspectAt(), 3500);
    assert.equal(d.deadAt(), 5000);
    d.heard(1500); // reported late: must not shorten the budget
    assert.equal(d.suspectAt(), 3500);
    assert.equal(d.deadAt(), 5000);
    d.heard(2000.25);
    assert.equal(d.deadAt(), 5000.25);
  });

  it('ignores inter-arrival samples', () => {
    const d = new FixedTimeoutDetector(settings, 0);
    for (const gap of [1, 10_000, -5, Number.NaN]) d.sample(gap);
    assert.equal(d.suspectAt(), 1500);
    assert.equal(d.deadAt(), 3000);
  });

  it('reports suspicion as silence over timeout', () => {
    const d = new FixedTimeoutDetector(settings, 1000);
    assert.equal(d.suspicion(1000), 0);
    assert.equal(d.suspicion(500), 0); // before the last arrival: no silence yet
    assert.equal(d.suspicion(2500), 0.5);
    assert.equal(d.suspicion(4000), 1);
    assert.equal(d.suspicion(5500), 1.5);
  });

  it('reset() starts over at the given time', () => {
    const d = new FixedTimeoutDetector(settings, 1000);
    d.heard(9000);
    d.reset(20_000);
    assert.equal(d.suspectAt(), 21_500);
    assert.equal(d.deadAt(), 23_000);
    d.reset(100); // a new link on a clock that the caller chose to restart
    assert.equal(d.deadAt(), 3100);
  });

  it('configure() applies new budgets from the same last arrival', () => {
    const d = new FixedTimeoutDetector(settings, 1000);
    d.heard(2000);
    d.configure({ interval: 5000, timeout: 15_000, suspectAfter: 7500 });
    assert.equal(d.suspectAt(), 9500);
    assert.equal(d.deadAt(), 17_000);
    assert.equal(d.suspicion(9500), 0.5);
  });

  it('refuses invalid settings, naming the field, and keeps the old ones', () => {
    const bad: Array<[object, string]> = [
      [{ ...settings, interval: 0 }, 'interval'],
      [{ ...settings, timeout: -1 }, 'timeout'],
      [{ ...settings, timeout: Number.POSITIVE_INFINITY }, 'timeout'],
      [{ ...settings, suspectAfter: 0 }, 'suspectAfter'],
      [{ ...settings, suspectAfter: 3001 }, 'suspectAfter'],
      [{ ...settings, suspectAfter: Number.NaN }, 'suspectAfter'],
    ];
    for (const [s, name] of bad) {
      assert.throws(() => new FixedTimeoutDetector(s as typeof settings, 0), invalid(name));
      assert.throws(() => checkDetectorSettings(s as typeof settings), invalid(name));
    }
    assert.throws(() => new FixedTimeoutDetector(settings, Number.NaN), invalid('now'));

    const d = new FixedTimeoutDetector(settings, 0);
    assert.throws(() => d.configure({ interval: 1000, timeout: 100, suspectAfter: 200 }));
    assert.equal(d.deadAt(), 3000);
  });

  it('allows suspectAfter equal to timeout', () => {
    const d = new FixedTimeoutDetector({ interval: 1000, timeout: 3000, suspectAfter: 3000 }, 0);
    assert.equal(d.suspectAt(), d.deadAt());
  });

  it('checkDetectorSettings() returns a frozen copy', () => {
    const input = { interval: 1, timeout: 2, suspectAfter: 2 };
    const out = checkDetectorSettings(input);
    assert.notEqual(out, input);
    assert.ok(Object.isFrozen(out));
    assert.deepEqual(out, input);
  });

  it('checkDetectorSettings() keeps an object that is frozen already (it cannot change)', () => {
    const input = Object.freeze({ interval: 1, timeout: 2, suspectAfter: 2 });
    assert.equal(checkDetectorSettings(input), input);
    // Still validated first.
    assert.throws(
      () => checkDetectorSettings(Object.freeze({ interval: 1, timeout: 2, suspectAfter: 3 })),
      invalid('suspectAfter'),
    );
  });

  it('fixedDetector() builds a fresh detector per link', () => {
    const factory: DetectorFactory = fixedDetector();
    const a: FailureDetector = factory(settings, 0);
    const b = factory(settings, 500);
    assert.ok(a instanceof FixedTimeoutDetector);
    assert.notEqual(a, b);
    a.heard(1000);
    assert.equal(a.deadAt(), 4000);
    assert.equal(b.deadAt(), 3500);
  });
});
