import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { type ClockTimer, systemClock } from '../../src/time/clock.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { TimingWheel, type WheelOptions, type WheelTimer } from '../../src/time/wheel.js';

/** Node clamps a longer setTimeout delay to 1 ms. */
const MAX_NODE_DELAY = 2 ** 31 - 1;

/** A FakeClock that also counts the clock timers the wheel asks for. */
class CountingClock extends FakeClock {
  scheduled = 0;
  maxDelay = 0;

  override setTimeout(fn: () => void, ms: number): ClockTimer {
    this.scheduled++;
    if (ms > this.maxDelay) this.maxDelay = ms;
    return super.setTimeout(fn, ms);
  }
}

/** Deterministic PRNG (mulberry32) so a failing randomized run can be replayed by seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function setup(options: WheelOptions = {}, start = 0) {
  const clock = new CountingClock(start);
  const wheel = new TimingWheel(clock, { onError: (err) => assert.fail(String(err)), ...options });
  return { clock, wheel };
}

describe('TimingWheel', () => {
  describe('options', () => {
    it('has documented defaults', () => {
      const wheel = new TimingWheel(new FakeClock());
      assert.equal(wheel.tickMs, 10);
      assert.equal(wheel.size, 0);
    });

    it('refuses invalid options with an error naming the option', () => {
      const clock = new FakeClock();
      for (const tickMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
        assert.throws(
          () => new TimingWheel(clock, { tickMs }),
          (err) => err instanceof InvalidArgumentError && /tickMs/.test(err.message),
        );
      }
      for (const slots of [0, 3, 100, 2.5, 2 ** 21, -2]) {
        assert.throws(
          () => new TimingWheel(clock, { slots }),
          (err) => err instanceof InvalidArgumentError && /slots/.test(err.message),
        );
      }
      assert.throws(
        () => new TimingWheel(clock, { onError: 'log' as unknown as () => void }),
        (err) => err instanceof InvalidArgumentError && /onError/.test(err.message),
      );
      const options = { tickMs: 5 };
      new TimingWheel(clock, options);
      assert.deepEqual(options, { tickMs: 5 }, 'the caller object is not touched');
    });

    it('refuses invalid delays and callbacks', () => {
      const { wheel } = setup();
      const timer = wheel.timer(() => {});
      for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 48]) {
        assert.throws(() => timer.arm(bad), InvalidArgumentError);
      }
      assert.equal(timer.armed, false);
      assert.equal(wheel.size, 0);
      assert.throws(() => wheel.timer(42 as unknown as () => void), InvalidArgumentError);
    });
  });

  describe('firing', () => {
    it('fires once, not before the deadline and at most one tick after it', () => {
      const { clock, wheel } = setup({ tickMs: 10 }, 3);
      const fired: number[] = [];
      const timer = wheel.timer(() => fired.push(clock.now()));
      timer.arm(25); // deadline 28, tick boundary 30
      assert.equal(timer.armed, true);
      assert.equal(timer.deadline, 28);
      clock.advance(24.999);
      assert.deepEqual(fired, []);
      clock.advance(100);
      assert.deepEqual(fired, [30]);
      assert.equal(timer.armed, false);
      assert.equal(timer.deadline, -1);
    });

    it('fires a deadline that sits on a tick boundary exactly on time', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      const fired: number[] = [];
      wheel.timer(() => fired.push(clock.now())).arm(40);
      clock.advance(39);
      assert.deepEqual(fired, []);
      clock.advance(1);
      assert.deepEqual(fired, [40]);
    });

    it('fires ticks in order and timers of one tick in arm order', () => {
      const { clock, wheel } = setup({ tickMs: 10, slots: 16 });
      const log: string[] = [];
      const make = (name: string) => wheel.timer(() => log.push(`${name}@${clock.now()}`));
      make('c').arm(35);
      make('a1').arm(12);
      make('b').arm(21);
      make('a2').arm(18); // same tick as a1 (boundary 20)
      make('far').arm(16 * 10 + 12); // same slot as a1, one rotation later
      make('zero').arm(0);
      clock.advance(500);
      assert.deepEqual(log, ['zero@0', 'a1@20', 'a2@20', 'b@30', 'c@40', 'far@180']);
    });

    it('is never early and at most one tick late for random delays and steps', () => {
      const random = prng(7);
      for (const tickMs of [1, 7, 10]) {
        const { clock, wheel } = setup({ tickMs, slots: 32 }, 1234.567);
        const checks: Array<() => void> = [];
        for (let i = 0; i < 500; i++) {
          const delay = random() < 0.1 ? 0 : random() * tickMs * 32 * 4;
          const expected = clock.now() + delay;
          let firedCount = 0;
          wheel
            .timer(() => {
              const now = clock.now();
              assert.ok(now >= expected, `fired ${expected - now} ms early`);
              assert.ok(now <= expected + tickMs + 1e-9, `fired ${now - expected} ms late`);
              firedCount++;
            })
            .arm(delay);
          checks.push(() => assert.equal(firedCount, 1));
          clock.advance(random() * tickMs * 2);
        }
        clock.advance(tickMs * 32 * 5);
        for (const check of checks) check();
        assert.equal(wheel.size, 0);
        assert.equal(clock.pending, 0);
      }
    });
  });

  describe('arm and cancel', () => {
    it('re-arming moves the deadline later or earlier and fires once', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      const fired: number[] = [];
      const timer = wheel.timer(() => fired.push(clock.now()));
      timer.arm(50);
      timer.arm(200);
      assert.equal(wheel.size, 1);
      assert.equal(timer.deadline, 200);
      clock.advance(100);
      assert.deepEqual(fired, []);
      timer.arm(20); // now 100: deadline 120, earlier than the 200 it had
      clock.advance(200);
      assert.deepEqual(fired, [120]);
    });

    it('cancel stops a timer and is a no-op when unarmed', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      let fired = 0;
      const timer = wheel.timer(() => fired++);
      timer.cancel();
      timer.arm(30);
      timer.cancel();
      timer.cancel();
      assert.equal(timer.armed, false);
      assert.equal(timer.deadline, -1);
      assert.equal(wheel.size, 0);
      clock.advance(100);
      assert.equal(fired, 0);
      timer.arm(10); // reusable after cancel
      clock.advance(10);
      assert.equal(fired, 1);
    });

    it('timerFor(): each timer calls its own shared handler with its owner, no closure each', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      const fired: string[] = [];
      class Owner {
        readonly a = wheel.timerFor(this, Owner.aDue);
        readonly b = wheel.timerFor(this, Owner.bDue);
        constructor(readonly name: string) {}
        static aDue(owner: Owner): void {
          fired.push(`${owner.name}:a@${clock.now()}`);
        }
        static bDue(owner: Owner): void {
          fired.push(`${owner.name}:b@${clock.now()}`);
          if (owner.name === 'x') owner.a.arm(50);
        }
      }
      const x = new Owner('x');
      const y = new Owner('y');
      x.b.arm(100);
      y.a.arm(30);
      y.b.arm(200);
      y.b.cancel();
      clock.advance(1000);
      assert.deepEqual(fired, ['y:a@30', 'x:b@100', 'x:a@150']);
      assert.equal(wheel.size, 0);
      assert.throws(
        () => wheel.timerFor({}, 0 as unknown as (owner: object) => void),
        InvalidArgumentError,
      );
    });

    it("armNextTurn(): fires on the clock's next turn, not a tick later, all on one clock timer", () => {
      const { clock, wheel } = setup({ tickMs: 10 }, 3);
      const fired: string[] = [];
      class Owner {
        readonly look = wheel.timerFor(this, Owner.lookDue);
        constructor(readonly name: string) {}
        static lookDue(owner: Owner): void {
          fired.push(`${owner.name}@${clock.now()}`);
        }
      }
      const [a, b, c] = [new Owner('a'), new Owner('b'), new Owner('c')];
      const before = clock.scheduled;
      a.look.armNextTurn();
      b.look.armNextTurn();
      c.look.armNextTurn();
      assert.equal(clock.scheduled - before, 1, 'one shared clock timer');
      assert.equal(wheel.size, 3);
      assert.ok(a.look.armed);
      assert.equal(a.look.deadline, 3);
      b.look.cancel();
      clock.advance(0);
      assert.deepEqual(fired, ['a@3', 'c@3'], 'at once, in arming order, b cancelled');
      assert.equal(wheel.size, 0);
      assert.equal(clock.pending, 0);
      // Cancelling the last one releases the clock timer; arm() moves one onto a tick.
      a.look.armNextTurn();
      a.look.cancel();
      assert.equal(clock.pending, 0, 'released after the last cancel');
      a.look.armNextTurn();
      a.look.arm(20);
      assert.equal(wheel.size, 1);
      clock.advance(0);
      assert.deepEqual(fired, ['a@3', 'c@3'], 'no longer armed for the next turn');
      clock.advance(30);
      assert.deepEqual(fired, ['a@3', 'c@3', 'a@30']);
      assert.equal(clock.pending, 0);
    });

    it('armNextTurn() from a handler waits for the next turn, also while the wheel catches up', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      const log: string[] = [];
      const again = wheel.timer(() => log.push(`again@${clock.now()}`));
      const soon = wheel.timer(() => {
        log.push(`soon@${clock.now()}`);
        again.armNextTurn();
      });
      wheel
        .timer(() => {
          log.push(`first@${clock.now()}`);
          soon.armNextTurn();
        })
        .arm(10);
      wheel.timer(() => log.push(`second@${clock.now()}`)).arm(40);
      // A stall: both ticks are processed in one wake, and the next-turn timer after it.
      clock.jump(100);
      clock.runNext();
      assert.deepEqual(log, ['first@100', 'second@100']);
      clock.runNext();
      assert.deepEqual(log, ['first@100', 'second@100', 'soon@100']);
      clock.advance(0);
      assert.deepEqual(log, ['first@100', 'second@100', 'soon@100', 'again@100']);
      assert.equal(wheel.size, 0);
      assert.equal(clock.pending, 0);
      // clear() drops next-turn timers too.
      again.armNextTurn();
      wheel.clear();
      assert.equal(again.armed, false);
      assert.equal(clock.pending, 0);
    });

    it('a callback can re-arm its own timer (periodic timer)', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      const fired: number[] = [];
      const timer = wheel.timer(() => {
        fired.push(clock.now());
        if (fired.length < 5) timer.arm(100);
      });
      timer.arm(100);
      clock.advance(10_000);
      assert.deepEqual(fired, [100, 200, 300, 400, 500]);
      assert.equal(wheel.size, 0);
    });

    it('a 0 ms self re-arm fires on the next tick, not in the same pass', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      const fired: number[] = [];
      const timer = wheel.timer(() => {
        fired.push(clock.now());
        timer.arm(0);
      });
      timer.arm(10);
      clock.advance(35);
      assert.deepEqual(fired, [10, 20, 30]);
      assert.equal(timer.armed, true);
      timer.cancel();
      assert.equal(clock.pending, 0);
    });

    it('a callback can cancel or re-arm a sibling due in the same tick', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      const log: string[] = [];
      const b = wheel.timer(() => log.push(`b@${clock.now()}`));
      const c = wheel.timer(() => log.push(`c@${clock.now()}`));
      const a = wheel.timer(() => {
        log.push(`a@${clock.now()}`);
        b.cancel();
        c.arm(50);
      });
      a.arm(15);
      b.arm(16);
      c.arm(17);
      assert.equal(wheel.size, 3);
      clock.advance(20);
      assert.deepEqual(log, ['a@20']);
      assert.equal(b.armed, false);
      assert.equal(c.deadline, 70);
      assert.equal(wheel.size, 1);
      clock.advance(100);
      assert.deepEqual(log, ['a@20', 'c@70']);
    });

    it('a callback can cancel a timer due later in the same catch-up', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      const log: string[] = [];
      const later = wheel.timer(() => log.push('later'));
      const first = wheel.timer(() => {
        log.push('first');
        later.cancel();
      });
      first.arm(10);
      later.arm(50);
      clock.jump(100);
      clock.advance(0);
      assert.deepEqual(log, ['first']);
      assert.equal(wheel.size, 0);
      assert.equal(clock.pending, 0);
    });

    it('keeps size in step with arm, re-arm, cancel, fire and clear', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      const timers = Array.from({ length: 10 }, () => wheel.timer(() => {}));
      timers.forEach((t, i) => {
        t.arm(10 * (i + 1));
      });
      assert.equal(wheel.size, 10);
      timers[0]!.arm(500);
      assert.equal(wheel.size, 10);
      timers[1]!.cancel();
      timers[1]!.cancel();
      assert.equal(wheel.size, 9);
      clock.advance(50); // fires timers 2, 3, 4 (30, 40, 50)
      assert.equal(wheel.size, 6);
      wheel.clear();
      assert.equal(wheel.size, 0);
      assert.ok(
        timers.every((t) => !t.armed && t.deadline === -1),
        'all disarmed',
      );
    });
  });

  describe('the clock timer', () => {
    it('holds exactly one clock timer while armed and none when empty', () => {
      const { clock, wheel } = setup({ tickMs: 10, slots: 64 });
      assert.equal(clock.pending, 0);
      const random = prng(3);
      const timers = Array.from({ length: 1000 }, () => wheel.timer(() => {}));
      for (const t of timers) t.arm(random() * 5000);
      assert.equal(clock.pending, 1);
      for (let elapsed = 0; elapsed < 3000; elapsed += 100) {
        clock.advance(100);
        assert.equal(clock.pending, wheel.size > 0 ? 1 : 0);
      }
      for (const t of timers) t.cancel();
      assert.equal(wheel.size, 0);
      assert.equal(clock.pending, 0, 'released after the last cancel');

      timers[0]!.arm(10);
      clock.advance(10);
      assert.equal(clock.pending, 0, 'released after the last fire');

      timers[0]!.arm(10);
      timers[1]!.arm(20);
      wheel.clear();
      assert.equal(clock.pending, 0, 'released by clear()');
      let fired = 0;
      const again = wheel.timer(() => fired++);
      again.arm(10);
      assert.equal(clock.pending, 1);
      clock.advance(10);
      assert.equal(fired, 1, 'usable after clear()');
    });

    it('does not move the clock timer for a later arm', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      const early = wheel.timer(() => {});
      early.arm(100);
      const before = clock.scheduled;
      for (let i = 0; i < 100; i++) wheel.timer(() => {}).arm(200 + i);
      early.arm(150); // re-arm later
      assert.equal(clock.scheduled, before);
      wheel.timer(() => {}).arm(50); // earlier: must move
      assert.equal(clock.scheduled, before + 1);
      assert.equal(clock.pending, 1);
    });

    it('sleeps straight to a lone far timer instead of waking every rotation', () => {
      const { clock, wheel } = setup({ tickMs: 10, slots: 8 }); // 80 ms per rotation
      const fired: number[] = [];
      wheel.timer(() => fired.push(clock.now())).arm(10_000);
      clock.advance(20_000);
      assert.deepEqual(fired, [10_000]);
      assert.equal(clock.scheduled, 1);
    });

    it('never asks the clock for more than 2^31 - 1 ms (Node would clamp it to 1 ms)', () => {
      const { clock, wheel } = setup();
      const fired: number[] = [];
      const day = 86_400_000;
      wheel.timer(() => fired.push(clock.now())).arm(40 * day);
      clock.advance(39 * day);
      assert.deepEqual(fired, []);
      clock.advance(2 * day);
      assert.deepEqual(fired, [40 * day]);
      // (Messages on every assert.ok: Node's generated message can spin on `**` under tsx.)
      assert.ok(clock.maxDelay <= MAX_NODE_DELAY, `asked for ${clock.maxDelay} ms`);
      assert.ok(clock.scheduled <= 3, `${clock.scheduled} clock timers`);
    });
  });

  describe('far deadlines and catch-up', () => {
    it('keeps far timers (many rotations) in slots shared with near ones', () => {
      const { clock, wheel } = setup({ tickMs: 10, slots: 8 });
      const log: string[] = [];
      // Every one of these lands in slot 1 (ticks 1, 9, 81, 801).
      wheel.timer(() => log.push(`near@${clock.now()}`)).arm(10);
      wheel.timer(() => log.push(`next@${clock.now()}`)).arm(90);
      wheel.timer(() => log.push(`far@${clock.now()}`)).arm(805);
      wheel.timer(() => log.push(`farther@${clock.now()}`)).arm(8001);
      clock.advance(809);
      assert.deepEqual(log, ['near@10', 'next@90'], 'not early on earlier rotations');
      clock.advance(8009 - 809);
      assert.deepEqual(log, ['near@10', 'next@90', 'far@810']);
      clock.advance(1);
      assert.deepEqual(log, ['near@10', 'next@90', 'far@810', 'farther@8010']);
    });

    it('catches up over every missed slot after a stall of many rotations, in order', () => {
      const { clock, wheel } = setup({ tickMs: 10, slots: 8 }, 0.5);
      const random = prng(11);
      const fired: Array<{ id: number; at: number }> = [];
      const armed: Array<{ id: number; timer: WheelTimer }> = [];
      for (let id = 0; id < 500; id++) {
        const timer = wheel.timer(() => fired.push({ id, at: clock.now() }));
        timer.arm(random() * 5000); // up to ~62 rotations
        armed.push({ id, timer });
      }
      const deadlines = new Map(armed.map(({ id, timer }) => [id, timer.deadline]));
      const stay = wheel.timer(() => {});
      stay.arm(9000);
      clock.jump(6000); // the event loop was blocked for 75 rotations
      assert.equal(fired.length, 0);
      clock.advance(0);
      assert.equal(fired.length, 500);
      const ticks = fired.map(({ id }) => Math.ceil(deadlines.get(id)! / 10));
      for (let i = 1; i < ticks.length; i++) {
        assert.ok(ticks[i - 1]! <= ticks[i]!, `tick order broken at ${i}`);
        if (ticks[i - 1] === ticks[i]) assert.ok(fired[i - 1]!.id < fired[i]!.id, 'arm order');
      }
      for (const f of fired) assert.ok(f.at >= deadlines.get(f.id)!, `timer ${f.id} early`);
      assert.equal(wheel.size, 1);
      assert.equal(clock.pending, 1);
      clock.advance(3009); // stay: deadline 9000.5, tick boundary 9010
      assert.equal(stay.armed, true);
      clock.advance(1);
      assert.equal(stay.armed, false);
      assert.equal(clock.pending, 0);
    });

    it('skips huge empty stretches in one scan, not tick by tick', { timeout: 5000 }, () => {
      // 10^12 ticks: visiting each one would take hours.
      const { clock, wheel } = setup({ tickMs: 1, slots: 16 });
      const fired: number[] = [];
      wheel.timer(() => fired.push(1)).arm(1e12);
      wheel.timer(() => fired.push(2)).arm(1e12 + 5);
      wheel.timer(() => fired.push(3)).arm(3e12);
      clock.jump(2e12);
      clock.advance(0);
      assert.deepEqual(fired, [1, 2]);
      clock.jump(2e12);
      clock.advance(0);
      assert.deepEqual(fired, [1, 2, 3]);
      assert.equal(clock.pending, 0);
    });

    it('clear() inside a callback stops the rest of the pass; the wheel stays usable', () => {
      const { clock, wheel } = setup({ tickMs: 10 });
      const log: string[] = [];
      wheel
        .timer(() => {
          log.push('a');
          wheel.clear();
          wheel.timer(() => log.push('new')).arm(5);
        })
        .arm(10);
      wheel.timer(() => log.push('b')).arm(10);
      wheel.timer(() => log.push('c')).arm(30);
      clock.advance(100);
      assert.deepEqual(log, ['a', 'new']);
      assert.equal(wheel.size, 0);
      assert.equal(clock.pending, 0);
    });
  });

  describe('errors', () => {
    it('a throwing callback does not stop the others; onError gets the error', () => {
      const errors: unknown[] = [];
      const clock = new FakeClock();
      const wheel = new TimingWheel(clock, { tickMs: 10, onError: (err) => errors.push(err) });
      const log: string[] = [];
      wheel
        .timer(() => {
          throw new Error('first');
        })
        .arm(10);
      wheel.timer(() => log.push('second')).arm(10);
      wheel
        .timer(() => {
          throw new Error('third');
        })
        .arm(20);
      wheel.timer(() => log.push('fourth')).arm(20);
      clock.advance(50);
      assert.deepEqual(log, ['second', 'fourth']);
      assert.deepEqual(
        errors.map((e) => (e as Error).message),
        ['first', 'third'],
      );
      assert.equal(wheel.size, 0);
      assert.equal(clock.pending, 0);
    });

    it('by default rethrows on process.nextTick; a throwing onError is rethrown too', () => {
      const deferred: Array<() => void> = [];
      const original = process.nextTick;
      process.nextTick = ((fn: () => void) => {
        deferred.push(fn);
      }) as typeof process.nextTick;
      let fired = 0;
      try {
        const clock = new FakeClock();
        const plain = new TimingWheel(clock);
        plain
          .timer(() => {
            throw new Error('boom');
          })
          .arm(0);
        plain.timer(() => fired++).arm(0);
        const broken = new TimingWheel(clock, {
          onError: () => {
            throw new Error('handler broke');
          },
        });
        broken
          .timer(() => {
            throw new Error('ignored');
          })
          .arm(0);
        broken.timer(() => fired++).arm(0);
        clock.advance(100);
      } finally {
        process.nextTick = original;
      }
      assert.equal(fired, 2);
      assert.equal(deferred.length, 2);
      assert.throws(deferred[0]!, /boom/);
      assert.throws(deferred[1]!, /handler broke/);
    });
  });

  describe('against a reference model', () => {
    for (const config of [
      { seed: 1, tickMs: 10, slots: 8 },
      { seed: 2, tickMs: 3, slots: 64 },
      { seed: 3, tickMs: 1, slots: 1 },
    ]) {
      it(`matches the model over 10k random operations (${JSON.stringify(config)})`, () => {
        runModel(config.seed, config.tickMs, config.slots);
      });
    }
  });

  it('fires on the real system clock, not early', async () => {
    const wheel = new TimingWheel(systemClock, { tickMs: 5 });
    // The wheel's clock timer is unref'd; keep the loop alive while the test waits.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      let deadline = 0;
      const firedAt = await new Promise<number>((resolve) => {
        const timer = wheel.timer(() => resolve(performance.now()));
        timer.arm(30);
        deadline = timer.deadline;
      });
      assert.ok(firedAt >= deadline, `fired ${deadline - firedAt} ms early`);
      assert.ok(firedAt - deadline < 2000, `fired ${firedAt - deadline} ms late`);
      assert.equal(wheel.size, 0);
    } finally {
      clearInterval(keepAlive);
      wheel.clear();
    }
  });
});

/**
 * Drives a wheel with random arms, cancels, advances and stalls (including arms and
 * cancels from inside callbacks) and checks it against a map of expected deadlines.
 */
