/**
 * Prometheus metrics, via prom-client, on a registry of the caller's (never the global
 * one). Rare events (closes, suspicions, resumes) increment counters as they happen; RTT
 * samples feed a histogram; everything that is a level or a running total (connections
 * by state, heartbeat and traffic counters, replay bytes, load level, event-loop delay)
 * is read from the connections' own counters when Prometheus scrapes, so nothing is
 * updated per heartbeat or per message.
 *
 * docs/observability.md lists every metric with its type, labels and meaning.
 */

import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ClientConnection } from '../client/client.js';
import type { Connection, ConnectionEvents } from '../connection.js';
import { InvalidArgumentError } from '../errors.js';
import type { HealthState } from '../health/index.js';
import type { Server, ServerEvents } from '../server/server.js';
import { WORKERS_DEFAULTS } from '../server/workers/mode.js';
import { type Clock, systemClock } from '../time/clock.js';
import { loadProm } from './deps.js';
import { eventLoop } from './event-loop.js';
import { countStates, loadLevelOf } from './snapshot.js';
import { Listeners, listenAll, watchServer } from './watch.js';

/** Every metric name starts with this. */
export const METRIC_PREFIX = 'heartline_';

/** RTT histogram buckets (seconds): loopback (sub-millisecond) to intercontinental and worse. */
export const RTT_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
]);

/**
 * Detection-latency buckets (seconds): from a test's sub-second timeout to the default
 * 30 s and the longest intervals a server may grant.
 */
export const DETECTION_BUCKETS: readonly number[] = Object.freeze([
  0.5, 1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300,
]);

/**
 * Write-back buckets (seconds): a local Redis takes milliseconds per session; a slow or
 * flapping one, up to the store timeout and a few retries.
 */
export const WRITEBACK_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60,
]);

/** States reported by heartline_connections ('closed' connections are gone; see heartline_closes_total). */
const GAUGE_STATES: readonly HealthState[] = [
  'connecting',
  'healthy',
  'suspect',
  'dead',
  'disconnected',
];

/** Running totals of one connection, or of every retired one. */
interface Totals {
  pingsSent: number;
  pongsReceived: number;
  pingsReceived: number;
  probes: number;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
}

function zeroTotals(): Totals {
  return {
    pingsSent: 0,
    pongsReceived: 0,
    pingsReceived: 0,
    probes: 0,
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
  };
}

function readTotals(conn: Connection): Totals {
  const hb = conn.heartbeatStats;
  const traffic = conn.traffic;
  const stats = conn.stats;
  return {
    pingsSent: hb.pingsSent,
    pongsReceived: hb.pongsReceived,
    pingsReceived: hb.pingsReceived,
    probes: hb.probes,
    messagesIn: stats.messagesIn,
    messagesOut: stats.messagesOut,
    bytesIn: traffic.bytesIn,
    bytesOut: traffic.bytesOut,
  };
}

/**
 * Keeps `into` at the per-field maximum of itself and `from`. A connection's live totals
 * can dip for a moment (a link's bytes fold into the connection's only once the link has
 * closed), and a counter must never go down.
 */
function raise(into: Totals, from: Totals): void {
  for (const key of Object.keys(into) as Array<keyof Totals>) {
    if (from[key] > into[key]) into[key] = from[key];
  }
}

/** Adds `from - base` to `into`. */
function addSince(into: Totals, from: Totals, base: Totals): void {
  for (const key of Object.keys(into) as Array<keyof Totals>) into[key] += from[key] - base[key];
}

type Side = 'server' | 'client';

interface Tracked {
  refs: number;
  side: Side;
  /** The clock of the server or client, for detection latency. */
  clock: Clock;
  /** Highest totals seen, so that the counters built from them only rise. */
  high: Totals;
  /** What an earlier tracking of this connection already counted (zero the first time). */
  base: Totals;
}

