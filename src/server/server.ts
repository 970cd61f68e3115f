/**
 * The server: accepts sockets, runs the handshake (HELLO -> authenticate -> grant ->
 * WELCOME), creates or resumes sessions and keeps the registry of connections.
 */

import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  type AddressInfo,
  type Server as NetServer,
  createServer as netServer,
  type Socket,
} from 'node:net';
import type { TlsOptions } from 'node:tls';
import { HeartlineError, InvalidArgumentError } from '../errors.js';
import { fixedDetector } from '../health/index.js';
import { type CloseInfo, Link, type LinkOwner } from '../link.js';
import {
  type CommonOptions,
  HEARTBEAT_DEFAULTS,
  intOption,
  type PingPolicyOptions,
  type ResolvedCommon,
  resolveCommon,
  resolvePingPolicy,
} from '../options.js';
import { CloseCode } from '../protocol/close-codes.js';
import { encodeWelcome } from '../protocol/codec.js';
import {
  DEFAULT_MAX_AUTH_BYTES,
  DEFAULT_MAX_HELLO_FIELD_BYTES,
  type Frame,
  FrameType,
  type HelloFrame,
  ID_BYTES,
} from '../protocol/frames.js';
import { MemoryBudget } from '../session/budget.js';
import {
  createMemoryWindow,
  type IdempotencyWindow,
  type MemoryWindowOptions,
} from '../session/idempotency.js';
import type { PresenceEvent } from '../session/store.js';
import { TcpLink } from '../tcp-link.js';
import { type Clock, type ClockTimer, systemClock } from '../time/clock.js';
import { TimingWheel } from '../time/wheel.js';
import type { Transport } from '../transport/transport.js';
import {
  AdaptiveHeartbeat,
  type AdaptiveOptions,
  type HeartbeatLoad,
  type ResolvedAdaptive,
  type RetuneEvent,
  resolveAdaptive,
} from './adaptive.js';
import {
  Admission,
  type AdmissionLimit,
  type AdmissionOptions,
  type AdmissionStats,
  acceptFailure,
  addressKey,
  admitSocket,
  type Refusal,
  type ResolvedAdmission,
  resolveAdmission,
} from './admission.js';
import {
  type ClusterPlugin,
  type DirectoryHost,
  LocalDirectory,
  type PresenceInfo,
  resolveClusterPlugin,
  resolveNodeId,
  type SessionDirectory,
  type StoreEvent,
} from './directory.js';
import { defaultMaxTimeout, type GrantPolicy, validatePolicy } from './grant.js';
import {
  type Authenticate,
  decideHandshake,
  findSession,
  type HandshakeDecision,
  type HandshakeHost,
  type HandshakeRefusal,
  peerInfo,
} from './handshake.js';
import {
  type LoadEvent,
  type LoadLevel,
  LoadMonitor,
  type LoadOptions,
  type ResolvedLoad,
  resolveLoad,
} from './load.js';
import { ServerConnection, type ServerConnectionHost } from './server-connection.js';
import { type ServerMode, StandaloneMode } from './server-mode.js';
import { SessionQuota } from './session-quota.js';
import { TlsFront } from './tls.js';
import { workersMode } from './workers/index.js';
import { limitsFor, WORKERS_DEFAULTS, type WorkersOptions, workerRole } from './workers/mode.js';
import type { WorkerEvent, WorkerStats } from './workers/primary.js';

/** Server defaults. */
export const SERVER_DEFAULTS = Object.freeze({
  /** Shortest heartbeat interval a client may ask for (ms). */
  minInterval: 1000,
  /** Longest heartbeat interval a client may ask for (ms). */
  maxInterval: 120_000,
  /** How long a session waits for its client to resume after the link drops (ms). */
  sessionTtl: 120_000,
  /** How long drain() waits for in-flight messages to be acknowledged (ms). */
  drainTimeout: 10_000,
  /**
   * Bytes the replay buffers of all connections may hold together (payload plus the
   * per-message overhead). 1 GiB: 64 connections at the 16 MiB per-connection cap, so a
   * few hundred peers that never acknowledge cannot take the process past a bound an
   * operator can plan for, while normal traffic (acknowledged within a round trip) is far
   * below it.
   */
  maxTotalBufferedBytes: 1024 * 1024 * 1024,
  /** Most UTF-8 bytes of HELLO's clientId, and of its traceId (kept per session). */
  maxHelloFieldBytes: DEFAULT_MAX_HELLO_FIELD_BYTES,
  /** Most bytes of HELLO's auth field (handed to `authenticate`, never kept). */
  maxAuthBytes: DEFAULT_MAX_AUTH_BYTES,
});

