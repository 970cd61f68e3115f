/**
 * One server's place in a cluster, plugged into it as its session directory
 * (`createServer({ cluster: joinCluster(...) })`): the session store, the journal of each
 * session it holds, takeover of sessions other nodes held, the notes nodes send each other,
 * presence and routing. A server without it keeps its sessions in memory and never loads
 * this code (src/server/directory.ts, LocalDirectory).
 */

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { sessionIdString } from '../connection.js';
import { HeartlineError, InvalidArgumentError } from '../errors.js';
import { intOption } from '../options.js';
import { ID_BYTES } from '../protocol/frames.js';
import type {
  ClusterPlugin,
  DirectoryHost,
  DirectoryRefusal,
  PresenceInfo,
  ResumeRequest,
  SessionDirectory,
} from '../server/directory.js';
import type { ServerConnection } from '../server/server-connection.js';
import type { IdempotencyWindow, MemoryWindowOptions } from '../session/idempotency.js';
import type {
  ClusterStore,
  PresenceEntry,
  StoredSession,
  StoreNote,
  Unsubscribe,
} from '../session/store.js';
import type { Clock, ClockTimer } from '../time/clock.js';
import { CLUSTER_DEFAULTS } from './defaults.js';
import { type JournalEvents, SessionJournal } from './journal.js';
import { Presence } from './presence.js';
import { createRedisWindow } from './redis-idempotency.js';
import { type RedisConnectionOptions, RedisStore } from './redis-store.js';
import { Router } from './router.js';

/** Options of {@link joinCluster}: where the nodes share their sessions, and the timings. */
export interface ClusterOptions {
  /**
   * Where sessions live so that any node can resume them: a `RedisStore`, or a
   * `MemoryStore` shared by servers of one process. Give this or `redis`.
   */
  store?: ClusterStore;
  /**
   * A Redis URL (`redis://host:6379`) or ioredis options: each server made with the
   * plugin creates its own RedisStore and closes it with itself. Conflicts with `store`.
   */
  redis?: string | RedisConnectionOptions;
  /** A node not heard for this long (ms) is dead and its sessions offline. @default 10000 */
  presenceTtl?: number;
  /** A store call slower than this (ms) counts as failed. @default 2000 */
  storeTimeout?: number;
}

/** {@link ClusterOptions} validated. */
interface ResolvedCluster {
  /** The shared store; null: each node creates a RedisStore from `redis` and owns it. */
  readonly store: ClusterStore | null;
  readonly redis: string | RedisConnectionOptions | null;
  readonly presenceTtl: number;
  readonly storeTimeout: number;
}

/**
 * The server's `cluster` option: its sessions live in a store that every node shares, so
 * that any node resumes, routes to and sees any session (docs/cluster.md).
 * Validated here, so a bad option fails at the call.
 *
 * ```ts
 * createServer({ nodeId: 'a', cluster: joinCluster({ redis: 'redis://10.0.0.5:6379' }) });
 * ```
 */
export function joinCluster(options: ClusterOptions): ClusterPlugin {
  const config = resolveCluster(options);
  return Object.freeze({
    createDirectory: (host: DirectoryHost): SessionDirectory => new ClusterNode(config, host),
  });
}

function resolveCluster(o: ClusterOptions): ResolvedCluster {
  if (o === null || typeof o !== 'object') {
    throw new InvalidArgumentError('joinCluster() takes an options object');
  }
  if (o.store !== undefined && o.redis !== undefined) {
    throw new InvalidArgumentError('options "store" and "redis" conflict: give one of them');
  }
  if (o.store === undefined && o.redis === undefined) {
    throw new InvalidArgumentError('joinCluster() needs option "store" or "redis"');
  }
  if (
    o.store !== undefined &&
    (o.store === null ||
      typeof o.store.commit !== 'function' ||
      typeof o.store.presenceBeat !== 'function')
  ) {
    throw new InvalidArgumentError(
      'option "store" must be a ClusterStore (a session and presence store: MemoryStore, RedisStore)',
    );
  }
  if (
    o.redis !== undefined &&
    (o.redis === null || !['string', 'object'].includes(typeof o.redis))
  ) {
    throw new InvalidArgumentError('option "redis" must be a Redis URL or ioredis options');
  }
  return Object.freeze({
    store: o.store ?? null,
    redis: o.redis ?? null,
    presenceTtl: intOption(
      'presenceTtl',
      o.presenceTtl,
      CLUSTER_DEFAULTS.presenceTtl,
      300,
      86_400_000,
    ),
    storeTimeout: intOption(
      'storeTimeout',
      o.storeTimeout,
      CLUSTER_DEFAULTS.storeTimeout,
      10,
      600_000,
    ),
  });
}