/** What a scrape reads once and every collect() shares. */
interface Aggregate {
  states: Record<HealthState, number>;
  totals: Totals;
  replayBytes: number;
  replayMessages: number;
  loadLevel: number;
}

const registries = new WeakMap<Registry, HeartlineMetrics>();

/**
 * The heartline metrics of one registry, fed by any number of servers and clients.
 * Get it with {@link metricsFor}; bind what it should observe with `bindServer` and
 * `bindClient`. Binding the same server or client twice counts it once.
 */
export class HeartlineMetrics {
  readonly registry: Registry;
  private readonly conns = new Map<Connection, Tracked>();
  private readonly servers = new Map<Server, { refs: number; unwatch: () => void }>();
  private readonly retired = zeroTotals();
  private readonly counted = new WeakMap<Connection, Totals>();
  private bindings = 0;
  private readonly listeners: Record<Side, Listeners<ConnectionEvents, Connection>>;
  private cached: Aggregate | null = null;

  private readonly closes: Counter<'reason'>;
  private readonly disconnects: Counter<'reason'>;
  private readonly rejections: Counter<'reason'>;
  private readonly missed: Counter;
  private readonly reconnects: Counter;
  private readonly resumes: Counter;
  private readonly sessionsLost: Counter;
  private readonly sessionsStarted: Counter;
  private readonly rtt: Histogram;
  private readonly detection: Histogram;
  private readonly writebackSessions: Counter;
  private readonly writebacks: Histogram;

