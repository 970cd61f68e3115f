/**
 * The idempotency window: within `windowMs`, a second request with the same key from the
 * same scope (the authenticated identity) gets the first request's reply instead of running
 * its handler again. This file holds the interface both implementations share and the
 * in-memory one (one node); the Redis one, shared by the nodes of a cluster, is
 * src/cluster/redis-idempotency.ts. docs/requests.md describes the behaviour and bounds.
 */

import { InvalidArgumentError } from '../errors.js';
import { intOption } from '../options.js';
import type { Clock, ClockTimer } from '../time/clock.js';

/** The outcome of a request, as kept for its key: a reply status and its bytes. */
export interface KeptReply {
  /** The reply status, as the request protocol defines it (kept verbatim, 0 to 2^32 − 1). */
  status: number;
  /** The reply's bytes (the window keeps its own copy). */
  payload: Uint8Array;
}

/** What {@link IdempotencyWindow.begin} says about a key. */
export type IdempotencyClaim =
  /** First time (or the earlier claim was abandoned or expired): run the handler, then call finish() or abandon(). */
  | { kind: 'run' }
  /** Answered within the window: send `reply` without running the handler. */
  | { kind: 'done'; reply: KeptReply }
  /**
   * Another request with the key is being handled now: `settled` resolves with its reply,
   * or null if it was abandoned, expired, or the window closed (the caller may then begin
   * again). It never rejects: the Redis window also resolves null when Redis cannot be
   * reached while it waits (a new begin() then reports the error).
   */
  | { kind: 'pending'; settled: Promise<KeptReply | null> }
  /**
   * The window cannot track one more key now (a bound is reached, or it is closed): refuse
   * the request without running the handler (the requester gets an overloaded error).
   */
  | { kind: 'full' };

/** Numbers for metrics and tests. */
export interface IdempotencyStats {
  /** Keys held, pending and finished (the Redis window: claims this node holds open). */
  readonly keys: number;
  /** Bytes charged for them, per-entry overhead included (the Redis window: 0, it keeps nothing locally). */
  readonly bytes: number;
  /**
   * Replies that finished but were not kept (larger than `maxReplyBytes`, or no room in
   * `maxBytes` even after evicting the scope's own oldest); a retry of those keys runs again.
   */
  readonly unkept: number;
}

/**
 * Deduplicates requests by (scope, key) for a time window. The protocol around it: call
 * begin(); on `run`, run the handler and then exactly one of finish() (it answered) or
 * abandon() (it ended without an answer to keep).
 */
export interface IdempotencyWindow {
  /**
   * Claims `key` for `scope` or reports its state. `scope` is the authenticated identity
   * (or the server's fallback); `key` the requester's key (a string of 1 to
   * {@link MAX_IDEMPOTENCY_KEY_BYTES} UTF-8 bytes, else InvalidArgumentError).
   */
  begin(scope: string, key: string): IdempotencyClaim | Promise<IdempotencyClaim>;
  /**
   * The handler answered: keep `reply` for a full window from now and hand it to the
   * requests waiting on the key. Ignored when the claim is gone (expired, or closed).
   */
  finish(scope: string, key: string, reply: KeptReply): void | Promise<void>;
  /**
   * The handler ended without a reply to keep (the connection closed first): forget the
   * claim so that a retry runs the handler; waiting requests get null.
   */
  abandon(scope: string, key: string): void | Promise<void>;
  /** Stops timers and polls; waiting requests get null; later begin() calls answer `full`. */
  close(): void | Promise<void>;
  /** Keys held, bytes charged, replies not kept (see {@link IdempotencyStats}). */
  readonly stats: IdempotencyStats;
}

/** The in-memory window: the same contract, answered synchronously. */
export interface MemoryIdempotencyWindow extends IdempotencyWindow {
  begin(scope: string, key: string): IdempotencyClaim;
  finish(scope: string, key: string, reply: KeptReply): void;
  abandon(scope: string, key: string): void;
  close(): void;
}

/** Longest key accepted, in UTF-8 bytes (the request frame's limit for the field). */
export const MAX_IDEMPOTENCY_KEY_BYTES = 256;

