/**
 * The session directory: what the server asks about sessions beyond its own memory. It
 * answers where sessions are online (`presence`), delivers `sendTo`, says whether a
 * session found in memory may be resumed here, takes over sessions other nodes held and
 * rotates resume tokens. The server defines it and ships the single-node
 * {@link LocalDirectory}; `heartline/cluster` (`joinCluster`) plugs in one backed by a
 * session store, so that a plain server never loads the cluster code.
 */

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { HeartlineError, InvalidArgumentError } from '../errors.js';
import { maxPayload } from '../protocol/codec.js';
import type { HelloFrame } from '../protocol/frames.js';
import type { IdempotencyWindow, MemoryWindowOptions } from '../session/idempotency.js';
import type { PresenceEntry, PresenceEvent, StoredSession } from '../session/store.js';
import type { Clock } from '../time/clock.js';
import type { ServerConnection } from './server-connection.js';

/** A resume as HELLO carries it. */
export type ResumeRequest = NonNullable<HelloFrame['resume']>;

/**
 * The store became reachable (`up`) or failed (`error` says how); or, with `writeback`,
 * this node finished writing its sessions back after the store failed or lost them.
 */
export interface StoreEvent {
  up: boolean;
  error?: HeartlineError;
  /** Present once a write-back has ended (then `up` is true). */
  writeback?: StoreWriteback;
}

/**
 * One write-back: every session this node held that the store had failed to take or had
 * lost (a Redis restart without its data, keys expired while it was unreachable) is
 * written back whole, and its acknowledgements are gated on the store again.
 */
export interface StoreWriteback {
  /** Sessions written back. */
  sessions: number;
  /**
   * From this node's `{ up: true }` (or, when it never saw the store fail, from the first
   * session finding itself missing) to the last session written back, in ms.
   */
  durationMs: number;
}

/** Where a session id or client id is online. */
export interface PresenceInfo {
  id: string;
  online: boolean;
  /** One entry per session online on a node. */
  sessions: PresenceEntry[];
}

/** How a refused resume is told to the client: CLOSE(overloaded) with a retry hint. */
export interface DirectoryRefusal {
  message: string;
  retryAfter: number;
  error: HeartlineError;
}

/** What the server gives the directory it plugs in. */
export interface DirectoryHost {
  clock: Clock;
  /** This node's id (the server's `nodeId` option). */
  nodeId: string;
  sessionTtl: number;
  /** The replay-buffer cap, also the cap of a session's log and inbox in a store. */
  maxBytes: number;
  maxFrame: number;
  presence(event: PresenceEvent): void;
  store(event: StoreEvent): void;
}

/**
 * The server's view of where sessions live. Methods that may wait on a store return a
 * promise only when they do: the single-node directory answers at once, so its
 * handshake takes no extra turn.
 */
export interface SessionDirectory {
  /**
   * Whether `conn`, found in the server's memory for a resume, may be resumed here (with
   * a store, only while this node still owns it; a stale one is ended).
   */
  keeps(conn: ServerConnection): boolean | Promise<boolean>;
  /**
   * A session this server does not hold, taken over for `resume` (another node held it,
   * or this one before a restart); null when there is none to take. Rejects when the
   * store cannot be asked: {@link refusal} turns that into the client's CLOSE.
   */
  takeOver(
    resume: ResumeRequest,
    identity: string | null,
  ): StoredSession | null | Promise<StoredSession | null>;
  /** The token the WELCOME of a resume of `conn` carries (tokens are single-use). */
  rotateToken(conn: ServerConnection, presented: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** The CLOSE(overloaded) of a resume refused because {@link takeOver} failed with `err`. */
  refusal(err: unknown): DirectoryRefusal;
  /** A new session, or one taken over (`restored`), before its first link. */
  adopt(conn: ServerConnection, restored: StoredSession | null): void;
  /** A held session got a link. */
  opened(conn: ServerConnection): void;
  /** A held session lost its link. */
  disconnected(conn: ServerConnection): void;
  /** The session ended here. */
  released(conn: ServerConnection): void;
  /** The client holds its newest token. */
  tokenSettled(conn: ServerConnection): void;
  /** See `Server.sendTo`. */
  sendTo(id: string, payload: Uint8Array | string): Promise<number>;
  /** See `Server.presence`. */
  presence(id: string): Promise<PresenceInfo>;
  /**
   * The idempotency window shared by the nodes (in the store), or null to keep it in
   * this process.
   */
  idempotencyWindow(options: MemoryWindowOptions, clock: Clock): IdempotencyWindow | null;
  /** After the server closed its connections: last writes, then the store if owned. */
  close(): Promise<void>;
}

/**
 * The server's `cluster` option: makes the {@link SessionDirectory} of one server
 * (`joinCluster()` of `heartline/cluster` returns one).
 */
export interface ClusterPlugin {
  createDirectory(host: DirectoryHost): SessionDirectory;
}

/** Validates the `nodeId` option, or makes the default `HOSTNAME-PID-RANDOM`. */
export function resolveNodeId(nodeId: unknown): string {
  const id = nodeId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  if (typeof id !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(id)) {
    throw new InvalidArgumentError(
      `option "nodeId" must be 1 to 200 printable ASCII characters without spaces, got ${String(id)}`,
    );
  }
  return id;
}

/** Options that `joinCluster()` took over: named in the error, so an upgrade is quick. */
const MOVED = ['store', 'redis', 'presenceTtl', 'storeTimeout'] as const;

/** Validates the `cluster` option (and refuses the options it replaced). */
export function resolveClusterPlugin(o: {
  cluster?: ClusterPlugin | undefined;
}): ClusterPlugin | null {
  for (const name of MOVED) {
    if ((o as Record<string, unknown>)[name] !== undefined) {
      throw new InvalidArgumentError(
        `option "${name}" moved into the "cluster" option: cluster: joinCluster({ ${name} }) from 'heartline/cluster'`,
      );
    }
  }
  const c = o.cluster;
  if (c === undefined) return null;
  if (c === null || typeof c !== 'object' || typeof c.createDirectory !== 'function') {
    throw new InvalidArgumentError(
      'option "cluster" must be what joinCluster() of heartline/cluster returns',
    );
  }
  return c;
}

/** A session id as `sendTo()` takes it (32 hex digits); anything else is a client id. */
export const SESSION_ID = /^[0-9a-f]{32}$/;

/**
 * What `sendTo()` sends: `payload` as bytes, if a DATA frame can carry it.
 * @throws HeartlineError HL_ERR_FRAME_TOO_LARGE past `maxPayload`
 */
export function sendToPayload(payload: Uint8Array | string, maxPayload: number): Uint8Array {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  if (data.length > maxPayload) {
    throw new HeartlineError(
      'HL_ERR_FRAME_TOO_LARGE',
      `message of ${data.length} bytes exceeds the maximum of ${maxPayload}`,
    );
  }
  return data;
}

/**
 * The directory of a single server: presence and `sendTo` cover this server's sessions,
 * a session in memory is always its own, and nothing is taken over.
 */
export class LocalDirectory implements SessionDirectory {
  readonly #nodeId: string;
  readonly #sessions: ReadonlyMap<string, ServerConnection>;
  readonly #maxPayload: number;
  readonly #event: (e: PresenceEvent) => void;
  /** Sessions by client id: the connection itself while it is the only one (most are). */
  readonly #byClient = new Map<string, ServerConnection | Set<ServerConnection>>();
  /** Sessions with a live link, in the order they came online. */
  readonly #online = new Set<ServerConnection>();

