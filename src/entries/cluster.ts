/**
 * `heartline/cluster`: several servers that share their sessions, so that any node of a
 * cluster can resume, route to and see any session. `joinCluster()` makes the server's
 * `cluster` option from a session store (`ClusterStore`: the `SessionStore` and
 * `PresenceStore` contracts on one backend): `RedisStore` needs ioredis, an optional peer
 * dependency (`npm install ioredis`), loaded on the store's first use; `MemoryStore`
 * shares sessions between servers of one process. Give `joinCluster()` either as `store`,
 * or `redis` (a URL or ioredis options) and each server creates a RedisStore itself.
 * @packageDocumentation
 */

export { CLUSTER_DEFAULTS } from '../cluster/defaults.js';
export { type ClusterOptions, joinCluster } from '../cluster/node.js';
export {
  type RedisClient,
  type RedisConnectionOptions,
  RedisStore,
  type RedisStoreOptions,
  type StoreStatus,
} from '../cluster/redis-store.js';
export type {
  ClusterPlugin,
  DirectoryHost,
  DirectoryRefusal,
  PresenceInfo,
  ResumeRequest,
  SessionDirectory,
  StoreEvent,
  StoreWriteback,
} from '../server/directory.js';
export { MemoryStore, type MemoryStoreOptions } from '../session/memory-store.js';
export type {
  AppendResult,
  ClusterStore,
  CommitBatch,
  CommitResult,
  InboxEntry,
  OwnerFence,
  PresenceEntry,
  PresenceEvent,
  PresenceStore,
  SessionMeta,
  SessionSnapshot,
  SessionStore,
  StoredSession,
  StoreNote,
  Unsubscribe,
} from '../session/store.js';