/** Bounds of the idempotency window. */
export const IDEMPOTENCY_DEFAULTS = Object.freeze({
  /**
   * How long a reply is kept for its key (ms), counted from finish(); a pending claim also
   * lapses this long after begin(). Two minutes, like the duplicate window of NATS
   * JetStream: long enough to span a reconnect and a session-lost with a client's retry.
   * @default 120_000
   */
  windowMs: 120_000,
  /**
   * Memory window: keys held at once by the whole window. At the default 100k, with
   * {@link ENTRY_OVERHEAD_BYTES} per entry, entries with short keys and empty replies
   * charge about 53 MiB, under `maxBytes`; larger replies reach `maxBytes` first.
   * Redis window: keys claimed per fixed window of `windowMs` by all nodes together
   * (src/cluster/redis-idempotency.ts); past it begin() answers `full`.
   * @default 100_000
   */
  maxKeys: 100_000,
  /**
   * Memory window: bytes charged at once: per entry {@link ENTRY_OVERHEAD_BYTES} plus its
   * key and reply bytes, plus per scope {@link SCOPE_OVERHEAD_BYTES} and its name.
   * Redis window: reply bytes kept per fixed window of `windowMs` (each reply's stored
   * value, its payload plus 5 bytes); a reply past it is answered but not kept.
   * @default 67_108_864 (64 MiB)
   */
  maxBytes: 64 * 1024 * 1024,
  /**
   * Memory window: keys one scope may hold at once; at this cap its own oldest finished
   * entry makes room, so a client flooding keys only shortens its own dedupe. Redis
   * window: keys one scope may claim per fixed window of `windowMs`; past it that scope's
   * new keys are refused (`full`) while other scopes still run.
   * @default 10_000
   */
  maxKeysPerScope: 10_000,
  /**
   * Largest reply payload kept (bytes). A larger reply is still answered (and handed to
   * requests waiting on its key in the memory window) but not kept: a retry of its key runs
   * the handler again. It stops one reply from taking a large share of `maxBytes`
   * (`serve --echo` replies with up to a whole frame). Both windows.
   * @default 65_536 (64 KiB)
   */
  maxReplyBytes: 64 * 1024,
});

/** Options of {@link createMemoryWindow}; each defaults to {@link IDEMPOTENCY_DEFAULTS}. */
export interface MemoryWindowOptions {
  /** See {@link IDEMPOTENCY_DEFAULTS.windowMs}. @default 120_000 */
  windowMs?: number;
  /** See {@link IDEMPOTENCY_DEFAULTS.maxKeys}. @default 100_000 */
  maxKeys?: number;
  /** See {@link IDEMPOTENCY_DEFAULTS.maxBytes}. @default 64 MiB */
  maxBytes?: number;
  /** See {@link IDEMPOTENCY_DEFAULTS.maxKeysPerScope}. @default 10_000 */
  maxKeysPerScope?: number;
  /** See {@link IDEMPOTENCY_DEFAULTS.maxReplyBytes}. @default 64 KiB */
  maxReplyBytes?: number;
}

/**
 * Bytes charged per entry beside its key and reply bytes: the entry object, its slots in a
 * Map and a Set, the reply object, its Uint8Array and ArrayBuffer. Measured with
 * bench/idempotency-memory.ts (Node 20.20, x64, 10^5 finished entries, 36-byte keys,
 * 16-byte replies): heapUsed + arrayBuffers grew 490 bytes per entry after a forced GC,
 * 438 beyond the key and reply bytes (419 to 441 across key and reply sizes). RSS grew
 * about 870 bytes per entry: V8 keeps heap headroom beyond what is used. 512 leaves room
 * for other builds.
 */
export const ENTRY_OVERHEAD_BYTES = 512;

/**
 * Bytes charged per scope beside its name: its state object, its two Maps and its slot in
 * the scope Map. Measured the same way with one scope per entry: 447 bytes more per entry
 * than with 10 scopes, name included.
 */
export const SCOPE_OVERHEAD_BYTES = 512;

/** Copies a reply into its own exact-size buffer, so a kept subarray pins no larger buffer. */
function keep(reply: KeptReply): KeptReply {
  return { status: reply.status, payload: new Uint8Array(reply.payload) };
}

/** Checks a key and returns its UTF-8 length. */
export function checkIdempotencyKey(key: string): number {
  const bytes = typeof key === 'string' ? Buffer.byteLength(key, 'utf8') : 0;
  if (bytes === 0 || bytes > MAX_IDEMPOTENCY_KEY_BYTES) {
    throw new InvalidArgumentError(
      `idempotency key must be a string of 1 to ${MAX_IDEMPOTENCY_KEY_BYTES} UTF-8 bytes`,
    );
  }
  return bytes;
}

/** Validates `maxReplyBytes` (shared by both windows): 0 (keep only empty replies) to 2^32. */
export function maxReplyBytesOption(value: number | undefined): number {
  return intOption('maxReplyBytes', value, IDEMPOTENCY_DEFAULTS.maxReplyBytes, 0, 0x1_0000_0000);
}

