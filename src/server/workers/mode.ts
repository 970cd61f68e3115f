/**
 * The multi-process mode's options and roles. The application's script runs in the
 * primary and again in every worker (like node:cluster); which one a process is comes from
 * an environment variable the primary sets when it forks, so an application that uses
 * node:cluster itself is not confused by it.
 */

import { CONNECTION_DEFAULTS, intOption } from '../../options.js';

/** Options of the multi-process mode (part of ServerOptions). */
export interface WorkersOptions {
  /**
   * Worker processes. With N >= 1, `listen()` in the process that runs first (the
   * primary) binds the port, forks N workers running the same script and hands each
   * accepted socket to one of them; connections, sessions and their events live in the
   * workers. 0 serves everything in this process.
   * @default 0
   */
  workers?: number;
}

/** Defaults of the multi-process mode. */
export const WORKERS_DEFAULTS = Object.freeze({
  workers: 0,
  /** Most workers: the slot is one byte of the session id. */
  maxWorkers: 256,
  /** First re-fork delay after a worker exited unexpectedly (ms); doubles per crash. */
  restartDelay: 100,
  /**
   * Longest re-fork delay (ms): a slot that keeps crashing is re-forked this often, for as
   * long as the server runs; the other workers serve meanwhile.
   */
  maxRestartDelay: 5000,
  /** A worker that stayed online this long (ms) resets its slot's crash count. */
  stableAfter: 5000,
  /**
   * Crashes in a row (none stable) from which a slot is in a crash loop: each further crash
   * is reported as a 'worker' event 'crash-loop'. Before listen() resolved, this many
   * crashes of one slot fail listen() instead (the script cannot start a worker).
   */
  crashLoopAfter: 5,
  /**
   * Longest line of a worker's stdout or stderr the primary holds back until its newline
   * (bytes): a longer one is passed on in pieces, which may interleave with other workers'.
   */
  maxLine: 8 * 1024 * 1024,
  /** How long after a worker exited the primary waits for the end of its output (ms). */
  outputGrace: 1000,
  /** How long a worker may take to exit once asked to close, beyond any drain (ms). */
  exitGrace: 5000,
  /** How often a worker reports its counts to the primary (ms). */
  reportEvery: 250,
  /** How long queryWorkers() waits for the workers' answers (ms). */
  queryTimeout: 2000,
});

/** The environment variable that makes a forked process a worker, holding its slot. */
export const WORKER_ENV = 'HEARTLINE_WORKER';

/** Marks heartline's IPC messages: the application may use the channel too. */
export const IPC_TAG = 'heartline.workers';

/** Messages over the IPC channel, both ways. */
export type WorkerMessage =
  /** worker -> primary: listen() was called; routing may start. */
  | { tag: typeof IPC_TAG; type: 'ready' }
  /** worker -> primary: counts (handoffs: sockets received so far). */
  | { tag: typeof IPC_TAG; type: 'load'; connections: number; sessions: number; handoffs: number }
  /** worker -> primary: its server closed. */
  | { tag: typeof IPC_TAG; type: 'closed' }
  /** primary -> worker: the address listen() resolves with. */
  | { tag: typeof IPC_TAG; type: 'address'; address: string; family: string; port: number }
  /** primary -> worker: a socket (the handle) and the bytes the primary read of it. */
  | { tag: typeof IPC_TAG; type: 'socket'; head: string; handshakeMs: number }
  /** primary -> worker: close, or drain with this timeout. */
  | { tag: typeof IPC_TAG; type: 'close'; drain: number | null }
  /** primary -> worker: server.queryWorkers(topic). */
  | { tag: typeof IPC_TAG; type: 'query'; id: number; topic: string }
  /** worker -> primary: the answer of its handler (ok false: none, or it threw). */
  | { tag: typeof IPC_TAG; type: 'answer'; id: number; ok: boolean; value?: unknown };

export function isWorkerMessage(msg: unknown): msg is WorkerMessage {
  return typeof msg === 'object' && msg !== null && (msg as { tag?: unknown }).tag === IPC_TAG;
}

/** What this process is for a server created with `options`. */
export type WorkerRole =
  | { role: 'primary'; workers: number }
  | { role: 'worker'; workers: number; slot: number };

/** Validates `workers` and returns it; 0 means one process, no workers. */
export function resolveWorkers(o: WorkersOptions): number {
  return intOption('workers', o.workers, WORKERS_DEFAULTS.workers, 0, WORKERS_DEFAULTS.maxWorkers);
}

/**
 * The role of this process: a worker when the primary forked it (the variable names a
 * slot and the IPC channel is there), the primary otherwise; null with `workers` 0.
 */
export function workerRole(
  o: WorkersOptions,
  env: NodeJS.ProcessEnv = process.env,
  ipc = typeof process.send === 'function',
): WorkerRole | null {
  const workers = resolveWorkers(o);
  if (workers === 0) return null;
  const raw = env[WORKER_ENV];
  const slot = raw === undefined ? Number.NaN : Number(raw);
  if (ipc && Number.isSafeInteger(slot) && slot >= 0 && slot < workers) {
    return { role: 'worker', workers, slot };
  }
  return { role: 'primary', workers };
}

/** True in a process the multi-process mode forked (the CLI prints less there). */
export function isWorkerProcess(): boolean {
  return process.env[WORKER_ENV] !== undefined && typeof process.send === 'function';
}

interface SplitLimits {
  maxConnections?: number | undefined;
  maxSessions?: number | undefined;
  maxHeartbeatsPerSecond?: number | undefined;
  maxTotalBufferedBytes?: number | undefined;
  maxBufferedBytes?: number | undefined;
  acceptRate?: number | undefined;
  acceptBurst?: number | undefined;
}

/**
 * A worker's share of the machine-wide limits: configured maxConnections, maxSessions,
 * maxHeartbeatsPerSecond and maxTotalBufferedBytes divided evenly (rounded up; the
 * replay budget never below one connection's cap); defaults stay per process (they
 * derive from per-process resources). The accept rate is the primary's to enforce.
 */
export function workerLimits<T extends SplitLimits>(o: T, workers: number): T {
  const share = (v: number | undefined) =>
    v === undefined || !Number.isFinite(v) || v <= 0 ? v : Math.ceil(v / workers);
  const out: T = { ...o, acceptRate: Number.POSITIVE_INFINITY };
  delete out.acceptBurst;
  for (const key of ['maxConnections', 'maxSessions', 'maxHeartbeatsPerSecond'] as const) {
    if (o[key] !== undefined) out[key] = share(o[key]) as T[typeof key];
  }
  if (o.maxTotalBufferedBytes !== undefined) {
    const perConnection = o.maxBufferedBytes ?? CONNECTION_DEFAULTS.maxBufferedBytes;
    out.maxTotalBufferedBytes = Math.max(share(o.maxTotalBufferedBytes) ?? 0, perConnection);
  }
  return out;
}

/**
 * The options a server runs with in this process: in a worker, its share of the
 * machine-wide limits ({@link workerLimits}); in the primary or a single process, `o`.
 */
export function limitsFor<T extends SplitLimits>(o: T, role: WorkerRole | null): T {
  return role?.role === 'worker' ? workerLimits(o, role.workers) : o;
}
