/**
 * The store contracts of a cluster: what a node needs to resume a session it has never
 * seen, to keep exactly-once delivery when the node that held the session dies, and to know
 * where sessions are online. Two interfaces, one job each:
 *
 * - {@link SessionStore}: the sessions themselves (state, outbound log, inbox, ownership,
 *   the notes nodes send each other). The journal, takeover and routing use it.
 * - {@link PresenceStore}: which session and client ids are online on which node, with the
 *   nodes' liveness beats. The presence service uses it.
 *
 * A backend implements both ({@link ClusterStore}, the server's `store` option):
 * `MemoryStore` (src/session/memory-store.ts) in this process, so several servers of one
 * process can share it; `RedisStore` (src/cluster/redis-store.ts) in Redis, so that any
 * node of a cluster can take a session over. test/support/store-contract.ts is the
 * contract as tests, run against both.
 *
 * A stored session holds, per direction:
 * - client -> server: `received`, the highest client seq whose handling is committed
 *   (every reply the application produced for it is in the log), and `seen`, the highest
 *   client seq a node may have handed to its application (`seen >= received`). A node
 *   writes `seen` before it delivers, so the next node can flag what it delivers again
 *   (`redelivered`).
 * - server -> client: the outbound log, every message the client has not acknowledged,
 *   with seqs `acked + 1 .. lastSeq`. A node only writes a seq to the socket once it is in
 *   the log, so a seq never names two different messages, whichever node sent it.
 * - an inbox: messages other nodes sent to the session (`sendTo`), not yet numbered. The
 *   owner moves them into the log (numbering them) in a commit that also trims them from
 *   the inbox, by absolute inbox id, so a retried commit never loses or doubles one.
 *
 * A session comes into the store with the first commit of its owner that carries a
 * `snapshot`. Ownership: `claim()` makes a node the owner and bumps `gen`; every write of
 * the owner carries `{ node, gen }` and is refused (`fenced`) once another node has claimed
 * the session, so a node cut off from its client can never overwrite its successor.
 *
 * Every key lives for the session TTL after the owner's last write or touch.
 */

/** What identifies a session and binds it to its client. */
export interface SessionMeta {
  /** Session id, 32 lower-case hex digits. */
  sessionId: string;
  /** The resume token (16 bytes), compared in constant time by the node. */
  token: Uint8Array;
  /**
   * The token `token` replaced, still accepted until the client shows it holds the new
   * one (tokens are single-use: each resume issues a new one); absent or empty: none.
   */
  previousToken?: Uint8Array;
  /** The identity the authenticate hook bound the session to, or null. */
  identity: string | null;
  /** The client id from HELLO (may be empty). */
  clientId: string;
  /** The trace id from HELLO (may be empty). */
  traceId: string;
}

/** A session as the store holds it. */
export interface StoredSession extends SessionMeta {
  /** Highest client seq whose handling and replies are committed. */
  received: number;
  /** Highest client seq a node may have handed to its application (>= received). */
  seen: number;
  /** Highest server seq the client acknowledged. */
  acked: number;
  /** Highest server seq in the log (the next one is lastSeq + 1). */
  lastSeq: number;
  /** Payloads of seqs acked + 1 .. lastSeq, in order. */
  log: Uint8Array[];
  /** Bytes held by the log. */
  bytes: number;
  /** The node that holds (or last held) the session's live link; null when none. */
  owner: string | null;
  /** Ownership generation, bumped by every claim. */
  gen: number;
  /** Id of the first message still in the inbox (ids count from 1 per session). */
  inboxHead: number;
  /** Id of the last message in the inbox; inboxHead - 1 when it is empty. */
  inboxTail: number;
  /** Session TTL in ms: every key expires this long after the owner's last write. */
  ttl: number;
  /** Most bytes the log and the inbox may hold together. */
  maxBytes: number;
}

/** The writer of a commit: refused once another node has claimed the session. */
export interface OwnerFence {
  node: string;
  gen: number;
}

/** Creates the session when it is missing, or rebases it on the node's own state. */
export interface SessionSnapshot extends SessionMeta {
  /** Session TTL in ms. */
  ttl: number;
  /** Most bytes the log and the inbox may hold together (the node's replay-buffer cap). */
  maxBytes: number;
}

/** One atomic write of the owner. */
export interface CommitBatch {
  /** Highest client seq whose handling this commit completes (never lowers the stored one). */
  received: number;
  /** Highest client seq the node may hand to its application next (default: `received`). */
  seen?: number;
  /**
   * Messages to the client, appended to the log in order. The first gets `firstSeq` when
   * given (entries at or below the stored lastSeq are skipped: a retried commit is
   * harmless), else lastSeq + 1.
   */
  replies: Uint8Array[];
  /** Seq of `replies[0]` as the node numbered it. */
  firstSeq?: number;
  /** The client acknowledged every server seq up to this: trim the log. */
  acked?: number;
  /** The node has numbered every inbox message up to this id: trim them from the inbox. */
  inboxThrough?: number;
  /** Refuse the write unless this node still owns the session. */
  owner?: OwnerFence;
  /**
   * The node's full state: create the session if it is missing (a new session, or the store
   * lost it), and rebase the log when the store is behind `firstSeq`.
   */
  snapshot?: SessionSnapshot;
}

