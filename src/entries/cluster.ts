/**
 * `heartline/cluster`: session stores, so that any node of a cluster can resume a
 * session. `RedisStore` needs ioredis, an optional peer dependency (`npm install
 * ioredis`), loaded on the store's first use; `MemoryStore` shares sessions between
 * servers of one process. Pass either as the server's `store` option, or give `redis`
 * (a URL or ioredis options) and the server creates a RedisStore itself.
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
} from '../session/store.js';
