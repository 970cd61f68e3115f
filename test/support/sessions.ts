/**
 * A fresh session snapshot for store and journal tests: random id and token, no
 * identity, a 60 s TTL and a 1 MiB log cap unless overridden.
 */

import { randomBytes } from 'node:crypto';
import type { SessionSnapshot } from '../../src/session/store.js';

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
