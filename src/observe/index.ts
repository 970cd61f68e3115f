/**
 * Observability: structured logs (pino), Prometheus metrics (prom-client), and an admin
 * HTTP endpoint with health probes, a JSON API and a live dashboard. Everything attaches
 * to events the library already emits; nothing here runs unless it is asked for.
 */

export { ADMIN_DEFAULTS, type AdminOptions, type AdminServer, startAdmin } from './admin.js';
export { EVENT_LOOP_WINDOW_MS, type EventLoopDelay } from './event-loop.js';
export type { CloseRecord, LiveHello, LiveSnapshot, StateRecord } from './live.js';
export { levelForReason } from './log.js';
export {
  createLogger,
  isLogLevel,
  LOG_LEVELS,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  type ObserveLogger,
} from './logger.js';
export {
  createRegistry,
  DETECTION_BUCKETS,
  HeartlineMetrics,
  METRIC_PREFIX,
  metricsFor,
  RTT_BUCKETS,
} from './metrics.js';
export { type ObserveOptions, type Observer, observeClient, observeServer } from './observer.js';
export {
  type ConnectionInfo,
  type ConnectionsPage,
  describeConnection,
  describeServer,
  MAX_SHOWN_CHARS,
  type Readiness,
  readiness,
  type ServerInfo,
  shownText,
} from './snapshot.js';
