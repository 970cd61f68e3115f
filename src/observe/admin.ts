/**
 * The admin HTTP endpoint: Prometheus metrics, health and readiness probes, a JSON view
 * of the connections and the live dashboard, on a port of its own (never the protocol
 * port). It listens on loopback unless told otherwise, since it shows every peer.
 */

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { InvalidArgumentError } from '../errors.js';
import { HEALTH_STATES, type HealthState } from '../health/index.js';
import { intOption, stringOption } from '../options.js';
import type { Server } from '../server/server.js';
import { type Clock, systemClock } from '../time/clock.js';
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS } from './dashboard/index.js';
import { LiveFeed, pickWorst } from './live.js';
import type { ObserveLogger } from './logger.js';
import { createRegistry, metricsFor } from './metrics.js';
import { type ConnectionsPage, describeConnection, describeServer, readiness } from './snapshot.js';

/** Admin defaults. */
export const ADMIN_DEFAULTS = Object.freeze({
  /** Loopback: the endpoint lists every peer and is not authenticated. */
  host: '127.0.0.1',
  /** 0 picks a free port; `AdminServer.port` tells which. */
  port: 0,
  /** How often the dashboard gets a snapshot (ms). */
  snapshotInterval: 1000,
  /** Rows the dashboard shows at most (worst states first). */
  maxRows: 200,
  /** Rows of one /api/connections page when the query sets no `limit`. */
  pageSize: 500,
  /**
   * Most rows of one /api/connections page (a larger `limit` is lowered to it), and
   * most `maxRows`: what one request or snapshot serialises in one event-loop turn.
   */
  maxPageSize: 5000,
});

/** An SSE watcher whose socket holds more than this unsent is cut (it will reconnect). */
const MAX_SSE_BACKLOG = 4 * 1024 * 1024;

/** Options of {@link startAdmin}. */
export interface AdminOptions {
  /** Address to listen on. @default '127.0.0.1' */
  host?: string;
  /** Port to listen on; 0 picks a free one. @default 0 */
  port?: number;
  /**
   * The registry /metrics serves. The heartline metrics of this server are registered
   * on it (or reused, if `observeServer` already put them there); other metrics on it
   * are served too. @default a new registry
   */
  registry?: Registry;
  /** Logs the admin endpoint's own lines (listening, failures); not connection events. */
  logger?: ObserveLogger;
  /** The server's clock, if it was given one. @default systemClock */
  clock?: Clock;
  /** Dashboard snapshot period (ms). @default 1000 */
  snapshotInterval?: number;
  /** Rows the dashboard shows at most, up to `maxPageSize`. @default 200 */
  maxRows?: number;
  /** Rows of an /api/connections page whose query sets no `limit`. @default 500 */
  pageSize?: number;
  /** Most rows of one /api/connections page; a larger `limit` is lowered to it. @default 5000 */
  maxPageSize?: number;
}

/** A running admin endpoint. */
export interface AdminServer {
  /** The bound address and port. */
  readonly host: string;
  readonly port: number;
  /** http://host:port */
  readonly url: string;
  /** The registry /metrics serves. */
  readonly registry: Registry;
  /** Stops serving: closes every open request (dashboards included) and stops observing. */
  close(): Promise<void>;
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
} as const;