/** The wire limit of HELLO's length-prefixed fields (u16). */
const MAX_WIRE_FIELD = 0xffff;

export type { Authenticate, HelloInfo, PeerInfo } from './handshake.js';

/** Options of {@link createServer}. */
export interface ServerOptions
  extends CommonOptions,
    PingPolicyOptions,
    AdmissionOptions,
    AdaptiveOptions,
    WorkersOptions {
  /** Heartbeat interval granted when the client has no preference (ms). @default 10000 */
  interval?: number;
  /** Heartbeat timeout granted when the client has no preference (ms). @default 30000 */
  timeout?: number;
  /** Shortest interval a client may obtain (ms). @default 1000 */
  minInterval?: number;
  /** Longest interval a client may obtain (ms). @default 120000 */
  maxInterval?: number;
  /**
   * Longest heartbeat timeout a client may obtain (ms): how long a silent peer may keep
   * its connection. At least 2 x maxInterval.
   * @default max(300000, 2 x maxInterval)
   */
  maxTimeout?: number;
  /** How long a disconnected session waits for a resume (ms). @default 120000 */
  sessionTtl?: number;
  /**
   * Bytes the replay buffers of all this server's connections may hold together (each
   * message counted as its payload plus 160 bytes). A send or reply past it throws
   * HL_ERR_OVERLOADED; escaping a 'message' listener, that closes the connection with
   * CLOSE(overloaded). Must be >= maxBufferedBytes. @default 1073741824 (1 GiB)
   */
  maxTotalBufferedBytes?: number;
  /**
   * Most UTF-8 bytes HELLO's clientId may have, and its traceId: the server keeps both
   * for the session's life and shows them in logs and the admin endpoint. A HELLO over
   * it is refused with CLOSE(policy violation), before `authenticate`. 1 to 65535.
   * @default 256
   */
  maxHelloFieldBytes?: number;
  /**
   * Most bytes HELLO's auth field may have (a JWT fits the default); refused like
   * `maxHelloFieldBytes`. 0 to 65535. @default 8192
   */
  maxAuthBytes?: number;
  /** Authentication hook; without it every client is accepted. */
  authenticate?: Authenticate;
  /**
   * The idempotency window of requests (PROTOCOL.md 6.5, docs/requests.md): a second
   * request with the same key from the same identity within `windowMs` gets the first
   * reply without running the handler again. Its bounds (`windowMs`, `maxKeys`,
   * `maxBytes`, `maxKeysPerScope`, `maxReplyBytes`), or false to run keyed requests like
   * any other. In a cluster on Redis (`joinCluster({ redis })`, or a RedisStore as `store`) the
   * window lives in Redis, shared by every node, and the same bounds apply per fixed
   * window of `windowMs` (docs/requests.md, "Cluster mode").
   * @default { windowMs: 120000, maxKeys: 100000, maxBytes: 64 MiB, maxKeysPerScope: 10000, maxReplyBytes: 64 KiB }
   */
  idempotency?: false | MemoryWindowOptions;
  /**
   * Serve TLS (node:tls server options: key, cert, ca, requestCert for mutual TLS...).
   * `handshakeTimeout` covers the TLS handshake and the HELLO together. With
   * `requestCert`, a client certificate the CA does not verify is refused with
   * CLOSE(auth failed) unless `rejectUnauthorized: false` leaves it to `authenticate`.
   * @default plain TCP
   */
  tls?: TlsOptions;
  /** Load levels: thresholds, sampling and recovery (see {@link LoadOptions}). */
  load?: LoadOptions;
  /** This node's id in presence and ownership. @default `HOSTNAME-PID-RANDOM` */
  nodeId?: string;
  /**
   * Several nodes sharing sessions through a session store, so that any node can resume,
   * route to and see any session: `joinCluster({ redis })` or `joinCluster({ store })`
   * from `heartline/cluster` (docs/cluster.md). @default none: sessions live in this
   * server's memory, as a single node
   */
  cluster?: ClusterPlugin;
}

/** Emitted when a socket is turned away before a session exists. */
export interface RejectEvent {
  remote: string;
  info: CloseInfo;
  /** The admission limit that refused it (info.reason is then 'overloaded'). */
  limit?: AdmissionLimit;
}