  /** `sessions`: the server's own registry, by session id (read, never written). */
  constructor(
    host: Pick<DirectoryHost, 'nodeId' | 'maxFrame' | 'presence'>,
    sessions: ReadonlyMap<string, ServerConnection>,
  ) {
    this.#nodeId = host.nodeId;
    this.#sessions = sessions;
    this.#maxPayload = maxPayload(host.maxFrame);
    this.#event = host.presence;
  }

  keeps(): boolean {
    return true;
  }

  takeOver(): null {
    return null;
  }

  rotateToken(conn: ServerConnection, presented: Uint8Array): Uint8Array {
    return conn.rotateToken(presented);
  }

  refusal(err: unknown): DirectoryRefusal {
    // takeOver() never fails here; a refusal all the same says why.
    const error = new HeartlineError('HL_ERR_INTERNAL', `session directory: ${String(err)}`, {
      cause: err,
    });
    return { message: 'internal error', retryAfter: 0, error };
  }

  adopt(conn: ServerConnection): void {
    if (conn.clientId === '') return;
    const held = this.#byClient.get(conn.clientId);
    if (held === undefined) this.#byClient.set(conn.clientId, conn);
    else if (held instanceof Set) held.add(conn);
    else if (held !== conn) this.#byClient.set(conn.clientId, new Set([held, conn]));
  }

  opened(conn: ServerConnection): void {
    if (this.#sessions.get(conn.sessionKey) !== conn || this.#online.has(conn)) return;
    this.#online.add(conn);
    queueMicrotask(() => this.#event({ ...this.#entry(conn), online: true }));
  }

  disconnected(conn: ServerConnection): void {
    this.#offline(conn);
  }

  released(conn: ServerConnection): void {
    const byClient = this.#byClient.get(conn.clientId);
    if (byClient === conn) this.#byClient.delete(conn.clientId);
    else if (byClient instanceof Set) {
      byClient.delete(conn);
      if (byClient.size === 0) this.#byClient.delete(conn.clientId);
    }
    this.#offline(conn);
  }

  tokenSettled(): void {}

  async sendTo(id: string, payload: Uint8Array | string): Promise<number> {
    const data = sendToPayload(payload, this.#maxPayload);
    if (SESSION_ID.test(id)) {
      const conn = this.#sessions.get(id);
      if (conn && !conn.closed && send(conn, data)) return 1;
    }
    const held = this.#byClient.get(id);
    if (held === undefined) return 0;
    let sent = 0;
    for (const conn of held instanceof Set ? held : [held]) if (send(conn, data)) sent++;
    return sent;
  }

  async presence(id: string): Promise<PresenceInfo> {
    const sessions: PresenceEntry[] = [];
    for (const conn of this.#online) {
      if (conn.sessionKey === id || (conn.clientId !== '' && conn.clientId === id)) {
        sessions.push(this.#entry(conn));
      }
    }
    return { id, online: sessions.length > 0, sessions };
  }

  idempotencyWindow(): null {
    return null;
  }

  async close(): Promise<void> {
    for (const conn of [...this.#online]) this.#offline(conn);
  }

  #offline(conn: ServerConnection): void {
    if (!this.#online.delete(conn)) return;
    const entry = this.#entry(conn);
    queueMicrotask(() => this.#event({ ...entry, online: false }));
  }

  #entry(conn: ServerConnection): PresenceEntry {
    return { node: this.#nodeId, sessionId: conn.sessionKey, clientId: conn.clientId };
  }
}

/** Through the local connection; false when it is closing. */
function send(conn: ServerConnection, data: Uint8Array): boolean {
  if (conn.closed || conn.isClosing) return false;
  conn.send(data);
  return true;
}