/** Checks a reply before it is kept (statuses are u32 on the wire). */
export function checkKeptReply(reply: KeptReply): void {
  if (
    reply === null ||
    typeof reply !== 'object' ||
    !Number.isInteger(reply.status) ||
    reply.status < 0 ||
    reply.status > 0xffff_ffff ||
    !(reply.payload instanceof Uint8Array)
  ) {
    throw new InvalidArgumentError(
      'idempotency reply must be { status: integer 0..2^32-1, payload: Uint8Array }',
    );
  }
}

/** One key's state. */
interface Entry {
  readonly scope: ScopeState;
  readonly key: string;
  /** Held while `now() < expiresAt`. */
  expiresAt: number;
  /** null while pending. */
  reply: KeptReply | null;
  /** Bytes charged (overhead, key, reply). */
  cost: number;
  /** Created on the first `pending` answer; settles the shared promise. */
  settle: ((reply: KeptReply | null) => void) | null;
  settled: Promise<KeptReply | null> | null;
}

/** One scope's entries, each Map in expiry order. */
interface ScopeState {
  readonly name: string;
  readonly cost: number;
  readonly pending: Map<string, Entry>;
  readonly finished: Map<string, Entry>;
}

/**
 * The idempotency window of one node, in memory. Every entry expires `windowMs` after it
 * was claimed (pending) or finished; with a constant window the order entries were last
 * touched is their expiry order, so expiry only ever looks at the head of `#order` (a Set
 * in insertion order; finish() moves an entry to its tail). Expired entries are dropped
 * on every begin() and by one clock timer at the head's deadline, so an idle window still
 * lets go of its memory.
 */
class MemoryWindow implements MemoryIdempotencyWindow {
  readonly #clock: Clock;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #maxBytes: number;
  readonly #maxPerScope: number;
  readonly #maxReplyBytes: number;
  readonly #scopes = new Map<string, ScopeState>();
  readonly #order = new Set<Entry>();
  #bytes = 0;
  #unkept = 0;
  #timer: ClockTimer | null = null;
  #timerAt = Number.POSITIVE_INFINITY;
  #closed = false;

