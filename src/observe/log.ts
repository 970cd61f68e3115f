/**
 * Log lines for connection events: one line per event that matters, at a level chosen
 * per event, and never an info line per heartbeat (RTT samples are debug).
 *
 * Every line about a connection carries `conn`, `session`, `remote` and `state`, and
 * `trace` / `client` when the client sent them in HELLO; lines about a close carry the
 * classified `reason`. docs/observability.md lists each line.
 */

import type { ClientConnection } from '../client/client.js';
import type { Connection, ConnectionEvents } from '../connection.js';
import type { CloseInfo } from '../link.js';
import type { CloseReason } from '../protocol/close-codes.js';
import type { Server, ServerEvents } from '../server/server.js';
import type { Clock } from '../time/clock.js';
import type { ObserveLogger } from './logger.js';
import { shownText } from './snapshot.js';
import { Listeners, listenAll, type OptionalServerEvents, watchServer } from './watch.js';

type Level = 'error' | 'warn' | 'info';

/** Reasons that mean detection or a fault: an operator wants to see these. */
const WARN_REASONS: ReadonlySet<CloseReason> = new Set<CloseReason>([
  'heartbeat-timeout',
  'write-stall',
  'keepalive-timeout',
  'connect-timeout',
  'handshake-timeout',
  'protocol-error',
  'frame-too-large',
  'unsupported-version',
  'auth-failed',
  'policy-violation',
  'overloaded',
  'session-expired',
  'error',
]);

/**
 * The level of a line about a close or a lost link: error for an internal failure, warn
 * for detection and faults, info for ordinary ends (eof, reset, local, remote, going
 * away, superseded, refused).
 */
export function levelForReason(reason: CloseReason): Level {
  if (reason === 'internal-error') return 'error';
  return WARN_REASONS.has(reason) ? 'warn' : 'info';
}

