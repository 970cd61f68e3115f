/**
 * `heartline serve`: runs a server and reports every connection event.
 */

import { InvalidArgumentError } from '../errors.js';
import { startAdmin } from '../observe/admin.js';
import { createLogger, isLogLevel, LOG_LEVELS } from '../observe/logger.js';
import { createRegistry } from '../observe/metrics.js';
import { observeServer } from '../observe/observer.js';
import { answerMetrics, workersRegistry } from '../observe/workers-metrics.js';
import { CONNECTION_DEFAULTS, HEARTBEAT_DEFAULTS, PING_POLICY_DEFAULTS } from '../options.js';
import { CloseCode } from '../protocol/close-codes.js';
import { ADAPTIVE_DEFAULTS } from '../server/adaptive.js';
import { ADMISSION_DEFAULTS } from '../server/admission.js';
import { DEFAULT_MAX_TIMEOUT } from '../server/grant.js';
import { createServer, SERVER_DEFAULTS } from '../server/server.js';
import { isWorkerProcess, WORKERS_DEFAULTS } from '../server/workers/mode.js';
import { ENTRY_OVERHEAD } from '../session/outbound.js';
import { ExitCode, intFlag, listenFlag, msFlag, parseFlags, UsageError } from './args.js';
import { CLUSTER_FLAGS, CLUSTER_HELP, clusterOptions, reportCluster } from './cluster-flags.js';
import { EventOutput, reportConnection } from './output.js';
import { serverTls } from './tls-flags.js';

export const serveHelp = `Usage: heartline serve [options]

Runs a heartline server and prints one line per event.

Options:
  --host H             address to listen on (default 127.0.0.1)
  --port P             port to listen on; 0 picks a free one (default 0)
  --interval MS        heartbeat interval granted to clients (default ${HEARTBEAT_DEFAULTS.interval})
  --timeout MS         heartbeat timeout granted to clients (default 3 x interval)
  --session-ttl MS     how long a lost session waits for a resume (default ${SERVER_DEFAULTS.sessionTtl})
  --drain-timeout MS   on SIGTERM/SIGINT, how long to wait for in-flight messages to be
                       acknowledged before closing (default ${SERVER_DEFAULTS.drainTimeout})
  --handshake-timeout MS
                       close a socket that has not completed TLS and HELLO by then,
                       counted from the TCP accept (default ${CONNECTION_DEFAULTS.handshakeTimeout})
  --max-frame BYTES    largest frame accepted or sent (default ${CONNECTION_DEFAULTS.maxFrame})
  --max-buffered-bytes BYTES
                       replay-buffer cap per connection, each message counted as its
                       payload + ${ENTRY_OVERHEAD} bytes; a client that leaves more unacknowledged gets
                       CLOSE(policy violation) (default ${CONNECTION_DEFAULTS.maxBufferedBytes})
  --max-total-buffered-bytes BYTES
                       what the replay buffers of all connections may hold together;
                       past it a reply closes its connection with CLOSE(overloaded)
                       (default ${SERVER_DEFAULTS.maxTotalBufferedBytes})
  --max-timeout MS     longest heartbeat timeout a client may obtain (default ${DEFAULT_MAX_TIMEOUT})
  --partial-frame-timeout MS
                       an incomplete frame must be done within this, plus 1 s per
                       min-data-rate bytes received of it (default ${CONNECTION_DEFAULTS.partialFrameTimeout})
  --min-data-rate BYTES
                       bytes per second an incomplete frame earns more time with;
                       0 turns the partial-frame deadline off (default ${CONNECTION_DEFAULTS.minDataRate})
  --max-hello-field-bytes BYTES
                       longest HELLO clientId and traceId, each (default ${SERVER_DEFAULTS.maxHelloFieldBytes})
  --max-auth-bytes BYTES
                       longest HELLO auth field (default ${SERVER_DEFAULTS.maxAuthBytes})
  --workers N          serve from N worker processes behind this one (one port; limits
                       below are machine-wide, split over the workers); 0: this process
                       only (default ${WORKERS_DEFAULTS.workers})
  --max-ping-strikes N close a client that pings faster than its grant allows after N
                       strikes with CLOSE(policy violation); 0 never (default ${PING_POLICY_DEFAULTS.maxPingStrikes})
  --max-connections N  most open sockets; more get CLOSE(overloaded) (default ${ADMISSION_DEFAULTS.maxConnections},
                       or the open-file limit - 256 when lower)
  --max-connections-per-address N
                       most open sockets from one address (IPv6: one /64)
                       (default unlimited)
  --max-sessions N     most sessions, counting those waiting for a resume
                       (default 2 x max-connections)
  --max-sessions-per-address N
                       most sessions created from one address (default
                       2 x max-connections-per-address)
  --max-sessions-per-identity N
                       most sessions bound to one authenticated identity
                       (default ${ADMISSION_DEFAULTS.maxSessionsPerIdentity})
  --accept-rate N      sockets accepted per second (default ${ADMISSION_DEFAULTS.acceptRate})
  --accept-burst N     sockets accepted at once before the rate applies
                       (default accept-rate)
  --max-heartbeats-per-second N
                       heartbeat budget: above it every interval is stretched
                       (default ${ADAPTIVE_DEFAULTS.maxHeartbeatsPerSecond})
                       Each of these eight takes "unlimited" too.
  --tls-cert FILE      serve TLS with this PEM certificate (chain)...
  --tls-key FILE       ...and this PEM private key
  --tls-ca FILE        mutual TLS: require client certificates signed by this PEM CA
${CLUSTER_HELP}
  --echo               send every received message back to its sender (a reply,
                       committed with the message when sessions live in Redis)
  --admin [HOST:]PORT  serve /metrics, /healthz, /readyz, /api/connections and the live
                       dashboard at / (host defaults to 127.0.0.1; port 0 picks one)
  --log-level LEVEL    structured pino logs on stderr (trace, debug, info, warn, error,
                       fatal, silent); off by default
  --json               one JSON event per line on stdout
  -h, --help           show this help

Examples:
  heartline serve --port 7000 --echo
  heartline serve --port 7001 --echo --redis redis://127.0.0.1:6379 --node-id a
  heartline serve --port 0 --interval 1000 --timeout 3000 --json
  heartline serve --port 7000 --admin 9464 --log-level info   # dashboard at :9464/
  heartline serve --port 7000 --tls-cert server.crt --tls-key server.key --tls-ca ca.crt`;

