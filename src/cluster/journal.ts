/**
 * The journal of one server connection in a cluster: it commits the session to the store
 * before anything is acknowledged or sent, so a node may die at any instant.
 *
 * - A client message is handed to the application only once the store's `seen` mark
 *   covers it, so the next node knows what this one may have delivered (`redelivered`).
 * - After the handlers ran, one commit stores the new received seq together with every
 *   reply (and anything else the application sent), numbered; only then does the client
 *   get its ACK, and only then are the replies written to the socket, ahead of that ACK.
 * - Messages other nodes put in the session's inbox are numbered here and trimmed from the
 *   inbox by the commit that stores them.
 * - One store operation is in flight at a time; whatever arrives meanwhile goes into the
 *   next one (group commit), so a busy session costs one round trip per batch.
 *
 * When the store fails or does not answer within `timeout`, the session serves its client
 * locally (acks without commits, as a single node would) and reports it; the node retries,
 * and the first successful retry writes the whole session back (a snapshot).
 *
 * It is the journaled delivery strategy of its connection (src/session/delivery.ts): one
 * object per session, made for one connection, which it keeps as its host (the `conn`
 * arguments of the strategy's methods are that same connection).
 */

import { HeartlineError } from '../errors.js';
import type { DeliveryHost, DeliveryStrategy } from '../session/delivery.js';
import type { Inbound } from '../session/journal.js';
import { ENTRY_OVERHEAD } from '../session/outbound.js';
import type {
  CommitBatch,
  CommitResult,
  OwnerFence,
  SessionSnapshot,
  SessionStore,
  StoredSession,
} from '../session/store.js';
import type { Clock } from '../time/clock.js';

/** What a journal reports to its node. */
export interface JournalEvents {
  /** Another node claimed the session: end it here without losing it. */
  fenced(journal: SessionJournal): void;
  /** The store deleted the session because it passed its byte cap. */
  overflow(journal: SessionJournal): void;
  /** A store call failed or timed out: the session runs on local acks until a retry works. */
  failed(journal: SessionJournal, error: HeartlineError): void;
  /** A store call succeeded. */
  ok(journal: SessionJournal): void;
  /** The store answered without the session (it restarted, failed over, or expired it). */
  lost(journal: SessionJournal): void;
  /** The whole session was written back after a failure or a loss ({@link needsWriteBack}). */
  wroteBack(journal: SessionJournal): void;
}

/** Construction parameters of a {@link SessionJournal}. */
export interface JournalOptions {
  /** The connection whose session this journal commits. */
  host: DeliveryHost;
  store: SessionStore;
  /** The session's identity, TTL and cap, written when the store lacks the session. */
  snapshot: SessionSnapshot;
  fence: OwnerFence;
  /** A store call slower than this (ms) counts as failed. */
  timeout: number;
  clock: Clock;
  events: JournalEvents;
  /** The state claimed from the store (a takeover); absent for a new session. */
  restored?: StoredSession;
}

/** Inbox messages fetched per round trip. */
const INBOX_BATCH = 256;

/**
 * How far the seen mark may run ahead of what the application was handed. After a crash
 * the next node flags as redelivered every message up to the mark, so this bounds the
 * messages flagged that the dead node never delivered; it also bounds the deliveries per
 * round trip to the store (64 per ~0.1 ms on a local Redis: far above any one session).
 */
const SEEN_WINDOW = 64;

interface Pending {
  commit: CommitBatch;
  last: number;
}

function asStoreError(err: unknown): HeartlineError {
  return err instanceof HeartlineError
    ? err
    : new HeartlineError('HL_ERR_STORE', `session store: ${String(err)}`, { cause: err });
}

