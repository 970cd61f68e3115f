/**
 * Plain-data views of connections and servers, as /api/connections and the dashboard
 * serve them. Everything is read from the public getters at the moment of the call.
 */

import type { Connection } from '../connection.js';
import { HEALTH_STATES, type HealthState } from '../health/index.js';
import type { HeartbeatStats } from '../heartbeat.js';
import type { Server } from '../server/server.js';

/** One connection, as served by `/api/connections`. */
export interface ConnectionInfo {
  /** Stable connection id (the `conn` field of log lines). */
  id: string;
  /** Session id (hex), or null while there is none. */
  session: string | null;
  /** The client id from HELLO ('' when the client set none), cut to {@link MAX_SHOWN_CHARS}. */
  client: string;
  /** The trace id from HELLO ('' when the client set none), cut to {@link MAX_SHOWN_CHARS}. */
  trace: string;
  /** Remote host:port of the current link, or of the last one while disconnected. */
  remote: string | null;
  state: HealthState;
  /** Smoothed RTT in ms, or null before the first sample. */
  rtt: number | null;
  /** Ms since anything was last heard from the peer, or null before the first link. */
  lastHeardMsAgo: number | null;
  messagesIn: number;
  messagesOut: number;
  /** Bytes received over every link, the live one included. */
  bytesIn: number;
  /** Bytes sent over every link, the live one included. */
  bytesOut: number;
  /** Links (TCP connections) this connection has had. */
  links: number;
  /** Bytes held for replay (sent or queued, not yet acknowledged). */
  bufferedBytes: number;
  /** Messages sent and not yet acknowledged. */
  unacked: number;
  /** Heartbeat counters over every link. */
  heartbeat: HeartbeatStats;
  /** The granted heartbeat interval and timeout (ms), or null before the handshake. */
  interval: number | null;
  timeout: number | null;
}

/** One page of `/api/connections`. */
export interface ConnectionsPage {
  /** Wall-clock epoch ms. */
  at: number;
  server: ServerInfo;
  /** Connections that match the query, on every page. */
  total: number;
  /** Rows of the whole ordering before this page. */
  offset: number;
  /** Most rows of this page (the query's, lowered to the endpoint's maximum). */
  limit: number;
  /** The `offset` of the next page, or null on the last one. */
  next: number | null;
  connections: ConnectionInfo[];
}

/** A server's readiness, as /readyz reports it. */
export interface Readiness {
  ready: boolean;
  /** Why the server is not ready ('not listening', 'draining', 'no worker online'). */
  reason?: string;
}

/** A server, as the admin endpoint reports it. */
export interface ServerInfo {
  /** host:port it listens on, or null when it is not listening. */
  address: string | null;
  ready: boolean;
  /** True while the server drains (when the server exposes a `draining` flag). */
  draining: boolean;
  /** Load level as a number: 0 normal, 1 warning, 2 danger. */
  loadLevel: number;
  /** Load level by name ('normal' when the server has no load levels). */
  loadLevelName: string;
  /** Live connections (sessions waiting for a resume included). */
  connections: number;
  /** Connections by health state. */
  states: Record<HealthState, number>;
}

/**
 * The optional operational flags a server may expose: `draining` while it drains and
 * `loadLevel` ('normal', 'warning', 'danger', or a number). Read structurally so that
 * this module works with a server that has neither.
 */
interface OperationalFlags {
  readonly draining?: unknown;
  readonly loadLevel?: unknown;
}

/** The gauge value of each named load level (`server.loadLevel`). */
export const LOAD_LEVEL_VALUES: Readonly<Record<string, number>> = Object.freeze({
  normal: 0,
  warning: 1,
  danger: 2,
});

/** `server.loadLevel` as a name ('normal' when the server has no load levels). */
export function loadLevelName(server: Server): string {
  const level = (server as OperationalFlags).loadLevel;
  if (typeof level === 'string') return level;
  if (typeof level === 'number' && Number.isFinite(level)) return String(level);
  return 'normal';
}

