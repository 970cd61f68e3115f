/**
 * What a connection hands its application with each message (`MessageInfo`, with the
 * reply path), and the narrow interfaces between a connection and the journal that
 * commits it to a session store in cluster mode (src/cluster/journal.ts). Pure types and
 * one small class: no sockets, no timers.
 */

import { HeartlineError } from '../errors.js';

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
   * before it failed without committing it (see "Running several nodes" in the README).
   * Always false without a session store.
   */
  redelivered: boolean;
  /**
   * Sends `data` to the peer like `send()`. With a session store the reply is committed
   * together with this message: the peer's ACK for the message waits for it, so a node
   * crash never loses one without the other. Only while the 'message' listeners run;
   * later it throws `HL_ERR_REPLY_AFTER_HANDLER`.
   */
  reply(data: Uint8Array | string): boolean;
}

/** What a {@link Delivery} needs of its connection. */
export interface ReplySender {
  readonly sessionId: string | null;
  send(data: Uint8Array | string): boolean;
}

/** The MessageInfo of one delivery; reply() works until the listeners have returned. */
export class Delivery implements MessageInfo {
  /** Cleared by the connection once the listeners have returned. */
  live = true;

  constructor(
    private readonly conn: ReplySender,
    readonly seq: number,
    readonly redelivered: boolean,
  ) {}

  get id(): string {
    return `${this.conn.sessionId}:${this.seq}`;
  }

  reply(data: Uint8Array | string): boolean {
    if (!this.live) {
      throw new HeartlineError(
        'HL_ERR_REPLY_AFTER_HANDLER',
        `reply() to message ${this.seq} after its handler returned; use send()`,
      );
    }
    return this.conn.send(data);
  }
}

/**
 * What a connection offers the journal that commits it to a session store. Built by the
 * connection itself, so the journal needs none of its protected members.
 */
export interface JournalHost {
  /** Hands a message to the application ('message' event). */
  deliver(seq: number, payload: Buffer, redelivered: boolean): void;
  /**
   * Peer messages up to `seq` are committed: ACK them once every outbound message durable
   * now has been written, so the replies committed with them reach the peer first.
   */
  committed(seq: number): void;
  /** Sends ACK(last committed) at once (a duplicate arrived). */
  ackNow(): void;
  /** The payload of an outbound seq still held, else undefined. */
  payload(seq: number): Uint8Array | undefined;
  /** Highest outbound seq assigned. */
  lastSeq(): number;
  /** Highest outbound seq the peer acknowledged. */
  acked(): number;
  /** Numbers a message like send() (throws HL_ERR_BUFFER_FULL at the cap). */
  push(payload: Uint8Array): number;
  /** The durable seq advanced: write what may go now. */
  flush(): void;
  /**
   * Stops (true) or resumes (false) reading the current link's socket, so that messages
   * waiting for the store cannot pile up without bound (TCP pushes back on the peer).
   */
  pauseInput(paused: boolean): void;
  /** True once the connection ended for good. */
  closed(): boolean;
}

/** Sits between a connection and a session store: delivery, acks and sends wait for it. */
export interface ConnectionJournal {
  /** Highest outbound seq the link may carry (the store holds it). */
  readonly durableSeq: number;
  /**
   * A DATA frame from the peer, in any order: duplicates are acknowledged and dropped, the
   * next seq is delivered once the store allows. Returns false for a gap (a protocol error).
   */
  data(seq: number, payload: Buffer): boolean;
  /** The application queued a message (it is in the replay buffer). */
  sent(): void;
  /** The peer acknowledged outbound seqs up to `seq`. */
  acked(seq: number): void;
}

/** Builds the journal of one connection. */
export type JournalFactory = (host: JournalHost) => ConnectionJournal;