/** Commits one session to the store; see the module comment. */
export class SessionJournal implements DeliveryStrategy {
  /** Highest outbound seq that may go on the wire. */
  durableSeq: number;
  readonly sessionId: string;
  readonly fence: OwnerFence;
  readonly #o: JournalOptions;
  readonly #host: DeliveryHost;
  // client -> server
  #arrived: number;
  #delivered: number;
  #storedRecv: number;
  #storedSeen: number;
  readonly #redeliverUpTo: number;
  #queue: Array<{ seq: number; payload: Buffer; kind: Inbound } | undefined> = [];
  #qHead = 0;
  /** What the queue holds as the caps count it: payload + ENTRY_OVERHEAD per message. */
  #queuedBytes = 0;
  #inputPaused = false;
  /** The committed seq to ACK once `#ackGate` has been written, and the last ACK sent. */
  #ackSeq = 0;
  #ackGate = 0;
  #ackSent = 0;
  // server -> client
  #storedSeq: number;
  #ackedLocal: number;
  #ackedStored: number;
  // inbox
  #inboxTaken: number;
  #inboxStored: number;
  #inboxTail: number;
  // state
  #needSnapshot: boolean;
  /** A store call failed or the store lost the session: the next snapshot is a write-back. */
  #lost = false;
  #degraded = false;
  #probe = false;
  #inflight = false;
  #scheduled = false;
  #pulling = false;
  #ended = false;
  #ending: Promise<void> | null = null;
  #waiters: Array<() => void> = [];
  /** Waiting for the session to be in the store (null once it is, or the store failed). */
  #unstored: Array<() => void> | null = [];

