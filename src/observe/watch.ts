/**
 * Attaches to connections through their ordinary events. Nothing is added to the hot
 * paths: observers only listen. Listeners are shared: one function per event and per
 * observer serves every connection (EventEmitter calls it with the connection as
 * `this`), so watching 100k connections costs listener slots, not 100k closures each.
 */

import type { EventEmitter } from 'node:events';
import type { Server } from '../server/server.js';
import type { ServerConnection } from '../server/server-connection.js';

/** Listeners for some events of an emitter typed with `EventEmitter<Events>`; `this` is the emitter. */
export type Handlers<Events, This = unknown> = {
  [K in keyof Events]?: Events[K] extends unknown[]
    ? (this: This, ...args: Events[K]) => void
    : never;
};

/** One set of listeners, attached to and detached from any number of emitters. */
export class Listeners<Events, This extends object> {
  private readonly entries: ReadonlyArray<readonly [string, (...args: unknown[]) => void]>;

  constructor(handlers: Handlers<Events, This>) {
    this.entries = Object.entries(handlers) as Array<[string, (...args: unknown[]) => void]>;
  }

  attach(emitter: This): void {
    const plain = emitter as unknown as EventEmitter;
    for (const [event, handler] of this.entries) plain.on(event, handler);
  }

  detach(emitter: This): void {
    const plain = emitter as unknown as EventEmitter;
    for (const [event, handler] of this.entries) plain.off(event, handler);
  }
}

/** Adds typed listeners to one emitter and returns what removes them all. */
export function listenAll<Events, This extends object>(
  emitter: This,
  handlers: Handlers<Events, This>,
): () => void {
  const listeners = new Listeners<Events, This>(handlers);
  listeners.attach(emitter);
  return () => listeners.detach(emitter);
}

/** What {@link watchServer} calls for each connection. */
export interface ConnectionWatcher {
  /** A connection to observe: attach listeners. */
  attach(conn: ServerConnection): void;
  /** The connection closed (after its 'close' listeners ran) or watching stopped. */
  detach(conn: ServerConnection): void;
}

/**
 * Calls `watcher.attach` for every live connection of `server` and for each new one,
 * and `watcher.detach` once the connection's 'close' listeners have run or when the
 * returned function is called.
 */
export function watchServer(server: Server, watcher: ConnectionWatcher): () => void {
  const watched = new Set<ServerConnection>();
  // Registered after attach()'s own listeners, so those still see the 'close'.
  function onClose(this: ServerConnection): void {
    this.off('close', onClose);
    if (watched.delete(this)) watcher.detach(this);
  }
  const add = (conn: ServerConnection): void => {
    if (conn.closed || watched.has(conn)) return;
    watched.add(conn);
    watcher.attach(conn);
    conn.on('close', onClose);
  };
  for (const conn of server.connections.values()) add(conn);
  server.on('connection', add);
  return () => {
    server.off('connection', add);
    const all = [...watched];
    watched.clear();
    for (const conn of all) {
      conn.off('close', onClose);
      watcher.detach(conn);
    }
  };
}

/** Events of optional server features (load levels, adaptive heartbeats), by shape. */
export interface OptionalServerEvents {
  load: [
    event: {
      from: string;
      to: string;
      reasons?: Array<{ metric: string; value: number; threshold: number }>;
    },
  ];
  retune: [event: { from: number; to: number; interval: number; connections: number }];
}
