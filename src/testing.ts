/**
 * @internal Hooks for heartline's own test suite, and for nothing else: no entry point
 * exports this file (package.json `exports` names none of it) and it is not part of the
 * API. Tests that cut a link as a network fault would, or read its heartbeat, reach the
 * link here, in one documented place, instead of each casting into a connection's
 * private members.
 */

import type { Connection } from './connection.js';
import type { Link } from './link.js';

/** What a connection keeps of its link (a protected member, read only here). */
interface WithLink {
  readonly link: Link | null;
}

/**
 * @internal The link a connection runs on now, or null between links (disconnected, or
 * a client still dialling or handshaking).
 */
export function currentLink(conn: Connection): Link | null {
  return (conn as unknown as WithLink).link;
}

/**
 * @internal The link a connection runs on now.
 * @throws Error when it has none.
 */
export function linkOf(conn: Connection): Link {
  const link = currentLink(conn);
  if (!link) throw new Error(`connection ${conn.id} has no link`);
  return link;
}

/**
 * @internal Resets the transport of a connection's current link (TCP RST, as
 * `net.Socket.resetAndDestroy`): this end just closes, the peer reads ECONNRESET, as when
 * a server crashes or a middlebox drops the flow. Works for a socket and a memory pair.
 * @throws Error when the connection has no link, or its transport cannot reset.
 */
export function resetLink(conn: Connection): void {
  const transport = linkOf(conn).transport as { resetAndDestroy?: () => unknown };
  if (typeof transport.resetAndDestroy !== 'function') {
    throw new Error(`the transport of connection ${conn.id} cannot reset`);
  }
  transport.resetAndDestroy();
}