  constructor(options: JournalOptions) {
    this.#o = options;
    this.#host = options.host;
    this.sessionId = options.snapshot.sessionId;
    this.fence = options.fence;
    const r = options.restored;
    this.#arrived = r?.received ?? 0;
    this.#delivered = this.#arrived;
    this.#storedRecv = this.#arrived;
    this.#storedSeen = r?.seen ?? 0;
    this.#redeliverUpTo = this.#storedSeen;
    this.#storedSeq = r?.lastSeq ?? 0;
    this.durableSeq = this.#storedSeq;
    this.#ackedLocal = r?.acked ?? 0;
    this.#ackedStored = this.#ackedLocal;
    this.#inboxTaken = r ? r.inboxHead - 1 : 0;
    this.#inboxStored = this.#inboxTaken;
    this.#inboxTail = r?.inboxTail ?? 0;
    this.#needSnapshot = r === undefined;
    if (r) this.#unstored = null;
    // A new session is written at once; a taken-over one may have inbox messages waiting.
    // (Both reach the host only from a microtask or a store reply: after the connection
    // has taken this journal as its delivery strategy.)
    if (this.#needSnapshot) this.#schedule();
    if (this.#inboxTail > this.#inboxTaken) this.#pull();
  }

  /**
   * Runs `fn` once the session is in the store (at once for a taken-over one), or once the
   * store failed: presence announces a new session only when other nodes can reach it.
   */
  whenStored(fn: () => void): void {
    if (this.#unstored) this.#unstored.push(fn);
    else fn();
  }

  #stored(): void {
    const waiting = this.#unstored;
    this.#unstored = null;
    for (const fn of waiting ?? []) fn();
  }

  /** True while the store cannot be used and the session runs on local acks. */
  get degraded(): boolean {
    return this.#degraded;
  }

  /** A store keeps the session for the next node, unless it runs on local acks. */
  get keepsSession(): boolean {
    return !this.#degraded;
  }

  /**
   * True from a failed store call or a store that lost the session until the session has
   * been written back whole.
   */
  get needsWriteBack(): boolean {
    return this.#lost && !this.#ended;
  }

  /** True once the session may no longer be written (claimed elsewhere, over its cap, ended). */
  get ended(): boolean {
    return this.#ended;
  }

  // ---- DeliveryStrategy -----------------------------------------------------------------

  /** Only what the store holds may go on the wire. */
  flushLimit(): number {
    return this.durableSeq;
  }

  /** The ACK of committed messages follows the replies committed with them. */
  flushed(): void {
    if (this.#ackSeq <= this.#ackSent || this.#host.writtenSeq < this.#ackGate) return;
    if (this.#host.writeAck(this.#ackSeq)) this.#ackSent = this.#ackSeq;
  }

  receive(_conn: DeliveryHost, seq: number, payload: Buffer, kind: Inbound = null): boolean {
    if (seq <= this.#arrived) {
      this.#host.ackNow();
      return true;
    }
    if (seq !== this.#arrived + 1) return false;
    this.#arrived = seq;
    if (this.#ended) return true;
    if (this.#degraded || (seq <= this.#storedSeen && this.#qHead === this.#queue.length)) {
      this.#deliver(seq, payload, kind);
    } else {
      this.#queue.push({ seq, payload, kind });
      this.#queuedBytes += payload.length + ENTRY_OVERHEAD;
      // Bounded like the replay buffer: past the cap the socket is not read until the
      // store catches up (the peer's TCP window fills, so it slows down).
      if (this.#queuedBytes > this.#o.snapshot.maxBytes) {
        this.#inputPaused = true;
        this.#host.pauseForStore(true);
      }
    }
    this.#schedule();
    return true;
  }

  sent(): void {
    if (this.#degraded) this.durableSeq = this.#host.sentSeq;
    else this.#schedule();
  }

  acked(_conn: DeliveryHost, seq: number): void {
    if (seq > this.#ackedLocal) this.#ackedLocal = seq;
    // Acks free room in the replay buffer for inbox messages that did not fit.
    if (this.#inboxTail > this.#inboxTaken) this.#pull();
    this.#schedule();
  }

  // ---- from the node ---------------------------------------------------------------------

  /** An `inbox` note: messages up to `id` wait in the store. */
  inboxNote(id: number): void {
    if (id > this.#inboxTail) this.#inboxTail = id;
    this.#pull();
  }

  /** The node's periodic touch answered: the inbox tail, or < 0 (not ours, or missing). */
  touched(inboxTail: number): void {
    if (inboxTail < 0) {
      this.probe();
      return;
    }
    if (inboxTail > this.#inboxTail) this.#inboxTail = inboxTail;
    if (this.#inboxTail > this.#inboxTaken) this.#pull();
  }

  /** Writes to the store now even if nothing changed (refreshes the TTL, checks ownership). */
  probe(): void {
    this.#probe = true;
    this.#schedule();
  }

  /** Degraded: tries to write the whole session back. */
  retry(): void {
    if (!this.#degraded || this.#inflight || this.#ending || this.#ended) return;
    this.#exec(this.#batch(true)!);
  }

  /**
   * The connection ended: waits for the operation in flight, then commits what is pending
   * and keeps the session for another node (`keep`: an orderly shutdown, a superseded link),
   * or deletes it (`delete`: the client closed it, or it expired).
   */
  end(mode: 'keep' | 'delete'): Promise<void> {
    this.#ending ??= this.#end(mode);
    return this.#ending;
  }

  async #end(mode: 'keep' | 'delete'): Promise<void> {
    while (this.#inflight) await new Promise<void>((r) => this.#waiters.push(r));
    if (this.#ended) return;
    const { store } = this.#o;
    try {
      if (mode === 'delete') {
        await this.#call(store.delete(this.sessionId, this.fence));
      } else {
        const batch = this.#batch(this.#needSnapshot || this.#degraded);
        if (batch) await this.#call(store.commit(this.sessionId, batch.commit));
      }
    } catch (err) {
      this.#o.events.failed(this, asStoreError(err));
    }
    this.#ended = true;
  }

  // ---- the pipeline ----------------------------------------------------------------------

  #deliver(seq: number, payload: Buffer, kind: Inbound): void {
    this.#delivered = seq;
    this.#host.deliver(seq, payload, seq <= this.#redeliverUpTo, kind);
  }

  #schedule(): void {
    if (this.#scheduled || this.#inflight || this.#ended || this.#ending) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#run();
    });
  }

  #run(): void {
    const host = this.#host;
    if (this.#inflight || this.#ended || this.#ending) return;
    if (this.#degraded) {
      this.#serveLocally(host);
      return;
    }
    const batch = this.#batch(this.#needSnapshot || this.#storedSeq < host.ackedSeq);
    if (batch) this.#exec(batch);
  }

  /** The next write, or null when the store already holds everything. */
  #batch(snapshot: boolean): Pending | null {
    const host = this.#host;
    const last = host.sentSeq;
    // A snapshot carries every unacknowledged message: the store may have none of them.
    const first = snapshot ? host.ackedSeq + 1 : this.#storedSeq + 1;
    const received = this.#delivered;
    const seen = Math.min(this.#arrived, received + SEEN_WINDOW);
    const acked = this.#ackedLocal;
    const inbox = this.#inboxTaken;
    // The store keeps the highest of each, so a lower value (a taken-over session whose
    // seen mark is ahead of what arrived here) changes nothing either.
    const unchanged =
      received <= this.#storedRecv &&
      seen <= this.#storedSeen &&
      first > last &&
      acked <= this.#ackedStored &&
      inbox <= this.#inboxStored;
    if (!snapshot && !this.#probe && unchanged) return null;
    this.#probe = false;
    const replies: Uint8Array[] = [];
    for (let seq = first; seq <= last; seq++) replies.push(host.logEntry(seq)!);
    const commit: CommitBatch = {
      received,
      seen,
      replies,
      firstSeq: first,
      acked,
      inboxThrough: inbox,
      owner: this.fence,
    };
    if (snapshot) commit.snapshot = this.#o.snapshot;
    return { commit, last };
  }

  #exec(batch: Pending): void {
    this.#inflight = true;
    this.#call(this.#o.store.commit(this.sessionId, batch.commit)).then(
      // Outside the promise chain: an exception from a 'message' listener surfaces as it
      // would without a store, instead of as an unhandled rejection.
      (result) => queueMicrotask(() => this.#done(batch, result)),
      (err: unknown) => queueMicrotask(() => this.#failed(err)),
    );
  }

  #done(batch: Pending, result: CommitResult): void {
    this.#inflight = false;
    const host = this.#host;
    if (this.#ended || this.#ending) {
      this.#wake();
      return;
    }
    switch (result.status) {
      case 'ok': {
        const c = batch.commit;
        this.#needSnapshot = false;
        this.#degraded = false;
        this.#storedSeq = Math.max(this.#storedSeq, batch.last);
        this.durableSeq = Math.max(this.durableSeq, this.#storedSeq);
        this.#storedRecv = Math.max(this.#storedRecv, c.received);
        this.#storedSeen = Math.max(this.#storedSeen, c.seen ?? 0, this.#storedRecv);
        this.#ackedStored = Math.max(this.#ackedStored, c.acked ?? 0);
        this.#inboxStored = Math.max(this.#inboxStored, c.inboxThrough ?? 0);
        if (result.inboxTail > this.#inboxTail) this.#inboxTail = result.inboxTail;
        this.#o.events.ok(this);
        if (c.snapshot && this.#lost) {
          this.#lost = false;
          this.#o.events.wroteBack(this);
        }
        this.#stored();
        // The replies first, then the ACK of the messages they answer.
        host.flush();
        this.#committed(host, this.#storedRecv);
        this.#drain(host);
        if (this.#inboxTail > this.#inboxTaken) this.#pull();
        break;
      }
      case 'fenced':
        this.#ended = true;
        this.#o.events.fenced(this);
        break;
      case 'overflow':
        this.#ended = true;
        this.#o.events.overflow(this);
        break;
      case 'missing':
      case 'gap':
        // The store lost the session (restarted, failed over) while we still hold it.
        this.#needSnapshot = true;
        if (!this.#lost) {
          this.#lost = true;
          this.#o.events.lost(this);
        }
        break;
    }
    this.#wake();
    this.#schedule();
  }

  #failed(err: unknown): void {
    this.#inflight = false;
    if (this.#ended || this.#ending) {
      this.#wake();
      return;
    }
    this.#degraded = true;
    this.#needSnapshot = true;
    this.#lost = true;
    this.#o.events.failed(this, asStoreError(err));
    this.#stored();
    this.#wake();
    this.#serveLocally(this.#host);
  }

  /** Degraded: everything may go, everything delivered is acknowledged. */
  #serveLocally(host: DeliveryHost): void {
    this.durableSeq = host.sentSeq;
    host.flush();
    this.#drain(host);
    this.#committed(host, this.#delivered);
  }

  /**
   * Peer messages up to `seq` are committed: their ACK goes out once every outbound
   * message durable now has been written, so the replies committed with them reach the
   * peer first (see {@link flushed}).
   */
  #committed(host: DeliveryHost, seq: number): void {
    if (!host.committed(seq)) return;
    this.#ackSeq = seq;
    this.#ackGate = this.durableSeq;
    host.flush();
  }

  /** Delivers queued messages the seen mark now covers (all of them when degraded). */
  #drain(host: DeliveryHost): void {
    const q = this.#queue;
    while (this.#qHead < q.length && !this.#ended && !host.closed) {
      const m = q[this.#qHead]!;
      if (!this.#degraded && m.seq > this.#storedSeen) break;
      q[this.#qHead++] = undefined;
      this.#queuedBytes -= m.payload.length + ENTRY_OVERHEAD;
      this.#deliver(m.seq, m.payload, m.kind);
    }
    if (this.#inputPaused && this.#queuedBytes <= this.#o.snapshot.maxBytes / 2) {
      this.#inputPaused = false;
      host.pauseForStore(false);
    }
    if (this.#qHead === q.length) {
      q.length = 0;
      this.#qHead = 0;
    } else if (this.#qHead > 1024 && this.#qHead * 2 > q.length) {
      this.#queue = q.slice(this.#qHead);
      this.#qHead = 0;
    }
  }

  #pull(): void {
    if (this.#pulling || this.#ended || this.#ending || this.#degraded) return;
    this.#pulling = true;
    this.#call(this.#o.store.fetchInbox(this.sessionId, this.#inboxTaken, INBOX_BATCH)).then(
      (entries) =>
        queueMicrotask(() => {
          this.#pulling = false;
          const host = this.#host;
          if (this.#ended || host.closed) return;
          let took = 0;
          for (const e of entries) {
            if (e.id <= this.#inboxTaken) continue;
            if (e.id !== this.#inboxTaken + 1) break;
            try {
              host.queueFromStore(e.payload);
            } catch (err) {
              // The replay buffer is full: the rest waits in the store for acks.
              if (err instanceof HeartlineError && err.code === 'HL_ERR_BUFFER_FULL') break;
              throw err;
            }
            this.#inboxTaken = e.id;
            took++;
          }
          if (took > 0) this.#schedule();
          if (took === INBOX_BATCH) this.#pull();
        }),
      (err: unknown) => {
        // Retried on the next note, ack or touch; the messages wait in the store.
        this.#pulling = false;
        this.#o.events.failed(this, asStoreError(err));
      },
    );
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** A store call that counts as failed after `timeout` ms. */
  #call<T>(op: Promise<T>): Promise<T> {
    const { clock, timeout } = this.#o;
    return new Promise<T>((resolve, reject) => {
      const timer = clock.setTimeout(() => {
        reject(
          new HeartlineError(
            'HL_ERR_STORE',
            `the session store did not answer within ${timeout} ms`,
          ),
        );
      }, timeout);
      op.then(
        (value) => {
          clock.clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clock.clearTimeout(timer);
          reject(err);
        },
      );
    });
  }
}