  constructor(registry: Registry) {
    if (registry.getSingleMetric(`${METRIC_PREFIX}connections`)) {
      throw new InvalidArgumentError(
        'the registry already holds heartline metrics from another copy of heartline; pass a registry of its own',
      );
    }
    this.registry = registry;
    const prom = loadProm();
    const registers = [registry];
    const self = this;
    const agg = (): Aggregate => this.aggregate();

    new prom.Gauge({
      name: `${METRIC_PREFIX}connections`,
      help: 'Live connections by health state (sessions waiting for a resume count as disconnected).',
      labelNames: ['state'],
      registers,
      collect(this: Gauge<'state'>) {
        const { states } = agg();
        for (const state of GAUGE_STATES) this.set({ state }, states[state]);
      },
    });
    const totalCounter = (name: string, help: string, read: (t: Totals) => number): void => {
      new prom.Counter({
        name: `${METRIC_PREFIX}${name}`,
        help,
        registers,
        collect(this: Counter) {
          this.reset();
          this.inc(read(agg().totals));
        },
      });
    };
    new prom.Counter({
      name: `${METRIC_PREFIX}heartbeats_sent_total`,
      help: 'Heartbeat frames sent: PINGs (on idle links and probes of suspect peers) and PONGs (one per PING received).',
      labelNames: ['frame'],
      registers,
      collect(this: Counter<'frame'>) {
        const { totals } = agg();
        this.reset();
        this.inc({ frame: 'ping' }, totals.pingsSent);
        this.inc({ frame: 'pong' }, totals.pingsReceived);
      },
    });
    new prom.Counter({
      name: `${METRIC_PREFIX}heartbeats_received_total`,
      help: 'Heartbeat frames received: PINGs from peers and PONGs answering ours.',
      labelNames: ['frame'],
      registers,
      collect(this: Counter<'frame'>) {
        const { totals } = agg();
        this.reset();
        this.inc({ frame: 'ping' }, totals.pingsReceived);
        this.inc({ frame: 'pong' }, totals.pongsReceived);
      },
    });
    this.missed = new prom.Counter({
      name: `${METRIC_PREFIX}heartbeats_missed_total`,
      help: 'Missed heartbeat deadlines: a peer heard nothing from for suspectAfter (each healthy -> suspect transition).',
      registers,
    });
    totalCounter(
      'heartbeat_probes_total',
      'PINGs sent to probe a suspect peer (every quarter interval while suspect).',
      (t) => t.probes,
    );
    totalCounter(
      'messages_received_total',
      'Messages delivered to the application.',
      (t) => t.messagesIn,
    );
    totalCounter('messages_sent_total', 'Messages the application sent.', (t) => t.messagesOut);
    totalCounter(
      'received_bytes_total',
      'Bytes received on every link (frames of every type).',
      (t) => t.bytesIn,
    );
    totalCounter(
      'sent_bytes_total',
      'Bytes written to every link (frames of every type).',
      (t) => t.bytesOut,
    );

    this.rtt = new prom.Histogram({
      name: `${METRIC_PREFIX}rtt_seconds`,
      help: 'Round-trip time of each heartbeat (PING to its PONG).',
      buckets: [...RTT_BUCKETS],
      registers,
    });
    this.detection = new prom.Histogram({
      name: `${METRIC_PREFIX}detection_latency_seconds`,
      help: 'Time from when a peer was last heard to when it was declared dead.',
      buckets: [...DETECTION_BUCKETS],
      registers,
    });
    this.closes = new prom.Counter({
      name: `${METRIC_PREFIX}closes_total`,
      help: 'Connections that ended for good, by classified reason.',
      labelNames: ['reason'],
      registers,
    });
    this.disconnects = new prom.Counter({
      name: `${METRIC_PREFIX}disconnects_total`,
      help: 'Links lost while their session lived on (it may resume on a new link), by classified reason; a close that ends the connection counts in heartline_closes_total only.',
      labelNames: ['reason'],
      registers,
    });
    this.rejections = new prom.Counter({
      name: `${METRIC_PREFIX}handshake_rejections_total`,
      help: 'Sockets refused or failed before a session existed (server), by classified reason.',
      labelNames: ['reason'],
      registers,
    });
    this.sessionsStarted = new prom.Counter({
      name: `${METRIC_PREFIX}sessions_started_total`,
      help: 'New sessions (handshakes that did not resume one).',
      registers,
    });
    this.reconnects = new prom.Counter({
      name: `${METRIC_PREFIX}reconnects_total`,
      help: 'Reconnections: on a client each attempt scheduled after a lost link; on a server each client that came back on its session.',
      registers,
    });
    this.resumes = new prom.Counter({
      name: `${METRIC_PREFIX}resumes_total`,
      help: 'Sessions resumed on a new link.',
      registers,
    });
    this.sessionsLost = new prom.Counter({
      name: `${METRIC_PREFIX}sessions_lost_total`,
      help: 'Sessions that could not be resumed (their unacknowledged messages were handed back).',
      registers,
    });
    this.writebackSessions = new prom.Counter({
      name: `${METRIC_PREFIX}store_writeback_sessions_total`,
      help: 'Sessions a cluster node wrote back whole after the session store failed or lost them.',
      registers,
    });
    this.writebacks = new prom.Histogram({
      name: `${METRIC_PREFIX}store_writeback_seconds`,
      help: 'Each write-back, from the store answering again (the store up event) to the last session written.',
      buckets: [...WRITEBACK_BUCKETS],
      registers,
    });
    new prom.Gauge({
      name: `${METRIC_PREFIX}replay_buffer_bytes`,
      help: 'Bytes held for replay (sent or queued, not yet acknowledged) over every connection.',
      registers,
      collect(this: Gauge) {
        this.set(agg().replayBytes);
      },
    });
    new prom.Gauge({
      name: `${METRIC_PREFIX}replay_buffer_messages`,
      help: 'Messages sent and not yet acknowledged over every connection.',
      registers,
      collect(this: Gauge) {
        this.set(agg().replayMessages);
      },
    });
    new prom.Gauge({
      name: `${METRIC_PREFIX}load_level`,
      help: 'Server load level (server.loadLevel): 0 normal, 1 warning, 2 danger (the highest of the bound servers).',
      registers,
      collect(this: Gauge) {
        this.set(agg().loadLevel);
      },
    });
    // Multi-process mode: read from the primary's workerStats (empty elsewhere, so 0).
    const slots = () => [...this.servers.keys()].flatMap((server) => server.workerStats);
    new prom.Counter({
      name: `${METRIC_PREFIX}worker_restarts_total`,
      help: "Worker processes forked again after their slot's worker exited unexpectedly (primary).",
      registers,
      collect(this: Counter) {
        this.reset();
        this.inc(slots().reduce((n, w) => n + w.restarts, 0));
      },
    });
    new prom.Gauge({
      name: `${METRIC_PREFIX}workers_online`,
      help: 'Worker processes online, taking new connections (primary).',
      registers,
      collect(this: Gauge) {
        this.set(slots().filter((w) => w.state === 'online').length);
      },
    });
    new prom.Gauge({
      name: `${METRIC_PREFIX}workers_crash_looping`,
      help: `Worker slots in a crash loop: ${WORKERS_DEFAULTS.crashLoopAfter} or more crashes in a row, none online for ${WORKERS_DEFAULTS.stableAfter / 1000} s (primary).`,
      registers,
      collect(this: Gauge) {
        this.set(slots().filter((w) => w.crashes >= WORKERS_DEFAULTS.crashLoopAfter).length);
      },
    });
    const loopGauge = (
      suffix: string,
      help: string,
      pick: (d: ReturnType<typeof eventLoop.read>) => number,
    ): void => {
      new prom.Gauge({
        name: `${METRIC_PREFIX}event_loop_delay_${suffix}_seconds`,
        help: `${help} (perf_hooks.monitorEventLoopDelay, over the last 10 s window).`,
        registers,
        collect(this: Gauge) {
          this.set(self.bindings > 0 ? pick(eventLoop.read()) : 0);
        },
      });
    };
    loopGauge('p50', 'Median event-loop delay', (d) => d.p50);
    loopGauge('p99', '99th percentile event-loop delay', (d) => d.p99);
    loopGauge('max', 'Longest event-loop delay', (d) => d.max);
    this.listeners = {
      server: this.connectionListeners('server'),
      client: this.connectionListeners('client'),
    };
  }