function runModel(seed: number, tickMs: number, slots: number): void {
  const random = prng(seed);
  const pick = (n: number) => Math.floor(random() * n);
  const rotation = tickMs * slots;
  const clock = new FakeClock(random() * 1000);
  // Assertions inside callbacks throw into the wheel, which hands them to onError: keep
  // them and fail after the operation, so the run stops at the first broken invariant.
  const errors: unknown[] = [];
  const wheel = new TimingWheel(clock, { tickMs, slots, onError: (err) => errors.push(err) });
  const count = 64;
  const model: Array<number | null> = new Array(count).fill(null);
  let firedTotal = 0;
  let stalled = false;
  let lastFire = { at: Number.NEGATIVE_INFINITY, deadline: Number.NEGATIVE_INFINITY };
  const context = { op: 0 };

  const randomDelay = (): number => {
    const r = random();
    if (r < 0.05) return 0;
    if (r < 0.1) return pick(10) * tickMs; // exactly on tick boundaries (relative)
    if (r < 0.5) return random() * tickMs * 3;
    if (r < 0.85) return random() * rotation * 3;
    return random() * rotation * 50;
  };

  const arm = (i: number): void => {
    const delay = randomDelay();
    timers[i]!.arm(delay);
    model[i] = clock.now() + delay;
  };

  const timers: WheelTimer[] = Array.from({ length: count }, (_, i) =>
    wheel.timer(() => {
      const now = clock.now();
      const expected: number | null = model[i] ?? null;
      const where = `seed ${seed} op ${context.op} timer ${i}`;
      assert.notEqual(expected, null, `${where}: fired while not armed`);
      const deadline = expected!;
      assert.ok(now >= deadline, `${where}: ${deadline - now} ms early`);
      if (!stalled) {
        assert.ok(now <= deadline + tickMs + 1e-9, `${where}: ${now - deadline} ms late`);
      }
      // Ticks fire in order: an earlier-fired timer's deadline is at most one tick later.
      if (lastFire.at === now) {
        assert.ok(lastFire.deadline <= deadline + tickMs + 1e-9, `${where}: out of order`);
      }
      lastFire = { at: now, deadline };
      assert.equal(timers[i]!.armed, false);
      assert.equal(timers[i]!.deadline, -1);
      model[i] = null;
      firedTotal++;
      const r = random();
      if (r < 0.15) arm(i);
      else if (r < 0.25) {
        const j = pick(count);
        timers[j]!.cancel();
        model[j] = null;
      } else if (r < 0.35) arm(pick(count));
    }),
  );

  const check = (): void => {
    if (errors.length > 0) throw errors[0];
    const where = `seed ${seed} op ${context.op}`;
    let armedCount = 0;
    for (let i = 0; i < count; i++) {
      const expected: number | null = model[i] ?? null;
      assert.equal(timers[i]!.armed, expected !== null, `${where}: timer ${i} armed`);
      if (expected === null) continue;
      armedCount++;
      assert.equal(timers[i]!.deadline, expected, `${where}: timer ${i} deadline`);
      assert.ok(clock.now() < expected + tickMs, `${where}: timer ${i} overdue`);
    }
    assert.equal(wheel.size, armedCount, `${where}: size`);
    assert.equal(clock.pending, armedCount > 0 ? 1 : 0, `${where}: clock timers`);
  };

  for (context.op = 0; context.op < 10_000; context.op++) {
    const r = random();
    if (r < 0.4) {
      arm(pick(count));
    } else if (r < 0.6) {
      const i = pick(count);
      timers[i]!.cancel();
      model[i] = null;
    } else if (r < 0.95) {
      const s = random();
      clock.advance(
        s < 0.7 ? random() * tickMs * 2 : s < 0.95 ? random() * rotation : rotation * 5,
      );
    } else {
      clock.jump(random() * rotation * 10);
      stalled = true;
      clock.advance(0);
      stalled = false;
    }
    check();
  }
  assert.ok(firedTotal > 1000, `only ${firedTotal} timers fired`);
  wheel.clear();
  assert.equal(clock.pending, 0);
}
