/**
 * The heartbeat on a fake clock, driven through a stub host: when it pings, when it
 * suspects, probes and declares death, and that it never leaks a timer. No sockets and
 * no sleeps: every deadline is checked to the tick.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type DetectorFactory,
  type FailureDetector,
  fixedDetector,
  phiDetector,
} from '../../src/health/index.js';
import {
  Heartbeat,
  type HeartbeatHost,
  type HeartbeatRole,
  RTT_REFRESH_INTERVALS,
  SERVER_PING_LAG,
} from '../../src/heartbeat.js';
import { type HeartbeatSettings, heartbeatSettings } from '../../src/options.js';
import { setPingSeq } from '../../src/testing.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { type TimerHandler, TimingWheel } from '../../src/time/wheel.js';
import { mulberry32 } from '../support/prng.js';

const TICK = 10;
const INTERVAL = 1000;
const TIMEOUT = 3000;
/** 1.5 x interval, as heartbeatSettings derives it. */
const SUSPECT_AFTER = 1500;

interface PingRecord {
  seq: number;
  timestampMicros: number;
  /** Fake time of the call. */
  at: number;
  /** How long nothing had been sent when the PING went out. */
  idleFor: number;
}

interface LivenessRecord {
  event: 'suspect' | 'alive' | 'dead';
  at: number;
}

/**
 * A stand-in for the link: mutable timestamps, every call recorded. Like the real link,
 * writing a PING counts as sending (it moves lastSent). With `echoRtt` set it also plays
 * an ideal peer that answers each PING with a PONG after exactly that many ms.
 */
class StubHost implements HeartbeatHost {
  lastSent: number;
  readonly pings: PingRecord[] = [];
  readonly liveness: LivenessRecord[] = [];
  readonly rtts: number[] = [];
  /** How often the heartbeat looked at lastReceived (it must not per packet). */
  receivedReads = 0;
  echoRtt: number | null = null;
  heartbeat: Heartbeat | null = null;
  private received: number;

  constructor(private readonly clock: FakeClock) {
    this.lastSent = clock.now();
    this.received = clock.now();
  }

  get lastReceived(): number {
    this.receivedReads++;
    return this.received;
  }

  /** A byte arrived now (what the link's data handler does). */
  receive(): void {
    this.received = this.clock.now();
  }

  /** A byte was sent now. */
  send(): void {
    this.lastSent = this.clock.now();
  }

  sendPing(seq: number, timestampMicros: number): void {
    const now = this.clock.now();
    this.pings.push({ seq, timestampMicros, at: now, idleFor: now - this.lastSent });
    this.lastSent = now;
    const rtt = this.echoRtt;
    if (rtt !== null) {
      this.clock.setTimeout(() => {
        this.receive();
        this.heartbeat?.pong(seq, timestampMicros, this.clock.now());
      }, rtt);
    }
  }

  onLiveness(event: 'suspect' | 'alive' | 'dead'): void {
    this.liveness.push({ event, at: this.clock.now() });
  }

  onRtt(sampleMs: number): void {
    this.rtts.push(sampleMs);
  }

  events(): string[] {
    return this.liveness.map((l) => l.event);
  }
}

interface SetupOptions {
  start?: number;
  settings?: HeartbeatSettings;
  detector?: DetectorFactory;
  role?: HeartbeatRole;
  /** Called with each firing of a timer the heartbeat makes, around its handler. */
  onFire?: (fire: () => void) => void;
}

/**
 * Makes every timer `wheel` creates from now on fire through `around(fire)`: how a test
 * sees the firings of the timers a heartbeat makes for itself.
 */
function wrapFirings(wheel: TimingWheel, around: (fire: () => void) => void): void {
  const timerFor = wheel.timerFor.bind(wheel);
  wheel.timerFor = <T>(owner: T, handler: TimerHandler<T>) =>
    timerFor(owner, (o: T) => around(() => handler(o)));
}

function setup({
  start = 0,
  settings = heartbeatSettings(INTERVAL, TIMEOUT),
  detector = fixedDetector(),
  role = 'client',
  onFire,
}: SetupOptions = {}) {
  const clock = new FakeClock(start);
  const wheel = new TimingWheel(clock, {
    tickMs: TICK,
    onError: (err) => assert.fail(`a wheel callback threw: ${String(err)}`),
  });
  if (onFire) wrapFirings(wheel, onFire);
  const host = new StubHost(clock);
  const failureDetector: FailureDetector = detector(settings, clock.now());
  const hb = new Heartbeat(wheel, clock, settings, failureDetector, host, 0, role);
  host.heartbeat = hb;
  return { clock, wheel, host, hb, detector: failureDetector };
}

