/**
 * How a connection delivers and acknowledges, chosen when the connection is made: the
 * connection runs the same code with or without a session store and asks its strategy
 * at the three points where they differ (what may be written, what arrived, what was
 * acknowledged).
 *
 * - Local (src/connection.ts, one shared stateless object for every connection): a
 *   message is handed to the application at once and acknowledged at once, and anything
 *   queued may be written.
 * - Journaled (src/cluster/journal.ts, one object per session of a cluster node): a
 *   message is handed out once the store holds it, acknowledged once it is committed
 *   together with its replies, and only what the store holds is written.
 *
 * A strategy takes the connection as an argument instead of holding closures over it,
 * so the local one costs no memory per connection (see memory per connection in
 * src/connection.ts). Pure types: no sockets, no timers.
 */

import type { Inbound } from './journal.js';

/**
 * What a connection offers its delivery strategy: members of the connection itself
 * (internal ones), so no host object is built per connection.
 */
export interface DeliveryHost {
  /** Hands a message to the application ('message' event), or a REPLY to its request. */
  deliver(seq: number, payload: Buffer, redelivered: boolean, kind: Inbound): void;
  /**
   * Peer messages up to `seq` are committed: the connection owes no ACK for them of its
   * own (the strategy sends it). False when `seq` is not beyond what it had received.
   */
  committed(seq: number): boolean;
  /** Sends ACK(last received) at once (a duplicate arrived). */
  ackNow(): void;
  /** Writes ACK(seq) on the current link now; false without one. */
  writeAck(seq: number): boolean;
  /**
   * The log entry of an outbound seq still held (its payload and the frame's kind,
   * src/session/log-entry.ts), else undefined.
   */
  logEntry(seq: number): Uint8Array | undefined;
  /** Highest outbound seq assigned. */
  readonly sentSeq: number;
  /** Highest outbound seq the peer acknowledged. */
  readonly ackedSeq: number;
  /** Highest outbound seq written to the current link (0 before any). */
  readonly writtenSeq: number;
  /** Numbers a message from the store like send() (throws HL_ERR_BUFFER_FULL at the cap). */
  queueFromStore(payload: Uint8Array): number;
  /** Writes what may go now ({@link DeliveryStrategy.flushLimit}). */
  flush(): void;
  /**
   * Stops (true) or resumes (false) reading the current link's socket, so that messages
   * waiting for the store cannot pile up without bound (TCP pushes back on the peer).
   */
  pauseForStore(paused: boolean): void;
  /** True once the connection ended for good. */
  readonly closed: boolean;
}

/**
 * Delivery and acknowledgement of one connection; see the module comment. `C` is the
 * connection type the strategy serves (the local one needs the connection's own path).
 */
export interface DeliveryStrategy<C extends DeliveryHost = DeliveryHost> {
  /** Highest outbound seq the link may carry now. */
  flushLimit(conn: C): number;
  /** A flush wrote what it could (an ACK waiting for its replies may follow them). */
  flushed(conn: C): void;
  /**
   * A sequenced message from the peer (DATA, REQUEST or REPLY), in any order: duplicates
   * are acknowledged and dropped, the next seq is delivered when the strategy allows.
   * False for a gap (a protocol error).
   */
  receive(conn: C, seq: number, payload: Buffer, kind: Inbound): boolean;
  /** The application queued a message (it is in the replay buffer). */
  sent(conn: C): void;
  /** The peer acknowledged outbound seqs up to `seq`. */
  acked(conn: C, seq: number): void;
  /**
   * True while something outside this process (a session store) keeps the session for
   * whichever node its client resumes on: what the peer never acknowledged is then not
   * handed back when the connection closes.
   */
  readonly keepsSession: boolean;
}
