/**
 * The multi-process mode as its server sees it: in the primary the worker pool, in a worker
 * the channel to the primary, each a {@link ServerMode} the server delegates to.
 */

import type { ServerMode } from '../server-mode.js';
import type { WorkerRole } from './mode.js';
import { type PrimaryHost, WorkerPool } from './primary.js';
import { WorkerChannel, type WorkerHost } from './worker.js';

/** What the multi-process mode needs of its server: the pool uses one half, a worker the other. */
export type WorkersHost = PrimaryHost & WorkerHost;

/** The server's mode in this process of a worker pool. */
export function workersMode(role: WorkerRole, host: WorkersHost): ServerMode {
  return role.role === 'primary'
    ? new WorkerPool(host, role.workers)
    : new WorkerChannel(host, role.slot);
}
