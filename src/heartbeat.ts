/**
 * When to ping and what counts as life, for one link. It talks to its link through the
 * narrow {@link HeartbeatHost} interface and owns three wheel timers, one per concern:
 * - ping: fires `interval` after the last byte we sent; sends a PING only if we have
 *   really sent nothing since (a busy link never pings);
 * - check: fires when the failure detector says the peer would turn SUSPECT or DEAD;
 *   it first reads the host's cheap last-received timestamp, so receiving costs one
 *   store per chunk instead of a timer reset per packet;
 * - probe: while SUSPECT, pings every quarter interval so a live peer clears the
 *   suspicion within a round trip and a dead one is confirmed on time.
 * On a server it also polices the peer's PINGs (PROTOCOL.md 7.6): a peer pinging faster
 * than its grant allows collects strikes, and the host closes it after `maxPingStrikes`.
 */

import type { FailureDetector } from './health/index.js';
import { RttEstimator } from './health/index.js';
import type { HeartbeatSettings } from './options.js';
import type { Clock, ClockTimer } from './time/clock.js';
import type { TimingWheel, WheelTimer } from './time/wheel.js';

/** What the heartbeat needs from its link. */
export interface HeartbeatHost {
  /** Monotonic ms when a byte was last handed to the socket. */
  readonly lastSent: number;
  /** Monotonic ms when a byte was last received. */
  readonly lastReceived: number;
  /** Writes a PING now, ahead of queued data. */
  sendPing(seq: number, timestampMicros: number): void;
  /** Liveness changed: nothing heard for suspectAfter / heard again / nothing for timeout. */
  onLiveness(event: 'suspect' | 'alive' | 'dead'): void;
  /** A new RTT sample was folded into the estimate. */
  onRtt(sampleMs: number): void;
  /** The peer reached `maxPingStrikes` PINGs sent faster than its grant allows. */
  onPingFlood?(strikes: number): void;
}

/** Per-link heartbeat counters (grpc-js channelz keeps the same). */
export interface HeartbeatStats {
  pingsSent: number;
  pongsReceived: number;
  pingsReceived: number;
  probes: number;
}

/** Longest RTT sample accepted; anything above is a clock or peer fault. */
const MAX_RTT_SAMPLE_MS = 10 * 60_000;

export class Heartbeat {
  readonly rtt = new RttEstimator();
  readonly stats: HeartbeatStats = { pingsSent: 0, pongsReceived: 0, pingsReceived: 0, probes: 0 };
  private settings: HeartbeatSettings;
  private readonly pingTimer: WheelTimer;
  private readonly checkTimer: WheelTimer;
  private readonly probeTimer: WheelTimer;
  /** A DEAD verdict waits one loop turn for unread bytes (see check()). */
  private confirm: ClockTimer | null = null;
  private seq = 0;
  private lastHeard = Number.NEGATIVE_INFINITY;
  private suspect = false;
  private running = false;
  /** Arrival of the previous PING/PONG, and whether other frames came since (phi samples). */
  private lastBeat = Number.NaN;
  private otherSinceBeat = false;
  /** Ping policing: credits left, their cap, ms per credit earned, last update, strikes. */
  private credits = 0;
  private creditCap = 0;
  private creditGap = 1;
  private creditAt = 0;
  private strikes = 0;
  /** After a retune, the old grant's more lenient allowance holds until then (PROTOCOL 7.5). */
  private lenientUntil = Number.NEGATIVE_INFINITY;
  private lenientGap = 1;
  private lenientCap = 0;

  constructor(
    private readonly wheel: TimingWheel,
    private readonly clock: Clock,
    settings: HeartbeatSettings,
    private readonly detector: FailureDetector,
    private readonly host: HeartbeatHost,
    /** Police the peer's PINGs: strikes before onPingFlood; 0 disables (clients). */
    private readonly maxPingStrikes = 0,
  ) {
    this.settings = settings;
    this.pingTimer = wheel.timer(() => this.maybePing());
    this.checkTimer = wheel.timer(() => this.check());
    this.probeTimer = wheel.timer(() => this.probe());
  }

  /** The settings in force. */
  get current(): HeartbeatSettings {
    return this.settings;
  }

  /** True while the peer is suspected. */
  get isSuspect(): boolean {
    return this.suspect;
  }

  /** Strikes the peer has collected for pinging too fast (always 0 when not policing). */
  get pingStrikes(): number {
    return this.strikes;
  }

  /** (Re)starts from a healthy state; always cancels first so timers never leak. */
  start(): void {
    this.stop();
    this.running = true;
    const now = this.clock.now();
    this.detector.reset(now);
    this.lastHeard = now;
    this.resetPingPolicy(now);
    this.armPing(now);
    this.armCheck(now);
  }

  /** Cancels every timer. */
  stop(): void {
    this.running = false;
    this.suspect = false;
    this.cancelConfirm();
    this.pingTimer.cancel();
    this.checkTimer.cancel();
    this.probeTimer.cancel();
  }

  /** Applies a new interval/timeout (granted by the server or retuned in-band). */
  retune(settings: HeartbeatSettings): void {
    const previous = this.settings;
    this.settings = settings;
    this.detector.configure(settings);
    if (!this.running) return;
    const now = this.clock.now();
    // The peer pings on the old grant until SETTINGS reaches it, which must not count
    // against it: a full allowance, judged by the more lenient grant for one old timeout.
    const old = { gap: this.creditGap, cap: this.creditCap, timeout: previous.timeout };
    this.resetPingPolicy(now);
    this.lenientUntil = now + old.timeout;
    this.lenientGap = old.gap;
    this.lenientCap = old.cap;
    this.armPing(now);
    // Re-evaluate at once: a longer budget may clear a suspicion, a shorter one confirm it.
    this.check();
  }

