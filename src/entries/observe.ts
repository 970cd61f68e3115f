/**
 * `heartline/observe`: structured logs (pino), Prometheus metrics (prom-client) and the
 * admin HTTP endpoint with health probes, a JSON API and a live dashboard. pino,
 * pino-pretty and prom-client are optional peer dependencies (`npm install pino
 * pino-pretty prom-client`), loaded on first use: importing this entry loads none of them.
 * @packageDocumentation
 */

export {
  ADMIN_DEFAULTS,
  type AdminOptions,
  type AdminServer,
  startAdmin,
} from '../observe/admin.js';
export type { CloseRecord, LiveHello, LiveSnapshot, StateRecord } from '../observe/live.js';
export { levelForReason } from '../observe/log.js';
export {
  createLogger,
  isLogLevel,
  LOG_LEVELS,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  type ObserveLogger,
} from '../observe/logger.js';
export {
  createRegistry,
  DETECTION_BUCKETS,
  HeartlineMetrics,
  METRIC_PREFIX,
  metricsFor,
  RTT_BUCKETS,
} from '../observe/metrics.js';
export {
  type ObserveOptions,
  type Observer,
  observeClient,
  observeServer,
} from '../observe/observer.js';
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
} from '../observe/snapshot.js';
