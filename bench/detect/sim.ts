/**
 * Simulated connection-minutes on a fake clock, with heartline's real Heartbeat, timing
 * wheel and failure detectors on both ends of each connection; only the network and the
 * processes' event loops are modelled:
 *
 * - each direction delays every frame by `baseDelayMs` + uniform(0, `jitterMs`), keeping
 *   TCP's byte order (a frame never overtakes the one before it);
 * - each end stalls (GC, a blocked event loop, a SIGSTOP-like pause) at exponentially
 *   distributed gaps of mean `pauseEveryMs`, for uniform(0, `maxPauseMs`). While an end
 *   is stalled nothing of it runs; when it wakes, its due timers run first and the frames
 *   that arrived meanwhile are read after them, as in Node's event loop (timers phase
 *   before the poll phase) — the worst order for false alarms.
 *
 * The links are idle (heartbeats only), the hardest case: a busy link has more signs of
 * life. A DEAD on a live connection is a false DEAD; the connection is then started
 * afresh (a reconnect) and the simulation goes on. At the end of its minutes each
 * connection is blackholed (every frame dropped both ways) at a random moment and the
 * time until each end declares the peer DEAD is its detection time.
 */

import type { DetectorFactory } from '../../src/health/index.js';
import { Heartbeat } from '../../src/heartbeat.js';
import { heartbeatSettings } from '../../src/options.js';
import type { Clock, ClockTimer } from '../../src/time/clock.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { TimingWheel } from '../../src/time/wheel.js';
import { mulberry32 } from '../../test/support/prng.js';

/** The network and pause model. */
export interface SimModel {
  interval: number;
  timeout: number;
  baseDelayMs: number;
  jitterMs: number;
  pauseEveryMs: number;
  maxPauseMs: number;
  /** Least time between the end of one pause of an end and the start of its next (ms). */
  minPauseGapMs: number;
  /**
   * After a stall, read what arrived before running due timers (false: Node's order,
   * timers first). Models a detector that confirms a DEAD only after one more read.
   */
  readBeforeTimers?: boolean;
}

/** What one detector configuration showed. */
export interface SimResult {
  connectionMinutes: number;
  falseDeads: number;
  /** False DEADs per connection-hour. */
  falseDeadsPerHour: number;
  /** Detection times (ms from the blackhole) of both ends, every connection. */
  detections: number[];
  /** Longest silence a live peer showed (ms): what a detector must tolerate. */
  longestLiveSilence: number;
}

type Frame = { type: 'ping' | 'pong'; seq: number; ts: number };

/** One end: its heartbeat, its stall windows and the frames it has not read yet. */
class End {
  pausedUntil = 0;
  lastSent = 0;
  lastReceived = 0;
  heartbeat!: Heartbeat;
  wheel!: TimingWheel;
  peer!: End;
  /** Delivery time of the last frame sent, so the next one never overtakes it. */
  lastDelivery = 0;
  dead = false;

  constructor(
    readonly sim: Connection,
    readonly name: 'a' | 'b',
  ) {}

  /** This end's view of the clock: its timers wait while it is stalled. */
  clock(): Clock {
    const base = this.sim.clock;
    const late = this.sim.model.readBeforeTimers ? 0.001 : 0;
    const run = (fn: () => void): void => {
      const now = base.now();
      if (this.pausedUntil > now) base.setTimeout(() => run(fn), this.pausedUntil - now + late);
      else fn();
    };
    return {
      now: () => base.now(),
      wallNow: () => base.wallNow(),
      setTimeout: (fn, ms) => base.setTimeout(() => run(fn), ms),
      clearTimeout: (t: ClockTimer) => base.clearTimeout(t),
    };
  }

  send(frame: Frame): void {
    const base = this.sim.clock;
    const now = base.now();
    this.lastSent = now;
    if (this.sim.blackholed) return;
    const delay = this.sim.model.baseDelayMs + this.sim.random() * this.sim.model.jitterMs;
    const at = Math.max(this.lastDelivery, now + delay);
    this.lastDelivery = at;
    const peer = this.peer;
    const generation = this.sim.generation;
    base.setTimeout(() => peer.arrive(frame, generation), at - now);
  }

  /** A frame reached this end's kernel; it is read now, or after the stall (after timers). */
  arrive(frame: Frame, generation: number): void {
    if (generation !== this.sim.generation || this.sim.blackholed) return;
    const now = this.sim.clock.now();
    if (this.pausedUntil > now) {
      // Just after the wake-up, so that the timers due at the wake-up run first (or at
      // it, before the timers, when the model reads first).
      const late = this.sim.model.readBeforeTimers ? 0 : 0.001;
      this.sim.clock.setTimeout(
        () => this.arrive(frame, generation),
        this.pausedUntil - now + late,
      );
      return;
    }
    this.read(frame);
  }