const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function sendJson(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  value: unknown,
  headers?: Record<string, string>,
): void {
  send(req, res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`, headers);
}

/** A non-negative integer query parameter, or `fallback` when absent. */
function countParam(url: URL, name: string, fallback: number): number {
  const param = url.searchParams.get(name);
  if (param === null) return fallback;
  const value = Number(param);
  if (!/^\d+$/.test(param) || !Number.isSafeInteger(value)) {
    throw new InvalidArgumentError(`query "${name}" must be a non-negative integer, got ${param}`);
  }
  return value;
}

/** What a query of /api/connections asks for. */
interface ConnectionQuery {
  states?: Set<HealthState>;
  /** Rows of this page (already lowered to maxPageSize). */
  limit: number;
  /** Rows of the whole ordering skipped before this page. */
  offset: number;
}

/**
 * Parses ?state=a,b, ?limit=n and ?offset=n of /api/connections; throws
 * InvalidArgumentError.
 */
function connectionQuery(url: URL, pageSize: number, maxPageSize: number): ConnectionQuery {
  const stateParam = url.searchParams.get('state');
  let states: Set<HealthState> | undefined;
  if (stateParam !== null) {
    states = new Set();
    for (const s of stateParam.split(',')) {
      if (!(HEALTH_STATES as readonly string[]).includes(s)) {
        throw new InvalidArgumentError(
          `query "state" must be a list of ${HEALTH_STATES.join(', ')}, got ${s}`,
        );
      }
      states.add(s as HealthState);
    }
  }
  const limit = Math.min(countParam(url, 'limit', pageSize), maxPageSize);
  const offset = countParam(url, 'offset', 0);
  return { ...(states ? { states } : {}), limit, offset };
}

/**
 * Starts the admin endpoint of `server`:
 * - `GET /metrics`: Prometheus text format
 * - `GET /healthz`: 200 while the process answers
 * - `GET /readyz`: 200 while the server listens and is not draining, else 503
 * - `GET /api/connections`: JSON, one page (`?limit=N`, `?offset=N`; `next` is the
 *   offset of the next page), `?state=suspect,dead` optional
 * - `GET /api/events`: server-sent events (hello, snapshot every second, state, close)
 * - `GET /`: the live dashboard
 * @throws InvalidArgumentError for an invalid option (before anything listens).
 */
export async function startAdmin(server: Server, options: AdminOptions = {}): Promise<AdminServer> {
  const host = stringOption('host', options.host, ADMIN_DEFAULTS.host);
  const port = intOption('port', options.port, ADMIN_DEFAULTS.port, 0, 65535);
  const interval = intOption(
    'snapshotInterval',
    options.snapshotInterval,
    ADMIN_DEFAULTS.snapshotInterval,
    50,
  );
  const maxPageSize = intOption('maxPageSize', options.maxPageSize, ADMIN_DEFAULTS.maxPageSize, 1);
  const pageSize = intOption(
    'pageSize',
    options.pageSize,
    Math.min(ADMIN_DEFAULTS.pageSize, maxPageSize),
    1,
    maxPageSize,
  );
  const maxRows = intOption(
    'maxRows',
    options.maxRows,
    Math.min(ADMIN_DEFAULTS.maxRows, maxPageSize),
    1,
    maxPageSize,
  );
  const clock = options.clock ?? systemClock;
  const logger = options.logger;
  const registry = options.registry ?? createRegistry();
  const unbind = metricsFor(registry).bindServer(server, clock);
  const feed = new LiveFeed(server, clock, interval, maxRows);
  const streams = new Set<ServerResponse>();

  const events = (req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.write('retry: 2000\n\n');
    streams.add(res);
    const unsubscribe = feed.subscribe((event, data) => {
      if (res.writableLength > MAX_SSE_BACKLOG) {
        res.destroy();
        return;
      }
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    });
    res.on('close', () => {
      streams.delete(res);
      unsubscribe();
    });
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(req, res, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD' });
      return;
    }
    switch (url.pathname) {
      case '/':
      case '/index.html':
        send(req, res, 200, 'text/html; charset=utf-8', DASHBOARD_HTML, {
          'content-security-policy': PAGE_CSP,
        });
        return;
      case '/dashboard.js':
        send(req, res, 200, 'text/javascript; charset=utf-8', DASHBOARD_JS);
        return;
      case '/dashboard.css':
        send(req, res, 200, 'text/css; charset=utf-8', DASHBOARD_CSS);
        return;
      case '/metrics':
        send(req, res, 200, registry.contentType, await registry.metrics());
        return;
      case '/healthz':
        sendJson(req, res, 200, { status: 'ok', uptimeSeconds: Math.round(process.uptime()) });
        return;
      case '/readyz': {
        const r = readiness(server);
        sendJson(
          req,
          res,
          r.ready ? 200 : 503,
          r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason },
        );
        return;
      }
      case '/api/connections': {
        let query: ConnectionQuery;
        try {
          query = connectionQuery(url, pageSize, maxPageSize);
        } catch (err) {
          sendJson(req, res, 400, { error: (err as Error).message });
          return;
        }
        const now = clock.now();
        const { offset, limit } = query;
        const { picked, total } = pickWorst(server.connections, limit, query.states, offset);
        const end = offset + picked.length;
        const page: ConnectionsPage = {
          at: clock.wallNow(),
          server: describeServer(server),
          total,
          offset,
          limit,
          next: end < total && limit > 0 ? end : null,
          connections: picked.map((c) => describeConnection(c, now)),
        };
        sendJson(req, res, 200, page);
        return;
      }
      case '/api/events':
        events(req, res);
        return;
      default:
        sendJson(req, res, 404, { error: `no such path: ${url.pathname}` });
    }
  };

  const http = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      logger?.error({ err, path: req.url }, 'admin request failed');
      if (!res.headersSent) sendJson(req, res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });

  const stopObserving = (): void => {
    feed.close();
    unbind();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, host, () => {
        http.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    stopObserving();
    throw err;
  }
  const address = http.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shown}:${address.port}`;
  logger?.info({ url }, 'admin listening');

  let closing: Promise<void> | null = null;
  return {
    host: address.address,
    port: address.port,
    url,
    registry,
    close() {
      closing ??= new Promise<void>((resolve) => {
        stopObserving();
        for (const res of streams) res.end();
        http.close(() => resolve());
        http.closeAllConnections();
        logger?.info({ url }, 'admin closed');
      });
      return closing;
    },
  };
}