/**
 * `server.loadLevel` as a number: 0 normal, 1 warning, 2 danger (a numeric level is
 * taken as it is; anything else counts as 0).
 */
export function loadLevelOf(server: Server): number {
  const level = (server as OperationalFlags).loadLevel;
  if (typeof level === 'number' && Number.isFinite(level)) return level;
  if (typeof level === 'string') return LOAD_LEVEL_VALUES[level] ?? 0;
  return 0;
}

/** True while the server exposes `draining === true`. */
export function isDraining(server: Server): boolean {
  return (server as OperationalFlags).draining === true;
}

/** Ready means listening and neither draining nor closing (`address()` is null once closed). */
export function readiness(server: Server): Readiness {
  if (server.address() === null) return { ready: false, reason: 'not listening' };
  if (isDraining(server)) return { ready: false, reason: 'draining' };
  // A worker pool's primary with every worker down (being re-forked) refuses every socket.
  const workers = server.workerStats;
  if (workers.length > 0 && !workers.some((w) => w.state === 'online')) {
    return { ready: false, reason: 'no worker online' };
  }
  return { ready: true };
}

/** Counts connections by state (every state present, zeros included). */
export function countStates(conns: Iterable<Connection>): Record<HealthState, number> {
  const states = Object.fromEntries(HEALTH_STATES.map((s) => [s, 0])) as Record<
    HealthState,
    number
  >;
  for (const conn of conns) states[conn.state]++;
  return states;
}

/**
 * Longest peer-chosen string (client id, trace id) the admin views and logs show, in
 * UTF-16 units: the server's own cap (`maxHelloFieldBytes`) may be raised, and one
 * output line per connection must stay small whatever it is.
 */
export const MAX_SHOWN_CHARS = 256;

/**
 * `text` as shown: at most `max` UTF-16 units (a surrogate pair is never split), with '…'
 * appended when something was cut.
 */
export function shownText(text: string, max = MAX_SHOWN_CHARS): string {
  if (text.length <= max) return text;
  const last = text.charCodeAt(max - 1);
  // A high surrogate at the cut would leave half a character.
  const end = last >= 0xd800 && last <= 0xdbff ? max - 1 : max;
  return `${text.slice(0, end)}…`;
}

/** Rounds to microseconds: enough for loopback RTTs, short in JSON. */
function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Describes one connection; `now` is the connection's clock (systemClock by default). */
export function describeConnection(conn: Connection, now: number): ConnectionInfo {
  const ids = conn as Connection & { clientId?: unknown; traceId?: unknown };
  const rtt = conn.rtt;
  const traffic = conn.traffic;
  // A getter that builds a snapshot: read once.
  const stats = conn.stats;
  return {
    id: conn.id,
    session: conn.sessionId,
    client: typeof ids.clientId === 'string' ? shownText(ids.clientId) : '',
    trace: typeof ids.traceId === 'string' ? shownText(ids.traceId) : '',
    remote: conn.remote,
    state: conn.state,
    rtt: rtt === undefined ? null : round3(rtt),
    lastHeardMsAgo: stats.links === 0 ? null : Math.max(0, Math.round(now - conn.lastHeardAt)),
    messagesIn: stats.messagesIn,
    messagesOut: stats.messagesOut,
    bytesIn: traffic.bytesIn,
    bytesOut: traffic.bytesOut,
    links: stats.links,
    bufferedBytes: conn.bufferedBytes,
    unacked: conn.unackedCount,
    heartbeat: conn.heartbeatStats,
    interval: conn.settings?.interval ?? null,
    timeout: conn.settings?.timeout ?? null,
  };
}

/** Describes a server. */
export function describeServer(server: Server): ServerInfo {
  const a = server.address();
  const address =
    a === null ? null : a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  return {
    address,
    ready: readiness(server).ready,
    draining: isDraining(server),
    loadLevel: loadLevelOf(server),
    loadLevelName: loadLevelName(server),
    connections: server.connections.size,
    states: countStates(server.connections.values()),
  };
}
