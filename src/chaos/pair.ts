/**
 * One proxied connection: the client's socket, the proxy's socket to the target, and the
 * two pipes between them. It owns how the pair ends: a FIN travels through the pipes as
 * end(), an error or a close without FIN on either side becomes an RST on the other.
 */

import type { Socket } from 'node:net';
import type { Clock, ClockTimer } from '../time/clock.js';
import { Pipe, type PipeContext } from './pipe.js';

/** How a pair ended: RST, FIN, or destroyed by the proxy's close(). */
export type PairEnding = 'reset' | 'fin' | 'closed';

/** What a pair needs from the proxy that owns it. */
export interface PairHost {
  readonly clock: Clock;
  /** Fault state and counters for the pipe of one direction. */
  pipeContext(dir: 'up' | 'down'): PipeContext;
  /** Called once, when both sockets have closed. */
  removePair(pair: Pair, how: PairEnding): void;
}

/**
 * After fin(), a socket whose peer does not read its last bytes is destroyed after this
 * long (ms), so a cut pair never lingers behind a frozen peer.
 */
export const FIN_GRACE_MS = 2_000;

/** A client socket, its connection to the target and the two pipes between them. */
export class Pair {
  readonly up: Pipe;
  readonly down: Pipe;
  /** How the pair is ending, once decided; the first decision wins. */
  ending: PairEnding | undefined;
  private finTimer: ClockTimer | undefined;
  private open = 2;

  constructor(
    readonly client: Socket,
    readonly upstream: Socket,
    private readonly host: PairHost,
  ) {
    this.up = new Pipe(client, upstream, host.pipeContext('up'));
    this.down = new Pipe(upstream, client, host.pipeContext('down'));
    for (const socket of [client, upstream]) {
      // A socket error (ECONNRESET, EPIPE, ECONNREFUSED from the target...) is an RST
      // from that side: pass it on as an RST to the other side.
      socket.on('error', () => this.reset());
      socket.on('close', () => {
        if (--this.open === 0) this.closed();
        // A side that closed without FIN or error (destroyed) ends the other side hard.
        else if (this.ending === undefined && !socket.readableEnded) this.reset();
      });
    }
    this.up.start();
    this.down.start();
  }

  /** Cuts both sides with RST. */
  reset(): void {
    // Once a pair is being cut, a late error on one side changes nothing: the other side
    // is already on its way out the chosen way.
    if (this.ending !== undefined) return;
    this.ending = 'reset';
    this.up.stop();
    this.down.stop();
    rst(this.client);
    rst(this.upstream);
  }

  /** Cuts both sides with FIN; each socket is destroyed once its last bytes are flushed. */
  fin(): void {
    if (this.ending !== undefined) return;
    this.ending = 'fin';
    this.up.stop(true);
    this.down.stop(true);
    for (const socket of [this.client, this.upstream]) {
      if (socket.destroyed) continue;
      if (socket.connecting) {
        socket.destroy();
      } else if (socket.writableFinished) {
        socket.destroy();
      } else {
        socket.once('finish', () => socket.destroy());
        socket.end();
      }
    }
    // A peer that does not read never lets 'finish' fire; do not wait for it forever.
    this.finTimer = this.host.clock.setTimeout(() => this.destroy(), FIN_GRACE_MS);
  }

  /** Destroys both sides at once (proxy shutdown). */
  destroy(): void {
    this.ending ??= 'closed';
    this.up.stop();
    this.down.stop();
    this.client.destroy();
    this.upstream.destroy();
  }

  private closed(): void {
    if (this.finTimer !== undefined) this.host.clock.clearTimeout(this.finTimer);
    this.up.stop();
    this.down.stop();
    this.host.removePair(this, this.ending ?? 'fin');
  }
}

/** RST if the socket is connected, else just close it (there is no connection to reset). */
function rst(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting) socket.destroy();
  else socket.resetAndDestroy();
}