  /**
   * Observes a server and every connection it has or will have. Returns what stops it;
   * the counters keep what they counted.
   */
  bindServer(server: Server, clock: Clock = systemClock): () => void {
    this.retain();
    let entry = this.servers.get(server);
    if (entry) {
      entry.refs++;
    } else {
      const unwatch = watchServer(server, {
        attach: (conn) => this.track(conn, 'server', clock),
        detach: (conn) => this.untrack(conn),
      });
      const unlisten = listenAll<ServerEvents, Server>(server, {
        rejected: (e) => this.rejections.inc({ reason: e.info.reason }),
        store: (e) => {
          if (!e.writeback) return;
          this.writebackSessions.inc(e.writeback.sessions);
          this.writebacks.observe(e.writeback.durationMs / 1000);
        },
      });
      entry = {
        refs: 1,
        unwatch: () => {
          unlisten();
          unwatch();
        },
      };
      this.servers.set(server, entry);
    }
    let bound = true;
    return () => {
      if (!bound) return;
      bound = false;
      const e = this.servers.get(server);
      if (e && --e.refs === 0) {
        this.servers.delete(server);
        e.unwatch();
      }
      this.release();
    };
  }

  /** Observes a client connection until it closes. Returns what stops it. */
  bindClient(conn: ClientConnection, clock: Clock = systemClock): () => void {
    this.retain();
    const tracked = !conn.closed;
    if (tracked) this.track(conn, 'client', clock);
    let bound = true;
    return () => {
      if (!bound) return;
      bound = false;
      if (tracked) this.untrack(conn);
      this.release();
    };
  }

  private retain(): void {
    if (this.bindings++ === 0) eventLoop.retain();
  }

  private release(): void {
    if (--this.bindings === 0) eventLoop.release();
  }