/** A positive integer flag, or "unlimited" (Infinity); undefined stays undefined. */
function limitFlag(name: string, value: string | undefined): number | undefined {
  if (value?.trim() === 'unlimited') return Number.POSITIVE_INFINITY;
  return intFlag(name, value, 1);
}

/** The flags of `serve` (config files and the environment are checked against them too). */
export const serveFlags = {
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '0' },
  interval: { type: 'string' },
  timeout: { type: 'string' },
  'session-ttl': { type: 'string' },
  'drain-timeout': { type: 'string' },
  admin: { type: 'string' },
  'log-level': { type: 'string' },
  'handshake-timeout': { type: 'string' },
  'max-frame': { type: 'string' },
  'max-buffered-bytes': { type: 'string' },
  'max-timeout': { type: 'string' },
  'partial-frame-timeout': { type: 'string' },
  'min-data-rate': { type: 'string' },
  'max-hello-field-bytes': { type: 'string' },
  'max-auth-bytes': { type: 'string' },
  'max-total-buffered-bytes': { type: 'string' },
  workers: { type: 'string' },
  'max-ping-strikes': { type: 'string' },
  'max-connections': { type: 'string' },
  'max-connections-per-address': { type: 'string' },
  'max-sessions': { type: 'string' },
  'max-sessions-per-address': { type: 'string' },
  'max-sessions-per-identity': { type: 'string' },
  'accept-rate': { type: 'string' },
  'accept-burst': { type: 'string' },
  'max-heartbeats-per-second': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  ...CLUSTER_FLAGS,
  echo: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
} as const;

