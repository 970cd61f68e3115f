/**
 * The link over a TCP or TLS socket: the generic {@link Link} plus what only TCP has.
 * Nagle is off and the OS keepalive is on from the start; once a heartbeat is granted,
 * and again on each retune, keepalive and TCP_USER_TIMEOUT are derived from it (or from
 * the explicit `tcp` option), so the kernel gives up on a dead peer on the heartbeat's
 * scale too. The client and the server make one per socket they dial or accept.
 *
 * A subclass rather than a strategy field: the choice is made once, when the link is
 * made, and costs an idle connection no extra field (memory per connection is what the
 * server scales by).
 */

import type { Socket } from 'node:net';
import { Link, type LinkOwner } from './link.js';
import {
  applyTcpOptions,
  readTcpOptions,
  TCP_OPTIONS_WARNING,
  type TcpOptionValues,
} from './net/sockopts.js';
import { deriveTcpSettings, type HeartbeatSettings, type ResolvedCommon } from './options.js';
import type { TimingWheel } from './time/wheel.js';

/** A {@link Link} on a `net.Socket` or `tls.TLSSocket`, with the TCP options heartline sets. */
export class TcpLink extends Link {
  declare readonly transport: Socket;

  constructor(socket: Socket, config: ResolvedCommon, wheel: TimingWheel, owner: LinkOwner) {
    super(socket, config, wheel, owner);
    socket.setNoDelay(true);
    if (config.keepAliveDelay > 0) socket.setKeepAlive(true, config.keepAliveDelay);
  }

  /**
   * Sets keepalive and TCP_USER_TIMEOUT from the granted heartbeat (or the explicit `tcp`
   * option): after the handshake, since the defaults derive from what the server granted,
   * and again on each retune. Values were validated when the options were resolved, so
   * a failure here means the socket is closing or the kernel refused: the heartbeat still
   * bounds detection, so it is reported as a warning, not a failure of the link.
   */
  protected override tuneTransport(settings: HeartbeatSettings): void {
    const tcp = this.config.tcp;
    const socket = this.transport;
    if (tcp === false || socket.destroyed) return;
    try {
      applyTcpOptions(socket, deriveTcpSettings(tcp, settings));
    } catch (err) {
      if (socket.destroyed) return;
      process.emitWarning(`heartline could not set TCP options: ${(err as Error).message}`, {
        code: TCP_OPTIONS_WARNING,
        type: 'HeartlineWarning',
      });
    }
  }

  /** The options in force on the socket, read back with getsockopt (null where not possible). */
  override tcpOptions(): TcpOptionValues | null {
    return readTcpOptions(this.transport);
  }
}
