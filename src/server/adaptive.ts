/**
 * The adaptive heartbeat: a server-wide budget of heartbeats per second. Each connected
 * link costs about one PING/PONG exchange per interval while it is idle (PROTOCOL.md 7.2),
 * so n links at interval i cost n / i a second. When that would exceed
 * `maxHeartbeatsPerSecond`, every interval is stretched by one factor (within
 * [minInterval, maxInterval], the timeout in proportion), connected clients are told with
 * SETTINGS, and new connections are granted the stretched values; as links go away the
 * factor shrinks back.
 *
 * Hysteresis, so that the factor does not flap and a retune (one SETTINGS per link) stays
 * rare: the factor grows only once the budget is exceeded and shrinks only once the cost
 * falls below half of it, and either way it is set so that the cost lands at 80% of the
 * budget: 25% more links, or 37.5% fewer, before the next retune. Changes are evaluated at
 * most once a second, and a retune writes its SETTINGS in batches across event-loop turns.
 *
 * A per-connection policy hook (`heartbeatPolicy`) says what one connection should get
 * while the server has capacity (shorter while it matters, longer while it idles); the
 * budget then stretches that. Without a hook every connection gets its grant.
 */

import { HeartlineError } from '../errors.js';
import {
  functionOption,
  type HeartbeatSettings,
  heartbeatSettings,
  positiveOption,
} from '../options.js';
import type { TimingWheel, WheelTimer } from '../time/wheel.js';
import { type GrantPolicy, grantHeartbeat } from './grant.js';
import type { ServerConnection } from './server-connection.js';

/** A heartbeat interval and timeout (ms). */
export interface HeartbeatGrant {
  interval: number;
  timeout: number;
}

/**
 * Decides the heartbeat of one connection before the budget stretches it. `base` is what
 * the server grants it (the client's request within [minInterval, maxInterval], or the
 * server's interval). Return other values to change it (they are bounded like a client's
 * request), or null/undefined to keep `base`. Called at the handshake (the connection has
 * its clientId, identity and remote address, and 'connection' has not been emitted yet) and
 * again whenever the application calls `server.refreshHeartbeat(conn)`.
 */
export type HeartbeatPolicy = (
  conn: ServerConnection,
  base: Readonly<HeartbeatGrant>,
) => HeartbeatGrant | null | undefined;

/** Options of the adaptive heartbeat (part of `ServerOptions`). */
export interface AdaptiveOptions {
  /**
   * Heartbeat budget of the server: at most this many PING/PONG exchanges a second with
   * every link idle (connected links / interval). Above it, intervals are stretched.
   * `Infinity` turns stretching off.
   * @default 10000
   */
  maxHeartbeatsPerSecond?: number;
  /**
   * The interval and timeout of one connection while the server has capacity.
   * @default every connection gets its grant unchanged
   */
  heartbeatPolicy?: HeartbeatPolicy;
}

/**
 * Adaptive defaults and why:
 * - maxHeartbeatsPerSecond 10,000: at the default interval of 10 s, 20,000 connections
 *   make about 2,000 a second, far inside the budget; asking for the 1 s floor they would
 *   make 20,000 a second, and the server then grants 2.5 s instead (80% of the budget),
 *   keeping heartbeats to a small share of one core. docs/benchmarks.md ("The machine")
 *   shows it on a machine whose open-file limit caps a process near 20,000 connections.
 */
export const ADAPTIVE_DEFAULTS = Object.freeze({
  maxHeartbeatsPerSecond: 10_000,
  /** A retune aims at this share of the budget. */
  target: 0.8,
  /** The factor shrinks once the cost falls below this share of the budget. */
  shrinkBelow: 0.5,
  /** Changes are evaluated at most this often (ms). */
  evaluateDelay: 1000,
  /** SETTINGS written per event-loop turn during a retune. */
  batch: 1024,
});

/** Resolved adaptive settings. */
export interface ResolvedAdaptive {
  readonly maxHeartbeatsPerSecond: number;
  readonly heartbeatPolicy: HeartbeatPolicy | null;
}

/** Validates the adaptive options. */
export function resolveAdaptive(o: AdaptiveOptions): ResolvedAdaptive {
  return Object.freeze({
    maxHeartbeatsPerSecond: positiveOption(
      'maxHeartbeatsPerSecond',
      o.maxHeartbeatsPerSecond,
      ADAPTIVE_DEFAULTS.maxHeartbeatsPerSecond,
    ),
    heartbeatPolicy: functionOption('heartbeatPolicy', o.heartbeatPolicy),
  });
}

