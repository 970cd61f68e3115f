/**
 * The session store: what a node needs to resume a session it has never seen, and to keep
 * exactly-once delivery when the node that held the session dies. `SessionStore` is the
 * contract; {@link MemoryStore} keeps it in this process (several servers of one process
 * can share it), `RedisStore` (src/cluster/redis-store.ts) keeps it in Redis so that any
 * node of a cluster can take a session over.
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
 * Ownership: `claim()` makes a node the owner and bumps `gen`; every write of the owner
 * carries `{ node, gen }` and is refused (`fenced`) once another node has claimed the
 * session, so a node cut off from its client can never overwrite its successor.
 *
 * Every key lives for the session TTL after the owner's last write or touch.
 */

import { EventEmitter } from 'node:events';
import { InvalidArgumentError } from '../errors.js';
import { type Clock, systemClock } from '../time/clock.js';

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
  /** Creates a session owned by `node` (generation 1); false when the id exists already. */
  create(snapshot: SessionSnapshot, node: string): Promise<boolean>;
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
  /** The client acknowledged every server seq up to `seq`: trims the log. */
  ack(sessionId: string, seq: number, owner?: OwnerFence): Promise<void>;
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
  /**
   * Optional: calls `listener` when the store becomes reachable or unreachable, so a
   * server can report it before any call fails. Returns a function that stops it.
   */
  onStatus?(listener: (status: { up: boolean; error?: Error }) => void): () => void;
  /** Releases connections; the data stays. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// MemoryStore

interface MemorySession {
  meta: SessionMeta;
  received: number;
  seen: number;
  acked: number;
  lastSeq: number;
  log: Uint8Array[];
  bytes: number;
  owner: string | null;
  gen: number;
  inbox: Uint8Array[];
  inboxHead: number;
  inboxBytes: number;
  ttl: number;
  maxBytes: number;
  expiresAt: number;
}

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Clock for TTLs. @default systemClock */
  clock?: Clock;
}

function checkSeqArg(name: string, value: number | undefined): void {
  if (value === undefined) return;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`${name} must be a safe integer >= 0, got ${String(value)}`);
  }
}

/**
 * The {@link SessionStore} contract in this process, synchronous inside: every promise it
 * returns is already settled. Share one instance between several servers of one process to
 * get takeover, routing and presence without Redis (tests do), or keep one per server.
 * TTLs are checked against the clock on every access.
 */
export class MemoryStore implements SessionStore {
  readonly #clock: Clock;
  readonly #sessions = new Map<string, MemorySession>();
  /** Deleted sessions: the generation that deleted them, until their TTL passes. */
  readonly #tombstones = new Map<string, { gen: number; expiresAt: number }>();
  readonly #clients = new Map<string, Set<string>>();
  readonly #notes = new EventEmitter();
  readonly #presence = new EventEmitter();
  /** node -> expiry (clock ms). */
  readonly #nodes = new Map<string, number>();
  /** node -> its online entries by session id. */
  readonly #online = new Map<string, Map<string, PresenceEntry>>();

  constructor(options: MemoryStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#notes.setMaxListeners(0);
    this.#presence.setMaxListeners(0);
  }

  /** Sessions held (expired ones included until next looked at). */
  get size(): number {
    return this.#sessions.size;
  }

