/**
 * When to ping and what counts as life, for one link. It talks to its link through the
 * narrow {@link HeartbeatHost} interface and owns its wheel timers (reads its clock, never
 * schedules on it):
 * - beat: fires at the earlier of two deadlines and acts on whichever is due (both are
 *   "if due, act" checks, so running one early costs a comparison, and one timer instead
 *   of two halves the wheel's work per link and interval):
 * - ping: `interval` after the last byte we sent; sends a PING only if we have
 *   really sent nothing since (a busy link never pings). A server waits
 *   {@link SERVER_PING_LAG} intervals instead, so that on an idle link the client's PING
 *   normally comes first and its PONG is the server's heartbeat: one exchange per
 *   interval, not one from each end whenever the two timers race (PROTOCOL.md 7.2). The
 *   server then samples RTT by sending a PING in the same write as a PONG, when it has
 *   sent none for {@link RTT_REFRESH_INTERVALS} intervals (see {@link Heartbeat.rttDue});
 * - check: when the failure detector says the peer would turn SUSPECT or DEAD;
 *   it first reads the host's cheap last-received timestamp, so receiving costs one
 *   store per chunk instead of a timer reset per packet;
 * - probe: while SUSPECT, pings every quarter interval so a live peer clears the
 *   suspicion within a round trip and a dead one is confirmed on time;
 * - confirm: a DEAD verdict looks once more on the clock's next turn, once unread bytes
 *   have been read (the wheel's next-turn arming, see judge()).
 * On a server it also polices the peer's PINGs (PROTOCOL.md 7.6): a peer pinging faster
 * than its grant allows collects strikes, and the host closes it after `maxPingStrikes`.
 * A PONG counts only when it answers a PING of ours still outstanding (PROTOCOL.md 7.3),
 * and RTT is timed on our own clock: a peer cannot forge a sample or set the rate of
 * `onRtt` calls, which is at most one per PING we send.
 *
 * The timers call static handlers with the heartbeat instead of holding a closure each,
 * and the probe timer exists only once the peer was first suspected (one heartbeat per
 * connection: see memory per connection in src/connection.ts).
 */

import type { FailureDetector } from './health/index.js';
import { RttEstimator } from './health/index.js';
import type { HeartbeatSettings } from './options.js';
import type { Clock } from './time/clock.js';
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
  /** The settings changed (retune). */
  onRetune?(settings: HeartbeatSettings): void;
}

/**
 * Which end of the link this heartbeat runs on. The client leads the idle exchange; the
 * server pings later, and samples RTT with PINGs it adds to its PONGs (PROTOCOL.md 7.2).
 */
export type HeartbeatRole = 'client' | 'server';

/**
 * A server pings after this many intervals without sending instead of one: later than
 * the client's PING normally arrives (a quarter interval of slack, 250 ms at the default
 * shortest interval, for wheel ticks, event-loop delay and the trip), yet below the 1.5
 * intervals after which the client would suspect it. Detection is unchanged: it counts
 * from the last byte heard.
 */
export const SERVER_PING_LAG = 1.25;

/**
 * A server that has sent no PING for this many intervals adds one to the next PONG it
 * writes (same write, no extra syscall), so its RTT estimate stays fresh on a link where
 * the client leads: at most one extra PONG from the client per this many exchanges.
 */
export const RTT_REFRESH_INTERVALS = 8;

/** Per-link heartbeat counters (grpc-js channelz keeps the same). */
export interface HeartbeatStats {
  pingsSent: number;
  pongsReceived: number;
  pingsReceived: number;
  probes: number;
}

/** Longest RTT sample accepted; anything above is a clock or peer fault. */
const MAX_RTT_SAMPLE_MS = 10 * 60_000;

