/**
 * The live feed behind the dashboard: state changes and closes as they happen, a
 * snapshot of the server every second while someone watches, and a short history of
 * closes so that a page opened late still shows them over time.
 */

import type { Connection, ConnectionEvents } from '../connection.js';
import type { HealthState } from '../health/index.js';
import type { CloseReason } from '../protocol/close-codes.js';
import type { Server, ServerEvents } from '../server/server.js';
import type { Clock } from '../time/clock.js';
import { type EventLoopDelay, eventLoop } from './event-loop.js';
import {
  type ConnectionInfo,
  describeConnection,
  describeServer,
  type ServerInfo,
} from './snapshot.js';
import { Listeners, listenAll, type OptionalServerEvents, watchServer } from './watch.js';

/** Upper bounds (ms) of the buckets of the dashboard's RTT histogram; the last is +Inf. */
export const RTT_CHART_BUCKETS_MS: readonly number[] = Object.freeze([
  0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000,
]);

/** How long closes are kept for the chart (ms), and at most how many. */
const HISTORY_MS = 15 * 60_000;
const HISTORY_MAX = 2000;

/** One lost link, closed connection or refused handshake. */
export interface CloseRecord {
  /** Wall-clock epoch ms. */
  at: number;
  /** 'disconnect': a link was lost (the session may resume); 'close': the connection ended; 'rejected': refused during the handshake. */
  kind: 'disconnect' | 'close' | 'rejected';
  reason: CloseReason;
  /** Connection id (null for a refused handshake). */
  conn: string | null;
  remote: string | null;
}

/** A state change, as pushed to the dashboard. */
export interface StateRecord {
  at: number;
  conn: string;
  from: HealthState;
  to: HealthState;
  reason: string;
  remote: string | null;
}

/** A load-level change, as pushed to the dashboard. */
export interface LoadRecord {
  at: number;
  from: string;
  to: string;
}

/** What the dashboard receives every second. */
export interface LiveSnapshot {
  /** Wall-clock epoch ms. */
  at: number;
  server: ServerInfo;
  /** Event-loop delay in seconds. */
  eventLoop: EventLoopDelay;
  /** Current smoothed RTTs of every connection, bucketed: counts[i] has rtt <= bucketsMs[i] (the last bucket is +Inf). */
  rtt: { bucketsMs: readonly number[]; counts: number[] };
  /** Connections, worst state first, at most `maxRows`. */
  connections: ConnectionInfo[];
  /** Connections left out by `maxRows`. */
  truncated: number;
}

/** Sent once when a watcher subscribes. */
export interface LiveHello {
  at: number;
  snapshotIntervalMs: number;
  historyMs: number;
  closes: CloseRecord[];
}

/** Receives one live event (its name and its JSON-serialisable data). */
export type LiveSubscriber = (event: string, data: unknown) => void;

/** Severity order used to pick the rows a capped table shows. */
const ORDER: readonly HealthState[] = [
  'dead',
  'suspect',
  'disconnected',
  'connecting',
  'healthy',
  'closed',
];

/**
 * Picks up to `limit` connections from the `offset`-th on, worst state first and in
 * creation order within a state (the map's insertion order). Two passes over the map
 * (count by state, then collect) and memory for the page only: no sort, and no copy of
 * every connection.
 */
export function pickWorst(
  conns: ReadonlyMap<string, Connection>,
  limit: number,
  states?: ReadonlySet<HealthState>,
  offset = 0,
): { picked: Connection[]; total: number } {
  const counts = new Map<HealthState, number>(ORDER.map((s) => [s, 0]));
  for (const conn of conns.values()) {
    if (states && !states.has(conn.state)) continue;
    counts.set(conn.state, (counts.get(conn.state) ?? 0) + 1);
  }
  // Where each state's rows start in the whole ordering.
  const start = new Map<HealthState, number>();
  let total = 0;
  for (const state of ORDER) {
    start.set(state, total);
    total += counts.get(state) ?? 0;
  }
  const size = Math.max(0, Math.min(limit, total - offset));
  const picked = new Array<Connection>(size);
  if (size === 0) return { picked, total };
  const seen = new Map<HealthState, number>(ORDER.map((s) => [s, 0]));
  for (const conn of conns.values()) {
    if (states && !states.has(conn.state)) continue;
    const local = seen.get(conn.state) ?? 0;
    seen.set(conn.state, local + 1);
    const at = (start.get(conn.state) ?? 0) + local - offset;
    if (at >= 0 && at < size) picked[at] = conn;
  }
  return { picked, total };
}

