/**
 * heartline: heartbeats, health and resumable sessions for long-lived TCP connections.
 *
 * The main entry holds what an application calls: the server, the client, the
 * connection they share, their events, errors and close codes. Optional parts have
 * their own entry points, so that importing this one never loads their libraries:
 * `heartline/cluster` (session stores, Redis through ioredis), `heartline/observe`
 * (pino logs, prom-client metrics, the admin endpoint), `heartline/chaos` (the
 * fault-injecting proxy) and `heartline/codec` (the wire format).
 * @packageDocumentation
 */

export type { BackoffOptions, JitterMode } from './client/backoff.js';
// The client.
export { ClientConnection, type ClientOptions, connect } from './client/client.js';
export type { ServerAddress } from './client/servers.js';
export type { ClusterOptions } from './cluster/node.js';
// What both ends share.
export {
  type AckOptions,
  type CircuitState,
  Connection,
  type ConnectionEvents,
  type ConnectionStats,
  type GiveUpEvent,
  type MessageInfo,
  type OpenEvent,
  type ReconnectingEvent,
  type RequestOptions,
  type SessionLostEvent,
} from './connection.js';
// Errors and close codes.
export {
  type ErrorCode,
  ErrorCodes,
  HeartlineError,
  InvalidArgumentError,
  ProtocolError,
  RequestError,
} from './errors.js';
export {
  type DetectorFactory,
  fixedDetector,
  type HealthState,
  type PhiAccrualOptions,
  phiDetector,
  type StateChange,
} from './health/index.js';
export type { CloseInfo } from './link.js';
export { type TcpOptionsSupport, tcpOptionsSupport } from './net/sockopts.js';
export type { CommonOptions, HeartbeatSettings, TcpOptions } from './options.js';
export { CloseCode, type CloseReason } from './protocol/close-codes.js';
export type {
  AdaptiveOptions,
  HeartbeatGrant,
  HeartbeatLoad,
  HeartbeatPolicy,
  RetuneEvent,
} from './server/adaptive.js';
export type { AdmissionLimit, AdmissionOptions, AdmissionStats } from './server/admission.js';
export type { ClusterPlugin, PresenceInfo, StoreEvent } from './server/directory.js';
export type { LoadEvent, LoadLevel, LoadOptions } from './server/load.js';
// The server.
export {
  type Authenticate,
  createServer,
  type HelloInfo,
  type PeerInfo,
  type RejectEvent,
  Server,
  type ServerEvents,
  type ServerOptions,
} from './server/server.js';
export { ServerConnection } from './server/server-connection.js';
export type { TlsPeerInfo } from './server/tls.js';
export type { WorkersOptions } from './server/workers/mode.js';
export type { WorkerEvent, WorkerStats } from './server/workers/primary.js';
export type { Clock } from './time/clock.js';
export type { Transport, TransportEvents } from './transport/transport.js';