/** Rounds ms to microseconds. */
function ms(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** Fields describing how something closed. */
function closeFields(info: CloseInfo): Record<string, unknown> {
  return {
    reason: info.reason,
    ...(info.code !== undefined ? { code: info.code } : {}),
    ...(info.message ? { detail: info.message } : {}),
    ...(info.error ? { error: info.error.code } : {}),
    ...(info.errno ? { errno: info.errno } : {}),
    ...(info.retryAfter !== undefined ? { retryAfter: info.retryAfter } : {}),
  };
}

/** The fields every line about `conn` carries. */
function fields(conn: Connection, extra: Record<string, unknown>): Record<string, unknown> {
  const ids = conn as Connection & { clientId?: string; traceId?: string };
  return {
    conn: conn.id,
    session: conn.sessionId,
    remote: conn.remote,
    state: conn.state,
    // Peer-chosen: cut, whatever the server's HELLO limits.
    ...(ids.traceId ? { trace: shownText(ids.traceId) } : {}),
    ...(ids.clientId ? { client: shownText(ids.clientId) } : {}),
    ...extra,
  };
}

function rttField(conn: Connection): Record<string, unknown> {
  return conn.rtt === undefined ? {} : { rtt: ms(conn.rtt) };
}

/**
 * The listeners that log one connection's events, shared by every connection they are
 * attached to (each handler finds its connection in `this`).
 */
function connectionListeners(
  log: ObserveLogger,
  clock: Clock,
): Listeners<ConnectionEvents, Connection> {
  const silent = (conn: Connection): number => Math.round(clock.now() - conn.lastHeardAt);
  return new Listeners<ConnectionEvents, Connection>({
    open(e) {
      const settings = { interval: this.settings?.interval, timeout: this.settings?.timeout };
      if (e.resumed)
        log.info(fields(this, { replayed: e.replayed, ...settings }), 'session resumed');
      else log.info(fields(this, settings), 'connection open');
    },
    state({ from, to, reason }) {
      if (to === 'suspect') {
        log.warn(
          fields(this, { from, reason, silentMs: silent(this), ...rttField(this) }),
          'peer suspect',
        );
      } else if (to === 'dead') {
        log.warn(
          fields(this, { from, reason, silentMs: silent(this), ...rttField(this) }),
          'peer dead',
        );
      } else if (from === 'suspect' && to === 'healthy') {
        log.info(fields(this, { from, reason, ...rttField(this) }), 'peer recovered');
      } else {
        log.debug(fields(this, { from, reason }), 'state');
      }
    },
    rtt(sample) {
      // Checked per sample (not once) so that a level raised at run time takes effect.
      if (log.isLevelEnabled('debug')) {
        log.debug(fields(this, { sample: ms(sample), ...rttField(this) }), 'rtt');
      }
    },
    disconnect(info) {
      log[levelForReason(info.reason)](
        fields(this, { ...closeFields(info), ...rttField(this) }),
        'link lost',
      );
    },
    'session-lost'(e) {
      log.warn(
        fields(this, { lostSession: e.sessionId, unacked: e.unacked.length }),
        'session lost',
      );
    },
    close(info) {
      const s = this.stats;
      log[levelForReason(info.reason)](
        fields(this, {
          ...closeFields(info),
          messagesIn: s.messagesIn,
          messagesOut: s.messagesOut,
          links: s.links,
        }),
        'connection closed',
      );
    },
    reconnecting(e) {
      log.info(
        fields(this, { attempt: e.attempt, delayMs: Math.round(e.delayMs), reason: e.reason }),
        'reconnecting',
      );
    },
    'give-up'(e) {
      log.error(
        fields(this, { attempts: e.attempts, unacked: e.unacked.length }),
        'gave up reconnecting',
      );
    },
    circuit(circuit) {
      if (circuit === 'open') log.warn(fields(this, { circuit }), 'circuit open');
      else log.info(fields(this, { circuit }), `circuit ${circuit}`);
    },
  });
}

/**
 * Logs a server's events (listening, handshake rejections, load levels, close) and those
 * of each of its connections. Returns what removes every listener.
 */
export function logServer(server: Server, logger: ObserveLogger, clock: Clock): () => void {
  const listeners = connectionListeners(logger, clock);
  const unwatch = watchServer(server, {
    attach: (conn) => listeners.attach(conn),
    detach: (conn) => listeners.detach(conn),
  });
  const unlisten = listenAll<ServerEvents, Server>(server, {
    listening: (a) => logger.info({ address: a.address, port: a.port }, 'listening'),
    rejected: (e) =>
      logger[levelForReason(e.info.reason)](
        { remote: e.remote, ...closeFields(e.info) },
        'handshake rejected',
      ),
    close: () => logger.info({}, 'server closed'),
    worker: (e) => {
      const f = {
        slot: e.slot,
        pid: e.pid,
        ...(e.code != null ? { code: e.code } : {}),
        ...(e.signal ? { signal: e.signal } : {}),
        ...(e.crashes !== undefined ? { crashes: e.crashes } : {}),
        ...(e.retryIn !== undefined ? { retryIn: e.retryIn } : {}),
      };
      if (e.event === 'crash-loop') logger.error(f, 'worker crash loop');
      else if (e.event === 'exit' && e.retryIn !== undefined) logger.warn(f, 'worker crashed');
      else logger.info(f, `worker ${e.event}`);
    },
  });
  // Load levels and adaptive heartbeats are optional server features: listened to by
  // name, so that a server without them is observed all the same.
  const unlistenOptional = listenAll<OptionalServerEvents, Server>(server, {
    load: (e) => {
      const reasons = (e.reasons ?? []).map((r) => `${r.metric} ${r.value} >= ${r.threshold}`);
      const fields = { from: e.from, to: e.to, ...(reasons.length ? { reasons } : {}) };
      if (e.to === 'normal') logger.info(fields, 'load level normal');
      else logger.warn(fields, `load level ${e.to}`);
    },
    retune: (e) =>
      logger.info(
        { from: e.from, to: e.to, interval: e.interval, connections: e.connections },
        'heartbeat retuned',
      ),
  });
  return () => {
    unlistenOptional();
    unlisten();
    unwatch();
  };
}

/** Logs a client's events until it closes. Returns what removes every listener. */
export function logClient(conn: ClientConnection, logger: ObserveLogger, clock: Clock): () => void {
  if (conn.closed) return () => {};
  const listeners = connectionListeners(logger, clock);
  listeners.attach(conn);
  // Registered after the logging listeners, so the 'close' line is written first.
  const onClose = (): void => listeners.detach(conn);
  conn.once('close', onClose);
  return () => {
    conn.off('close', onClose);
    listeners.detach(conn);
  };
}
