/**
 * A byte budget shared by every connection of one server: the sum of what their replay
 * buffers hold may not pass it, so that many peers that each stay under their own cap
 * still cannot exhaust the process together. Pure bookkeeping: no timers, no I/O.
 */

import { InvalidArgumentError } from '../errors.js';
import type { SharedBudget } from '../options.js';

/**
 * Frees budget when it runs out: ends holders that hold more than `requesterHeld` (the
 * biggest first) until `needed` bytes are back. True when enough was freed.
 */
export type Reclaim = (needed: number, requesterHeld: number) => boolean;

/** A shared cap on bytes held; connections reserve before they keep something. */
export class MemoryBudget implements SharedBudget {
  readonly limit: number;
  /**
   * Called when a reservation does not fit: the owner of the budget (a server) may end
   * bigger holders, so that one that holds little is not refused because others hog.
   */
  reclaim: Reclaim | null = null;
  #used = 0;
  #peak = 0;
  #refusals = 0;

  /** @throws {InvalidArgumentError} unless `limit` is a safe integer >= 1. */
  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new InvalidArgumentError(`budget limit must be an integer >= 1, got ${String(limit)}`);
    }
    this.limit = limit;
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.#used;
  }

  /** Most bytes ever reserved at once. */
  get peak(): number {
    return this.#peak;
  }

  /** Reservations refused because the budget was spent. */
  get refusals(): number {
    return this.#refusals;
  }

  /**
   * Reserves `n` bytes for a holder that holds `held` already; false (nothing reserved)
   * when that would pass the limit and {@link reclaim} could not make room.
   */
  tryReserve(n: number, held = 0): boolean {
    if (this.#used + n > this.limit) {
      const reclaim = this.reclaim;
      if (
        reclaim === null ||
        !reclaim(this.#used + n - this.limit, held) ||
        this.#used + n > this.limit
      ) {
        this.#refusals++;
        return false;
      }
    }
    this.#used += n;
    if (this.#used > this.#peak) this.#peak = this.#used;
    return true;
  }

  /** Reserves `n` bytes even past the limit (what is held already, restored from a store). */
  reserve(n: number): void {
    this.#used += n;
    if (this.#used > this.#peak) this.#peak = this.#used;
  }

  /** Gives back `n` bytes reserved earlier. */
  release(n: number): void {
    this.#used = Math.max(0, this.#used - n);
  }
}
