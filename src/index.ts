/**
 * heartline: heartbeats, health and resumable sessions for long-lived TCP connections.
 * @packageDocumentation
 */

export { Backoff, type BackoffOptions, type JitterMode } from './client/backoff.js';
export { CLIENT_DEFAULTS, ClientConnection, type ClientOptions, connect } from './client/client.js';
export { parseServerList, type ServerAddress } from './client/servers.js';
export {
  CLUSTER_DEFAULTS,
  type ClusterOptions,
  type PresenceInfo,
  type StoreEvent,
  type StoreWriteback,
} from './cluster/node.js';
export { PRESENCE_DEFAULTS } from './cluster/presence.js';
export {
  type RedisClient,
  type RedisConnectionOptions,
  RedisStore,
  type RedisStoreOptions,
  type StoreStatus,
} from './cluster/redis-store.js';
export {
  type CircuitState,
  Connection,
  type ConnectionEvents,
  type ConnectionStats,
  type GiveUpEvent,
  type MessageInfo,
  type OpenEvent,
  type ReconnectingEvent,
  type SessionLostEvent,
} from './connection.js';
export {
  type ErrorCode,
  ErrorCodes,
  HeartlineError,
  InvalidArgumentError,
  ProtocolError,
} from './errors.js';
export * from './health/index.js';
export type { CloseInfo } from './link.js';
export {
  applyTcpOptions,
  readTcpOptions,
  TCP_OPTION_LIMITS,
  TCP_OPTIONS_WARNING,
  type TcpApplyResult,
  type TcpOptionsSupport,
  type TcpOptionValues,
  type TcpSocketSettings,
  tcpOptionsSupport,
} from './net/sockopts.js';
export * from './observe/index.js';
export {
  CONNECTION_DEFAULTS,
  type CommonOptions,
  HEARTBEAT_DEFAULTS,
  type HeartbeatSettings,
  PING_POLICY_DEFAULTS,
  type PingPolicyOptions,
  TCP_DEFAULTS,
  type TcpOptions,
  tcpSettingsFor,
} from './options.js';
export {
  CloseCode,
  type CloseReason,
  FINAL_REASONS,
  reasonForCode,
} from './protocol/close-codes.js';
export * as codec from './protocol/codec.js';
export * from './protocol/frames.js';
export {
  ADAPTIVE_DEFAULTS,
  type AdaptiveOptions,
  type HeartbeatGrant,
  type HeartbeatLoad,
  type HeartbeatPolicy,
  type RetuneEvent,
} from './server/adaptive.js';
export {
  ADMISSION_DEFAULTS,
  type AdmissionLimit,
  type AdmissionOptions,
  type AdmissionStats,
} from './server/admission.js';
export {
  LOAD_DEFAULTS,
  type LoadEvent,
  type LoadLevel,
  type LoadMetric,
  type LoadOptions,
  type LoadReason,
  type LoadSample,
  type LoadSampler,
  type LoadThresholds,
  type ProcessSample,
} from './server/load.js';
export {
  type Authenticate,
  createServer,
  type HelloInfo,
  type PeerInfo,
  type RejectEvent,
  SERVER_DEFAULTS,
  Server,
  type ServerEvents,
  type ServerOptions,
} from './server/server.js';
export { ServerConnection } from './server/server-connection.js';
export type { TlsPeerInfo } from './server/tls.js';
export { WORKERS_DEFAULTS, type WorkersOptions } from './server/workers/mode.js';
export type { WorkerEvent, WorkerStats } from './server/workers/primary.js';
export {
  type AppendResult,
  type CommitBatch,
  type CommitResult,
  type InboxEntry,
  MemoryStore,
  type MemoryStoreOptions,
  type OwnerFence,
  type PresenceEntry,
  type PresenceEvent,
  type SessionMeta,
  type SessionSnapshot,
  type SessionStore,
  type StoredSession,
  type StoreNote,
  type Unsubscribe,
} from './session/store.js';
export { type Clock, systemClock } from './time/clock.js';
export { FakeClock } from './time/fake-clock.js';
export { TimingWheel, type WheelTimer } from './time/wheel.js';
