import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { FakeClock } from '../../src/time/fake-clock.js';

describe('FakeClock', () => {
  it('starts at the given times and moves wallNow with now', () => {
    const clock = new FakeClock();
    assert.equal(clock.now(), 0);
    assert.equal(clock.wallNow(), 1_700_000_000_000);

    const custom = new FakeClock(500, 1_000);
    assert.equal(custom.now(), 500);
    assert.equal(custom.wallNow(), 1_000);
    custom.advance(250);
    assert.equal(custom.now(), 750);
    assert.equal(custom.wallNow(), 1_250);
  });

  it('fires in deadline order, ties in scheduling order, with now() at each deadline', () => {
    const clock = new FakeClock();
    const log: string[] = [];
    const at = (name: string) => () => log.push(`${name}@${clock.now()}`);
    clock.setTimeout(at('c'), 30);
    clock.setTimeout(at('a1'), 10);
    clock.setTimeout(at('b'), 20);
    clock.setTimeout(at('a2'), 10);
    clock.setTimeout(at('a3'), 10);
    clock.advance(100);
    assert.deepEqual(log, ['a1@10', 'a2@10', 'a3@10', 'b@20', 'c@30']);
    assert.equal(clock.now(), 100);
  });

  it('runs timers scheduled by callbacks inside the window, and only those', () => {
    const clock = new FakeClock();
    const log: number[] = [];
    clock.setTimeout(() => {
      log.push(clock.now());
      clock.setTimeout(() => log.push(clock.now()), 15); // 25: inside
      clock.setTimeout(() => log.push(clock.now()), 0); // 10: same instant, runs next
      clock.setTimeout(() => log.push(clock.now()), 40); // 50: outside
    }, 10);
    clock.advance(30);
    assert.deepEqual(log, [10, 10, 25]);
    assert.equal(clock.now(), 30);
    assert.equal(clock.pending, 1);
    clock.advance(20);
    assert.deepEqual(log, [10, 10, 25, 50]);
    assert.equal(clock.pending, 0);
  });

  it('does not fire a timer before its deadline', () => {
    const clock = new FakeClock();
    let fired = false;
    clock.setTimeout(() => {
      fired = true;
    }, 10);
    clock.advance(9.5);
    assert.equal(fired, false);
    clock.advance(0.5);
    assert.equal(fired, true);
  });

  it('clearTimeout cancels and ignores fired, cancelled and foreign handles', () => {
    const clock = new FakeClock();
    const log: string[] = [];
    const a = clock.setTimeout(() => log.push('a'), 10);
    const b = clock.setTimeout(() => log.push('b'), 20);
    const c = clock.setTimeout(() => log.push('c'), 30);
    assert.equal(clock.pending, 3);
    clock.clearTimeout(b);
    clock.clearTimeout(b);
    clock.clearTimeout({});
    assert.equal(clock.pending, 2);
    clock.advance(15);
    clock.clearTimeout(a); // already fired
    assert.equal(clock.pending, 1);
    clock.advance(100);
    clock.clearTimeout(c);
    assert.deepEqual(log, ['a', 'c']);
    assert.equal(clock.pending, 0);
  });

  it('a callback can cancel a timer due at the same instant', () => {
    const clock = new FakeClock();
    const log: string[] = [];
    clock.setTimeout(() => {
      log.push('first');
      clock.clearTimeout(second);
    }, 10);
    const second = clock.setTimeout(() => log.push('second'), 10);
    clock.advance(10);
    assert.deepEqual(log, ['first']);
  });

  it('keeps heap order under many random schedules and cancels', () => {
    const clock = new FakeClock();
    let seed = 12345;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const fired: Array<[number, number]> = [];
    const live = new Map<number, { deadline: number; handle: object }>();
    for (let i = 0; i < 2000; i++) {
      const deadline = Math.floor(random() * 500);
      const id = i;
      const handle = clock.setTimeout(() => fired.push([clock.now(), id]), deadline);
      live.set(id, { deadline, handle });
      if (random() < 0.3) {
        const victim = Math.floor(random() * i);
        const entry = live.get(victim);
        if (entry) {
          clock.clearTimeout(entry.handle);
          live.delete(victim);
        }
      }
    }
    assert.equal(clock.pending, live.size);
    clock.advance(1000);
    const expected = [...live.entries()]
      .sort(([ia, a], [ib, b]) => a.deadline - b.deadline || ia - ib)
      .map(([id, e]) => [e.deadline, id]);
    assert.deepEqual(fired, expected);
  });

  it('runNext fires the earliest timer and moves time to it', () => {
    const clock = new FakeClock(100);
    assert.equal(clock.runNext(), false);
    const log: string[] = [];
    clock.setTimeout(() => log.push('late'), 50);
    clock.setTimeout(() => log.push('early'), 5);
    assert.equal(clock.runNext(), true);
    assert.deepEqual(log, ['early']);
    assert.equal(clock.now(), 105);
    assert.equal(clock.runNext(), true);
    assert.equal(clock.now(), 150);
    assert.equal(clock.runNext(), false);
    assert.equal(clock.now(), 150);
  });

  it('treats negative and NaN delays as 0 and keeps fractional delays', () => {
    const clock = new FakeClock();
    const log: number[] = [];
    clock.setTimeout(() => log.push(clock.now()), -5);
    clock.setTimeout(() => log.push(clock.now()), Number.NaN);
    clock.setTimeout(() => log.push(clock.now()), 0.25);
    clock.advance(0);
    assert.deepEqual(log, [0, 0]);
    clock.advance(0.25);
    assert.deepEqual(log, [0, 0, 0.25]);
  });

  it('jump moves time without firing; overdue timers then fire late and time stays', () => {
    const clock = new FakeClock();
    const log: number[] = [];
    clock.setTimeout(() => log.push(clock.now()), 10);
    clock.setTimeout(() => log.push(clock.now()), 20);
    clock.jump(100);
    assert.deepEqual(log, []);
    assert.equal(clock.now(), 100);
    clock.advance(0);
    assert.deepEqual(log, [100, 100]);
    assert.equal(clock.now(), 100);
  });

  it('a nested advance from a callback never moves time backwards', () => {
    const clock = new FakeClock();
    clock.setTimeout(() => clock.advance(50), 10);
    clock.advance(20);
    assert.equal(clock.now(), 60);
  });

  it('propagates a throwing callback and leaves later timers pending', () => {
    const clock = new FakeClock();
    let later = false;
    clock.setTimeout(() => {
      throw new Error('boom');
    }, 10);
    clock.setTimeout(() => {
      later = true;
    }, 20);
    assert.throws(() => clock.advance(30), /boom/);
    assert.equal(clock.now(), 10);
    assert.equal(clock.pending, 1);
    clock.advance(20);
    assert.equal(later, true);
  });

  it('throws instead of hanging on a 0 ms timer loop', () => {
    const clock = new FakeClock();
    clock.loopLimit = 1000;
    let runs = 0;
    const loop = () => {
      runs++;
      clock.setTimeout(loop, 0);
    };
    clock.setTimeout(loop, 5);
    assert.throws(() => clock.advance(10), RangeError);
    assert.equal(runs, 1001);
    assert.equal(clock.now(), 5);
  });

  it('does not count timers that run at different instants towards loopLimit', () => {
    const clock = new FakeClock();
    clock.loopLimit = 10;
    let runs = 0;
    const tick = () => {
      runs++;
      clock.setTimeout(tick, 1);
    };
    clock.setTimeout(tick, 1);
    clock.advance(100);
    assert.equal(runs, 100);
  });

  it('refuses invalid durations with InvalidArgumentError', () => {
    const clock = new FakeClock();
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => clock.advance(bad), InvalidArgumentError);
      assert.throws(() => clock.jump(bad), InvalidArgumentError);
    }
    assert.equal(clock.now(), 0);
  });

  describe('advanceAsync', () => {
    it('lets promise continuations run between timers', async () => {
      const clock = new FakeClock();
      const log: number[] = [];
      const sleep = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));
      const task = (async () => {
        await sleep(10);
        log.push(clock.now());
        await sleep(10);
        log.push(clock.now());
        await sleep(10);
        log.push(clock.now());
      })();
      await clock.advanceAsync(25);
      assert.deepEqual(log, [10, 20]);
      assert.equal(clock.now(), 25);
      await clock.advanceAsync(5);
      await task;
      assert.deepEqual(log, [10, 20, 30]);
    });

    it('a synchronous advance does not see continuations (why advanceAsync exists)', async () => {
      const clock = new FakeClock();
      const log: number[] = [];
      const sleep = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));
      const task = (async () => {
        await sleep(10);
        await sleep(10);
        log.push(clock.now());
      })();
      clock.advance(30);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(log, []); // the second sleep was scheduled at 30, after the window
      clock.advance(10);
      await task;
      assert.deepEqual(log, [40]);
    });

    it('steps by stepMs and yields between steps', async () => {
      const clock = new FakeClock();
      const seen: number[] = [];
      const task = (async () => {
        for (let i = 0; i < 3; i++) {
          await new Promise<void>((resolve) => clock.setTimeout(resolve, 7));
          seen.push(clock.now());
        }
      })();
      // A step runs its timers synchronously and the continuation only gets its turn at
      // the end of the step: the timer due at 7 is observed at 10, the next one at 20...
      await clock.advanceAsync(40, 5);
      await task;
      assert.deepEqual(seen, [10, 20, 30]);
      assert.equal(clock.now(), 40);
    });

    it('ends exactly at start + ms even with a step that does not divide it', async () => {
      const clock = new FakeClock(0.1);
      await clock.advanceAsync(1, 0.3);
      assert.equal(clock.now(), 0.1 + 1);
    });

    it('refuses a non-positive step', async () => {
      const clock = new FakeClock();
      await assert.rejects(clock.advanceAsync(10, 0), InvalidArgumentError);
      await assert.rejects(clock.advanceAsync(-1), InvalidArgumentError);
    });
  });
});
