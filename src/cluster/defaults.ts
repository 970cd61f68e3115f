/**
 * The cluster's timing defaults, in a module of their own: the node, the Redis idempotency
 * window and the CLI flags all read them, and the node imports the window.
 */

import { PRESENCE_DEFAULTS } from './presence.js';

/** Cluster defaults (the options of `joinCluster()`). */
export const CLUSTER_DEFAULTS = Object.freeze({
  /** See {@link PRESENCE_DEFAULTS}. */
  presenceTtl: PRESENCE_DEFAULTS.ttl,
  /**
   * A store call slower than this (ms) counts as failed: the session serves its client
   * locally meanwhile. Loopback Redis answers in well under a millisecond; 2 s rides out a
   * failover without stalling a link for longer than a fraction of its heartbeat timeout.
   */
  storeTimeout: 2000,
  /** What a resume refused while the store is down tells the client to wait (ms). */
  storeRetryAfter: 1000,
});