/** The outcome of {@link SessionStore.commit}. */
export type CommitResult =
  | {
      status: 'ok';
      /** Seq of replies[0] (what it would have been when there were none). */
      firstSeq: number;
      /** Highest seq in the log after the commit. */
      lastSeq: number;
      /** Id of the last inbox message, so the owner knows whether any wait for it. */
      inboxTail: number;
      /** The session was created by this commit. */
      created: boolean;
    }
  /** No such session: expired, deleted, or lost by the store. */
  | { status: 'missing' }
  /**
   * Another node claimed the session (`owner`, `gen`), or a snapshot tried to bring back a
   * session an owner at least as recent deleted (`owner` null: its tombstone).
   */
  | { status: 'fenced'; owner: string | null; gen: number }
  /** The log and inbox would pass maxBytes: the session was deleted (the client loses it). */
  | { status: 'overflow' }
  /** `firstSeq` is past the stored lastSeq + 1: the store lost writes; send a snapshot. */
  | { status: 'gap'; lastSeq: number };

/** A message another node put in a session's inbox. */
export interface InboxEntry {
  /** Absolute inbox id (from 1 per session). */
  id: number;
  payload: Uint8Array;
}

/** The outcome of {@link SessionStore.append}. */
export type AppendResult =
  | { status: 'ok'; id: number; owner: string | null }
  | { status: 'missing' }
  /** The session's log and inbox would pass its maxBytes; nothing was appended. */
  | { status: 'full' };

/** What a store tells one node (delivery is best effort: a lost or doubled note is harmless). */
export type StoreNote =
  /** New inbox messages up to `id` wait for the session this node owns. */
  | { type: 'inbox'; sessionId: string; id: number }
  /** Another node claimed the session with generation `gen`. */
  | { type: 'superseded'; sessionId: string; gen: number };

/** One session online on one node. */
export interface PresenceEntry {
  node: string;
  sessionId: string;
  /** The client id from HELLO (may be empty). */
  clientId: string;
}

/** A session came online on a node, or went offline (its link closed, or its node died). */
export interface PresenceEvent extends PresenceEntry {
  online: boolean;
}

/** Stops a subscription. */
export type Unsubscribe = () => Promise<void>;

/**
 * Where sessions live when several nodes share them. Every method may reject with a
 * HeartlineError `HL_ERR_STORE` when the store cannot be reached.
 */
export interface SessionStore {
  /** The session with its log, or null. */
  load(sessionId: string): Promise<StoredSession | null>;
  /**
   * Makes `node` the owner: bumps the generation, refreshes the TTL and sends the previous
   * owner a `superseded` note. Returns the session as claimed, or null when it is missing.
   */
  claim(sessionId: string, node: string): Promise<StoredSession | null>;
  /**
   * Replaces the session's resume token (and the previous one still accepted, or none),
   * only while `owner` still owns it; false when it is missing or fenced.
   */
  setToken(
    sessionId: string,
    owner: OwnerFence,
    token: Uint8Array,
    previous: Uint8Array | null,
  ): Promise<boolean>;
  /** The owner's atomic write: received seq, seen mark, replies, acks and inbox trim. */
  commit(sessionId: string, batch: CommitBatch): Promise<CommitResult>;
  /** Inbox messages with id > `after`, oldest first, at most `max`. */
  fetchInbox(sessionId: string, after: number, max: number): Promise<InboxEntry[]>;
  /** Puts a message in the session's inbox and notes its owner. */
  append(sessionId: string, payload: Uint8Array): Promise<AppendResult>;
  /** Ids of the sessions that may exist for a client id. */
  sessionsOf(clientId: string): Promise<string[]>;
  /**
   * Refreshes the TTL of sessions `node` owns; per session, the inbox tail, -1 when another
   * node owns it, or -2 when it is missing (expired, deleted, or lost by the store).
   */
  touch(sessionIds: readonly string[], node: string): Promise<number[]>;
  /** Deletes a session (only while `owner` still owns it, when given); true if it existed. */
  delete(sessionId: string, owner?: OwnerFence): Promise<boolean>;
  /** Delivers the notes addressed to `node` until unsubscribed. */
  subscribe(node: string, onNote: (note: StoreNote) => void): Promise<Unsubscribe>;
  /**
   * Optional: calls `listener` when the store becomes reachable or unreachable, so a
   * server can report it before any call fails. Returns a function that stops it.
   */
  onStatus?(listener: (status: { up: boolean; error?: Error }) => void): () => void;
  /** Releases connections; the data stays. */
  close(): Promise<void>;
}

/**
 * Which session and client ids are online on which node, and which nodes are alive. Every
 * method may reject with a HeartlineError `HL_ERR_STORE` when the store cannot be reached.
 */
export interface PresenceStore {
  /** Marks a session online on its node and announces it (once). */
  presenceOnline(entry: PresenceEntry): Promise<void>;
  /** Marks a session offline and announces it (once). */
  presenceOffline(entry: PresenceEntry): Promise<void>;
  /**
   * `node` is alive for `ttl` more ms. Nodes not heard for their TTL are removed with every
   * entry they held, announcing each offline (exactly one node does it). Resolves true when
   * `node` was not listed before (its first beat, or it was reaped or the store lost it):
   * the node then announces its sessions again.
   */
  presenceBeat(node: string, ttl: number): Promise<boolean>;
  /** Removes every entry of `node` (its start or orderly stop), announcing each offline. */
  presenceClear(node: string): Promise<void>;
  /** Where a session id or client id is online (entries of live nodes only). */
  presenceLookup(id: string): Promise<PresenceEntry[]>;
  /** Delivers every presence event of the cluster until unsubscribed. */
  onPresence(listener: (event: PresenceEvent) => void): Promise<Unsubscribe>;
}

/**
 * One backend that keeps both sessions and presence, as a cluster node needs them: the
 * server's `store` option (`MemoryStore`, `RedisStore`, or your own). Its `close()`
 * releases the connections of both.
 */
export type ClusterStore = SessionStore & PresenceStore;