  constructor(options: MemoryWindowOptions, clock: Clock) {
    const d = IDEMPOTENCY_DEFAULTS;
    this.#windowMs = intOption('windowMs', options.windowMs, d.windowMs, 1, 86_400_000);
    this.#maxKeys = intOption('maxKeys', options.maxKeys, d.maxKeys, 1, 100_000_000);
    this.#maxBytes = intOption('maxBytes', options.maxBytes, d.maxBytes, 1024, 2 ** 40);
    this.#maxPerScope = intOption(
      'maxKeysPerScope',
      options.maxKeysPerScope,
      d.maxKeysPerScope,
      1,
      100_000_000,
    );
    this.#maxReplyBytes = maxReplyBytesOption(options.maxReplyBytes);
    this.#clock = clock;
  }

  get stats(): IdempotencyStats {
    return { keys: this.#order.size, bytes: this.#bytes, unkept: this.#unkept };
  }

  begin(scope: string, key: string): IdempotencyClaim {
    const keyBytes = checkIdempotencyKey(key);
    if (typeof scope !== 'string')
      throw new InvalidArgumentError('idempotency scope must be a string');
    if (this.#closed) return { kind: 'full' };
    const now = this.#clock.now();
    this.#expire(now);
    let state = this.#scopes.get(scope);
    if (state) {
      const done = state.finished.get(key);
      if (done) return { kind: 'done', reply: done.reply! };
      const running = state.pending.get(key);
      if (running) {
        if (!running.settled) {
          running.settled = new Promise((resolve) => {
            running.settle = resolve;
          });
        }
        return { kind: 'pending', settled: running.settled };
      }
      // At its own cap a scope gives up its oldest answer, never anyone else's.
      if (state.pending.size + state.finished.size >= this.#maxPerScope) {
        const oldest = state.finished.values().next().value;
        if (oldest === undefined) return { kind: 'full' };
        // Evict only if the new key then fits: forgetting an answer for nothing helps no one.
        if (this.#bytes - oldest.cost + ENTRY_OVERHEAD_BYTES + keyBytes > this.#maxBytes) {
          return { kind: 'full' };
        }
        this.#remove(oldest, null);
        // Its last entry gone, the scope's state went with it.
        if (this.#scopes.get(scope) !== state) state = undefined;
      }
    }
    const cost = ENTRY_OVERHEAD_BYTES + keyBytes;
    const scopeCost = state ? 0 : SCOPE_OVERHEAD_BYTES + Buffer.byteLength(scope, 'utf8');
    if (this.#order.size >= this.#maxKeys || this.#bytes + cost + scopeCost > this.#maxBytes) {
      return { kind: 'full' };
    }
    if (!state) {
      state = { name: scope, cost: scopeCost, pending: new Map(), finished: new Map() };
      this.#scopes.set(scope, state);
      this.#bytes += scopeCost;
    }
    const entry: Entry = {
      scope: state,
      key,
      expiresAt: now + this.#windowMs,
      reply: null,
      cost,
      settle: null,
      settled: null,
    };
    state.pending.set(key, entry);
    this.#order.add(entry);
    this.#bytes += cost;
    this.#arm(entry.expiresAt);
    return { kind: 'run' };
  }

  finish(scope: string, key: string, reply: KeptReply): void {
    checkKeptReply(reply);
    const state = this.#scopes.get(scope);
    const entry = state?.pending.get(key);
    if (!state || !entry) return;
    const kept = keep(reply);
    const extra = kept.payload.byteLength;
    if (extra > this.#maxReplyBytes) {
      // Too large to keep: delivered to whoever waits, a retry of this key runs again.
      this.#unkept++;
      this.#remove(entry, kept);
      return;
    }
    // Room for the reply: first from this scope's own oldest answers, never from others.
    while (this.#bytes + extra > this.#maxBytes) {
      const oldest = state.finished.values().next().value;
      if (oldest === undefined) break;
      this.#remove(oldest, null);
    }
    if (this.#bytes + extra > this.#maxBytes) {
      // Delivered to whoever waits, but not kept: a retry of this key runs again.
      this.#unkept++;
      this.#remove(entry, kept);
      return;
    }
    state.pending.delete(key);
    this.#order.delete(entry);
    entry.reply = kept;
    entry.cost += extra;
    entry.expiresAt = this.#clock.now() + this.#windowMs;
    state.finished.set(key, entry);
    this.#order.add(entry);
    this.#bytes += extra;
    entry.settle?.(kept);
    entry.settle = null;
    entry.settled = null;
  }

  abandon(scope: string, key: string): void {
    const entry = this.#scopes.get(scope)?.pending.get(key);
    if (entry) this.#remove(entry, null);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    for (const entry of [...this.#order]) this.#remove(entry, null);
  }

  /** Removes an entry, settling its waiters (if pending) with `outcome`. */
  #remove(entry: Entry, outcome: KeptReply | null): void {
    const state = entry.scope;
    (entry.reply ? state.finished : state.pending).delete(entry.key);
    this.#order.delete(entry);
    this.#bytes -= entry.cost;
    entry.settle?.(outcome);
    entry.settle = null;
    if (state.pending.size + state.finished.size === 0) this.#dropScope(state);
  }

  #dropScope(state: ScopeState): void {
    if (this.#scopes.get(state.name) !== state) return;
    this.#scopes.delete(state.name);
    this.#bytes -= state.cost;
  }

  /** Drops every entry due at `now` (held while now < expiresAt). */
  #expire(now: number): void {
    for (const entry of this.#order) {
      if (entry.expiresAt > now) break;
      this.#remove(entry, null);
    }
  }

  /** Makes sure the sweep timer fires by `at`. */
  #arm(at: number): void {
    if (this.#timer !== null && this.#timerAt <= at) return;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(() => this.#sweep(), at - this.#clock.now());
  }

  #sweep(): void {
    this.#timer = null;
    this.#timerAt = Number.POSITIVE_INFINITY;
    if (this.#closed) return;
    const now = this.#clock.now();
    this.#expire(now);
    const head = this.#order.values().next().value;
    // One timer per distinct deadline would fire once per request; sweeping at most every
    // 1/16 of the window costs little memory (entries overstay by that much at most).
    if (head) this.#arm(Math.max(head.expiresAt, now + Math.ceil(this.#windowMs / 16)));
  }
}

/**
 * Creates the in-memory idempotency window of one node. Options default to
 * {@link IDEMPOTENCY_DEFAULTS} and are validated here (InvalidArgumentError names the
 * option); time comes from `clock`.
 */
export function createMemoryWindow(
  options: MemoryWindowOptions,
  clock: Clock,
): MemoryIdempotencyWindow {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('idempotency window options must be an object');
  }
  return new MemoryWindow(options, clock);
}
