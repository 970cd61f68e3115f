/**
 * The server's TLS front: a node:tls server whose sockets reach the handshake only once
 * TLS is up, under one deadline. `handshakeTimeout` runs from the TCP accept and covers
 * the TLS handshake and the HELLO together, so a peer that trickles TLS bytes cannot hold
 * a socket longer than a plain TCP one could. Failures before the HELLO are classified
 * ('tls-error', 'handshake-timeout', 'eof') and reported, and a client certificate the
 * server's CA does not trust is refused with CLOSE(AUTH_FAILED) over the TLS channel, so
 * that the client learns why and stops retrying (Node alone would just hang up).
 *
 * Admission runs at the TCP accept, before any TLS: a plain net server listens and hands
 * each admitted socket to the (never listening) TLS server, the way node:tls documents for
 * injecting connections. A refused socket never reaches OpenSSL, so a flood of handshakes
 * costs an accept and a close each, not the key exchange; it gets a plain TCP close (a
 * CLOSE frame would be garbage to a peer expecting a ServerHello).
 */

import { type Server as NetServer, createServer as netServer, type Socket } from 'node:net';
import {
  type PeerCertificate,
  type TLSSocket,
  type TlsOptions,
  createServer as tlsServer,
} from 'node:tls';
import { HeartlineError, InvalidArgumentError } from '../errors.js';
import type { CloseInfo } from '../link.js';
import { errnoCode } from '../net/classify.js';
import { refuseSocket } from '../net/refuse.js';
import { isTlsError } from '../net/tls.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { Clock } from '../time/clock.js';
import type { TimingWheel, WheelTimer } from '../time/wheel.js';

/** What the authenticate hook sees of a TLS peer. */
export interface TlsPeerInfo {
  /** True when the client presented a certificate the server's CA verified. */
  authorized: boolean;
  /** Why the client certificate did not verify (an OpenSSL code), or null. */
  authorizationError: string | null;
  /** The client's certificate, or null when it sent none. */
  peerCertificate: PeerCertificate | null;
  /** The negotiated protocol version, such as 'TLSv1.3'. */
  protocol: string | null;
  /** The SNI server name the client asked for, or null. */
  servername: string | null;
}

/** Reads the TLS facts of an established server-side TLS socket. */
export function tlsPeerInfo(socket: TLSSocket): TlsPeerInfo {
  const cert = socket.getPeerCertificate();
  const error = socket.authorizationError as unknown;
  const name = (socket as { servername?: unknown }).servername;
  return {
    authorized: socket.authorized === true,
    authorizationError: error ? String(error) : null,
    peerCertificate: cert && Object.keys(cert).length > 0 ? cert : null,
    protocol: socket.getProtocol(),
    servername: typeof name === 'string' ? name : null,
  };
}

/** What the TLS front needs from its server. */
export interface TlsFrontHost {
  readonly clock: Clock;
  readonly wheel: TimingWheel;
  /** The one deadline for TLS handshake + HELLO (ms). */
  readonly handshakeTimeout: number;
  /**
   * Admission of a TCP connection, before TLS: true to go on with the handshake; false
   * when the host refused (and closed, and reported) it.
   */
  admit(raw: Socket): boolean;
  /** TLS is up: hand the socket to the handshake with what is left of the deadline. */
  secure(socket: TLSSocket, remainingMs: number): void;
  /** A socket failed before it could send HELLO. */
  rejected(remote: string, info: CloseInfo): void;
}

/** A TCP connection whose TLS handshake has not finished. */
interface Pending {
  readonly raw: Socket;
  readonly remote: string;
  readonly at: number;
  readonly timer: WheelTimer;
  secured: boolean;
  timedOut: boolean;
  error: Error | null;
}

