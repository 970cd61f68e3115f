/**
 * Sessions for store and journal tests: a fresh snapshot, and the first commit that puts
 * it in a store.
 */

import { randomBytes } from 'node:crypto';
import type { CommitBatch, SessionSnapshot } from '../../src/session/store.js';

/**
 * A fresh session snapshot: random id and token, no identity, a 60 s TTL and a 1 MiB log
 * cap unless overridden.
 */
export function sessionSnapshot(over: Partial<SessionSnapshot> = {}): SessionSnapshot {
  return {
    sessionId: randomBytes(16).toString('hex'),
    token: randomBytes(16),
    identity: null,
    clientId: '',
    traceId: '',
    ttl: 60_000,
    maxBytes: 1 << 20,
    ...over,
  };
}

/**
 * The commit that puts a new session in a store, as its first owner's journal writes it on
 * the handshake: the snapshot, owner `node` at generation 1, nothing received yet.
 */
export function firstCommit(snapshot: SessionSnapshot, node: string): CommitBatch {
  return { received: 0, replies: [], owner: { node, gen: 1 }, snapshot };
}