/** Calls `fn` every `everyMs` of fake time until the returned stop function is called. */
function every(clock: FakeClock, everyMs: number, fn: () => void): () => void {
  let stopped = false;
  const loop = (): void => {
    if (stopped) return;
    fn();
    clock.setTimeout(loop, everyMs);
  };
  clock.setTimeout(loop, everyMs);
  return () => {
    stopped = true;
  };
}

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!);
}

/** Asserts lo <= value <= hi with a readable message. */
function within(value: number, lo: number, hi: number, what: string): void {
  assert.ok(value >= lo && value <= hi, `${what}: ${value} not in [${lo}, ${hi}]`);
}

/** Liveness events `first` and `first + 1` are SUSPECT and DEAD, each on time (one tick). */
function suspectThenDead(host: StubHost, lastHeard: number, first = 0): void {
  const [suspect, dead] = [host.liveness[first]!.at, host.liveness[first + 1]!.at];
  within(suspect, lastHeard + SUSPECT_AFTER, lastHeard + SUSPECT_AFTER + TICK, 'suspect');
  within(dead, lastHeard + TIMEOUT, lastHeard + TIMEOUT + TICK, 'dead');
}

describe('Heartbeat', () => {
  describe('pinging', () => {
    for (const start of [0, 3, 7.25]) {
      it(`an idle link pings every interval, within one tick, never earlier (start ${start})`, () => {
        const { clock, host, hb } = setup({ start });
        host.echoRtt = 5;
        hb.start();

        // Nothing before the first interval has passed...
        clock.advance(INTERVAL - 0.001);
        assert.equal(host.pings.length, 0, 'pinged before one interval of idleness');
        // ...and the first PING no later than one tick after it.
        clock.advance(TICK + 0.001);
        assert.equal(host.pings.length, 1);
        within(host.pings[0]!.at, start + INTERVAL, start + INTERVAL + TICK, 'first ping');

        clock.advance(30 * INTERVAL);
        assert.ok(host.pings.length >= 30, `only ${host.pings.length} pings in 31 intervals`);
        for (const p of host.pings) {
          assert.ok(p.idleFor >= INTERVAL, `a PING went out after only ${p.idleFor} ms idle`);
        }
        for (const gap of gaps(host.pings.map((p) => p.at))) {
          within(gap, INTERVAL, INTERVAL + TICK, 'gap between pings');
        }
        assert.deepEqual(
          host.pings.map((p) => p.seq),
          host.pings.map((_, i) => i + 1),
          'seq counts from 1',
        );
        assert.equal(hb.stats.pingsSent, host.pings.length);
        assert.equal(hb.stats.probes, 0);
        assert.deepEqual(host.events(), [], 'an answering peer never turns suspect');
      });
    }

    it('a link that keeps sending never pings', () => {
      const { clock, host, hb } = setup({ start: 3 });
      hb.start();
      // Application traffic both ways every 100 ms for 20 intervals.
      const stop = every(clock, 100, () => {
        host.send();
        host.receive();
      });
      clock.advance(20 * INTERVAL);
      assert.equal(host.pings.length, 0, 'a busy link pinged');
      assert.deepEqual(host.events(), []);

      // Once it falls silent, the first PING comes one interval after the last send.
      stop();
      const lastSend = host.lastSent;
      clock.advance(INTERVAL - 1);
      assert.equal(host.pings.length, 0);
      clock.advance(TICK + 1);
      assert.equal(host.pings.length, 1);
      within(host.pings[0]!.at, lastSend + INTERVAL, lastSend + INTERVAL + TICK, 'first ping');
    });

    it('sending just before the ping deadline postpones the PING', () => {
      const { clock, host, hb } = setup();
      hb.start();
      clock.advance(INTERVAL - 10);
      host.send();
      host.receive();
      clock.advance(20);
      assert.equal(host.pings.length, 0, 'pinged although data went out 20 ms ago');
      clock.advance(INTERVAL);
      assert.equal(host.pings.length, 1);
      within(host.pings[0]!.at, 2 * INTERVAL - 10, 2 * INTERVAL, 'postponed ping');
    });
  });

  describe('liveness', () => {
    it('received traffic keeps the link healthy with no per-packet timer work', () => {
      const { clock, host, hb } = setup({ start: 3 });
      hb.start();
      let packets = 0;
      every(clock, 10, () => {
        host.receive();
        packets++;
      });
      const reads = host.receivedReads;
      clock.advance(20 * INTERVAL);
      assert.ok(packets >= 1999, `only ${packets} packets`);
      assert.deepEqual(host.events(), [], 'turned suspect while receiving');
      // lastReceived is read when the beat timer fires (at most once per interval: the
      // earlier of the ping and the check deadline), not per packet.
      const checks = host.receivedReads - reads;
      assert.ok(checks <= 20 + 2, `${checks} reads of lastReceived for ${packets} packets`);
      assert.ok(checks >= 1, 'the check never looked at lastReceived');
      // Receiving is not sending: our side still pings on its own schedule.
      assert.ok(host.pings.length >= 19);
    });

    it('an idle server link that the client leads costs one timer firing per interval', () => {
      let firings = 0;
      const { clock, host, hb, wheel } = setup({
        role: 'server',
        onFire: (fire) => {
          firings++;
          fire();
        },
      });
      hb.start();
      // The client's PING every interval, answered at once with a PONG.
      every(clock, INTERVAL, () => {
        host.receive();
        hb.beat(clock.now(), true);
        host.send();
      });
      clock.advance(20 * INTERVAL);
      assert.deepEqual(host.events(), [], 'healthy throughout');
      assert.equal(host.pings.length, 0, 'the server never pinged on its own');
      // Ping and check share one timer: one firing per interval, not one each.
      assert.ok(firings >= 15 && firings <= 22, `${firings} firings in 20 intervals`);
      assert.equal(wheel.size, 1, 'one armed timer');
      hb.stop();
      assert.equal(wheel.size, 0);
    });

    it('each firing on a led server link re-arms once, for the next real deadline', () => {
      const clock = new FakeClock(0);
      const wheel = new TimingWheel(clock, { tickMs: TICK });
      const settings = heartbeatSettings(INTERVAL, TIMEOUT);
      // Count the beat timer's arms: the heartbeat makes its timer through timerFor.
      let arms = 0;
      const timerFor = wheel.timerFor.bind(wheel);
      wheel.timerFor = <T>(owner: T, handler: TimerHandler<T>) => {
        const timer = timerFor(owner, handler);
        const arm = timer.arm.bind(timer);
        timer.arm = (delayMs: number) => {
          arms++;
          arm(delayMs);
        };
        return timer;
      };
      let firings = 0;
      let deadlineOk = 0;
      // Each firing of the heartbeat's timers (made by its constructor).
      wrapFirings(wheel, (fire) => {
        firings++;
        const before = arms;
        fire();
        assert.equal(arms - before, 1, 'one re-arm per firing');
        // Re-armed for the earlier of the ping lag after the last send and suspectAfter
        // after the last byte heard (the wheel rounds up to its tick).
        const due = Math.min(
          host.lastSent + INTERVAL * SERVER_PING_LAG,
          host.lastReceived + SUSPECT_AFTER,
        );
        const armed = hb.nextBeatAt;
        within(armed, due, due + TICK, 're-armed deadline');
        deadlineOk++;
      });
      const host = new StubHost(clock);
      const hb = new Heartbeat(
        wheel,
        clock,
        settings,
        fixedDetector()(settings, 0),
        host,
        0,
        'server',
      );
      hb.start();
      every(clock, INTERVAL, () => {
        host.receive();
        hb.beat(clock.now(), true);
        host.send();
      });
      clock.advance(20 * INTERVAL);
      assert.ok(firings >= 15, `${firings} firings`);
      assert.equal(deadlineOk, firings);
      assert.deepEqual(host.events(), []);
      hb.stop();
    });

    for (const start of [0, 3, 9.5]) {
      it(`silence: suspect at suspectAfter, a probe at once, then probes every interval/4 (start ${start})`, () => {
        const { clock, host, hb } = setup({ start });
        hb.start();
        clock.advance(SUSPECT_AFTER - 0.001);
        assert.deepEqual(host.events(), [], 'suspect before suspectAfter');
        assert.equal(hb.isSuspect, false);
        clock.advance(TICK + 0.001);
        assert.deepEqual(host.events(), ['suspect']);
        const suspectAt = host.liveness[0]!.at;
        within(suspectAt, start + SUSPECT_AFTER, start + SUSPECT_AFTER + TICK, 'suspect');
        assert.equal(hb.isSuspect, true);

        // The regular PING at one interval, then a probe in the same instant as the suspicion.
        assert.equal(host.pings.length, 2);
        within(host.pings[0]!.at, start + INTERVAL, start + INTERVAL + TICK, 'regular ping');
        assert.equal(host.pings[1]!.at, suspectAt, 'the first probe is not immediate');
        assert.equal(hb.stats.probes, 1);

        clock.advance(TIMEOUT);
        const probes = host.pings.slice(1).filter((p) => p.at < start + TIMEOUT);
        assert.ok(probes.length >= 6, `only ${probes.length} probes while suspect`);
        for (const gap of gaps(probes.map((p) => p.at))) {
          within(gap, INTERVAL / 4, INTERVAL / 4 + TICK, 'gap between probes');
        }
        assert.equal(hb.stats.probes, host.pings.length - 1);
        assert.deepEqual(host.events(), ['suspect', 'dead']);
      });

      it(`silence: dead at exactly timeout, never before, at most one tick after (start ${start})`, () => {
        const { clock, host, hb, wheel } = setup({ start });
        hb.start();
        clock.advance(TIMEOUT - 0.001);
        assert.ok(!host.events().includes('dead'), 'dead before the timeout');
        clock.advance(TICK + 0.001);
        assert.deepEqual(host.events(), ['suspect', 'dead']);
        within(host.liveness[1]!.at, start + TIMEOUT, start + TIMEOUT + TICK, 'dead');
        // Dead stops the heartbeat: no timer left in the wheel, none in the clock.
        assert.equal(hb.isSuspect, false);
        assert.equal(wheel.size, 0);
        assert.equal(clock.pending, 0);
        const pings = host.pings.length;
        clock.advance(10 * TIMEOUT);
        assert.equal(host.pings.length, pings, 'pinged after dead');
        assert.deepEqual(host.events(), ['suspect', 'dead']);
      });
    }

    it('the deadlines count from the last byte received, not from start', () => {
      const { clock, host, hb } = setup();
      hb.start();
      clock.advance(1200);
      host.receive();
      clock.advance(SUSPECT_AFTER - 1);
      assert.deepEqual(host.events(), []);
      clock.advance(TICK + 1);
      assert.deepEqual(host.events(), ['suspect']);
      clock.advance(TIMEOUT);
      assert.deepEqual(host.events(), ['suspect', 'dead']);
      suspectThenDead(host, 1200);
    });

    it('traffic while suspect: heardWhileSuspect() turns it alive at once and stops probing', () => {
      const { clock, host, hb } = setup();
      hb.start();
      clock.advance(SUSPECT_AFTER + 100);
      assert.deepEqual(host.events(), ['suspect']);

      host.receive();
      const heardAt = clock.now();
      hb.heardWhileSuspect();
      assert.deepEqual(host.events(), ['suspect', 'alive']);
      assert.equal(host.liveness[1]!.at, heardAt, 'alive was not immediate');
      assert.equal(hb.isSuspect, false);

      // No more probes: the next PING is a regular one, an interval after the last send.
      const lastPing = host.pings.at(-1)!.at;
      const probes = hb.stats.probes;
      clock.advance(INTERVAL - TICK - (heardAt - lastPing));
      assert.equal(hb.stats.probes, probes, 'still probing after alive');
      clock.advance(2 * TICK);
      assert.equal(host.pings.at(-1)!.at >= lastPing + INTERVAL, true);
      // The detector heard it: suspicion restarts from the moment traffic came.
      clock.advance(heardAt + SUSPECT_AFTER - clock.now() - 1);
      assert.deepEqual(host.events(), ['suspect', 'alive']);
      clock.advance(TICK + 1);
      assert.deepEqual(host.events(), ['suspect', 'alive', 'suspect']);
    });

    it('heardWhileSuspect() is a no-op while healthy or stopped', () => {
      const { clock, host, hb } = setup();
      hb.heardWhileSuspect();
      hb.start();
      clock.advance(500);
      host.receive();
      hb.heardWhileSuspect();
      hb.stop();
      hb.heardWhileSuspect();
      assert.deepEqual(host.events(), []);
    });

    it('traffic while suspect is noticed at the next check even without heardWhileSuspect()', () => {
      const { clock, host, hb } = setup();
      hb.start();
      clock.advance(SUSPECT_AFTER + 100);
      host.receive();
      const heardAt = clock.now();
      clock.advance(TIMEOUT - clock.now() + TICK);
      // The next beat (a ping due, or the check at deadAt at the latest) reads lastReceived:
      // alive there, not dead.
      assert.deepEqual(host.events(), ['suspect', 'alive']);
      within(host.liveness[1]!.at, heardAt, TIMEOUT + TICK, 'lazy alive');
      // From then on the deadlines count from the byte it found.
      clock.advance(heardAt + TIMEOUT - clock.now() + TICK);
      assert.deepEqual(host.events(), ['suspect', 'alive', 'suspect', 'dead']);
      suspectThenDead(host, heardAt, 2);
    });

    it('a stalled event loop goes straight from healthy to dead', () => {
      const { clock, host, hb } = setup();
      hb.start();
      clock.jump(TIMEOUT + 500);
      clock.advance(0);
      assert.deepEqual(host.events(), ['dead']);
    });
  });

  describe('lifecycle', () => {
    it('stop() cancels every timer, whatever the state', () => {
      for (const at of [0, 500, INTERVAL + 5, SUSPECT_AFTER + 20, SUSPECT_AFTER + 260]) {
        const { clock, host, hb, wheel } = setup();
        hb.start();
        clock.advance(at);
        hb.stop();
        assert.equal(wheel.size, 0, `timers left after stop at ${at}`);
        assert.equal(clock.pending, 0);
        assert.equal(hb.isSuspect, false);
        const pings = host.pings.length;
        const events = host.liveness.length;
        clock.advance(10 * TIMEOUT);
        assert.equal(host.pings.length, pings);
        assert.equal(host.liveness.length, events);
      }
    });

    it('start() after dead restarts cleanly from a healthy state', () => {
      const { clock, host, hb } = setup();
      hb.start();
      clock.advance(TIMEOUT + TICK);
      assert.deepEqual(host.events(), ['suspect', 'dead']);
      const restart = clock.now();
      hb.start();
      clock.advance(SUSPECT_AFTER - 1);
      assert.deepEqual(host.events(), ['suspect', 'dead']);
      clock.advance(TIMEOUT);
      assert.deepEqual(host.events(), ['suspect', 'dead', 'suspect', 'dead']);
      within(host.liveness[3]!.at, restart + TIMEOUT, restart + TIMEOUT + TICK, 'second dead');
    });

    it('start()/stop() cycles never leak timers', () => {
      const random = mulberry32(42);
      const { clock, host, hb, wheel } = setup();
      let maxSize = 0;
      for (let i = 0; i < 1000; i++) {
        const r = random();
        if (r < 0.4) hb.start();
        else if (r < 0.6) hb.stop();
        else if (r < 0.8) host.receive();
        else hb.heardWhileSuspect();
        clock.advance(Math.floor(random() * 2 * TIMEOUT));
        maxSize = Math.max(maxSize, wheel.size);
        assert.ok(wheel.size <= 3, `wheel holds ${wheel.size} timers after step ${i}`);
      }
      // start() twice in a row still holds one timer per concern at most.
      hb.start();
      hb.start();
      assert.equal(wheel.size, 1, 'one beat timer (ping + check) after start');
      hb.stop();
      assert.equal(wheel.size, 0);
      assert.equal(clock.pending, 0);
      assert.ok(maxSize >= 2);
    });

    it('retune() to a shorter interval takes effect at once', () => {
      const { clock, host, hb, detector } = setup({ settings: heartbeatSettings(10_000, 30_000) });
      hb.start();
      clock.advance(500);
      const shorter = heartbeatSettings(INTERVAL, TIMEOUT);
      hb.retune(shorter);
      assert.equal(hb.current, shorter);
      assert.equal(detector.deadAt(), TIMEOUT, 'the detector did not take the new timeout');
      clock.advance(INTERVAL - 500 + TICK);
      assert.equal(host.pings.length, 1, 'no PING one (new) interval after the last send');
      within(host.pings[0]!.at, INTERVAL, INTERVAL + TICK, 'first ping after retune');
      clock.advance(TIMEOUT);
      assert.deepEqual(host.events(), ['suspect', 'dead']);
      suspectThenDead(host, 0);
    });

    it('retune() to a timeout that has already passed declares dead within a tick', () => {
      const { clock, host, hb } = setup({ settings: heartbeatSettings(10_000, 30_000) });
      hb.start();
      clock.advance(5000);
      hb.retune(heartbeatSettings(INTERVAL, TIMEOUT));
      clock.advance(TICK);
      assert.deepEqual(host.events(), ['dead']);
      within(host.liveness[0]!.at, 5000, 5000 + TICK, 'dead');
    });

    it('retune() to a longer budget while suspect re-evaluates the suspicion at once', () => {
      const { clock, host, hb } = setup();
      hb.start();
      clock.advance(SUSPECT_AFTER + 100);
      assert.deepEqual(host.events(), ['suspect']);
      // Silent for 1.6 s; the new budget suspects only after 15 s.
      hb.retune(heartbeatSettings(10_000, 30_000));
      clock.advance(TICK);
      assert.deepEqual(host.events(), ['suspect', 'alive']);
      assert.equal(hb.isSuspect, false);
    });

    it('retune() while stopped arms nothing; the next start() uses the new settings', () => {
      const { clock, host, hb, wheel } = setup({ settings: heartbeatSettings(10_000, 30_000) });
      hb.retune(heartbeatSettings(INTERVAL, TIMEOUT));
      assert.equal(wheel.size, 0);
      hb.start();
      clock.advance(INTERVAL + TICK);
      assert.equal(host.pings.length, 1);
    });
  });

  describe('RTT', () => {
    it('each PONG gives a sample equal to the round trip on the fake clock', () => {
      const { clock, host, hb } = setup();
      host.echoRtt = 40;
      hb.start();
      clock.advance(5 * INTERVAL + 100);
      assert.ok(host.rtts.length >= 4, `${host.rtts.length} samples`);
      for (const sample of host.rtts) assert.equal(sample, 40);
      assert.equal(hb.rtt.srtt, 40);
      assert.equal(hb.rtt.samples, host.rtts.length);
      assert.equal(hb.stats.pongsReceived, host.rtts.length);
    });

    it('a PONG answering no PING of ours gives no sample and no event (PROTOCOL.md 7.3)', () => {
      const { clock, host, hb } = setup({ start: 1_000_000 });
      hb.start();
      const now = clock.now();
      // Nothing sent yet: every seq is unsolicited, whatever the timestamp claims.
      for (const seq of [0, 1, 2, 0xffff_ffff]) {
        for (const ts of [0, 1, now * 1000 - 12_600_000, now * 1000, Number.NaN]) {
          assert.equal(hb.pong(seq, ts, now), false);
        }
      }
      // A flood costs nothing: no sample, no event, no counter, no detector input.
      for (let i = 0; i < 100_000; i++) hb.pong(i, 1, now);
      assert.deepEqual(host.rtts, []);
      assert.equal(hb.rtt.samples, 0);
      assert.equal(hb.stats.pongsReceived, 0);
      assert.deepEqual(host.events(), []);
    });

    it('a forged timestamp cannot change the RTT: samples use our send time', () => {
      const { clock, host, hb } = setup({ start: 1_000_000 });
      hb.start();
      clock.advance(INTERVAL + TICK);
      const ping = host.pings.at(-1)!;
      clock.advance(30 - (clock.now() - ping.at));
      // The right seq with a timestamp other than ours: not an answer to our PING (a peer
      // would otherwise answer before reading it, and time its own RTT).
      for (const ts of [0, 1, ping.timestampMicros - 12_600_000, ping.timestampMicros + 1]) {
        assert.equal(hb.pong(ping.seq, ts, clock.now()), false);
      }
      // A seq we have not sent yet, or an older one, answers nothing either.
      assert.equal(hb.pong(ping.seq + 1, ping.timestampMicros, clock.now()), false);
      assert.equal(hb.pong(ping.seq - 1, ping.timestampMicros, clock.now()), false);
      assert.deepEqual(host.rtts, []);
      // The true echo: the sample is the time since we sent it, on our clock.
      assert.equal(hb.pong(ping.seq, ping.timestampMicros, clock.now()), true);
      assert.deepEqual(host.rtts, [30]);
      assert.equal(hb.rtt.srtt, 30);
      // Answered once: a replay of it is ignored.
      clock.advance(5);
      assert.equal(hb.pong(ping.seq, ping.timestampMicros, clock.now()), false);
      assert.deepEqual(host.rtts, [30]);
      assert.equal(hb.stats.pongsReceived, 1);
    });

    it('answers to earlier PINGs still count once each, without a sample; only the latest is timed', () => {
      const { clock, host, hb } = setup();
      hb.start();
      // Silence: suspect at 1.5 intervals, then probes every interval/4, none answered.
      clock.advance(2 * INTERVAL + TICK);
      const sent = host.pings.slice();
      assert.ok(sent.length >= 3, `${sent.length} PINGs`);
      // A stalled path heals and delivers every PONG at once, in order.
      const answers = sent.map((p) => hb.pong(p.seq, p.timestampMicros, clock.now()));
      assert.deepEqual(answers, Array(sent.length).fill(true));
      assert.equal(hb.stats.pongsReceived, sent.length);
      assert.deepEqual(host.rtts, [clock.now() - sent.at(-1)!.at]);
      // Each is answered once: replaying any of them is ignored.
      for (const p of sent) assert.equal(hb.pong(p.seq, p.timestampMicros, clock.now()), false);
      assert.equal(hb.stats.pongsReceived, sent.length);
    });

    it('seqs wrap from 2^32 - 1 to 0 and stay matched', () => {
      const { clock, host, hb } = setup();
      // The counter just below the wrap (tests reach into it rather than send 2^32 PINGs).
      setPingSeq(hb, 0xffff_fffe);
      hb.start();
      host.echoRtt = 10;
      clock.advance(4 * INTERVAL + 100);
      assert.deepEqual(
        host.pings.slice(0, 3).map((p) => p.seq),
        [0xffff_ffff, 0, 1],
      );
      assert.equal(hb.stats.pongsReceived, host.pings.length);
      assert.deepEqual(host.rtts, Array(host.pings.length).fill(10));
    });
  });

  describe('server role (the client leads the idle exchange, PROTOCOL.md 7.2)', () => {
    /**
     * The client's side of an idle link as the server sees it: a PING every interval,
     * which the server answers at once (a PONG moves lastSent), adding a PING of its own
     * when rttDue() says so, as the link does; that PING's PONG comes back after `rtt`.
     */
    function clientPings(
      clock: FakeClock,
      host: StubHost,
      hb: Heartbeat,
      rtt = 5,
    ): { stop: () => void; pongs: () => number } {
      let pongs = 0;
      const stop = every(clock, INTERVAL, () => {
        host.receive();
        hb.beat(clock.now(), true);
        host.send();
        pongs++;
        if (hb.rttDue(clock.now())) hb.ping();
      });
      host.echoRtt = rtt;
      return { stop, pongs: () => pongs };
    }

    it('a silent peer: the server pings after SERVER_PING_LAG intervals, not one', () => {
      const { clock, host, hb } = setup({ role: 'server' });
      const lag = INTERVAL * SERVER_PING_LAG;
      host.echoRtt = 5;
      hb.start();
      clock.advance(lag - 0.001);
      assert.equal(host.pings.length, 0, 'pinged before SERVER_PING_LAG intervals of idleness');
      clock.advance(TICK + 0.001);
      assert.equal(host.pings.length, 1);
      within(host.pings[0]!.at, lag, lag + TICK, 'first ping');
      clock.advance(20 * INTERVAL);
      for (const gap of gaps(host.pings.map((p) => p.at))) within(gap, lag, lag + TICK, 'gap');
      // The PONGs of its own pings keep it healthy; 1.25 intervals stay below suspectAfter.
      assert.deepEqual(host.events(), []);
    });

    it('a client pinging every interval: one exchange per interval, the server pings only to refresh its RTT', () => {
      const { clock, host, hb } = setup({ role: 'server' });
      hb.start();
      const peer = clientPings(clock, host, hb, 7);
      const intervals = 40;
      clock.advance(intervals * INTERVAL + 100);
      peer.stop();
      // Every PING of the server rode with a PONG (nothing idle before it), one per
      // RTT_REFRESH_INTERVALS intervals, the first with the first PONG.
      assert.equal(host.pings.length, intervals / RTT_REFRESH_INTERVALS);
      within(host.pings[0]!.at, INTERVAL, INTERVAL, 'first refresh');
      for (const p of host.pings) assert.equal(p.idleFor, 0, 'a PING not sent with a PONG');
      for (const gap of gaps(host.pings.map((p) => p.at))) {
        assert.equal(gap, RTT_REFRESH_INTERVALS * INTERVAL);
      }
      assert.equal(hb.stats.pingsReceived, intervals);
      assert.equal(peer.pongs(), intervals);
      // Its RTT estimate is fresh, and nothing was ever suspected.
      assert.deepEqual(host.rtts, Array(host.pings.length).fill(7));
      assert.equal(hb.rtt.srtt, 7);
      assert.deepEqual(host.events(), []);
    });

    it('rttDue(): only on a server, only while running, at most once per RTT_REFRESH_INTERVALS intervals', () => {
      const client = setup();
      client.hb.start();
      assert.equal(
        client.hb.rttDue(client.clock.now()),
        false,
        'a client always leads: it never needs one',
      );
      const { clock, host, hb } = setup({ role: 'server' });
      assert.equal(hb.rttDue(clock.now()), false, 'not started');
      hb.start();
      // Traffic both ways (DATA, say): the server never pings on its own.
      every(clock, INTERVAL / 2, () => {
        host.send();
        host.receive();
      });
      assert.equal(hb.rttDue(clock.now()), true, 'no sample yet');
      hb.ping();
      assert.equal(hb.rttDue(clock.now()), false);
      clock.advance(RTT_REFRESH_INTERVALS * INTERVAL - 1);
      assert.equal(hb.rttDue(clock.now()), false);
      clock.advance(1);
      assert.equal(hb.rttDue(clock.now()), true);
      hb.stop();
      assert.equal(hb.rttDue(clock.now()), false, 'stopped');
      const sent = hb.stats.pingsSent;
      hb.ping();
      assert.equal(hb.stats.pingsSent, sent, 'ping() while stopped sends nothing');
    });

    it('a client that freezes is still dead at timeout after it was last heard, within one tick', () => {
      const { clock, host, hb } = setup({ role: 'server' });
      hb.start();
      const peer = clientPings(clock, host, hb);
      clock.advance(10 * INTERVAL + 500);
      peer.stop();
      host.echoRtt = null;
      const lastHeard = 10 * INTERVAL;
      clock.advance(TIMEOUT - 500 - 1);
      assert.ok(!host.events().includes('dead'), 'dead before the timeout');
      clock.advance(TICK + 1);
      assert.deepEqual(host.events(), ['suspect', 'dead']);
      suspectThenDead(host, lastHeard);
    });
  });

  describe('with the phi accrual detector', () => {
    /** A peer that PINGs us every second (±20 ms jitter); we answer, so we never ping. */
    function regularPeer(clock: FakeClock, host: StubHost, hb: Heartbeat, seed: number) {
      const random = mulberry32(seed);
      let stopped = false;
      const next = (): void => {
        if (stopped) return;
        host.receive();
        hb.beat(clock.now(), true);
        host.send(); // our PONG
        clock.setTimeout(next, 980 + Math.floor(random() * 41));
      };
      clock.setTimeout(next, 1000);
      return () => {
        stopped = true;
      };
    }

    it('a regular 1 s heartbeat stays healthy; silence gives suspect, then dead by the timeout', () => {
      const { clock, host, hb, detector } = setup({
        start: 3,
        settings: heartbeatSettings(INTERVAL, 5000),
        detector: phiDetector(),
      });
      hb.start();
      const stop = regularPeer(clock, host, hb, 7);
      clock.advance(120_000);
      assert.deepEqual(host.events(), [], 'a regular heartbeat raised suspicion');
      assert.equal(hb.stats.probes, 0);
      assert.ok(hb.stats.pingsReceived >= 118);

      stop();
      // The last beat is the last byte received.
      const last = clockLastReceived(host);
      clock.advance(10_000);
      assert.deepEqual(host.events(), ['suspect', 'dead']);
      const [suspect, dead] = host.liveness;
      // Not before a normal gap has passed, and suspect strictly before dead.
      assert.ok(suspect!.at > last + 1020, `suspect ${suspect!.at - last} ms after the last beat`);
      assert.ok(dead!.at > suspect!.at);
      assert.ok(dead!.at <= last + 5000 + TICK, `dead ${dead!.at - last} ms after the last beat`);
      // With a regular stream phi is sharp: dead well before the hard timeout.
      assert.ok(dead!.at < last + 2500, `dead only ${dead!.at - last} ms after the last beat`);
      assert.ok(detector.suspicion(clock.now()) > 8);
    });

    it('the timeout stays a hard bound when phi alone would wait longer', () => {
      const { clock, host, hb } = setup({
        settings: heartbeatSettings(INTERVAL, TIMEOUT),
        detector: phiDetector({ acceptableHeartbeatPause: 60_000 }),
      });
      hb.start();
      const stop = regularPeer(clock, host, hb, 11);
      clock.advance(30_000);
      assert.deepEqual(host.events(), []);
      stop();
      const last = clockLastReceived(host);
      clock.advance(10 * TIMEOUT);
      assert.ok(host.events().includes('dead'), 'never declared dead');
      const dead = host.liveness.find((l) => l.event === 'dead')!;
      within(dead.at, last + TIMEOUT, last + TIMEOUT + TICK, 'dead');
    });
  });
});

