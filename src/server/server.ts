/**
 * The server: accepts sockets, runs the handshake (HELLO -> authenticate -> grant ->
 * WELCOME), creates or resumes sessions and keeps the registry of connections.
 */

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  type AddressInfo,
  type Server as NetServer,
  createServer as netServer,
  type Socket,
} from 'node:net';
import { HeartlineError } from '../errors.js';
import { fixedDetector } from '../health/index.js';
import { type CloseInfo, Link, type LinkOwner } from '../link.js';
import {
  type CommonOptions,
  HEARTBEAT_DEFAULTS,
  heartbeatSettings,
  intOption,
  type ResolvedCommon,
  resolveCommon,
} from '../options.js';
import { CloseCode } from '../protocol/close-codes.js';
import { encodeWelcome } from '../protocol/codec.js';
import {
  type Frame,
  FrameType,
  type HelloFrame,
  ID_BYTES,
  PROTOCOL_VERSION,
} from '../protocol/frames.js';
import { type Clock, systemClock } from '../time/clock.js';
import { TimingWheel } from '../time/wheel.js';
import { type GrantPolicy, grantHeartbeat, validatePolicy } from './grant.js';
import { ServerConnection } from './server-connection.js';

/** Server defaults. */
export const SERVER_DEFAULTS = Object.freeze({
  /** Shortest heartbeat interval a client may ask for (ms). */
  minInterval: 1000,
  /** Longest heartbeat interval a client may ask for (ms). */
  maxInterval: 120_000,
  /** How long a session waits for its client to resume after the link drops (ms). */
  sessionTtl: 120_000,
});

/** What the authenticate hook sees of a HELLO. */
export interface HelloInfo {
  /** The auth field of HELLO (opaque bytes; a token as UTF-8 is typical). */
  auth: Buffer;
  clientId: string;
  traceId: string;
  /** True when the client asks to resume a session. */
  resume: boolean;
}

/** What the authenticate hook sees of the peer. */
export interface PeerInfo {
  remoteAddress: string;
  remotePort: number;
  socket: Socket;
}

/**
 * Decides whether a client may connect. Return true (or a non-empty identity string, to
 * which the session is bound) to accept; false or null to refuse with CLOSE(auth failed).
 */
export type Authenticate = (
  hello: HelloInfo,
  peer: PeerInfo,
) => boolean | string | null | Promise<boolean | string | null>;

/** Options of {@link createServer}. */
export interface ServerOptions extends CommonOptions {
  /** Heartbeat interval granted when the client has no preference (ms). @default 10000 */
  interval?: number;
  /** Heartbeat timeout granted when the client has no preference (ms). @default 30000 */
  timeout?: number;
  /** Shortest interval a client may obtain (ms). @default 1000 */
  minInterval?: number;
  /** Longest interval a client may obtain (ms). @default 120000 */
  maxInterval?: number;
  /** How long a disconnected session waits for a resume (ms). @default 120000 */
  sessionTtl?: number;
  /** Authentication hook; without it every client is accepted. */
  authenticate?: Authenticate;
}

/** Emitted when a socket is turned away before a session exists. */
export interface RejectEvent {
  remote: string;
  info: CloseInfo;
}

/** The typed events of a {@link Server}. */
export interface ServerEvents {
  listening: [address: AddressInfo];
  /** A new session started. Resumed sessions keep their existing Connection. */
  connection: [conn: ServerConnection];
  /** A socket failed or was refused during the handshake. */
  rejected: [event: RejectEvent];
  close: [];
}

interface ResolvedServer extends ResolvedCommon {
  readonly policy: GrantPolicy;
  readonly sessionTtl: number;
  readonly authenticate: Authenticate | null;
}

function resolveServer(o: ServerOptions): ResolvedServer {
  const clock: Clock = o.clock ?? systemClock;
  const common = resolveCommon(o, clock, fixedDetector());
  const policy: GrantPolicy = {
    interval: intOption('interval', o.interval, HEARTBEAT_DEFAULTS.interval, 1),
    timeout: intOption('timeout', o.timeout, HEARTBEAT_DEFAULTS.timeout, 1),
    minInterval: intOption('minInterval', o.minInterval, SERVER_DEFAULTS.minInterval, 1),
    maxInterval: intOption('maxInterval', o.maxInterval, SERVER_DEFAULTS.maxInterval, 1),
  };
  // An explicit interval below the default floor lowers the floor rather than failing.
  if (o.interval !== undefined && o.minInterval === undefined) {
    policy.minInterval = Math.min(policy.minInterval, policy.interval);
  }
  if (o.interval !== undefined && o.maxInterval === undefined) {
    policy.maxInterval = Math.max(policy.maxInterval, policy.interval);
  }
  if (o.interval !== undefined && o.timeout === undefined) {
    policy.timeout = policy.interval * (HEARTBEAT_DEFAULTS.timeout / HEARTBEAT_DEFAULTS.interval);
  }
  validatePolicy(policy);
  return Object.freeze({
    ...common,
    policy: Object.freeze(policy),
    sessionTtl: intOption('sessionTtl', o.sessionTtl, SERVER_DEFAULTS.sessionTtl, 0),
    authenticate: o.authenticate ?? null,
  });
}

/**
 * A heartline server. Create it with {@link createServer}, then `listen()`.
 */
export class Server extends EventEmitter<ServerEvents> {
  /** Live connections by id (including sessions waiting for a resume). */
  readonly connections = new Map<string, ServerConnection>();
  private readonly sessions = new Map<string, ServerConnection>();
  private readonly handshaking = new Set<Link>();
  private readonly config: ResolvedServer;
  private readonly wheel: TimingWheel;
  private readonly net: NetServer;
  private closing: Promise<void> | null = null;

