/**
 * `heartline/cluster`: session and presence stores, so that any node of a cluster can
 * resume a session and find where a session is online (`ClusterStore`: the `SessionStore`
 * and `PresenceStore` contracts on one backend). `RedisStore` needs ioredis, an optional
 * peer dependency (`npm install ioredis`), loaded on the store's first use; `MemoryStore`
 * shares sessions between servers of one process. Pass either as the server's `store`
 * option, or give `redis` (a URL or ioredis options) and the server creates a RedisStore
 * itself.
 * @packageDocumentation
 */

export {
  CLUSTER_DEFAULTS,
  type ClusterOptions,
  type PresenceInfo,
  type StoreEvent,
  type StoreWriteback,
} from '../cluster/node.js';
export {
  type RedisClient,
  type RedisConnectionOptions,
  RedisStore,
  type RedisStoreOptions,
  type StoreStatus,
} from '../cluster/redis-store.js';
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