  /** Starts counting one connection's events (once, however often it is bound). */
  private track(conn: Connection, side: Side, clock: Clock): void {
    const existing = this.conns.get(conn);
    if (existing) {
      existing.refs++;
      return;
    }
    const base = this.counted.get(conn) ?? zeroTotals();
    const high = readTotals(conn);
    raise(high, base);
    this.conns.set(conn, { refs: 1, high, base, side, clock });
    this.listeners[side].attach(conn);
  }

  /** One binding less for `conn`; the last one retires it. */
  private untrack(conn: Connection): void {
    const t = this.conns.get(conn);
    if (t && --t.refs === 0) this.retire(conn);
  }

  /**
   * The listeners that count one connection's events, shared by every connection of a
   * side (each handler finds its connection in `this`).
   */
  private connectionListeners(side: Side): Listeners<ConnectionEvents, Connection> {
    const self = this;
    return new Listeners<ConnectionEvents, Connection>({
      state({ from, to }) {
        if (from === 'healthy' && to === 'suspect') self.missed.inc();
        else if (to === 'dead') {
          // The link is still attached at this instant, so lastHeardAt is its last byte.
          const clock = self.conns.get(this)?.clock ?? systemClock;
          self.detection.observe(Math.max(0, clock.now() - this.lastHeardAt) / 1000);
        }
      },
      rtt(sample) {
        self.rtt.observe(sample / 1000);
      },
      open(e) {
        if (!e.resumed) self.sessionsStarted.inc();
      },
      resumed() {
        self.resumes.inc();
        if (side === 'server') self.reconnects.inc();
      },
      reconnecting() {
        self.reconnects.inc();
      },
      'session-lost'() {
        self.sessionsLost.inc();
      },
      disconnect(info) {
        self.disconnects.inc({ reason: info.reason });
      },
      close(info) {
        self.closes.inc({ reason: info.reason });
        self.retire(this);
      },
    });
  }

  /** Stops counting a connection, keeping what it contributed to the counters. */
  private retire(conn: Connection): void {
    const t = this.conns.get(conn);
    if (!t) return;
    this.conns.delete(conn);
    this.listeners[t.side].detach(conn);
    raise(t.high, readTotals(conn));
    addSince(this.retired, t.high, t.base);
    // A connection unbound while alive may be bound again: it then counts from here.
    if (!conn.closed) this.counted.set(conn, t.high);
    this.cached = null;
  }

  /** Reads every tracked connection once per scrape (all collect() calls of a scrape run in one tick). */
  private aggregate(): Aggregate {
    if (this.cached) return this.cached;
    const totals = { ...this.retired };
    let replayBytes = 0;
    let replayMessages = 0;
    for (const [conn, t] of this.conns) {
      raise(t.high, readTotals(conn));
      addSince(totals, t.high, t.base);
      replayBytes += conn.bufferedBytes;
      replayMessages += conn.unackedCount;
    }
    let loadLevel = 0;
    for (const server of this.servers.keys()) loadLevel = Math.max(loadLevel, loadLevelOf(server));
    const aggregate: Aggregate = {
      states: countStates(this.conns.keys()),
      totals,
      replayBytes,
      replayMessages,
      loadLevel,
    };
    this.cached = aggregate;
    setImmediate(() => {
      this.cached = null;
    });
    return aggregate;
  }
}

/**
 * The heartline metrics registered on `registry`, created on first use. One registry
 * holds one set of heartline metrics, fed by every server and client bound to it.
 */
export function metricsFor(registry: Registry): HeartlineMetrics {
  let metrics = registries.get(registry);
  if (!metrics) {
    metrics = new HeartlineMetrics(registry);
    registries.set(registry, metrics);
  }
  return metrics;
}

/** A new, empty prom-client Registry (prom-client is loaded on first use). */
export function createRegistry(): Registry {
  return new (loadProm().Registry)();
}
