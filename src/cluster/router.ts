/**
 * Routing: `sendTo(id, payload)` from any node reaches the client wherever it is
 * connected, exactly once per session, and waits in its session while the client is
 * briefly away.
 *
 * A session held by this node gets the message through its own `send()` (its journal
 * commits it before it goes out). Any other session gets it appended to its inbox in the
 * store, atomically, and its owner is noted over pub/sub; the owner numbers inbox messages
 * into the session's log by absolute inbox id, so a note that is lost (the owner also
 * finds the inbox on its periodic touch) or doubled never loses or doubles a message. A
 * session whose client is away keeps its inbox until the client resumes, on any node.
 */

import { HeartlineError } from '../errors.js';
import { maxPayload } from '../protocol/codec.js';
import { SESSION_ID, sendToPayload } from '../server/directory.js';
import type { ServerConnection } from '../server/server-connection.js';
import type { SessionStore } from '../session/store.js';

/** What the router needs of its node. */
export interface RouterHost {
  /** The live session with this id held by this node. */
  local(sessionId: string): ServerConnection | undefined;
  /** The live sessions of a client id held by this node. */
  localByClient(clientId: string): Iterable<ServerConnection>;
  /** Bounds a store call by the store timeout. */
  call<T>(op: Promise<T>): Promise<T>;
}

/** Sends messages to sessions wherever they are held. */
export class Router {
  readonly #store: SessionStore;
  readonly #host: RouterHost;
  readonly #maxPayload: number;

  constructor(store: SessionStore, host: RouterHost, maxFrame: number) {
    this.#store = store;
    this.#host = host;
    this.#maxPayload = maxPayload(maxFrame);
  }

  /**
   * Sends `payload` to the session `id`, or else to every session of the client id `id`.
   * Resolves with the number of sessions it was queued in (0: no such session or client).
   * Rejects with HL_ERR_FRAME_TOO_LARGE, HL_ERR_BUFFER_FULL (a session's cap would pass:
   * nothing was queued in it) or HL_ERR_STORE.
   */
  async sendTo(id: string, payload: Uint8Array | string): Promise<number> {
    const data = sendToPayload(payload, this.#maxPayload);
    if (SESSION_ID.test(id) && (await this.#toSession(id, data))) return 1;
    const done = new Set<string>();
    for (const conn of this.#host.localByClient(id)) {
      if (this.#sendLocal(conn, data)) done.add(conn.sessionKey);
    }
    const ids = await this.#host.call(this.#store.sessionsOf(id));
    for (const sessionId of ids) {
      if (!done.has(sessionId) && (await this.#toSession(sessionId, data))) done.add(sessionId);
    }
    return done.size;
  }

  /** True when the session exists and got the message. */
  async #toSession(sessionId: string, data: Uint8Array): Promise<boolean> {
    const conn = this.#host.local(sessionId);
    if (conn && this.#sendLocal(conn, data)) return true;
    const r = await this.#host.call(this.#store.append(sessionId, data));
    if (r.status === 'full') {
      throw new HeartlineError(
        'HL_ERR_BUFFER_FULL',
        `session ${sessionId} holds as many unacknowledged bytes as its cap allows`,
      );
    }
    return r.status === 'ok';
  }

  /** Through the local connection; false when it is closing (another node may hold it). */
  #sendLocal(conn: ServerConnection, data: Uint8Array): boolean {
    if (conn.closed || conn.isClosing) return false;
    conn.send(data);
    return true;
  }
}