/** The server's heartbeat cost and stretch (`server.heartbeatLoad`). */
export interface HeartbeatLoad {
  /** Links counted (connected sessions). */
  connections: number;
  /** Heartbeats a second the links would cost unstretched, with every link idle. */
  demand: number;
  /** Heartbeats a second at the intervals in force, with every link idle. */
  rate: number;
  /** The stretch factor in force (1 = none). */
  factor: number;
  /** maxHeartbeatsPerSecond. */
  budget: number;
  /** The interval a client without a preference is granted now (ms). */
  interval: number;
}

/** The server's 'retune' event: the stretch factor changed. */
export interface RetuneEvent {
  /** Previous factor. */
  from: number;
  /** New factor. */
  to: number;
  /** The interval a client without a preference is granted from now on (ms). */
  interval: number;
  /** Links counted. */
  connections: number;
  /** Unstretched heartbeats a second. */
  demand: number;
  budget: number;
}

/**
 * The next stretch factor for an unstretched cost of `demand` heartbeats a second, with
 * hysteresis: unchanged while `demand / factor` stays within [shrinkBelow, 1] x budget.
 */
export function nextFactor(demand: number, factor: number, budget: number): number {
  if (!Number.isFinite(budget)) return 1;
  const { target, shrinkBelow } = ADAPTIVE_DEFAULTS;
  const rate = demand / factor;
  if (rate > budget) return demand / (budget * target);
  if (factor > 1 && rate < budget * shrinkBelow) return Math.max(1, demand / (budget * target));
  return factor;
}

/** Stretches a grant by `factor`, keeping its timeout ratio, within the policy's bounds. */
export function stretchGrant(
  base: Readonly<HeartbeatGrant>,
  factor: number,
  policy: GrantPolicy,
): HeartbeatGrant {
  if (factor <= 1) return { interval: base.interval, timeout: base.timeout };
  const interval = Math.min(
    Math.max(policy.maxInterval, base.interval),
    Math.ceil(base.interval * factor),
  );
  // Never past maxTimeout (>= 2 x maxInterval >= 2 x interval, so still a valid grant).
  const timeout = Math.min(
    Math.max(policy.maxTimeout, base.timeout),
    Math.round((base.timeout * interval) / base.interval),
  );
  return { interval, timeout };
}

interface Tracked {
  /** What the server granted before the hook (the client's request, bounded). */
  granted: HeartbeatGrant;
  /** What the hook made of it: the connection's unstretched heartbeat. */
  base: HeartbeatGrant;
}

const same = (a: HeartbeatSettings | null, b: HeartbeatSettings): boolean =>
  a !== null && a.interval === b.interval && a.timeout === b.timeout;

/** The budget, the stretch factor and the links it applies to, for one server. */
export class AdaptiveHeartbeat {
  private factorNow = 1;
  private readonly tracked = new Map<ServerConnection, Tracked>();
  private readonly evaluateTimer: WheelTimer;
  private generation = 0;
  private pending: NodeJS.Immediate | null = null;
  private stopped = false;
  private lastSettings: HeartbeatSettings | null = null;
  private lastGrant: HeartbeatGrant | null = null;

  constructor(
    private readonly policy: GrantPolicy,
    private readonly config: ResolvedAdaptive,
    wheel: TimingWheel,
    private readonly onRetune: (event: RetuneEvent) => void,
  ) {
    this.evaluateTimer = wheel.timer(() => this.evaluate());
  }

  /** The stretch factor in force. */
  get factor(): number {
    return this.factorNow;
  }

  /** The cost, the factor and the budget now. */
  get load(): HeartbeatLoad {
    let demand = 0;
    let rate = 0;
    for (const [conn, t] of this.tracked) {
      demand += 1000 / t.base.interval;
      rate += 1000 / (conn.settings?.interval ?? t.base.interval);
    }
    return {
      connections: this.tracked.size,
      demand,
      rate,
      factor: this.factorNow,
      budget: this.config.maxHeartbeatsPerSecond,
      interval: this.defaultInterval(),
    };
  }