/** The typed events of a {@link Server}. */
export interface ServerEvents {
  listening: [address: AddressInfo];
  /**
   * A new session started, or (with a store) this node took over a session another node
   * held. Sessions resumed on the same node keep their existing Connection.
   */
  connection: [conn: ServerConnection];
  /** A socket failed or was refused during the handshake. */
  rejected: [event: RejectEvent];
  /** The load level changed (`server.loadLevel`). */
  load: [event: LoadEvent];
  /** The heartbeat budget stretched or relaxed every interval (`server.heartbeatLoad`). */
  retune: [event: RetuneEvent];
  /** A session came online on a node or went offline (every node's, with a store). */
  presence: [event: PresenceEvent];
  /**
   * The session store became reachable, or failed (`error`, HL_ERR_STORE); with
   * `writeback`, this node finished writing back the sessions the store failed or lost.
   */
  store: [event: StoreEvent];
  /**
   * Multi-process mode, in the primary: a worker came online or exited; a slot that keeps
   * crashing is reported as 'crash-loop' (and re-forked all the same), then 'recovered'.
   */
  worker: [event: WorkerEvent];
  /**
   * Not emitted by heartline: every failure it survives is a `rejected`, `store` or
   * `worker` event, none of which needs a listener (it once reported a worker slot that
   * crashed too often: without a listener, Node turned that into the primary's exit).
   * Declared so that an 'error' listener still type-checks.
   */
  error: [err: HeartlineError];
  close: [];
}

interface ResolvedServer extends ResolvedCommon {
  /** The server makes the budget, and lets it reclaim room by ending connections. */
  readonly budget: MemoryBudget;
  readonly policy: GrantPolicy;
  readonly sessionTtl: number;
  readonly maxHelloFieldBytes: number;
  readonly maxAuthBytes: number;
  readonly authenticate: Authenticate | null;
  /** The window's options, or null without one. */
  readonly idempotency: MemoryWindowOptions | null;
  readonly admission: ResolvedAdmission;
  readonly load: ResolvedLoad;
  readonly adaptive: ResolvedAdaptive;
  readonly nodeId: string;
  readonly cluster: ClusterPlugin | null;
}