/** The feed of one server. */
export class LiveFeed {
  private readonly subscribers = new Set<LiveSubscriber>();
  private readonly history: CloseRecord[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly stopWatching: () => void;

  constructor(
    private readonly server: Server,
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly maxRows: number,
  ) {
    const feed = this;
    const listeners = new Listeners<ConnectionEvents, Connection>({
      state({ from, to, reason }) {
        if (feed.subscribers.size === 0) return;
        const record: StateRecord = {
          at: clock.wallNow(),
          conn: this.id,
          from,
          to,
          reason,
          remote: this.remote,
        };
        feed.publish('state', record);
      },
      disconnect(info) {
        feed.record('disconnect', info.reason, this);
      },
      close(info) {
        feed.record('close', info.reason, this);
      },
    });
    const unwatch = watchServer(server, {
      attach: (conn) => listeners.attach(conn),
      detach: (conn) => listeners.detach(conn),
    });
    const unlisten = listenAll<ServerEvents, Server>(server, {
      rejected: (e) => this.record('rejected', e.info.reason, null, e.remote),
    });
    const unlistenLoad = listenAll<OptionalServerEvents, Server>(server, {
      load: (e) => {
        if (this.subscribers.size === 0) return;
        const record: LoadRecord = { at: clock.wallNow(), from: e.from, to: e.to };
        this.publish('load', record);
      },
    });
    this.stopWatching = () => {
      unlistenLoad();
      unlisten();
      unwatch();
    };
  }

  /** Adds a watcher: it gets the hello and a snapshot at once, then events as they come. */
  subscribe(subscriber: LiveSubscriber): () => void {
    this.subscribers.add(subscriber);
    this.prune();
    const hello: LiveHello = {
      at: this.clock.wallNow(),
      snapshotIntervalMs: this.intervalMs,
      historyMs: HISTORY_MS,
      closes: [...this.history],
    };
    subscriber('hello', hello);
    subscriber('snapshot', this.snapshot());
    if (!this.timer) {
      this.timer = setInterval(() => this.publish('snapshot', this.snapshot()), this.intervalMs);
      this.timer.unref();
    }
    return () => {
      this.subscribers.delete(subscriber);
      if (this.subscribers.size === 0) this.stopTimer();
    };
  }

  /** The server as the dashboard shows it. */
  snapshot(): LiveSnapshot {
    const now = this.clock.now();
    const counts: number[] = new Array(RTT_CHART_BUCKETS_MS.length + 1).fill(0);
    for (const conn of this.server.connections.values()) {
      const rtt = conn.rtt;
      if (rtt === undefined) continue;
      let i = 0;
      while (i < RTT_CHART_BUCKETS_MS.length && rtt > (RTT_CHART_BUCKETS_MS[i] as number)) i++;
      counts[i] = (counts[i] as number) + 1;
    }
    const { picked, total } = pickWorst(this.server.connections, this.maxRows);
    return {
      at: this.clock.wallNow(),
      server: describeServer(this.server),
      eventLoop: eventLoop.read(),
      rtt: { bucketsMs: RTT_CHART_BUCKETS_MS, counts },
      connections: picked.map((c) => describeConnection(c, now)),
      truncated: total - picked.length,
    };
  }

  /** Stops everything; watchers are dropped. */
  close(): void {
    this.stopTimer();
    this.subscribers.clear();
    this.stopWatching();
  }

  private record(
    kind: CloseRecord['kind'],
    reason: CloseReason,
    conn: Connection | null,
    remote: string | null = conn?.remote ?? null,
  ): void {
    const record: CloseRecord = {
      at: this.clock.wallNow(),
      kind,
      reason,
      conn: conn?.id ?? null,
      remote,
    };
    this.history.push(record);
    if (this.history.length > HISTORY_MAX)
      this.history.splice(0, this.history.length - HISTORY_MAX);
    this.prune();
    this.publish('close', record);
  }

  private prune(): void {
    const cutoff = this.clock.wallNow() - HISTORY_MS;
    let drop = 0;
    while (drop < this.history.length && (this.history[drop] as CloseRecord).at < cutoff) drop++;
    if (drop > 0) this.history.splice(0, drop);
  }

  private publish(event: string, data: unknown): void {
    for (const subscriber of this.subscribers) subscriber(event, data);
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
