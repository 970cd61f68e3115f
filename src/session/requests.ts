/**
 * The requester's side of requests and per-message acknowledgements: what waits for a
 * REPLY or an ACK, its timeout and AbortSignal, and how each ends. A REQUEST is a
 * sequenced message like DATA (PROTOCOL.md 3.8), so the replay buffer carries it across
 * reconnects and the responder runs it once; this table only remembers who waits.
 * No sockets; time comes from the injected clock.
 */

import { type ErrorCode, HeartlineError, RequestError } from '../errors.js';
import { ReplyStatus, type ReplyStatusValue } from '../protocol/frames.js';
import type { Clock, ClockTimer } from '../time/clock.js';

/** Options of `conn.request()`. */
export interface RequestOptions {
  /**
   * Milliseconds to wait for the reply, reconnects included; 0 waits without limit.
   * @default the connection's `requestTimeout` (30000)
   */
  timeout?: number;
  /** Aborts the wait (rejects with HL_ERR_ABORTED); the request may still be run. */
  signal?: AbortSignal;
  /**
   * Idempotency key (at most 256 UTF-8 bytes): within the responder's dedupe window a
   * second request with the same key, from the same identity, gets the first reply
   * without running the handler again, even from a new session (docs/requests.md).
   */
  idempotencyKey?: string;
}

/** Options of `conn.sendAcked()`. */
export interface AckOptions {
  /** Stops waiting (rejects with HL_ERR_ABORTED); the message stays queued and may arrive. */
  signal?: AbortSignal;
}

/** Called once per request outcome, for the client's circuit breaker. */
export type RequestOutcome = (ok: boolean) => void;

interface Waiter {
  resolve: (value: Buffer) => void;
  reject: (err: Error) => void;
  timer: ClockTimer | null;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
}

/** The requests of one connection waiting for their REPLY, by the seq of their REQUEST. */
export class RequestTable {
  private readonly waiting = new Map<number, Waiter>();

  constructor(
    private readonly clock: Clock,
    /** The highest seq ever written to a link: above it a request never left this end. */
    private readonly written: () => number,
    private readonly outcome: RequestOutcome | null,
  ) {}

  /** Requests waiting for a reply. */
  get size(): number {
    return this.waiting.size;
  }

  /** Waits for the reply to REQUEST `seq`. */
  add(seq: number, timeout: number, signal: AbortSignal | undefined): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: null, signal, onAbort: null };
      this.waiting.set(seq, w);
      if (timeout > 0) {
        w.timer = this.clock.setTimeout(() => {
          w.timer = null;
          this.fail(seq, 'HL_ERR_REQUEST_TIMEOUT', `no reply within ${timeout} ms`, true);
        }, timeout);
      }
      if (signal) {
        w.onAbort = () =>
          this.fail(seq, 'HL_ERR_ABORTED', 'the request was aborted', false, signal.reason);
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
    });
  }

  /**
   * A REPLY to `requestSeq` arrived. False when nobody waits for it any more (timed out,
   * aborted): the reply is dropped, which is not an error.
   */
  settle(requestSeq: number, status: ReplyStatusValue, payload: Buffer): boolean {
    const w = this.take(requestSeq);
    if (!w) return false;
    if (status === ReplyStatus.OK) {
      this.outcome?.(true);
      w.resolve(payload);
      return true;
    }
    const text = payload.toString('utf8');
    let err: RequestError;
    if (status === ReplyStatus.ERROR) {
      // The responder ran and answered: the link and the server are fine.
      this.outcome?.(true);
      err = new RequestError('HL_ERR_REMOTE', text || 'the responder failed the request', true);
    } else if (status === ReplyStatus.NO_RESPONDER) {
      this.outcome?.(false);
      err = new RequestError('HL_ERR_NO_RESPONDER', text || 'no responder', false);
    } else {
      this.outcome?.(false);
      err = new RequestError('HL_ERR_OVERLOADED', text || 'the responder is overloaded', false);
    }
    w.reject(err);
    return true;
  }

  /**
   * Forgets the wait for `seq` without settling it: the request was never queued, and its
   * caller gets the error from request() itself (the promise made here is dropped).
   */
  forget(seq: number): void {
    this.take(seq);
  }

  /** Ends every wait with `code` (the session was lost, the connection closed). */
  failAll(code: ErrorCode, message: string): void {
    for (const seq of [...this.waiting.keys()]) {
      this.fail(seq, code, message, seq <= this.written());
    }
  }

  private fail(
    seq: number,
    code: ErrorCode,
    message: string,
    counts: boolean,
    cause?: unknown,
  ): void {
    const w = this.take(seq);
    if (!w) return;
    if (counts && code === 'HL_ERR_REQUEST_TIMEOUT') this.outcome?.(false);
    const handled = seq <= this.written();
    w.reject(
      new RequestError(
        code,
        `request ${seq}: ${message}${handled ? ' (it may have been handled)' : ''}`,
        handled,
        cause === undefined ? undefined : { cause },
      ),
    );
  }

  private take(seq: number): Waiter | undefined {
    const w = this.waiting.get(seq);
    if (!w) return undefined;
    this.waiting.delete(seq);
    if (w.timer) this.clock.clearTimeout(w.timer);
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
    return w;
  }
}

/**
 * Callbacks waiting for the ACK of one message each, by seq. Seqs grow, so the Map's
 * insertion order is seq order and a cumulative ACK settles a prefix of it.
 */
export class AckCallbacks {
  private readonly waiting = new Map<number, (err: Error | null) => void>();

  /** Callbacks waiting. */
  get size(): number {
    return this.waiting.size;
  }

  /** Calls `cb` once message `seq` is acknowledged, or with an error if it never is. */
  add(seq: number, cb: (err: Error | null) => void): void {
    this.waiting.set(seq, cb);
  }

  /** Forgets the callback of `seq` (its waiter gave up). */
  delete(seq: number): void {
    this.waiting.delete(seq);
  }

  /**
   * Every message up to `seq` is acknowledged. Callbacks run in a microtask, like a
   * promise's: the application's code never runs inside the processing of an ACK.
   */
  acked(seq: number): void {
    for (const [s, cb] of this.waiting) {
      if (s > seq) break;
      this.waiting.delete(s);
      queueMicrotask(() => cb(null));
    }
  }

  /** Every waiting message will never be acknowledged in this session. */
  failAll(code: ErrorCode, message: string): void {
    const all = [...this.waiting];
    this.waiting.clear();
    for (const [seq, cb] of all) {
      const err = new HeartlineError(code, `message ${seq}: ${message}`);
      queueMicrotask(() => cb(err));
    }
  }
}