/** Reads the stub's last-received time without counting it as a heartbeat check. */
function clockLastReceived(host: StubHost): number {
  const reads = host.receivedReads;
  const value = host.lastReceived;
  host.receivedReads = reads;
  return value;
}

describe('Heartbeat while its host does not read (pauseInput)', () => {
  it('silence while paused is not judged; after resume it counts from the resume', () => {
    const { clock, host, hb } = setup();
    hb.start();
    clock.advance(500);
    hb.pauseInput(true);
    // Ten timeouts of silence: never suspect, and PINGs still go out (the peer hears us).
    clock.advance(10 * TIMEOUT);
    assert.deepEqual(host.events(), []);
    assert.ok(host.pings.length >= 25, `only ${host.pings.length} pings while paused`);
    const resumedAt = clock.now();
    hb.pauseInput(false);
    clock.advance(TIMEOUT + 2 * TICK);
    suspectThenDead(host, resumedAt);
  });

  it('a suspect peer is cleared by the pause; a PONG to a PING sent while paused gives no RTT', () => {
    const { clock, host, hb } = setup();
    hb.start();
    clock.advance(SUSPECT_AFTER + 2 * TICK);
    assert.deepEqual(host.events(), ['suspect']);
    hb.pauseInput(true);
    assert.deepEqual(host.events(), ['suspect', 'alive']);
    clock.advance(2 * INTERVAL);
    const last = host.pings.at(-1)!;
    hb.pauseInput(false);
    // Read after the resume: its delay is our pause, not the path.
    host.receive();
    assert.equal(hb.pong(last.seq, last.timestampMicros, clock.now()), false);
    assert.deepEqual(host.rtts, []);
    // The next PING's PONG times the path again.
    host.echoRtt = 7;
    clock.advance(2 * INTERVAL);
    assert.ok(host.rtts.length >= 1 && host.rtts.every((r) => r === 7), `rtts ${host.rtts}`);
  });
});
