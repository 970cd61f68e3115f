/**
 * The server's session quota: how many sessions exist in total, per client address and per
 * identity, and which abandoned session makes room for a new one. Without it, a peer that
 * fills `maxSessions` with sessions it never resumes locks every new client out for the
 * session TTL.
 *
 * When a new session would break a limit, the quota names a victim, in this order:
 *
 * 1. `maxSessionsPerIdentity`: the identity's own oldest disconnected session (an identity
 *    is never locked out by sessions it abandoned, and never displaces someone else's);
 * 2. `maxSessionsPerAddress`: the address's oldest disconnected session without an
 *    identity;
 * 3. `maxSessions`: the server's oldest disconnected session without an identity.
 *
 * "Oldest" is the one disconnected longest ago, the nearest to expiring anyway. A limit
 * with no victim refuses the HELLO. Sessions with a live link are never evicted, and
 * sessions bound to an identity only ever by the same identity. The server evicts a victim
 * the way a session expires: what its client never acknowledged goes back to the
 * application ('session-lost'), then 'close' with reason 'session-expired'.
 *
 * Pure bookkeeping, O(1) per call: insertion-ordered sets hold the disconnected sessions
 * oldest first, and the per-address and per-identity counts exist only for limits that
 * are set (by default, per identity only).
 */

import type { SessionLimit } from './admission.js';
import type { ServerConnection } from './server-connection.js';

/** Sessions counted under one address key or identity, and its evictable ones, oldest first. */
interface Bucket {
  count: number;
  /** Created on the first disconnect: most identities and addresses never have one. */
  idle: Set<ServerConnection> | null;
}

/** A limit a new session would break, and the session whose eviction makes room (or null). */
export interface QuotaExcess {
  readonly limit: SessionLimit;
  readonly victim: ServerConnection | null;
}

function first<T>(set: Set<T> | undefined): T | null {
  if (set === undefined) return null;
  for (const item of set) return item;
  return null;
}

/** See the module comment. */
export class SessionQuota {
  /** Disconnected sessions without an identity, oldest disconnect first. */
  private readonly anonymousIdle = new Set<ServerConnection>();
  private readonly byAddress = new Map<string, Bucket>();
  private readonly byIdentity = new Map<string, Bucket>();
  /** The address key each session counts under (only with a per-address limit). */
  private readonly addressOf = new Map<ServerConnection, string>();
  private readonly perAddress: boolean;
  private readonly perIdentity: boolean;

  constructor(
    private readonly limits: {
      readonly maxSessions: number;
      readonly maxSessionsPerAddress: number;
      readonly maxSessionsPerIdentity: number;
    },
  ) {
    this.perAddress = Number.isFinite(limits.maxSessionsPerAddress);
    this.perIdentity = Number.isFinite(limits.maxSessionsPerIdentity);
  }

  /**
   * The first limit a new session from address key `key`, bound to `identity`, would break
   * while `total` sessions exist, with the session to evict for it; null when it fits.
   * `identity` undefined (not authenticated yet) skips the identity limit.
   */
  check(key: string, identity: string | null | undefined, total: number): QuotaExcess | null {
    if (typeof identity === 'string' && this.perIdentity) {
      const bucket = this.byIdentity.get(identity);
      if (bucket && bucket.count >= this.limits.maxSessionsPerIdentity) {
        return { limit: 'max-sessions-per-identity', victim: first(bucket.idle ?? undefined) };
      }
    }
    if (this.perAddress) {
      const bucket = this.byAddress.get(key);
      if (bucket && bucket.count >= this.limits.maxSessionsPerAddress) {
        return { limit: 'max-sessions-per-address', victim: first(bucket.idle ?? undefined) };
      }
    }
    if (total >= this.limits.maxSessions) {
      return { limit: 'max-sessions', victim: first(this.anonymousIdle) };
    }
    return null;
  }

  /** A session was created for a client at address key `key`. */
  added(conn: ServerConnection, key: string): void {
    if (conn.identity !== null && this.perIdentity)
      bucketOf(this.byIdentity, conn.identity).count++;
    if (this.perAddress) {
      bucketOf(this.byAddress, key).count++;
      this.addressOf.set(conn, key);
    }
  }

  /** The session lost its link and waits for a resume: it may be evicted from now on. */
  disconnected(conn: ServerConnection): void {
    this.connected(conn); // re-inserted below: the newest disconnect goes last
    if (conn.identity === null) {
      this.anonymousIdle.add(conn);
      const key = this.addressOf.get(conn);
      if (key !== undefined) idleOf(this.byAddress, key)?.add(conn);
    } else if (this.perIdentity) {
      idleOf(this.byIdentity, conn.identity)?.add(conn);
    }
  }

  /** The session has a link again (a resume): not evictable. */
  connected(conn: ServerConnection): void {
    if (conn.identity === null) {
      if (!this.anonymousIdle.delete(conn)) return;
      const key = this.addressOf.get(conn);
      if (key !== undefined) this.byAddress.get(key)?.idle?.delete(conn);
    } else if (this.perIdentity) {
      this.byIdentity.get(conn.identity)?.idle?.delete(conn);
    }
  }

  /** The session ended (closed, expired or evicted): uncounted. */
  removed(conn: ServerConnection): void {
    this.connected(conn);
    if (conn.identity !== null && this.perIdentity) release(this.byIdentity, conn.identity);
    const key = this.addressOf.get(conn);
    if (key !== undefined) {
      this.addressOf.delete(conn);
      release(this.byAddress, key);
    }
  }

  /** Sessions counted under an address key (0 without a per-address limit). */
  sessionsFrom(key: string): number {
    return this.byAddress.get(key)?.count ?? 0;
  }

  /** Sessions counted under an identity (0 without a per-identity limit). */
  sessionsOf(identity: string): number {
    return this.byIdentity.get(identity)?.count ?? 0;
  }
}

function bucketOf(map: Map<string, Bucket>, key: string): Bucket {
  let bucket = map.get(key);
  if (bucket === undefined) {
    bucket = { count: 0, idle: null };
    map.set(key, bucket);
  }
  return bucket;
}

function idleOf(map: Map<string, Bucket>, key: string): Set<ServerConnection> | null {
  const bucket = map.get(key);
  if (bucket === undefined) return null;
  bucket.idle ??= new Set();
  return bucket.idle;
}

function release(map: Map<string, Bucket>, key: string): void {
  const bucket = map.get(key);
  if (bucket === undefined) return;
  if (--bucket.count <= 0) map.delete(key);
}