  constructor(options: ServerOptions = {}) {
    super();
    this.config = resolveServer(options);
    this.wheel = new TimingWheel(this.config.clock);
    this.net = netServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  /** The heartbeat policy in force. */
  get policy(): Readonly<GrantPolicy> {
    return this.config.policy;
  }

  /** The listening address, or null before listen(). */
  address(): AddressInfo | null {
    const a = this.net.address();
    return a && typeof a === 'object' ? a : null;
  }

  /** Starts listening; port 0 picks a free port. Resolves with the bound address. */
  listen(port = 0, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.net.once('error', onError);
      this.net.listen(port, host, () => {
        this.net.off('error', onError);
        const address = this.address() as AddressInfo;
        this.emit('listening', address);
        resolve(address);
      });
    });
  }

  /**
   * Stops accepting, closes every connection with CLOSE(going away) so clients reconnect
   * elsewhere at once, and resolves when every socket is gone.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      const netClosed = new Promise<void>((r) => {
        if (!this.net.listening) r();
        else this.net.close(() => r());
      });
      for (const link of this.handshaking)
        link.close('going-away', CloseCode.GOING_AWAY, 'server closing');
      for (const conn of [...this.connections.values()]) {
        conn.close(CloseCode.GOING_AWAY, 'server closing');
      }
      void netClosed.then(() => {
        this.wheel.clear();
        this.emit('close');
        resolve();
      });
    });
    return this.closing;
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const owner: LinkOwner = {
      onFrame: (link, frame) => this.onHandshakeFrame(link, frame),
      onLiveness: () => {},
      onRtt: () => {},
      onWritable: () => {},
      onClose: (link, info) => {
        this.handshaking.delete(link);
        this.emit('rejected', { remote: link.remote, info });
      },
    };
    const link = new Link(socket, this.config, this.wheel, owner);
    this.handshaking.add(link);
    link.startHandshakeTimer();
  }

  private onHandshakeFrame(link: Link, frame: Frame): void {
    if (frame.type !== FrameType.HELLO || link.stats.framesIn !== 1) {
      link.unexpected('the first frame must be HELLO, and nothing may follow it before WELCOME');
      return;
    }
    void this.handshake(link, frame).catch((err: unknown) => {
      const error = new HeartlineError('HL_ERR_INTERNAL', `handshake failed: ${String(err)}`, {
        cause: err,
      });
      link.close('internal-error', CloseCode.INTERNAL_ERROR, 'internal error');
      this.emit('rejected', {
        remote: link.remote,
        info: { reason: 'internal-error', message: error.message, error },
      });
    });
  }

  private async handshake(link: Link, hello: HelloFrame): Promise<void> {
    let identity: string | null = null;
    const auth = this.config.authenticate;
    if (auth) {
      const verdict = await auth(
        {
          auth: Buffer.from(hello.auth),
          clientId: hello.clientId,
          traceId: hello.traceId,
          resume: hello.resume !== null,
        },
        {
          remoteAddress: link.socket.remoteAddress ?? '',
          remotePort: link.socket.remotePort ?? 0,
          socket: link.socket,
        },
      );
      if (!link.open) return;
      if (verdict === false || verdict === null || verdict === '') {
        link.close('auth-failed', CloseCode.AUTH_FAILED, 'authentication failed');
        return;
      }
      identity = typeof verdict === 'string' ? verdict : null;
    }
    if (!link.open || this.closing) return;
    this.handshaking.delete(link);
    const granted = grantHeartbeat(this.config.policy, hello.interval, hello.timeout);
    const settings = heartbeatSettings(granted.interval, granted.timeout);

    const existing = hello.resume ? this.findSession(hello.resume, identity) : null;
    if (existing) {
      link.write(
        encodeWelcome({
          version: PROTOCOL_VERSION,
          resumed: true,
          sessionId: hello.resume!.sessionId,
          token: existing.token,
          interval: settings.interval,
          timeout: settings.timeout,
          lastReceived: existing.lastReceived,
          sessionTtl: this.config.sessionTtl,
        }),
      );
      existing.attachLink(link, settings, true, hello.resume!.lastReceived);
      return;
    }

    const id = randomBytes(ID_BYTES);
    const token = randomBytes(ID_BYTES);
    const conn = new ServerConnection(
      this.config,
      this.wheel,
      { release: (c) => this.release(c) },
      this.config.sessionTtl,
      {
        sessionId: id.toString('hex'),
        token,
        clientId: hello.clientId,
        traceId: hello.traceId,
        identity,
        remote: link.remote,
      },
    );
    this.sessions.set(conn.sessionKey, conn);
    this.connections.set(conn.id, conn);
    link.write(
      encodeWelcome({
        version: PROTOCOL_VERSION,
        resumed: false,
        sessionId: id,
        token,
        interval: settings.interval,
        timeout: settings.timeout,
        lastReceived: 0,
        sessionTtl: this.config.sessionTtl,
      }),
    );
    this.emit('connection', conn);
    conn.attachLink(link, settings, false, 0);
  }

  /** The session a resume names, if it exists, the token matches and the identity is the same. */
  private findSession(
    resume: NonNullable<HelloFrame['resume']>,
    identity: string | null,
  ): ServerConnection | null {
    const conn = this.sessions.get(Buffer.from(resume.sessionId).toString('hex'));
    if (!conn || conn.closed) return null;
    if (!timingSafeEqual(Buffer.from(resume.token), Buffer.from(conn.token))) return null;
    if (conn.identity !== identity) return null;
    return conn;
  }

  private release(conn: ServerConnection): void {
    this.connections.delete(conn.id);
    this.sessions.delete(conn.sessionKey);
  }
}

/** Creates a heartline server. */
export function createServer(options: ServerOptions = {}): Server {
  return new Server(options);
}