function resolveServer(o: ServerOptions): ResolvedServer {
  const clock: Clock = o.clock ?? systemClock;
  const common = resolveCommon(o, clock, fixedDetector());
  const policy: GrantPolicy = {
    interval: intOption('interval', o.interval, HEARTBEAT_DEFAULTS.interval, 1),
    timeout: intOption('timeout', o.timeout, HEARTBEAT_DEFAULTS.timeout, 1),
    minInterval: intOption('minInterval', o.minInterval, SERVER_DEFAULTS.minInterval, 1),
    maxInterval: intOption('maxInterval', o.maxInterval, SERVER_DEFAULTS.maxInterval, 1),
    maxTimeout: 0,
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
  policy.maxTimeout = intOption(
    'maxTimeout',
    o.maxTimeout,
    // An explicit longer timeout raises the default rather than failing.
    Math.max(defaultMaxTimeout(policy.maxInterval), policy.timeout),
    1,
  );
  validatePolicy(policy);
  const admission = resolveAdmission(o);
  const maxTotal = intOption(
    'maxTotalBufferedBytes',
    o.maxTotalBufferedBytes,
    Math.max(SERVER_DEFAULTS.maxTotalBufferedBytes, common.maxBufferedBytes),
    1,
  );
  if (maxTotal < common.maxBufferedBytes) {
    throw new InvalidArgumentError('option "maxTotalBufferedBytes" must be >= "maxBufferedBytes"');
  }
  return Object.freeze({
    admission,
    load: resolveLoad(o.load, admission.maxConnections),
    adaptive: resolveAdaptive(o),
    ...common,
    budget: new MemoryBudget(maxTotal),
    ...resolvePingPolicy(o),
    policy: Object.freeze(policy),
    sessionTtl: intOption('sessionTtl', o.sessionTtl, SERVER_DEFAULTS.sessionTtl, 0),
    maxHelloFieldBytes: intOption(
      'maxHelloFieldBytes',
      o.maxHelloFieldBytes,
      SERVER_DEFAULTS.maxHelloFieldBytes,
      1,
      MAX_WIRE_FIELD,
    ),
    maxAuthBytes: intOption(
      'maxAuthBytes',
      o.maxAuthBytes,
      SERVER_DEFAULTS.maxAuthBytes,
      0,
      MAX_WIRE_FIELD,
    ),
    authenticate: o.authenticate ?? null,
    idempotency: resolveIdempotency(o.idempotency),
    nodeId: resolveNodeId(o.nodeId),
    cluster: resolveClusterPlugin(o),
  });
}

function resolveIdempotency(o: ServerOptions['idempotency']): MemoryWindowOptions | null {
  if (o === false) return null;
  if (o !== undefined && (typeof o !== 'object' || o === null)) {
    throw new InvalidArgumentError('option "idempotency" must be false or an object');
  }
  return o ?? {};
}

/**
 * A heartline server. Create it with {@link createServer}, then `listen()`.
 */
export class Server extends EventEmitter<ServerEvents> {
  /** Behind {@link connections}, which users only read. */
  private readonly live = new Map<string, ServerConnection>();
  private readonly sessions = new Map<string, ServerConnection>();
  private readonly handshaking = new Set<Link>();
  private readonly config: ResolvedServer;
  private readonly wheel: TimingWheel;
  private readonly net: NetServer;
  private readonly tls: TlsFront | null = null;
  private closing: Promise<void> | null = null;
  private drainStarted = false;
  private readonly admission: Admission;
  /** Sessions per address and identity, and which abandoned one to evict for a new one. */
  private readonly quota: SessionQuota;
  /** Sessions evicted to make room (admissionStats). */
  private evictions = 0;
  private readonly loadMonitor: LoadMonitor;
  private readonly adaptive: AdaptiveHeartbeat;
  /** Where sessions live beyond this server's memory: this node alone, or the cluster. */
  private readonly directory: SessionDirectory;
  private readonly handshakeHost: HandshakeHost;
  /** One host for every connection (a closure each would cost memory per connection). */
  private readonly connectionHost: ServerConnectionHost & {
    idempotency: IdempotencyWindow | null;
  } = {
    opened: (c) => {
      this.quota.connected(c);
      this.directory.opened(c);
    },
    disconnected: (c) => {
      this.quota.disconnected(c);
      this.adaptive.forget(c);
      this.directory.disconnected(c);
    },
    release: (c) => this.release(c),
    tokenSettled: (c) => this.directory.tokenSettled(c),
    idempotency: null,
  };
  /**
   * The owner of every link in its handshake, until the server hands it to a session: one
   * for all (it keeps nothing per link).
   */
  private readonly handshakeOwner: LinkOwner = {
    onFrame: (link, frame) => this.onHandshakeFrame(link, frame),
    onLiveness: () => {},
    onRtt: () => {},
    onWritable: () => {},
    onClose: (link, info) => {
      // Not handshaking any more: refused, and reported, by admission control.
      if (!this.handshaking.delete(link)) return;
      this.emit('rejected', { remote: link.remote, info });
    },
  };
  /** Standalone, a worker pool's primary or a worker: what listen(), close() and co. do. */
  private readonly mode: ServerMode;

  constructor(options: ServerOptions = {}) {
    super();
    const role = workerRole(options);
    if (role && options.tls !== undefined) {
      // The primary routes on the HELLO, which TLS would hide from it.
      throw new InvalidArgumentError('options "workers" and "tls" cannot be combined');
    }
    // A worker holds its share of the machine-wide limits.
    this.config = resolveServer(limitsFor(options, role));
    const { clock } = this.config;
    if (this.config.budget) this.config.budget.reclaim = (n, held) => this.reclaim(n, held);
    this.wheel = new TimingWheel(clock);
    this.admission = new Admission(this.config.admission, clock.now());
    this.quota = new SessionQuota(this.config.admission);
    this.loadMonitor = new LoadMonitor(
      this.config.load,
      clock,
      () => this.admission.connections,
      (e) => this.emit('load', e),
    );
    this.adaptive = new AdaptiveHeartbeat(
      this.config.policy,
      this.config.adaptive,
      this.wheel,
      (e) => this.emit('retune', e),
    );
    const directoryHost: DirectoryHost = {
      clock,
      nodeId: this.config.nodeId,
      sessionTtl: this.config.sessionTtl,
      maxBytes: this.config.maxBufferedBytes,
      maxFrame: this.config.maxFrame,
      presence: (e) => this.emit('presence', e),
      store: (e) => this.emit('store', e),
    };
    this.directory =
      this.config.cluster?.createDirectory(directoryHost) ??
      new LocalDirectory(directoryHost, this.sessions);
    this.handshakeHost = {
      config: this.config,
      sessions: this.sessions,
      directory: this.directory,
      closing: () => this.closing !== null,
      admitSession: (hello, address, identity) => this.admitSession(hello, address, identity),
    };
    this.connectionHost.idempotency = this.createIdempotencyWindow();
    if (options.tls !== undefined) {
      const { clock, handshakeTimeout } = this.config;
      this.tls = new TlsFront(options.tls, {
        clock,
        wheel: this.wheel,
        handshakeTimeout,
        admit: (raw) => this.admit(raw, false),
        secure: (socket, remainingMs) => this.accept(socket, remainingMs, true),
        rejected: (remote, info) => this.emit('rejected', { remote, info }),
      });
      this.net = this.tls.server;
    } else {
      this.net = netServer({ noDelay: true }, (socket) => this.accept(socket));
    }
    // A failed accept once listening (out of descriptors) is reported, never thrown.
    this.net.on('error', (err) => {
      if (this.net.listening) this.emit('rejected', acceptFailure(err));
    });
    // The one place that asks which process this is: every method below delegates.
    const { maxFrame, handshakeTimeout } = this.config;
    this.mode = role
      ? workersMode(role, {
          config: { clock, maxFrame, handshakeTimeout, admission: options },
          emitWorker: (e) => this.emit('worker', e),
          emitRejected: (e) => this.emit('rejected', e),
          adopt: (socket, head, ms) => {
            // The bytes the primary read come first, before anything the socket reads.
            if (head.length > 0) socket.unshift(head);
            this.accept(socket, ms);
          },
          counts: () => ({ connections: this.admission.connections, sessions: this.sessions.size }),
          whenIdle: (done) => this.admission.whenIdle(done),
          close: () => this.close(),
          drain: (o) => this.drain(o),
        })
      : new StandaloneMode(this.net);
  }

  /**
   * Multi-process mode, in the primary: each worker's slot, process and counts (empty
   * otherwise). Connections, sessions and their events live in the workers.
   */
  get workerStats(): WorkerStats[] {
    return this.mode.workerStats;
  }

  /**
   * Multi-process mode, in the primary: asks every online worker for `topic` (its
   * {@link answerPrimary} handler) and resolves with the answers that came within
   * `timeout` ms, in slot order. Resolves with [] outside the primary.
   */
  queryWorkers(topic: string, timeout = WORKERS_DEFAULTS.queryTimeout): Promise<unknown[]> {
    return this.mode.queryWorkers(topic, timeout);
  }

  /**
   * Multi-process mode, in a worker: answers the primary's `queryWorkers(topic)` with what
   * `handler` returns (a JSON-serialisable value, or a promise of one). Does
   * nothing outside a worker.
   */
  answerPrimary(topic: string, handler: () => unknown): void {
    this.mode.answerPrimary(topic, handler);
  }

  /** Live connections by id (including sessions waiting for a resume). */
  get connections(): ReadonlyMap<string, ServerConnection> {
    return this.live;
  }

  /** This node's id (presence, ownership in the session store). */
  get nodeId(): string {
    return this.config.nodeId;
  }

  /**
   * Sends a message to the session `id`, or else to every session of the client id `id`,
   * wherever in the cluster it is held (with a store; this server's sessions otherwise),
   * exactly once per session, kept in the session while its client is away. Resolves with
   * the number of sessions it was queued in (0: none). Rejects with HL_ERR_FRAME_TOO_LARGE,
   * HL_ERR_BUFFER_FULL or HL_ERR_STORE.
   */
  sendTo(id: string, payload: Uint8Array | string): Promise<number> {
    return this.directory.sendTo(id, payload);
  }

  /**
   * Where a session id or client id is online: one entry per session with a live link, on
   * any node (with a store) or this server. Rejects with HL_ERR_STORE.
   */
  presence(id: string): Promise<PresenceInfo> {
    return this.directory.presence(id);
  }

  /** The heartbeat policy in force. */
  get policy(): Readonly<GrantPolicy> {
    return this.config.policy;
  }

  /** The load level in force ('normal' until the first sample, or with sampling off). */
  get loadLevel(): LoadLevel {
    return this.loadMonitor.level;
  }

  /** The heartbeat budget, what the links cost and the stretch factor in force. */
  get heartbeatLoad(): HeartbeatLoad {
    return this.adaptive.load;
  }

  /** Open sockets, sessions, refusals by limit and evicted sessions. */
  get admissionStats(): AdmissionStats {
    return {
      connections: this.admission.connections,
      sessions: this.sessions.size,
      refused: { ...this.admission.refusals },
      evicted: this.evictions,
    };
  }

  /**
   * Asks `heartbeatPolicy` again for one connection (say, it started or stopped to matter)
   * and sends it SETTINGS if its heartbeat changes. False when it has no link right now.
   */
  refreshHeartbeat(conn: ServerConnection): boolean {
    return this.adaptive.refresh(conn);
  }

  /** The listening address, or null before listen(). */
  address(): AddressInfo | null {
    return this.mode.address();
  }

  /** Starts listening; port 0 picks a free port. Resolves with the bound address. */
  listen(port = 0, host = '127.0.0.1'): Promise<AddressInfo> {
    // Standalone: binds; primary: binds and forks; worker: registers with the primary.
    return this.mode.listen(port, host).then((address) => {
      if (!this.closing) this.loadMonitor.start();
      this.emit('listening', address);
      return address;
    });
  }

  /** True from drain() on: no new connections, /readyz reports not ready. */
  get draining(): boolean {
    return this.drainStarted;
  }

  /**
   * Graceful drain: stops accepting, waits up to `timeout` ms for every connection's
   * in-flight messages to be acknowledged by its client, then closes each with
   * CLOSE(going away) as soon as it is settled (so the clients' reconnects spread out
   * instead of arriving at the next server at once), and resolves when every socket is
   * gone. Connections still unacknowledged at the deadline are closed anyway; what they
   * never acknowledged reaches the application as 'session-lost' on both sides, unless a
   * session store keeps it: then the client resumes on another node, which sends it.
   */
  async drain(options: { timeout?: number } = {}): Promise<void> {
    const timeout = intOption('timeout', options.timeout, SERVER_DEFAULTS.drainTimeout, 0);
    if (this.closing) return this.closing;
    this.drainStarted = true;
    // Stops accepting; in the primary, every worker drains its own connections and this
    // resolves when all exited.
    await this.mode.drain(timeout);
    for (const link of this.handshaking)
      link.close('going-away', CloseCode.GOING_AWAY, 'server draining');
    const clock = this.config.clock;
    let timer: ClockTimer | null = null;
    const deadline = new Promise<void>((resolve) => {
      timer = clock.setTimeout(resolve, timeout);
    });
    await Promise.all(
      [...this.connections.values()].map(async (conn) => {
        await Promise.race([conn.whenAcked().catch(() => {}), deadline]);
        conn.close(CloseCode.GOING_AWAY, 'server draining');
      }),
    );
    if (timer !== null) clock.clearTimeout(timer);
    return this.close();
  }

  /**
   * Lets the process exit while the server listens, as `net.Server.unref()` does (in the
   * primary of the multi-process mode, its workers do not hold it either). The server's
   * connections add no handle of their own: their sockets still hold the process.
   */
  unref(): this {
    this.mode.setRef(false);
    return this;
  }

  /** Undoes {@link unref}: the listening server keeps the process alive again. */
  ref(): this {
    this.mode.setRef(true);
    return this;
  }

  /**
   * Stops accepting, closes every connection with CLOSE(going away) so clients reconnect
   * elsewhere at once (sessions waiting for a resume close at once), and resolves when
   * every socket is gone and every connection has emitted 'close', then the server's own
   * 'close'.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.loadMonitor.stop();
    this.adaptive.stop();
    this.closing = new Promise<void>((resolve) => {
      // Stops accepting; resolves once every socket the mode gave this server is gone (the
      // primary's: once every worker exited).
      const modeClosed = this.mode.close();
      this.tls?.destroyPending();
      for (const link of this.handshaking)
        link.close('going-away', CloseCode.GOING_AWAY, 'server closing');
      // Registered before the closes: a session waiting for a resume closes at once.
      const connsClosed = Promise.all(
        [...this.connections.values()].map((conn) =>
          conn.closed ? undefined : new Promise<void>((r) => conn.once('close', () => r())),
        ),
      );
      for (const conn of [...this.connections.values()]) {
        conn.close(CloseCode.GOING_AWAY, 'server closing');
      }
      void Promise.all([modeClosed, connsClosed])
        .then(() => this.connectionHost.idempotency?.close())
        .then(() => this.directory.close())
        .then(() => this.mode.closed())
        .then(() => {
          this.wheel.clear();
          this.emit('close');
          resolve();
        });
    });
    return this.closing;
  }

  /**
   * The idempotency window: the cluster's when it shares one (in Redis, every node sees
   * the same keys), else in this process (validated here, so a bad option fails
   * createServer()).
   */
  private createIdempotencyWindow(): IdempotencyWindow | null {
    const o = this.config.idempotency;
    if (o === null) return null;
    const { clock } = this.config;
    return this.directory.idempotencyWindow(o, clock) ?? createMemoryWindow(o, clock);
  }

  /**
   * `handshakeMs`: what is left of handshakeTimeout (TLS used the rest); `admitted`: the
   * TLS front admitted the socket at its TCP accept already.
   */
  private accept(
    socket: Socket,
    handshakeMs = this.config.handshakeTimeout,
    admitted = false,
  ): void {
    if (this.closing || this.drainStarted) {
      socket.destroy();
      return;
    }
    if (!admitted && !this.admit(socket)) return;
    this.startHandshake(
      new TcpLink(socket, this.config, this.wheel, this.handshakeOwner),
      handshakeMs,
    );
  }

  /**
   * @internal Accepts a connected transport that is not a TCP socket (the in-memory pair
   * of the unit tests; a WebSocket's accept path later): the same admission, handshake
   * and sessions as a socket, on a plain {@link Link} (TCP's tuning does not apply). The
   * peer's address is the transport's own `remoteAddress` and `remotePort`, which
   * admission counts by and `authenticate` sees (its `socket` is null). For a server that
   * holds its connections (standalone, or a worker), not the primary of the workers mode.
   */
  acceptTransport(transport: Transport): void {
    if (this.closing || this.drainStarted) {
      transport.destroy();
      return;
    }
    if (!this.admit(transport)) return;
    this.startHandshake(
      new Link(transport, this.config, this.wheel, this.handshakeOwner),
      this.config.handshakeTimeout,
    );
  }

  /** Holds an accepted link until its HELLO, within `handshakeMs`. */
  private startHandshake(link: Link, handshakeMs: number): void {
    this.handshaking.add(link);
    link.startHandshakeTimer(handshakeMs);
  }

  /**
   * Admission of a new socket: counts it, or refuses it with CLOSE(overloaded). A TLS
   * socket (`plain` false) is admitted at its TCP accept, before TLS: refused, it is only
   * closed.
   */
  private admit(socket: Transport, plain = true): boolean {
    if (this.closing || this.drainStarted) {
      socket.destroy();
      return false;
    }
    const now = this.config.clock.now();
    const refused = admitSocket(this.admission, socket, this.wheel, now, plain);
    if (refused) this.emit('rejected', refused);
    return refused === null;
  }

  /**
   * Admission of a session: resumes always pass; in danger nothing else does; at a session
   * limit, an abandoned session is evicted to make room (see {@link SessionQuota}), or the
   * HELLO is refused. Before authenticate (`identity` undefined) nothing is evicted: a peer
   * that then fails to authenticate must not displace anyone.
   */
  private admitSession(
    hello: HelloFrame,
    remoteAddress: string | undefined,
    identity?: string | null,
  ): Refusal | null {
    if (hello.resume && findSession(this.sessions, hello.resume, identity, hello.version)) {
      return null;
    }
    const danger = this.loadMonitor.level === 'danger';
    const refusal = this.admission.checkLoad(danger, this.config.load.recoverAfter);
    if (refusal) return refusal;
    const key = addressKey(remoteAddress ?? '?');
    // Each eviction removes a session, so this ends; the bound is a guard, not a limit.
    for (let i = 0; i < 4; i++) {
      const excess = this.quota.check(key, identity, this.sessions.size);
      if (excess === null) return null;
      if (excess.victim === null) return this.admission.refuseSession(excess.limit);
      if (identity === undefined) return null;
      this.evictions++;
      excess.victim.endSession(
        'session-expired',
        `evicted to make room for a new session (${excess.limit})`,
      );
    }
    return null;
  }

  private onHandshakeFrame(link: Link, frame: Frame): void {
    if (frame.type !== FrameType.HELLO || link.stats.framesIn !== 1) {
      link.unexpected('the first frame must be HELLO');
      return;
    }
    // From here on the peer's version and maxFrame hold, refusals included.
    link.usePeer(frame.version, frame.maxFrame);
    // Frames pipelined behind HELLO wait for WELCOME (released in applyHandshake()).
    link.holdFrames();
    const peer = {
      get open() {
        return link.open;
      },
      remoteAddress: link.transport.remoteAddress,
      info: () => peerInfo(link.transport),
    };
    try {
      const decided = decideHandshake(frame, peer, this.handshakeHost);
      if (!(decided instanceof Promise)) this.applyHandshake(link, frame, decided);
      else {
        decided
          .then((d) => this.applyHandshake(link, frame, d))
          .catch((err: unknown) => this.handshakeFailed(link, err));
      }
    } catch (err) {
      this.handshakeFailed(link, err);
    }
  }

  /** A handshake threw (authenticate, heartbeatPolicy...): CLOSE(internal error). */
  private handshakeFailed(link: Link, err: unknown): void {
    // Closed meanwhile (handshake timeout, peer gone): that close was reported already.
    if (!link.open) return;
    const error = new HeartlineError('HL_ERR_INTERNAL', `handshake failed: ${String(err)}`, {
      cause: err,
    });
    // A link still handshaking is reported once, as 'rejected', by its accept owner.
    const reported = this.handshaking.has(link);
    link.close('internal-error', CloseCode.INTERNAL_ERROR, 'internal error', 0, error);
    if (reported) return;
    this.emit('rejected', {
      remote: link.remote,
      info: { reason: 'internal-error', message: error.message, error },
    });
  }

  /** Does what the handshake decided (see src/server/handshake.ts). */
  private applyHandshake(link: Link, hello: HelloFrame, decision: HandshakeDecision): void {
    switch (decision.kind) {
      case 'gone':
        return;
      case 'refuse':
        this.refuseHandshake(link, decision.refusal);
        return;
      case 'resume': {
        this.handshaking.delete(link);
        const { session, token, granted } = decision;
        const settings = this.adaptive.settingsFor(session, granted);
        link.write(
          encodeWelcome({
            version: hello.version,
            resumed: true,
            sessionId: hello.resume!.sessionId,
            token,
            interval: settings.interval,
            timeout: settings.timeout,
            lastReceived: session.lastReceived,
            sessionTtl: this.config.sessionTtl,
            maxFrame: this.config.maxFrame,
          }),
        );
        session.attachLink(link, settings, true, hello.resume!.lastReceived, hello);
        link.releaseFrames();
        return;
      }
      case 'create':
        this.handshaking.delete(link);
        this.createSession(link, hello, decision);
    }
  }

  /** A new session, or one taken over from the store (`restored`). */
  private createSession(
    link: Link,
    hello: HelloFrame,
    { identity, granted, restored }: Extract<HandshakeDecision, { kind: 'create' }>,
  ): void {
    // A worker names its slot in the id, so that the primary routes a resume back to it.
    const id = restored ? Buffer.from(restored.sessionId, 'hex') : this.mode.sessionId();
    const token = restored ? Buffer.from(restored.token) : randomBytes(ID_BYTES);
    const conn = new ServerConnection(
      this.config,
      this.wheel,
      this.connectionHost,
      this.config.sessionTtl,
      {
        sessionId: id.toString('hex'),
        token,
        ...(restored?.previousToken ? { previousToken: restored.previousToken } : {}),
        clientId: restored?.clientId ?? hello.clientId,
        traceId: restored?.traceId ?? hello.traceId,
        identity,
        remote: link.remote,
      },
    );
    // Before registering it: a throwing heartbeatPolicy must not leave a session behind.
    const settings = this.adaptive.settingsFor(conn, granted);
    this.sessions.set(conn.sessionKey, conn);
    this.quota.added(conn, addressKey(link.transport.remoteAddress ?? '?'));
    this.live.set(conn.id, conn);
    this.directory.adopt(conn, restored);
    link.write(
      encodeWelcome({
        version: hello.version,
        resumed: restored !== null,
        sessionId: id,
        token,
        interval: settings.interval,
        timeout: settings.timeout,
        lastReceived: conn.lastReceived,
        sessionTtl: this.config.sessionTtl,
        maxFrame: this.config.maxFrame,
      }),
    );
    this.emit('connection', conn);
    conn.attachLink(
      link,
      settings,
      restored !== null,
      restored ? hello.resume!.lastReceived : 0,
      hello,
    );
    link.releaseFrames();
  }

  /**
   * Turns a handshaking link away with its CLOSE and reports it as 'rejected' (a protocol
   * error ends the link at once, as the link does for any).
   */
  private refuseHandshake(link: Link, r: HandshakeRefusal): void {
    this.handshaking.delete(link);
    const { reason, code, message, retryAfter, error, limit } = r;
    if (reason === 'protocol-error') link.fail(reason, message, error);
    else link.close(reason, code, message, retryAfter, error);
    const info: CloseInfo = {
      reason,
      code,
      message,
      ...(retryAfter > 0 ? { retryAfter } : {}),
      ...(error ? { error } : {}),
    };
    this.emit('rejected', { remote: link.remote, info, ...(limit ? { limit } : {}) });
  }

  /**
   * The replay budget is spent: ends the connections that hold the most (each more than
   * the one asking, `held`) until `needed` bytes are back, so that the peers that never
   * acknowledge pay for it, not a connection that holds little. O(connections) per
   * victim, and only while the budget is exhausted.
   */
  private reclaim(needed: number, held: number): boolean {
    let freed = 0;
    while (freed < needed) {
      let victim: ServerConnection | null = null;
      let most = held;
      for (const conn of this.connections.values()) {
        if (conn.bufferedMemory > most && !conn.isClosing && !conn.closed) {
          victim = conn;
          most = conn.bufferedMemory;
        }
      }
      if (victim === null) return false;
      freed += victim.shed();
    }
    return true;
  }

  private release(conn: ServerConnection): void {
    this.live.delete(conn.id);
    this.sessions.delete(conn.sessionKey);
    this.quota.removed(conn);
    this.directory.released(conn);
    this.adaptive.forget(conn);
  }
}

/** Creates a heartline server. */
export function createServer(options: ServerOptions = {}): Server {
  return new Server(options);
}