function remoteOf(socket: Socket): string {
  const { remoteAddress: a, remotePort: p } = socket;
  if (a === undefined) return '?';
  return a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`;
}

/** The 4-tuple names one live TCP connection of a listener (IP-level, so also the TLS one). */
function tupleOf(socket: Socket): string | null {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (remoteAddress === undefined || localAddress === undefined) return null;
  return `${localAddress}|${localPort}|${remoteAddress}|${remotePort}`;
}

/**
 * The TLS listener of a server. Pass it to the server's `listen`; call
 * `destroyPending()` when the server closes.
 */
export class TlsFront {
  /** The listener: admission at the TCP accept, then the TLS server. */
  readonly server: NetServer;
  /** Runs the TLS handshakes of admitted sockets; it never listens itself. */
  private readonly tls: ReturnType<typeof tlsServer>;
  private readonly pending = new Map<string, Pending>();
  /** Refused sockets flushing their CLOSE. */
  private readonly refused = new Set<TLSSocket>();
  /** Enforce client certificates here rather than in Node (which hangs up silently). */
  private readonly requireClientCert: boolean;

  constructor(
    options: TlsOptions,
    private readonly host: TlsFrontHost,
  ) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('option "tls" must be an object of node:tls server options');
    }
    this.requireClientCert = options.requestCert === true && options.rejectUnauthorized !== false;
    this.tls = tlsServer({
      ...options,
      // The certificate is checked after the handshake (below), to answer with a reason.
      rejectUnauthorized: false,
      // handshakeTimeout is ours and absolute; Node's is an idle timer a trickle resets.
      handshakeTimeout: 0,
    });
    this.tls.on('tlsClientError', (err: Error, socket: TLSSocket) => this.onTlsError(err, socket));
    this.tls.on('secureConnection', (socket: TLSSocket) => this.onSecure(socket));
    this.server = netServer(
      { allowHalfOpen: options.allowHalfOpen ?? false, pauseOnConnect: false },
      (raw) => this.onAccept(raw),
    );
  }

  /** A TCP connection: admitted, it starts its TLS handshake; refused, it never does. */
  private onAccept(raw: Socket): void {
    if (!this.host.admit(raw)) return;
    this.onConnection(raw);
    // Documented by node:tls ('connection' event): injects the socket into the TLS server.
    this.tls.emit('connection', raw);
  }

  /** Destroys every socket still in its TLS handshake or being refused (the server is closing). */
  destroyPending(): void {
    for (const p of [...this.pending.values()]) p.raw.destroy();
    for (const socket of [...this.refused]) socket.destroy();
  }

  private onConnection(raw: Socket): void {
    const key = tupleOf(raw);
    if (key === null) {
      raw.destroy();
      return;
    }
    const entry: Pending = {
      raw,
      remote: remoteOf(raw),
      at: this.host.clock.now(),
      timer: this.host.wheel.timer(() => {
        entry.timedOut = true;
        raw.destroy();
      }),
      secured: false,
      timedOut: false,
      error: null,
    };
    entry.timer.arm(this.host.handshakeTimeout);
    this.pending.set(key, entry);
    // A peer that resets the connection mid-handshake makes the socket emit 'error' (the
    // TLS layer reports some of them, not all): kept for the close report, never thrown.
    raw.on('error', (err: Error) => {
      if (entry.error === null) entry.error = err;
    });
    raw.once('close', () => {
      entry.timer.cancel();
      if (this.pending.get(key) === entry) this.pending.delete(key);
      if (!entry.secured) this.host.rejected(entry.remote, this.failure(entry));
    });
  }

  /** Classifies a connection that closed before its TLS handshake finished. */
  private failure(entry: Pending): CloseInfo {
    if (entry.timedOut) {
      const message = `no TLS handshake and HELLO within the handshake timeout of ${this.host.handshakeTimeout} ms`;
      return {
        reason: 'handshake-timeout',
        message,
        error: new HeartlineError('HL_ERR_HANDSHAKE_TIMEOUT', message),
      };
    }
    const err = entry.error;
    if (err && isTlsError(err)) {
      const errno = errnoCode(err);
      return {
        reason: 'tls-error',
        message: err.message,
        error: new HeartlineError('HL_ERR_TLS', `TLS handshake failed: ${err.message}`, {
          cause: err,
        }),
        ...(errno ? { errno } : {}),
      };
    }
    return { reason: 'eof', message: 'the peer closed the connection during the TLS handshake' };
  }

  private onTlsError(err: Error, socket: TLSSocket): void {
    // Node reports the address only while the socket is open; a hang-up after close is
    // classified by the raw socket's close instead.
    const key = tupleOf(socket);
    const entry = key === null ? undefined : this.pending.get(key);
    if (entry && entry.error === null) entry.error = err;
  }

  private onSecure(socket: TLSSocket): void {
    const key = tupleOf(socket);
    const entry = key === null ? undefined : this.pending.get(key);
    if (!entry) {
      // Closed in the meantime (its close reported it) or unknown: never serve it.
      socket.destroy();
      return;
    }
    entry.secured = true;
    entry.timer.cancel();
    this.pending.delete(key!);
    if (this.requireClientCert && !socket.authorized) {
      this.refuse(socket, entry);
      return;
    }
    const left = this.host.handshakeTimeout - (this.host.clock.now() - entry.at);
    this.host.secure(socket, Math.max(1, Math.round(left)));
  }

  /** TLS is up but the client certificate is missing or untrusted: CLOSE(AUTH_FAILED). */
  private refuse(socket: TLSSocket, entry: Pending): void {
    const why = socket.authorizationError ? String(socket.authorizationError) : 'no certificate';
    const message = `client certificate refused: ${why}`;
    refuseSocket(socket, this.host.wheel, {
      code: CloseCode.AUTH_FAILED,
      reason: 'client certificate refused',
    });
    this.refused.add(socket);
    socket.once('close', () => this.refused.delete(socket));
    this.host.rejected(entry.remote, {
      reason: 'auth-failed',
      code: CloseCode.AUTH_FAILED,
      message,
      error: new HeartlineError('HL_ERR_AUTH_FAILED', message),
    });
  }
}