interface Held {
  conn: ServerConnection;
  journal: SessionJournal;
}

/** See the module comment. */
export class ClusterNode implements SessionDirectory {
  readonly nodeId: string;
  readonly store: ClusterStore;
  /** The node created the store and closes it. */
  readonly #ownsStore: boolean;
  readonly #config: ResolvedCluster;
  readonly #host: DirectoryHost;
  readonly #held = new Map<string, Held>();
  /** Connections by client id: the connection itself while it is the only one (most are). */
  readonly #byClient = new Map<string, ServerConnection | Set<ServerConnection>>();
  readonly #presence: Presence;
  readonly #router: Router;
  readonly #ending = new Set<Promise<void>>();
  readonly #journalEvents: JournalEvents;
  /** The TTL of the store's keys and the period of touches (ms). */
  readonly #keyTtl: number;
  #up: boolean | null = null;
  /** The write-back under way: sessions still to write, since when, how many written. */
  #writeback: { since: number; sessions: number; pending: Set<SessionJournal> } | null = null;
  #timer: ClockTimer | null = null;
  #unsubscribe: Promise<Unsubscribe | null> | null = null;
  #stopStatus: (() => void) | null = null;
  #closed: Promise<void> | null = null;

  constructor(config: ResolvedCluster, host: DirectoryHost) {
    this.#config = config;
    this.#host = host;
    this.nodeId = host.nodeId;
    this.#ownsStore = config.store === null;
    this.store = config.store ?? redisStore(config.redis!);
    // A TTL of 0 would delete a session under its own link; a second is the floor.
    this.#keyTtl = Math.max(host.sessionTtl, 1000);
    this.#presence = new Presence(this.store, this.nodeId, config.presenceTtl, {
      clock: host.clock,
      event: (e) => host.presence(e),
      error: (err) => this.#storeDown(err),
      ok: () => this.#storeUp(),
      call: (op) => this.#call(op),
    });
    this.#router = new Router(
      this.store,
      {
        local: (id) => this.#live(id),
        localByClient: (cid) => {
          const held = this.#byClient.get(cid);
          return held === undefined ? [] : held instanceof Set ? held : [held];
        },
        call: (op) => this.#call(op),
      },
      host.maxFrame,
    );
    this.#journalEvents = {
      fenced: (j) =>
        this.#held.get(j.sessionId)?.conn.endSession('superseded', 'another node resumed it'),
      overflow: (j) =>
        this.#held
          .get(j.sessionId)
          ?.conn.endSession('session-expired', 'the session passed its byte cap in the store'),
      failed: (_j, err) => this.#storeDown(err),
      ok: () => this.#storeUp(),
      lost: (j) => this.#joinWriteback([j]),
      wroteBack: (j) => this.#wroteBack(j, true),
    };
    this.#start();
  }

  #start(): void {
    const store = this.store;
    this.#stopStatus =
      store.onStatus?.((s) => (s.up ? this.#storeUp() : this.#storeDown(s.error))) ?? null;
    this.#unsubscribe = store
      .subscribe(this.nodeId, (note) => this.#onNote(note))
      .catch((err: unknown) => {
        this.#storeDown(err);
        return null;
      });
    void this.#presence.start();
    this.#schedule();
  }

  /** A live session this node holds. */
  #live(sessionId: string): ServerConnection | undefined {
    const held = this.#held.get(sessionId);
    return held && !held.conn.closed ? held.conn : undefined;
  }

  #call<T>(op: Promise<T>): Promise<T> {
    const { clock } = this.#host;
    const timeout = this.#config.storeTimeout;
    return new Promise<T>((resolve, reject) => {
      const timer = clock.setTimeout(
        () =>
          reject(
            new HeartlineError(
              'HL_ERR_STORE',
              `the session store did not answer within ${timeout} ms`,
            ),
          ),
        timeout,
      );
      op.then(
        (v) => {
          clock.clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clock.clearTimeout(timer);
          reject(
            err instanceof HeartlineError
              ? err
              : new HeartlineError('HL_ERR_STORE', `session store: ${String(err)}`, {
                  cause: err,
                }),
          );
        },
      );
    });
  }

  #storeDown(err: unknown): void {
    if (this.#up === false) return;
    this.#up = false;
    const error =
      err instanceof HeartlineError
        ? err
        : new HeartlineError('HL_ERR_STORE', `session store: ${String(err)}`, { cause: err });
    this.#host.store({ up: false, error });
  }

  #storeUp(): void {
    if (this.#up === true) return;
    this.#up = true;
    this.#host.store({ up: true });
    const lost: SessionJournal[] = [];
    for (const held of this.#held.values()) {
      if (held.journal.needsWriteBack) lost.push(held.journal);
    }
    this.#joinWriteback(lost);
    for (const journal of lost) journal.retry();
  }

  /** Counts `journals` into the write-back under way, starting one if none is. */
  #joinWriteback(journals: readonly SessionJournal[]): void {
    if (journals.length === 0) return;
    this.#writeback ??= { since: this.#host.clock.now(), sessions: 0, pending: new Set() };
    for (const j of journals) this.#writeback.pending.add(j);
  }

  /** A session was written back (`done`) or ended before it could be; reports the end. */
  #wroteBack(journal: SessionJournal, done: boolean): void {
    const w = this.#writeback;
    if (!w?.pending.delete(journal)) {
      if (!done) return;
      // Lost and written back in one step (a snapshot retry found the store empty).
      this.#joinWriteback([journal]);
      this.#wroteBack(journal, done);
      return;
    }
    if (done) w.sessions++;
    if (w.pending.size > 0) return;
    this.#writeback = null;
    if (w.sessions === 0) return;
    const durationMs = Math.max(0, Math.round(this.#host.clock.now() - w.since));
    this.#host.store({ up: true, writeback: { sessions: w.sessions, durationMs } });
  }

  #onNote(note: StoreNote): void {
    const held = this.#held.get(note.sessionId);
    if (!held) return;
    if (note.type === 'inbox') held.journal.inboxNote(note.id);
    else if (note.gen > held.journal.fence.gen) {
      held.conn.endSession('superseded', 'another node resumed it');
    }
  }

  // ---- the periodic work -----------------------------------------------------------------

  #schedule(): void {
    const period = Math.max(100, Math.min(this.#config.presenceTtl, this.#keyTtl) / 3);
    this.#timer = this.#host.clock.setTimeout(() => {
      this.#timer = null;
      void this.#tick().finally(() => {
        if (!this.#closed) this.#schedule();
      });
    }, period);
  }

  /** Refreshes the TTL of linked sessions, finds inbox messages whose note was lost, retries. */
  async #tick(): Promise<void> {
    const store = this.store;
    const linked: Held[] = [];
    let probed = false;
    for (const held of this.#held.values()) {
      const j = held.journal;
      if (j.ended) continue;
      if (j.degraded) {
        // While the store is down one session probes it; once up, every one writes back.
        if (this.#up !== false || !probed) j.retry();
        probed = true;
      } else if (held.conn.state !== 'disconnected' && held.conn.state !== 'connecting') {
        linked.push(held);
      }
    }
    if (linked.length === 0) return;
    try {
      const tails = await this.#call(
        store.touch(
          linked.map((h) => h.conn.sessionKey),
          this.nodeId,
        ),
      );
      this.#storeUp();
      for (const [i, h] of linked.entries()) h.journal.touched(tails[i] ?? -1);
    } catch (err) {
      this.#storeDown(err);
    }
  }

  // ---- sessions --------------------------------------------------------------------------

  /**
   * Whether `conn`, found in this server's memory for a resume, may be resumed here: with
   * a store, only while this node still owns it (a node that missed its `superseded` note
   * must not serve a stale copy). A stale one is ended here.
   */
  async keeps(conn: ServerConnection): Promise<boolean> {
    const held = this.#held.get(conn.sessionKey);
    const j = held?.journal;
    if (!j || j.degraded) return true;
    if (j.ended) return false;
    try {
      const [tail] = await this.#call(this.store.touch([conn.sessionKey], this.nodeId));
      // Missing (-2): the store lost it while we hold it; the journal writes it back.
      if (tail !== undefined && tail !== -1) {
        if (tail === -2) j.probe();
        return true;
      }
    } catch {
      return true; // the store is down: serve what we hold, as a single node would
    }
    conn.endSession('superseded', 'another node resumed it');
    return false;
  }

  /**
   * Takes over a session another node held: loads it, checks the token (constant time),
   * the identity and that it can give the client everything it lacks, then claims it (the
   * previous owner gets a `superseded` note). Null when it cannot be resumed; rejects with
   * HL_ERR_STORE when the store cannot be reached.
   */
  async takeOver(resume: ResumeRequest, identity: string | null): Promise<StoredSession | null> {
    const store = this.store;
    const sessionId = sessionIdString(resume.sessionId);
    const loaded = await this.#call(store.load(sessionId));
    if (!loaded || !this.#resumable(loaded, resume, identity)) return null;
    const claimed = await this.#call(store.claim(sessionId, this.nodeId));
    this.#storeUp();
    if (!claimed) return null;
    const fence = { node: this.nodeId, gen: claimed.gen };
    if (!this.#resumable(claimed, resume, identity)) {
      await this.#call(store.delete(sessionId, fence)).catch(() => {});
      return null;
    }
    // Tokens are single-use: the WELCOME carries a new one, which the store holds first
    // (the token presented stays valid until the client shows it read that WELCOME).
    const token = randomBytes(ID_BYTES);
    const presented = Uint8Array.from(resume.token);
    if (!(await this.#call(store.setToken(sessionId, fence, token, presented)))) return null;
    return { ...claimed, token, previousToken: presented };
  }

  /**
   * A new resume token for a session this node holds, resumed here by `presented`: in
   * force once the store holds it. When the store cannot take it now the token stays as
   * it is: resuming still works, and the next resume rotates it.
   */
  async rotateToken(conn: ServerConnection, presented: Uint8Array): Promise<Uint8Array> {
    const store = this.store;
    const journal = this.#held.get(conn.sessionKey)?.journal;
    if (!journal) return conn.token;
    const next = conn.nextToken(presented);
    try {
      const stored = await this.#call(
        store.setToken(conn.sessionKey, journal.fence, next.token, next.previous),
      );
      if (!stored) return conn.token;
    } catch {
      return conn.token;
    }
    conn.useToken(next);
    return next.token;
  }

  /** The client holds its newest token: the store forgets the one before (best effort). */
  tokenSettled(conn: ServerConnection): void {
    const store = this.store;
    const journal = this.#held.get(conn.sessionKey)?.journal;
    if (!journal) return;
    void this.#call(store.setToken(conn.sessionKey, journal.fence, conn.token, null)).catch(
      () => {},
    );
  }

  #resumable(s: StoredSession, resume: ResumeRequest, identity: string | null): boolean {
    const token = Buffer.from(resume.token);
    const matches = (t: Uint8Array | undefined) =>
      t !== undefined && t.length === token.length && timingSafeEqual(token, Buffer.from(t));
    if (!matches(s.token) && !matches(s.previousToken)) return false;
    // The client got server messages the store never held (a node served it while the
    // store was down): numbering would collide, so the session cannot go on.
    return (
      s.identity === identity && resume.lastReceived <= s.lastSeq && s.bytes <= this.#host.maxBytes
    );
  }

  /**
   * Takes charge of a session before its first link: restores a taken-over one, installs
   * its journal, and reports it online while it has a link.
   */
  adopt(conn: ServerConnection, restored: StoredSession | null): void {
    const sessionId = conn.sessionKey;
    if (restored) conn.restoreSession(restored);
    const journal = new SessionJournal({
      host: conn,
      store: this.store,
      snapshot: {
        sessionId,
        // Read at each write-back: the token changes with every resume.
        get token() {
          return conn.token;
        },
        identity: conn.identity,
        clientId: conn.clientId,
        traceId: conn.traceId,
        ttl: this.#keyTtl,
        maxBytes: this.#host.maxBytes,
      },
      fence: { node: this.nodeId, gen: restored?.gen ?? 1 },
      timeout: this.#config.storeTimeout,
      clock: this.#host.clock,
      events: this.#journalEvents,
      ...(restored ? { restored } : {}),
    });
    conn.useDelivery(journal);
    this.#held.set(sessionId, { conn, journal });
    if (conn.clientId !== '') {
      const held = this.#byClient.get(conn.clientId);
      if (held === undefined) this.#byClient.set(conn.clientId, conn);
      else if (held instanceof Set) held.add(conn);
      else if (held !== conn) this.#byClient.set(conn.clientId, new Set([held, conn]));
    }
  }

  /**
   * A held session got a link: online once its journal is stored. The
   * server calls this and {@link disconnected} directly (no listener per connection).
   */
  opened(conn: ServerConnection): void {
    const held = this.#held.get(conn.sessionKey);
    if (!held || held.conn !== conn) return;
    const entry: PresenceEntry = {
      node: this.nodeId,
      sessionId: conn.sessionKey,
      clientId: conn.clientId,
    };
    held.journal.whenStored(
      () => conn.state !== 'disconnected' && !conn.closed && this.#presence.online(entry),
    );
  }

  /** A held session lost its link: offline, and the store's TTL refreshed. */
  disconnected(conn: ServerConnection): void {
    this.#presence.offline(conn.sessionKey);
    const held = this.#held.get(conn.sessionKey);
    // Refresh the store's TTL now, so it runs out together with this node's timer.
    if (held?.conn === conn) held.journal.probe();
  }

  /** The session ended here: forget it, and keep it in the store or delete it. */
  released(conn: ServerConnection): void {
    const sessionId = conn.sessionKey;
    const held = this.#held.get(sessionId);
    if (!held || held.conn !== conn) return;
    this.#held.delete(sessionId);
    const byClient = this.#byClient.get(conn.clientId);
    if (byClient === conn) this.#byClient.delete(conn.clientId);
    else if (byClient instanceof Set) {
      byClient.delete(conn);
      if (byClient.size === 0) this.#byClient.delete(conn.clientId);
    }
    this.#presence.offline(sessionId);
    this.#wroteBack(held.journal, false);
    const ending = held.journal.end(conn.sessionGoesOn ? 'keep' : 'delete');
    this.#ending.add(ending);
    void ending.finally(() => this.#ending.delete(ending));
  }

  /** See `Server.sendTo`. */
  sendTo(id: string, payload: Uint8Array | string): Promise<number> {
    return this.#router.sendTo(id, payload);
  }

  /** See `Server.presence`. */
  async presence(id: string): Promise<PresenceInfo> {
    const sessions = await this.#presence.lookup(id);
    return { id, online: sessions.length > 0, sessions };
  }

  /**
   * The idempotency window in Redis when the store is a RedisStore (every node sees the
   * same keys, with the same bounds per counter window: docs/requests.md); else null, and
   * each server keeps its own.
   */
  idempotencyWindow(o: MemoryWindowOptions, clock: Clock): IdempotencyWindow | null {
    const store = this.store;
    if (!(store instanceof RedisStore)) return null;
    const { windowMs, maxKeys, maxBytes, maxKeysPerScope, maxReplyBytes } = o;
    return createRedisWindow(() => store.client(), {
      clock,
      keyPrefix: store.keyPrefix,
      windowMs,
      maxKeys,
      maxBytes,
      maxKeysPerScope,
      maxReplyBytes,
    });
  }

  /** The refusal of a resume while the store is down, for CLOSE(overloaded). */
  refusal(err: unknown): DirectoryRefusal {
    const error =
      err instanceof HeartlineError && err.code === 'HL_ERR_STORE'
        ? err
        : new HeartlineError('HL_ERR_STORE', `session store: ${String(err)}`, { cause: err });
    this.#storeDown(error);
    return {
      message: 'session store unavailable',
      retryAfter: CLUSTER_DEFAULTS.storeRetryAfter,
      error,
    };
  }

  /**
   * After the server closed its connections: waits for their last commits, announces this
   * node's sessions offline, and closes the store if the server created it.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    if (this.#timer !== null) this.#host.clock.clearTimeout(this.#timer);
    this.#timer = null;
    await Promise.allSettled([...this.#ending]);
    await this.#presence.close();
    this.#stopStatus?.();
    // A subscription still waiting for an unreachable Redis is not waited for.
    const unsubscribe = this.#unsubscribe
      ? await this.#call(this.#unsubscribe).catch(() => null)
      : null;
    if (unsubscribe) await this.#call(unsubscribe()).catch(() => {});
    if (this.#ownsStore) await this.store.close();
  }
}

function redisStore(redis: string | RedisConnectionOptions): RedisStore {
  return typeof redis === 'string' ? new RedisStore(redis) : new RedisStore({ redis });
}
