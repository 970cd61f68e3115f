/**
 * The receiver's side of a session: filters duplicates (resent after a resume), detects
 * gaps, and batches cumulative acknowledgements. Pure: the caller owns the ack timer and
 * asks {@link InboundTracker.ackPending} when it fires.
 */

import { InvalidArgumentError } from '../errors.js';
import { CONNECTION_DEFAULTS, intOption } from '../options.js';

/**
 * Options for {@link InboundTracker}: the connection passes its resolved `ackEvery`; a
 * field left out takes the connection option's default ({@link CONNECTION_DEFAULTS}).
 */
export interface InboundOptions {
  /**
   * Unacknowledged messages after which an ACK is due at once; must be an integer >= 1.
   * Fewer messages are acknowledged by the caller's ack timer instead.
   * @default CONNECTION_DEFAULTS.ackEvery (32)
   */
  ackEvery?: number;
}

/** What to do with an incoming DATA frame, as decided by {@link InboundTracker.accept}. */
export type InboundVerdict = 'deliver' | 'duplicate' | 'gap';

function checkSeq(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`${name} must be a safe integer >= 0, got ${String(value)}`);
  }
}

/** Receive-side sequence tracking for one direction of one session. */
export class InboundTracker {
  readonly #ackEvery: number;
  #lastReceived: number;
  #lastAcked: number;
  /** A duplicate arrived: an ACK is owed even though its value was sent before (6.2). */
  #owed = false;

  /**
   * @param options Read once and never mutated.
   * @param lastReceived Highest seq already received (a resumed session); nothing is
   *   considered unacknowledged at the start.
   * @throws {InvalidArgumentError} naming the option or argument when out of range.
   */
  constructor(options: InboundOptions = {}, lastReceived = 0) {
    const ackEvery = intOption(
      'inbound.ackEvery',
      options.ackEvery,
      CONNECTION_DEFAULTS.ackEvery,
      1,
    );
    checkSeq('lastReceived', lastReceived);
    this.#ackEvery = ackEvery;
    this.#lastReceived = lastReceived;
    this.#lastAcked = lastReceived;
  }

  /** Highest seq delivered in order. */
  get lastReceived(): number {
    return this.#lastReceived;
  }

  /** Highest seq acknowledged to the peer so far. */
  get lastAcked(): number {
    return this.#lastAcked;
  }

  /** True once ackEvery messages are unacknowledged: send an ACK now. */
  get ackDue(): boolean {
    return this.#lastReceived - this.#lastAcked >= this.#ackEvery;
  }

  /**
   * True when anything is unacknowledged (the caller's ack timer then sends one), or a
   * duplicate arrived since the last ACK (the caller sends one at once).
   */
  get ackPending(): boolean {
    return this.#owed || this.#lastReceived > this.#lastAcked;
  }

  /**
   * Classifies an incoming seq:
   * - `'deliver'` for `lastReceived + 1`, which is recorded;
   * - `'duplicate'` for seq <= lastReceived (a resend after resume): drop it; an ACK is
   *   then pending even if lastReceived was acknowledged already, so that the sender,
   *   which may have missed that ACK, can free the message;
   * - `'gap'` for anything later: messages were lost, the caller treats it as a protocol error.
   * @throws {InvalidArgumentError} if `seq` is not a safe integer >= 0 (a caller bug: the
   *   decoder only produces such values).
   */
  accept(seq: number): InboundVerdict {
    checkSeq('seq', seq);
    if (seq === this.#lastReceived + 1) {
      this.#lastReceived = seq;
      return 'deliver';
    }
    if (seq > this.#lastReceived) return 'gap';
    this.#owed = true;
    return 'duplicate';
  }

  /**
   * Returns the seq to put in an ACK (the highest received) and marks it acknowledged.
   * Calling it with nothing pending returns the same seq again; a repeated cumulative ack
   * is harmless to the sender.
   */
  takeAck(): number {
    this.#owed = false;
    this.#lastAcked = this.#lastReceived;
    return this.#lastAcked;
  }

  /**
   * After a resume: the handshake carried `lastReceived` to the peer, which acknowledges
   * everything up to it implicitly, so nothing is pending afterwards.
   * @throws {InvalidArgumentError} if `lastReceived` is not a safe integer >= 0.
   */
  reset(lastReceived: number): void {
    checkSeq('lastReceived', lastReceived);
    this.#owed = false;
    this.#lastReceived = lastReceived;
    this.#lastAcked = lastReceived;
  }
}
