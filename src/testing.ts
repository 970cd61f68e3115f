/**
 * @internal Hooks for heartline's own test suite, and for nothing else: no entry point
 * exports this file (package.json `exports` names none of it) and it is not part of the
 * API. Tests that cut a link as a network fault would, read its heartbeat, count what a
 * server holds in its handshakes or set a heartbeat's counter near its wrap reach those
 * private members here, in one documented place, instead of each casting its own way in.
 */

import type { Server as TlsServer } from 'node:tls';
import type { Connection } from './connection.js';
import type { Heartbeat } from './heartbeat.js';
import type { Link } from './link.js';
import type { Server } from './server/server.js';
import type { TimingWheel } from './time/wheel.js';

/** What a connection keeps of its link and wheel (protected members, read only here). */
interface WithLink {
  readonly link: Link | null;
  readonly wheel: TimingWheel;
}

/**
 * @internal The link a connection runs on now, or null between links (disconnected, or
 * a client still dialling or handshaking).
 */
export function currentLink(conn: Connection): Link | null {
  return (conn as unknown as WithLink).link;
}

/**
 * @internal The timing wheel a connection's timers run on (a client's is shared by every
 * client on its clock, a server connection's is its server's): a test checks that
 * nothing is left armed once everything closed.
 */
export function wheelOf(conn: Connection): TimingWheel {
  return (conn as unknown as WithLink).wheel;
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

/** What a server keeps of its sockets in their handshakes (private members, read only here). */
interface ServerInternals {
  readonly handshaking: ReadonlySet<Link>;
  readonly tls: { readonly pending: ReadonlyMap<string, unknown>; readonly tls: TlsServer } | null;
}

/**
 * @internal The decoder of every link the server holds (those still in their handshake
 * and those of its connections): what each keeps of an incomplete frame.
 */
export function serverDecoders(server: Server): Array<{ readonly bufferedBytes: number }> {
  const links = [...(server as unknown as ServerInternals).handshaking];
  for (const conn of server.connections.values()) {
    const link = currentLink(conn);
    if (link) links.push(link);
  }
  return links.map((link) => (link as unknown as { decoder: { bufferedBytes: number } }).decoder);
}

/** @internal A TLS server's front: sockets in their TLS handshake, and the `tls.Server`. */
export function tlsFront(server: Server): { pending(): number; tls: TlsServer } {
  const front = (server as unknown as ServerInternals).tls;
  if (!front) throw new Error('the server has no TLS');
  return { pending: () => front.pending.size, tls: front.tls };
}

/**
 * @internal Sets a heartbeat's PING counter (and what it counts as answered) to `seq`,
 * so that a test reaches the 2^32 wrap without sending 2^32 PINGs. Call before start().
 */
export function setPingSeq(hb: Heartbeat, seq: number): void {
  const counters = hb as unknown as { seq: number; answered: number };
  counters.seq = seq;
  counters.answered = seq;
}