  #live(sessionId: string): MemorySession | null {
    const s = this.#sessions.get(sessionId);
    if (!s) return null;
    if (this.#clock.now() >= s.expiresAt) {
      this.#drop(sessionId, s);
      return null;
    }
    return s;
  }

  #drop(sessionId: string, s: MemorySession): void {
    this.#sessions.delete(sessionId);
    const set = this.#clients.get(s.meta.clientId);
    set?.delete(sessionId);
    if (set?.size === 0) this.#clients.delete(s.meta.clientId);
  }

  /** Deletes on purpose: a tombstone keeps a stale owner from writing it back. */
  #bury(sessionId: string, s: MemorySession): void {
    this.#drop(sessionId, s);
    const now = this.#clock.now();
    for (const [id, t] of this.#tombstones) if (t.expiresAt <= now) this.#tombstones.delete(id);
    this.#tombstones.set(sessionId, { gen: s.gen, expiresAt: now + s.ttl });
  }

  #refresh(s: MemorySession): void {
    s.expiresAt = this.#clock.now() + s.ttl;
  }

  #note(node: string, note: StoreNote): void {
    // Like pub/sub: delivered after the write that caused it, never inside it.
    queueMicrotask(() => this.#notes.emit(node, note));
  }

  #snapshot(s: MemorySession): StoredSession {
    return {
      ...s.meta,
      token: Uint8Array.from(s.meta.token),
      ...(s.meta.previousToken ? { previousToken: Uint8Array.from(s.meta.previousToken) } : {}),
      received: s.received,
      seen: s.seen,
      acked: s.acked,
      lastSeq: s.lastSeq,
      log: s.log.slice(),
      bytes: s.bytes,
      owner: s.owner,
      gen: s.gen,
      inboxHead: s.inboxHead,
      inboxTail: s.inboxHead + s.inbox.length - 1,
      ttl: s.ttl,
      maxBytes: s.maxBytes,
    };
  }

  #create(snapshot: SessionSnapshot, node: string, gen: number, base: number): MemorySession {
    const s: MemorySession = {
      meta: {
        sessionId: snapshot.sessionId,
        token: Uint8Array.from(snapshot.token),
        identity: snapshot.identity,
        clientId: snapshot.clientId,
        traceId: snapshot.traceId,
      },
      received: 0,
      seen: 0,
      acked: base,
      lastSeq: base,
      log: [],
      bytes: 0,
      owner: node,
      gen,
      inbox: [],
      inboxHead: 1,
      inboxBytes: 0,
      ttl: snapshot.ttl,
      maxBytes: snapshot.maxBytes,
      expiresAt: 0,
    };
    this.#refresh(s);
    this.#sessions.set(snapshot.sessionId, s);
    if (snapshot.clientId !== '') {
      let set = this.#clients.get(snapshot.clientId);
      if (!set) {
        set = new Set();
        this.#clients.set(snapshot.clientId, set);
      }
      set.add(snapshot.sessionId);
    }
    return s;
  }

  async create(snapshot: SessionSnapshot, node: string): Promise<boolean> {
    if (this.#live(snapshot.sessionId)) return false;
    this.#create(snapshot, node, 1, 0);
    return true;
  }

  async load(sessionId: string): Promise<StoredSession | null> {
    const s = this.#live(sessionId);
    return s ? this.#snapshot(s) : null;
  }

  async claim(sessionId: string, node: string): Promise<StoredSession | null> {
    const s = this.#live(sessionId);
    if (!s) return null;
    const previous = s.owner;
    s.gen++;
    s.owner = node;
    this.#refresh(s);
    if (previous !== null && previous !== node) {
      this.#note(previous, { type: 'superseded', sessionId, gen: s.gen });
    }
    return this.#snapshot(s);
  }

  async setToken(
    sessionId: string,
    owner: OwnerFence,
    token: Uint8Array,
    previous: Uint8Array | null,
  ): Promise<boolean> {
    const s = this.#live(sessionId);
    if (!s || s.owner !== owner.node || s.gen !== owner.gen) return false;
    s.meta = { ...s.meta, token: Uint8Array.from(token) };
    if (previous !== null) s.meta.previousToken = Uint8Array.from(previous);
    else delete s.meta.previousToken;
    this.#refresh(s);
    return true;
  }

  async commit(sessionId: string, batch: CommitBatch): Promise<CommitResult> {
    checkSeqArg('received', batch.received);
    checkSeqArg('seen', batch.seen);
    checkSeqArg('firstSeq', batch.firstSeq);
    checkSeqArg('acked', batch.acked);
    checkSeqArg('inboxThrough', batch.inboxThrough);
    let s = this.#live(sessionId);
    let created = false;
    const fence = batch.owner;
    if (!s) {
      if (!batch.snapshot) return { status: 'missing' };
      // Deleted on purpose by an owner at least as recent: never bring it back.
      const dead = this.#tombstones.get(sessionId);
      if (dead && dead.expiresAt > this.#clock.now() && dead.gen >= (fence?.gen ?? 0)) {
        return { status: 'fenced', owner: null, gen: dead.gen };
      }
      const first = batch.firstSeq ?? 1;
      s = this.#create(batch.snapshot, fence?.node ?? '', fence?.gen ?? 1, first - 1);
      s.inboxHead = (batch.inboxThrough ?? 0) + 1;
      created = true;
    } else if (fence && (s.owner !== fence.node || s.gen !== fence.gen)) {
      return { status: 'fenced', owner: s.owner, gen: s.gen };
    }
    let first = batch.firstSeq ?? s.lastSeq + 1;
    if (first > s.lastSeq + 1) {
      if (!batch.snapshot) return { status: 'gap', lastSeq: s.lastSeq };
      // The node's state is ahead of what the store kept: the node's snapshot wins.
      s.log = [];
      s.bytes = 0;
      s.acked = first - 1;
      s.lastSeq = first - 1;
    }
    if (batch.acked !== undefined) this.#trim(s, Math.min(batch.acked, s.lastSeq));
    for (let i = 0; i < batch.replies.length; i++) {
      const seq = first + i;
      if (seq !== s.lastSeq + 1) continue; // stored by an earlier try of this commit
      const payload = Uint8Array.from(batch.replies[i]!);
      s.log.push(payload);
      s.bytes += payload.length;
      s.lastSeq = seq;
    }
    if (batch.inboxThrough !== undefined) this.#takeInbox(s, batch.inboxThrough);
    if (s.bytes + s.inboxBytes > s.maxBytes) {
      this.#bury(sessionId, s);
      return { status: 'overflow' };
    }
    s.received = Math.max(s.received, batch.received);
    s.seen = Math.max(s.seen, batch.seen ?? 0, s.received);
    this.#refresh(s);
    if (batch.replies.length === 0) first = s.lastSeq + 1;
    return {
      status: 'ok',
      firstSeq: first,
      lastSeq: s.lastSeq,
      inboxTail: s.inboxHead + s.inbox.length - 1,
      created,
    };
  }

  #trim(s: MemorySession, seq: number): void {
    if (seq <= s.acked) return;
    const n = seq - s.acked;
    for (const p of s.log.splice(0, n)) s.bytes -= p.length;
    s.acked = seq;
  }

  #takeInbox(s: MemorySession, through: number): void {
    const n = Math.min(through - s.inboxHead + 1, s.inbox.length);
    if (n <= 0) return;
    for (const p of s.inbox.splice(0, n)) s.inboxBytes -= p.length;
    s.inboxHead += n;
  }

  async ack(sessionId: string, seq: number, owner?: OwnerFence): Promise<void> {
    checkSeqArg('seq', seq);
    const s = this.#live(sessionId);
    if (!s) return;
    if (owner && (s.owner !== owner.node || s.gen !== owner.gen)) return;
    this.#trim(s, Math.min(seq, s.lastSeq));
  }

  async fetchInbox(sessionId: string, after: number, max: number): Promise<InboxEntry[]> {
    const s = this.#live(sessionId);
    if (!s) return [];
    const from = Math.max(after + 1, s.inboxHead);
    const out: InboxEntry[] = [];
    for (let id = from; id < s.inboxHead + s.inbox.length && out.length < max; id++) {
      out.push({ id, payload: Uint8Array.from(s.inbox[id - s.inboxHead]!) });
    }
    return out;
  }

  async append(sessionId: string, payload: Uint8Array): Promise<AppendResult> {
    const s = this.#live(sessionId);
    if (!s) return { status: 'missing' };
    if (s.bytes + s.inboxBytes + payload.length > s.maxBytes) return { status: 'full' };
    s.inbox.push(Uint8Array.from(payload));
    s.inboxBytes += payload.length;
    const id = s.inboxHead + s.inbox.length - 1;
    if (s.owner !== null) this.#note(s.owner, { type: 'inbox', sessionId, id });
    return { status: 'ok', id, owner: s.owner };
  }

  async sessionsOf(clientId: string): Promise<string[]> {
    const ids = [...(this.#clients.get(clientId) ?? [])];
    return ids.filter((id) => this.#live(id) !== null);
  }

  async touch(sessionIds: readonly string[], node: string): Promise<number[]> {
    return sessionIds.map((id) => {
      const s = this.#live(id);
      if (!s) return -2;
      if (s.owner !== node) return -1;
      this.#refresh(s);
      return s.inboxHead + s.inbox.length - 1;
    });
  }

  async delete(sessionId: string, owner?: OwnerFence): Promise<boolean> {
    const s = this.#live(sessionId);
    if (!s) return false;
    if (owner && (s.owner !== owner.node || s.gen !== owner.gen)) return false;
    this.#bury(sessionId, s);
    return true;
  }

  async subscribe(node: string, onNote: (note: StoreNote) => void): Promise<Unsubscribe> {
    this.#notes.on(node, onNote);
    return async () => {
      this.#notes.off(node, onNote);
    };
  }

  #announce(entry: PresenceEntry, online: boolean): void {
    const event: PresenceEvent = { ...entry, online };
    queueMicrotask(() => this.#presence.emit('presence', event));
  }

  async presenceOnline(entry: PresenceEntry): Promise<void> {
    let mine = this.#online.get(entry.node);
    if (!mine) {
      mine = new Map();
      this.#online.set(entry.node, mine);
    }
    if (mine.has(entry.sessionId)) return;
    mine.set(entry.sessionId, { ...entry });
    this.#announce(entry, true);
  }

  async presenceOffline(entry: PresenceEntry): Promise<void> {
    const mine = this.#online.get(entry.node);
    const had = mine?.get(entry.sessionId);
    if (!mine || !had) return;
    mine.delete(entry.sessionId);
    this.#announce(had, false);
  }

  async presenceBeat(node: string, ttl: number): Promise<boolean> {
    const now = this.#clock.now();
    const fresh = !this.#nodes.has(node);
    this.#nodes.set(node, now + ttl);
    for (const [other, expiresAt] of this.#nodes) {
      if (expiresAt > now || other === node) continue;
      await this.presenceClear(other);
    }
    return fresh;
  }

  async presenceClear(node: string): Promise<void> {
    const mine = this.#online.get(node);
    this.#online.delete(node);
    this.#nodes.delete(node);
    for (const entry of mine?.values() ?? []) this.#announce(entry, false);
  }

  async presenceLookup(id: string): Promise<PresenceEntry[]> {
    const now = this.#clock.now();
    const out: PresenceEntry[] = [];
    for (const [node, entries] of this.#online) {
      if ((this.#nodes.get(node) ?? 0) <= now) continue;
      for (const e of entries.values()) {
        if (e.sessionId === id || (e.clientId !== '' && e.clientId === id)) out.push({ ...e });
      }
    }
    return out;
  }

  async onPresence(listener: (event: PresenceEvent) => void): Promise<Unsubscribe> {
    this.#presence.on('presence', listener);
    return async () => {
      this.#presence.off('presence', listener);
    };
  }

  async close(): Promise<void> {}
}
