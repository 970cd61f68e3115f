/**
 * What a connection hands its application with each message (`MessageInfo`, with the
 * reply path). Pure types and one small class: no sockets, no timers. How a message
 * reaches the application (at once, or once a session store holds it) is the delivery
 * strategy's business: src/session/delivery.ts.
 */

import { HeartlineError } from '../errors.js';
import { type ReplyFrame, ReplyStatus, type ReplyStatusValue } from '../protocol/frames.js';

/**
 * What kind of sequenced message arrived: DATA (null), a REQUEST (its idempotency key,
 * '' for none) or a REPLY (the frame, for its requestSeq and status).
 */
export type Inbound = null | string | ReplyFrame;

/** Details of a received message. */
export interface MessageInfo {
  /** Sequence number of the message within its session and direction (from 1). */
  seq: number;
  /**
   * `SESSION:SEQ`: the same on every node and every delivery of this message, so an
   * application can use it as an idempotency key for side effects outside heartline.
   */
  readonly id: string;
  /**
   * True when a previous node of a cluster may have handed this message to its application
   * before it failed without committing it (see docs/cluster.md).
   * Always false without a session store.
   */
  redelivered: boolean;
  /**
   * True when the peer sent this message with `request()` and waits for an answer:
   * reply(data) or fail(message), once, now or later (docs/requests.md).
   */
  readonly isRequest: boolean;
  /** A request's idempotency key ('' when none, and for plain messages). */
  readonly idempotencyKey: string;
  /**
   * For a request: answers it (once, at any time; a second answer throws
   * HL_ERR_ALREADY_REPLIED). For a plain message: sends `data` to the peer like
   * `send()`, only while the 'message' listeners run (later it throws
   * HL_ERR_REPLY_AFTER_HANDLER). With a session store the reply is committed together
   * with the message: the peer's ACK for it waits for the reply, so a node crash never
   * loses one without the other. False when the connection has closed, or (plain
   * messages) when send() would return false.
   */
  reply(data: Uint8Array | string): boolean;
  /**
   * For a request: fails it; the requester's promise rejects with HL_ERR_REMOTE carrying
   * `message`. A 'message' listener that throws (or returns a promise that rejects) for
   * a request fails it the same way. Throws HL_ERR_INVALID_ARGUMENT for a plain message.
   */
  fail(message: string): boolean;
}

/** What a {@link Delivery} needs of its connection. */
export interface ReplySender {
  readonly sessionId: string | null;
  send(data: Uint8Array | string): boolean;
  replyTo(requestSeq: number, status: ReplyStatusValue, data: Uint8Array | string): boolean;
}

/** A request's part of a {@link Delivery}. */
export interface RequestPart {
  key: string;
  /** Learns the answer (an idempotency window keeps it); null: the connection ended first. */
  kept: ((status: ReplyStatusValue, payload: Uint8Array | null) => void) | null;
}

/**
 * The MessageInfo of one delivery. A plain message's reply() works until the listeners
 * have returned; a request's answer may come at any time, once.
 */
export class Delivery implements MessageInfo {
  /** Cleared by the connection once the listeners have returned. */
  live = true;
  private answered = false;

  constructor(
    private readonly conn: ReplySender,
    readonly seq: number,
    readonly redelivered: boolean,
    private readonly request: RequestPart | null = null,
  ) {}

  get id(): string {
    return `${this.conn.sessionId}:${this.seq}`;
  }

  get isRequest(): boolean {
    return this.request !== null;
  }

  get idempotencyKey(): string {
    return this.request?.key ?? '';
  }

  reply(data: Uint8Array | string): boolean {
    if (this.request) return this.answerOnce(ReplyStatus.OK, data);
    if (!this.live) {
      throw new HeartlineError(
        'HL_ERR_REPLY_AFTER_HANDLER',
        `reply() to message ${this.seq} after its handler returned; use send()`,
      );
    }
    return this.conn.send(data);
  }

  fail(message: string): boolean {
    if (!this.request) {
      throw new HeartlineError(
        'HL_ERR_INVALID_ARGUMENT',
        `fail() on message ${this.seq}, which is not a request`,
      );
    }
    return this.answerOnce(ReplyStatus.ERROR, String(message));
  }

  /** @internal A listener threw or rejected: fail the request unless it was answered. */
  failFromHandler(err: unknown): void {
    if (this.answered) return;
    this.answer(ReplyStatus.ERROR, err instanceof Error ? err.message : String(err));
  }

  /** @internal Answers without the once-check's throw (the library's own answers). */
  answer(status: ReplyStatusValue, data: Uint8Array | string): boolean {
    if (this.answered) return false;
    this.answered = true;
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const sent = this.conn.replyTo(this.seq, status, bytes);
    this.request?.kept?.(status, sent ? bytes : null);
    return sent;
  }

  private answerOnce(status: ReplyStatusValue, data: Uint8Array | string): boolean {
    if (this.answered) {
      throw new HeartlineError(
        'HL_ERR_ALREADY_REPLIED',
        `request ${this.seq} was already answered; only the first answer counts`,
      );
    }
    return this.answer(status, data);
  }
}
