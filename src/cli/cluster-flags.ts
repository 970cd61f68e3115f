/**
 * The cluster flags of `serve`: `--redis URL` keeps sessions in Redis so that any node can
 * resume them, `--node-id` names the node, `--presence-ttl` says how soon a dead node's
 * sessions count as offline, `--store-timeout` how long a store call may take before the
 * node serves its links locally. With `--redis` the command also prints `store` and
 * `presence` events.
 */

import { CLUSTER_DEFAULTS } from '../cluster/defaults.js';
import { joinCluster } from '../cluster/node.js';
import type { ClusterPlugin } from '../server/directory.js';
import type { Server } from '../server/server.js';
import { intFlag, UsageError } from './args.js';
import type { EventOutput } from './output.js';

/** parseArgs options of the cluster flags. */
export const CLUSTER_FLAGS = {
  redis: { type: 'string' },
  'node-id': { type: 'string' },
  'presence-ttl': { type: 'string' },
  'store-timeout': { type: 'string' },
} as const;

/** Help lines of the cluster flags. */
export const CLUSTER_HELP = `  --redis URL          keep sessions in Redis (redis://HOST:PORT[/DB]) so that any node
                       started with the same URL can resume them; adds "store" and
                       "presence" events
  --node-id ID         this node's id in the cluster (default HOSTNAME-PID-RANDOM)
  --presence-ttl MS    a node not heard for this long counts as dead (default ${CLUSTER_DEFAULTS.presenceTtl})
  --store-timeout MS   a Redis call slower than this counts as failed: the node serves
                       its links locally until Redis answers again (default ${CLUSTER_DEFAULTS.storeTimeout})`;

/** The values of the cluster flags. */
export interface ClusterFlagValues {
  redis?: string | undefined;
  'node-id'?: string | undefined;
  'presence-ttl'?: string | undefined;
  'store-timeout'?: string | undefined;
}

/** Server options from the flags (none without them); a bad value is a usage error. */
export function clusterOptions(values: ClusterFlagValues): {
  nodeId?: string;
  cluster?: ClusterPlugin;
} {
  const out: { nodeId?: string; cluster?: ClusterPlugin } = {};
  const redis = values.redis;
  if (redis !== undefined) {
    if (!/^rediss?:\/\/./.test(redis)) {
      throw new UsageError(`--redis must be a redis:// or rediss:// URL, got "${redis}"`);
    }
  } else if (
    values['node-id'] !== undefined ||
    values['presence-ttl'] !== undefined ||
    values['store-timeout'] !== undefined
  ) {
    throw new UsageError('--node-id, --presence-ttl and --store-timeout need --redis');
  }
  if (values['node-id'] !== undefined) out.nodeId = values['node-id'];
  const presenceTtl = intFlag('presence-ttl', values['presence-ttl'], 300);
  const storeTimeout = intFlag('store-timeout', values['store-timeout'], 10, 600_000);
  if (redis !== undefined) {
    out.cluster = joinCluster({
      redis,
      ...(presenceTtl !== undefined ? { presenceTtl } : {}),
      ...(storeTimeout !== undefined ? { storeTimeout } : {}),
    });
  }
  return out;
}

/** Prints the store and presence events of a clustered server. */
export function reportCluster(out: EventOutput, server: Server): void {
  server.on('store', (e) =>
    out.event('store', {
      node: server.nodeId,
      up: e.up,
      error: e.error?.message,
      errorCode: e.error?.code,
      wroteBack: e.writeback?.sessions,
      writebackMs: e.writeback?.durationMs,
    }),
  );
  server.on('presence', (e) =>
    out.event('presence', {
      node: e.node,
      session: e.sessionId,
      client: e.clientId,
      online: e.online,
    }),
  );
}