// No `implements` clause: its members are internal, stripped from the published
// declarations, where the clause would fail to compile; their uses check the shape.
export class Heartbeat {
  readonly rtt = new RttEstimator();
  /** Counters as plain fields, not a stats object (memory per connection: src/connection.ts). */
  private pingsSent = 0;
  private pongsReceived = 0;
  private pingsReceived = 0;
  private probes = 0;
  private settings: HeartbeatSettings;
  /** Due at the earlier of the next ping and the next liveness check. */
  private readonly beatTimer: WheelTimer;
  /** Created when the peer is first suspected; most links never are. */
  private probeTimer: WheelTimer | null = null;
  /** Intervals of silence before this end pings (1, or SERVER_PING_LAG on a server). */
  private readonly lag: number;
  /** When we last sent a PING (ms): the RTT refresh, and the send time its PONG is timed from. */
  private lastPingAt = Number.NEGATIVE_INFINITY;
  /**
   * Seq of the last PING a PONG answered: the PINGs after it, up to `seq`, are the
   * outstanding ones (seqs count up by one per PING, so two numbers describe the set).
   */
  private answered = 0;
  /**
   * A DEAD verdict waits one loop turn for unread bytes (see judge()): non-null while it
   * does. A new timer each time: it is rare, and the field is the state.
   */
  private confirm: WheelTimer | null = null;
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
  /** The host stopped reading on purpose (see {@link pauseInput}): silence is not judged. */
  private inputPaused = false;
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
    /** Which end this is: a server lags the client's pings (PROTOCOL.md 7.2). */
    readonly role: HeartbeatRole = 'client',
  ) {
    this.settings = settings;
    this.lag = role === 'server' ? SERVER_PING_LAG : 1;
    this.beatTimer = wheel.timerFor(this, Heartbeat.beatDue);
  }

  /** The beat timer's handler (static: shared by every heartbeat, no closure each). */
  private static beatDue(hb: Heartbeat): void {
    hb.beatDue();
  }

  /** The probe timer's handler. */
  private static probeDue(hb: Heartbeat): void {
    hb.probe();
  }

  /** The DEAD confirmation's handler: the loop turned, unread bytes have been read. */
  private static confirmDue(hb: Heartbeat): void {
    hb.check();
  }

  /** This link's heartbeat counters (a snapshot). */
  get stats(): HeartbeatStats {
    return {
      pingsSent: this.pingsSent,
      pongsReceived: this.pongsReceived,
      pingsReceived: this.pingsReceived,
      probes: this.probes,
    };
  }

  /** The settings in force. */
  get current(): HeartbeatSettings {
    return this.settings;
  }

  /** @internal Deadline of the beat timer in clock ms, -1 when unarmed (tests). */
  get nextBeatAt(): number {
    return this.beatTimer.deadline;
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
    this.arm(now);
  }

  /** Cancels every timer. */
  stop(): void {
    this.running = false;
    this.suspect = false;
    this.cancelConfirm();
    this.beatTimer.cancel();
    this.probeTimer?.cancel();
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
    // Re-evaluate at once (which re-arms for the new interval): a longer budget may clear a suspicion, a shorter one confirm it.
    this.check();
    this.host.onRetune?.(settings);
  }

  /**
   * The host stopped (true) or resumed (false) reading its socket on purpose (its
   * application is behind). The silence that follows is ours, not the peer's: while
   * paused the peer counts as heard at every check, and PINGs still go out so that the
   * peer hears us. On resume, PONGs to PINGs sent meanwhile and the gap to the next beat
   * would time our pause rather than the path: they give no RTT or detector sample.
   */
  pauseInput(paused: boolean): void {
    if (paused === this.inputPaused) return;
    // Judged as paused (heard now) on both edges: a pause clears a suspicion at once, and
    // after a resume the silence counts from the resume.
    if (paused) this.inputPaused = true;
    this.check();
    if (paused) return;
    this.inputPaused = false;
    this.answered = this.seq;
    this.lastBeat = Number.NaN;
  }

  /** Called by the host on received bytes while suspect, to clear suspicion at once. */
  heardWhileSuspect(): void {
    if (this.suspect && this.running) this.check();
  }

  /**
   * A PING arrived (the host answers it), or a PONG answered ours (from {@link pong}):
   * polices PINGs and feeds adaptive detectors.
   */
  beat(now: number, isPing: boolean): void {
    if (isPing) {
      this.pingsReceived++;
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

  /**
   * Whether the PONG being written should carry a PING of ours (sent with {@link ping}
   * in the same write): on a server that has sent no PING for RTT_REFRESH_INTERVALS
   * intervals, or none yet, since the client leads the idle exchange and the server
   * would otherwise never measure the RTT. `now` is the PING's arrival (the link has
   * just read the clock for it).
   */
  rttDue(now: number): boolean {
    return (
      this.role === 'server' &&
      this.running &&
      now - this.lastPingAt >= RTT_REFRESH_INTERVALS * this.settings.interval
    );
  }

  /** Sends a PING now (the RTT refresh riding with a PONG). */
  ping(): void {
    if (this.running) this.sendPing();
  }

  /**
   * A PONG arrived at `now` (ms). It counts only when it answers a PING of ours that no
   * PONG has answered yet (PROTOCOL.md 7.3); anything else, a replayed, duplicated or
   * unsolicited PONG, is ignored here at no cost beyond its decoding (the host has
   * already counted its bytes as life). The answer to our latest PING gives an RTT
   * sample, timed from when we sent it, never from the echoed timestamp, which the peer
   * controls; the echo must still match ours, so that the peer cannot answer a PING it has
   * not read yet. Answers to earlier PINGs (a stalled path delivering probes late) feed
   * the failure detector but give no sample: we keep only the latest send time.
   * Returns whether the PONG answered an outstanding PING.
   */
  pong(seq: number, timestampMicros: number, now: number): boolean {
    const back = (this.seq - seq) >>> 0;
    if (back >= (this.seq - this.answered) >>> 0) return false;
    const sentAt = this.lastPingAt;
    if (back === 0 && timestampMicros !== Math.round(sentAt * 1000)) return false;
    this.answered = seq;
    this.pongsReceived++;
    this.beat(now, false);
    if (back !== 0) return true;
    const sample = now - sentAt;
    if (sample >= 0 && sample <= MAX_RTT_SAMPLE_MS) {
      this.rtt.update(sample);
      this.host.onRtt(sample);
    }
    return true;
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
    this.pingsSent++;
    const now = this.clock.now();
    this.lastPingAt = now;
    this.host.sendPing(this.seq, Math.round(now * 1000));
  }

  /**
   * Arms the beat timer for the earlier of the next ping (`interval * lag` after the last
   * byte sent) and the next check (SUSPECT, or DEAD while suspect). While a DEAD verdict
   * waits for its confirmation (see check()), only the ping counts: the confirmation
   * decides.
   */
  private arm(now: number): void {
    // A host callback run by check() may have stopped us (e.g. closed on 'suspect').
    if (!this.running) return;
    const pingAt = this.host.lastSent + this.settings.interval * this.lag;
    const checkAt =
      this.confirm !== null
        ? Number.POSITIVE_INFINITY
        : this.suspect
          ? this.detector.deadAt()
          : this.detector.suspectAt();
    this.beatTimer.arm(Math.max(0, Math.min(pingAt, checkAt) - now));
  }

  /** The beat timer fired: check liveness, then ping if nothing was sent for long enough. */
  private beatDue(): void {
    if (!this.running) return;
    // One clock reading and one re-arm per firing: this runs once per interval per link.
    const now = this.clock.now();
    // A pending DEAD confirmation is the confirmation timer's to decide, after the I/O phase.
    if (this.confirm === null) {
      this.judge(now);
      if (!this.running) return;
    }
    if (now - this.host.lastSent >= this.settings.interval * this.lag) this.sendPing();
    this.arm(now);
  }

  /** Judges liveness now and re-arms the beat timer. */
  private check(): void {
    if (!this.running) return;
    const now = this.clock.now();
    if (this.judge(now)) this.arm(now);
  }

  /**
   * Folds the host's last-received time into the detector and acts on the verdict at
   * `now`: SUSPECT, ALIVE again, or DEAD (after one confirmation, see below). False when
   * the beat timer is not to be re-armed (stopped, or a DEAD confirmation is pending).
   */
  private judge(now: number): boolean {
    const received = this.inputPaused ? now : this.host.lastReceived;
    if (received > this.lastHeard) {
      this.lastHeard = received;
      this.detector.heard(received);
    }
    if (now >= this.detector.deadAt()) {
      // After an event-loop stall timers run before sockets are read, so bytes that
      // arrived during the stall are still unread here: look once more after the I/O
      // phase (on the clock's next turn, not a wheel tick later) before declaring death.
      if (this.confirm === null) {
        this.confirm = this.wheel.timerFor(this, Heartbeat.confirmDue);
        this.confirm.armNextTurn();
        return false;
      }
      this.stop();
      this.host.onLiveness('dead');
      return false;
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
      this.probeTimer?.cancel();
      this.host.onLiveness('alive');
    }
    return true;
  }

  private cancelConfirm(): void {
    if (this.confirm === null) return;
    this.confirm.cancel();
    this.confirm = null;
  }

  private probe(): void {
    if (!this.running || !this.suspect) return;
    this.probes++;
    this.sendPing();
    this.probeTimer ??= this.wheel.timerFor(this, Heartbeat.probeDue);
    this.probeTimer.arm(Math.max(this.wheel.tickMs, this.settings.interval / 4));
  }
}