  private read(frame: Frame): void {
    const now = this.sim.clock.now();
    if (!this.dead && now - this.lastReceived > this.sim.longestSilence) {
      this.sim.longestSilence = now - this.lastReceived;
    }
    this.lastReceived = now;
    const hb = this.heartbeat;
    if (hb.isSuspect) hb.heardWhileSuspect();
    if (this.dead) return;
    if (frame.type === 'ping') {
      this.send({ type: 'pong', seq: frame.seq, ts: frame.ts });
      hb.beat(now, true);
    } else {
      hb.pong(frame.seq, frame.ts, now);
    }
  }

  schedulePauses(): void {
    const m = this.sim.model;
    if (m.maxPauseMs <= 0) return;
    const next = (): void => {
      const gap = m.minPauseGapMs + -Math.log(1 - this.sim.random()) * m.pauseEveryMs;
      this.sim.clock.setTimeout(() => {
        const length = this.sim.random() * m.maxPauseMs;
        this.pausedUntil = this.sim.clock.now() + length;
        this.sim.clock.setTimeout(next, length);
      }, gap);
    };
    next();
  }
}

/** One simulated connection between two ends. */
class Connection {
  readonly clock = new FakeClock(0);
  readonly random: () => number;
  readonly a: End;
  readonly b: End;
  generation = 0;
  blackholed = false;
  blackholedAt = 0;
  falseDeads = 0;
  detections: number[] = [];
  /** Longest gap between two reads on a live link (ms). */
  longestSilence = 0;
  private deadGeneration = 0;

  constructor(
    readonly model: SimModel,
    readonly detector: DetectorFactory,
    seed: number,
  ) {
    this.random = mulberry32(seed);
    this.a = new End(this, 'a');
    this.b = new End(this, 'b');
    this.a.peer = this.b;
    this.b.peer = this.a;
    for (const end of [this.a, this.b]) end.wheel = new TimingWheel(end.clock());
    this.a.schedulePauses();
    this.b.schedulePauses();
    this.open();
  }

  /** (Re)opens the link: fresh heartbeats and detectors on both ends, as a reconnect does. */
  open(): void {
    this.generation++;
    const settings = heartbeatSettings(this.model.interval, this.model.timeout);
    for (const end of [this.a, this.b]) {
      end.heartbeat?.stop();
      end.dead = false;
      const now = this.clock.now();
      end.lastSent = now;
      end.lastReceived = now;
      end.lastDelivery = now;
      const clock = end.clock();
      end.heartbeat = new Heartbeat(end.wheel, clock, settings, this.detector(settings, now), {
        get lastSent() {
          return end.lastSent;
        },
        get lastReceived() {
          return end.lastReceived;
        },
        sendPing: (seq, ts) => end.send({ type: 'ping', seq, ts }),
        onLiveness: (event) => {
          if (event === 'dead') this.onDead(end);
        },
        onRtt: () => {},
      });
      end.heartbeat.start();
    }
  }

  private onDead(end: End): void {
    end.dead = true;
    if (this.blackholed) {
      this.detections.push(this.clock.now() - this.blackholedAt);
      return;
    }
    // One false alarm per link, whichever end raised it first.
    if (this.deadGeneration === this.generation) return;
    this.deadGeneration = this.generation;
    this.falseDeads++;
    // Both ends start over on a new link, as after a reconnect (a 0 ms one: only the
    // count of false alarms matters here).
    this.clock.setTimeout(() => this.open(), 0);
  }

  run(minutes: number): void {
    const until = minutes * 60_000;
    while (this.clock.now() < until) this.clock.advance(Math.min(60_000, until - this.clock.now()));
    // Blackhole at a random moment within one more interval, then wait for both verdicts.
    this.clock.advance(this.random() * this.model.interval);
    this.blackholed = true;
    this.blackholedAt = this.clock.now();
    this.clock.advance(this.model.timeout * 4 + this.model.maxPauseMs * 2);
    this.a.heartbeat.stop();
    this.b.heartbeat.stop();
  }
}

/**
 * Runs `connections` connections of `minutesEach` simulated minutes each with
 * `detector`, under `model`; deterministic for a given `seed`.
 */
export function simulate(
  model: SimModel,
  detector: DetectorFactory,
  connections: number,
  minutesEach: number,
  seed = 1,
): SimResult {
  let falseDeads = 0;
  const detections: number[] = [];
  const conns: Connection[] = [];
  // One connection at a time; only the figures are kept.
  for (let i = 0; i < connections; i++) {
    const c = new Connection(model, detector, seed * 100_003 + i);
    c.run(minutesEach);
    falseDeads += c.falseDeads;
    detections.push(...c.detections);
    conns.push(c);
  }
  const connectionMinutes = connections * minutesEach;
  return {
    connectionMinutes,
    falseDeads,
    falseDeadsPerHour: falseDeads / (connectionMinutes / 60),
    detections,
    longestLiveSilence: Math.max(...conns.map((c) => c.longestSilence)),
  };
}