  /**
   * The settings to grant `conn` at its handshake: `request` through the policy hook, then
   * stretched. From now on the connection counts until its link is lost.
   */
  settingsFor(conn: ServerConnection, request: HeartbeatGrant): HeartbeatSettings {
    // Most clients are granted the same values: they share one (never mutated) object.
    const last = this.lastGrant;
    const reuse =
      last !== null && last.interval === request.interval && last.timeout === request.timeout;
    const granted = reuse ? last : request;
    this.lastGrant = granted;
    const base = this.applyPolicy(conn, granted);
    this.tracked.set(conn, { granted, base });
    this.changed();
    return this.settingsOf(base);
  }

  /**
   * Asks the policy hook again for one connected link and retunes it (SETTINGS) if the
   * result differs. Returns false when the connection has no link.
   */
  refresh(conn: ServerConnection): boolean {
    const t = this.tracked.get(conn);
    if (!t) return false;
    t.base = this.applyPolicy(conn, t.granted);
    const settings = this.settingsOf(t.base);
    if (!same(conn.settings, settings)) conn.retune(settings);
    this.changed();
    return true;
  }

  /** Takes a decision now (the server does it at most once a second on its own). */
  evaluate(): void {
    this.evaluateTimer.cancel();
    if (this.stopped) return;
    let demand = 0;
    for (const t of this.tracked.values()) demand += 1000 / t.base.interval;
    const from = this.factorNow;
    const to = nextFactor(demand, from, this.config.maxHeartbeatsPerSecond);
    if (to === from) return;
    this.factorNow = to;
    this.onRetune({
      from,
      to,
      interval: this.defaultInterval(),
      connections: this.tracked.size,
      demand,
      budget: this.config.maxHeartbeatsPerSecond,
    });
    this.retuneAll();
  }

  /** Stops the timer and any retune in progress, for good (the server is closing). */
  stop(): void {
    this.stopped = true;
    this.evaluateTimer.cancel();
    this.generation++;
    if (this.pending) clearImmediate(this.pending);
    this.pending = null;
  }

  private defaultInterval(): number {
    const p = this.policy;
    return stretchGrant({ interval: p.interval, timeout: p.timeout }, this.factorNow, p).interval;
  }

  private settingsOf(base: HeartbeatGrant): HeartbeatSettings {
    const s = stretchGrant(base, this.factorNow, this.policy);
    // Most links get the same (frozen) settings: they share one object, not one each.
    const last = this.lastSettings;
    if (last !== null && last.interval === s.interval && last.timeout === s.timeout) return last;
    this.lastSettings = heartbeatSettings(s.interval, s.timeout);
    return this.lastSettings;
  }

  private applyPolicy(conn: ServerConnection, granted: HeartbeatGrant): HeartbeatGrant {
    const hook = this.config.heartbeatPolicy;
    if (!hook) return granted;
    const r = hook(conn, { interval: granted.interval, timeout: granted.timeout });
    if (r === null || r === undefined) return granted;
    const ok = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0;
    if (typeof r !== 'object' || !ok(r.interval) || !ok(r.timeout)) {
      throw new HeartlineError(
        'HL_ERR_INVALID_ARGUMENT',
        `heartbeatPolicy must return positive finite { interval, timeout }, got ${JSON.stringify(r)}`,
      );
    }
    return grantHeartbeat(this.policy, Math.round(r.interval), Math.round(r.timeout));
  }

  /**
   * `conn` stops counting: its link was lost (a resume counts it again) or it closed. The
   * server calls this directly (its connection host), not through a listener each.
   */
  forget(conn: ServerConnection): void {
    if (this.tracked.delete(conn)) this.changed();
  }

  /** The cost changed: decide within evaluateDelay (one decision for many changes). */
  private changed(): void {
    if (this.stopped || !Number.isFinite(this.config.maxHeartbeatsPerSecond)) return;
    if (!this.evaluateTimer.armed) this.evaluateTimer.arm(ADAPTIVE_DEFAULTS.evaluateDelay);
  }

  /** Retunes every counted link to the factor in force, a batch per event-loop turn. */
  private retuneAll(): void {
    const generation = ++this.generation;
    if (this.pending) clearImmediate(this.pending);
    const queue = [...this.tracked.keys()];
    let next = 0;
    const step = () => {
      this.pending = null;
      if (generation !== this.generation) return;
      const end = Math.min(queue.length, next + ADAPTIVE_DEFAULTS.batch);
      for (; next < end; next++) {
        const conn = queue[next]!;
        const t = this.tracked.get(conn);
        if (!t) continue;
        const settings = this.settingsOf(t.base);
        if (!same(conn.settings, settings)) conn.retune(settings);
      }
      if (next < queue.length) this.pending = setImmediate(step);
    };
    step();
  }
}
