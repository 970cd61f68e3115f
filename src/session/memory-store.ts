/**
 * {@link MemoryStore}: the session and presence store contracts (src/session/store.ts) in
 * this process.
 */

import { EventEmitter } from 'node:events';
import { InvalidArgumentError } from '../errors.js';
import { type Clock, systemClock } from '../time/clock.js';
import type {
  AppendResult,
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
} from './store.js';

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
 * The {@link SessionStore} and {@link PresenceStore} contracts in this process, synchronous
 * inside: every promise it returns is already settled. Share one instance between several
 * servers of one process to get takeover, routing and presence without Redis (tests do),
 * or keep one per server. TTLs are checked against the clock on every access.
 */
export class MemoryStore implements SessionStore, PresenceStore {
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