/** Runs the command; resolves with the exit code once the server has closed. */
export async function serve(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, serveFlags);
  // Parsed up front so that a bad --port is a usage error (exit 2), not a listen
  // failure (exit 1).
  const port = intFlag('port', values.port, 0, 65535);
  const drainTimeout =
    intFlag('drain-timeout', values['drain-timeout'], 0) ?? SERVER_DEFAULTS.drainTimeout;
  const admin = values.admin === undefined ? null : listenFlag('admin', values.admin);
  const logLevel = values['log-level'];
  if (logLevel !== undefined && !isLogLevel(logLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const out = new EventOutput(values.json);
  const options = {
    interval: msFlag(
      'interval',
      values.interval,
      `default ${HEARTBEAT_DEFAULTS.interval}; the server lets clients ask for ${SERVER_DEFAULTS.minInterval}-${SERVER_DEFAULTS.maxInterval}`,
    ),
    timeout: intFlag('timeout', values.timeout, 1),
    sessionTtl: intFlag('session-ttl', values['session-ttl'], 0),
    handshakeTimeout: intFlag('handshake-timeout', values['handshake-timeout'], 1),
    maxFrame: intFlag('max-frame', values['max-frame'], 64, 0xffff_ffff),
    maxBufferedBytes: intFlag('max-buffered-bytes', values['max-buffered-bytes'], 1),
    maxTimeout: intFlag('max-timeout', values['max-timeout'], 1),
    partialFrameTimeout: intFlag('partial-frame-timeout', values['partial-frame-timeout'], 1),
    minDataRate: intFlag('min-data-rate', values['min-data-rate'], 0),
    maxHelloFieldBytes: intFlag('max-hello-field-bytes', values['max-hello-field-bytes'], 1, 65535),
    maxAuthBytes: intFlag('max-auth-bytes', values['max-auth-bytes'], 0, 65535),
    maxTotalBufferedBytes: intFlag(
      'max-total-buffered-bytes',
      values['max-total-buffered-bytes'],
      1,
    ),
    maxPingStrikes: intFlag('max-ping-strikes', values['max-ping-strikes'], 0, 1000),
    tls: serverTls(values),
    workers: intFlag('workers', values.workers, 0, 256),
    ...clusterOptions(values),
    maxConnections: limitFlag('max-connections', values['max-connections']),
    maxConnectionsPerAddress: limitFlag(
      'max-connections-per-address',
      values['max-connections-per-address'],
    ),
    maxSessions: limitFlag('max-sessions', values['max-sessions']),
    maxSessionsPerAddress: limitFlag(
      'max-sessions-per-address',
      values['max-sessions-per-address'],
    ),
    maxSessionsPerIdentity: limitFlag(
      'max-sessions-per-identity',
      values['max-sessions-per-identity'],
    ),
    acceptRate: limitFlag('accept-rate', values['accept-rate']),
    acceptBurst: limitFlag('accept-burst', values['accept-burst']),
    maxHeartbeatsPerSecond: limitFlag(
      'max-heartbeats-per-second',
      values['max-heartbeats-per-second'],
    ),
  };
  let server: ReturnType<typeof createServer>;
  try {
    server = createServer(options);
  } catch (err) {
    // Flags the library refuses together (say --timeout below 2 x --interval) are usage
    // errors too: exit 2 with one line, not a stack trace.
    if (err instanceof InvalidArgumentError) throw new UsageError(err.message);
    throw err;
  }
  // A worker of --workers runs this same command: it reports its connections, while the
  // primary reports listening, workers and shutdown, and serves the admin endpoint.
  const worker = (options.workers ?? 0) > 0 && isWorkerProcess();
  // Assigned once listening (logs start then); until then crash loops go to stderr.
  let logger: ReturnType<typeof createLogger> | undefined;
  server.on('worker', (e) => {
    out.event('worker', {
      slot: e.slot,
      pid: e.pid,
      state: e.event,
      code: e.code,
      signal: e.signal,
      crashes: e.crashes,
      retryIn: e.retryIn,
    });
    // An operator must hear of a crash loop even without --log-level (the logger says it).
    if (e.event === 'crash-loop' && !logger) {
      process.stderr.write(
        `heartline serve: worker slot ${e.slot} crashed ${e.crashes} times in a row; forking it again in ${e.retryIn} ms\n`,
      );
    }
  });
  // heartline emits no 'error' on the server; should anything ever do so, it is reported
  // rather than left to Node, which would turn an unheard 'error' into this process's exit.
  server.on('error', (err) => {
    out.event('error', { code: err.code, message: err.message });
    process.stderr.write(`heartline serve: ${err.message}\n`);
  });
  server.on('connection', (conn) => {
    out.event('connection', { conn: conn.id, remote: conn.remote, session: conn.sessionId });
    reportConnection(out, conn);
    if (values.echo) conn.on('message', (data, info) => info.reply(data));
  });
  if (values.redis !== undefined) reportCluster(out, server);
  server.on('rejected', (e) =>
    out.event('rejected', {
      remote: e.remote,
      reason: e.info.reason,
      code: e.info.code ?? null,
      limit: e.limit,
      retryAfter: e.info.retryAfter,
    }),
  );
  server.on('load', (e) =>
    out.event('load', {
      level: e.to,
      previous: e.from,
      reasons: e.reasons.map((r) => `${r.metric} ${Math.round(r.value)} >= ${r.threshold}`),
    }),
  );
  server.on('retune', (e) =>
    out.event('retune', {
      interval: e.interval,
      factor: Math.round(e.to * 1000) / 1000,
      connections: e.connections,
      demand: Math.round(e.demand),
      budget: e.budget,
    }),
  );
  // Logs go to stderr so that stdout keeps only the events (JSON or readable). Made before
  // listening, so that a missing optional package (pino, prom-client: HL_ERR_MISSING_PACKAGE)
  // fails the command before it serves anything.
  logger = logLevel === undefined ? undefined : createLogger({ level: logLevel, destination: 2 });
  // With --workers, the primary's /metrics adds up the workers' registries.
  const registry =
    admin || logger
      ? options.workers && !worker
        ? workersRegistry(server)
        : createRegistry()
      : undefined;
  let address: { port: number; address: string };
  try {
    address = await server.listen(port, values.host);
  } catch (err) {
    process.stderr.write(`heartline serve: cannot listen: ${(err as Error).message}\n`);
    return ExitCode.FAILURE;
  }
  let adminUrl: string | undefined;
  if (registry) {
    observeServer(server, { registry, ...(logger ? { logger } : {}) });
    if (worker) answerMetrics(server, registry);
    if (admin && !worker) {
      try {
        const started = await startAdmin(server, {
          ...admin,
          registry,
          ...(logger ? { logger } : {}),
        });
        adminUrl = started.url;
        server.once('close', () => void started.close());
      } catch (err) {
        process.stderr.write(
          `heartline serve: cannot start the admin endpoint: ${(err as Error).message}\n`,
        );
        await server.close();
        return ExitCode.FAILURE;
      }
    }
  }
  if (!worker) {
    out.event('listening', {
      port: address.port,
      host: address.address,
      node: values.redis !== undefined ? server.nodeId : undefined,
      admin: adminUrl,
    });
  }

  return new Promise<number>((resolve) => {
    // Also when it closes without a signal (a worker asked to by its primary).
    server.once('close', () => resolve(ExitCode.OK));
    let signals = 0;
    const stop = (signal: NodeJS.Signals) => {
      // A worker drains when its primary says so (a terminal's Ctrl-C reaches both).
      if (worker) return;
      signals++;
      if (signals > 1) {
        out.event('shutdown', { signal, forced: true });
        process.exit(ExitCode.FAILURE);
      }
      out.event('shutdown', { signal, code: CloseCode.GOING_AWAY, drainMs: drainTimeout });
      void server.drain({ timeout: drainTimeout }).then(() => resolve(ExitCode.OK));
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