  /** Called by the host on received bytes while suspect, to clear suspicion at once. */
  heardWhileSuspect(): void {
    if (this.suspect && this.running) this.check();
  }

  /** A PING (answered by the host) or PONG arrived: feeds adaptive detectors. */
  beat(now: number, isPing: boolean): void {
    if (isPing) {
      this.stats.pingsReceived++;
      if (this.maxPingStrikes > 0) this.policePing(now);
    }
    // Gaps while suspect are probe replies a quarter interval apart, not heartbeat gaps.
    if (!this.suspect && !this.otherSinceBeat && !Number.isNaN(this.lastBeat)) {
      this.detector.sample(now - this.lastBeat);
    }
    this.lastBeat = now;
    this.otherSinceBeat = false;
  }

  /** A non-heartbeat frame arrived (its gap to the next beat is not a heartbeat sample). */
  other(): void {
    this.otherSinceBeat = true;
  }

  /** A PONG echoing one of our PINGs. */
  pong(timestampMicros: number): void {
    this.stats.pongsReceived++;
    const sample = this.clock.now() - timestampMicros / 1000;
    if (!(sample >= 0 && sample <= MAX_RTT_SAMPLE_MS)) return;
    this.rtt.update(sample);
    this.host.onRtt(sample);
  }

  /**
   * Credits for the peer's PINGs. A compliant peer sends at most one PING per interval,
   * or one per quarter interval while it probes; credits come back twice as fast as
   * that, so network jitter between two probes costs nothing. The cap covers every PING a
   * compliant peer can send in one timeout (a regular one, the probes, and one spare):
   * when a stalled path heals it may deliver all of them at once.
   */
  private resetPingPolicy(now: number): void {
    const probeGap = Math.max(this.wheel.tickMs, this.settings.interval / 4);
    this.creditGap = probeGap / 2;
    this.creditCap = Math.ceil(this.settings.timeout / probeGap) + 2;
    this.credits = this.creditCap;
    this.creditAt = now;
    this.strikes = 0;
    this.lenientUntil = Number.NEGATIVE_INFINITY;
  }

  /** Spends a credit for a PING received at `now`, or counts a strike when none is left. */
  private policePing(now: number): void {
    const lenient = now < this.lenientUntil;
    const gap = lenient ? Math.min(this.creditGap, this.lenientGap) : this.creditGap;
    const cap = lenient ? Math.max(this.creditCap, this.lenientCap) : this.creditCap;
    if (now > this.creditAt) {
      this.credits = Math.min(cap, this.credits + (now - this.creditAt) / gap);
      this.creditAt = now;
    }
    this.credits = Math.min(this.credits, cap);
    // Healthy spacing since the last strike has earned everything back: forgive.
    if (this.credits >= cap) this.strikes = 0;
    if (this.credits >= 1) {
      this.credits -= 1;
      return;
    }
    this.strikes++;
    // Reported once: the host closes the link.
    if (this.strikes === this.maxPingStrikes) this.host.onPingFlood?.(this.strikes);
  }

  private sendPing(): void {
    this.seq = (this.seq + 1) >>> 0;
    this.stats.pingsSent++;
    this.host.sendPing(this.seq, Math.round(this.clock.now() * 1000));
  }

  private armPing(now: number): void {
    this.pingTimer.arm(Math.max(0, this.host.lastSent + this.settings.interval - now));
  }

  private maybePing(): void {
    if (!this.running) return;
    const now = this.clock.now();
    if (now - this.host.lastSent >= this.settings.interval) this.sendPing();
    this.armPing(this.clock.now());
  }

  private armCheck(now: number): void {
    const at = this.suspect ? this.detector.deadAt() : this.detector.suspectAt();
    this.checkTimer.arm(Math.max(0, at - now));
  }

  private check(): void {
    if (!this.running) return;
    const received = this.host.lastReceived;
    if (received > this.lastHeard) {
      this.lastHeard = received;
      this.detector.heard(received);
    }
    const now = this.clock.now();
    if (now >= this.detector.deadAt()) {
      // After an event-loop stall timers run before sockets are read, so bytes that
      // arrived during the stall are still unread here: look once more after the I/O
      // phase (a zero-delay timer runs on the next loop turn) before declaring death.
      if (this.confirm === null) {
        this.confirm = this.clock.setTimeout(() => this.check(), 0);
        return;
      }
      this.stop();
      this.host.onLiveness('dead');
      return;
    }
    this.cancelConfirm();
    if (now >= this.detector.suspectAt()) {
      if (!this.suspect) {
        this.suspect = true;
        this.host.onLiveness('suspect');
        this.probe();
      }
    } else if (this.suspect) {
      this.suspect = false;
      this.probeTimer.cancel();
      this.host.onLiveness('alive');
      this.armPing(now);
    }
    this.armCheck(now);
  }

  private cancelConfirm(): void {
    if (this.confirm === null) return;
    this.clock.clearTimeout(this.confirm);
    this.confirm = null;
  }

  private probe(): void {
    if (!this.running || !this.suspect) return;
    this.stats.probes++;
    this.sendPing();
    this.probeTimer.arm(Math.max(this.wheel.tickMs, this.settings.interval / 4));
  }
}
