/**
 * The client: dials a server from its list, runs the handshake, and after any close that
 * is not final comes back by itself with exponential backoff and jitter, resuming its
 * session so that nothing sent is lost or delivered twice.
 */

import { isIP, connect as netConnect, Socket } from 'node:net';
import { type ConnectionOptions, TLSSocket, connect as tlsConnect } from 'node:tls';
import {
  type CircuitState,
  Connection,
  type GiveUpEvent,
  type OpenEvent,
  sessionIdString,
} from '../connection.js';
import { HeartlineError, InvalidArgumentError, ProtocolError } from '../errors.js';
import { fixedDetector } from '../health/index.js';
import { type CloseInfo, Link } from '../link.js';
import {
  boolOption,
  type CommonOptions,
  heartbeatSettings,
  intOption,
  numberOption,
  type ResolvedCommon,
  resolveCommon,
} from '../options.js';
import { CloseCode, type CloseReason, FINAL_REASONS } from '../protocol/close-codes.js';
import { encodeHello } from '../protocol/codec.js';
import {
  DEFAULT_MAX_HELLO_FIELD_BYTES,
  type Frame,
  FrameType,
  PROTOCOL_VERSION,
  type WelcomeFrame,
} from '../protocol/frames.js';
import { asBuffer } from '../session/outbound.js';
import { TcpLink } from '../tcp-link.js';
import { type Clock, systemClock } from '../time/clock.js';
import { MAX_TIMER_DELAY_MS, TimingWheel, type WheelTimer } from '../time/wheel.js';
import type { Transport } from '../transport/transport.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { holdProcess, releaseProcess } from './process-hold.js';
import { parseServerList, type ServerAddress, ServerRotation } from './servers.js';

/** Client defaults. */
export const CLIENT_DEFAULTS = Object.freeze({
  /** Server host when only `port` is given. */
  host: '127.0.0.1',
  /** A lost connection is redialled and its session resumed. */
  reconnect: true,
  /** While the circuit is open, send() and request() buffer instead of throwing. */
  failFast: false,
  /** TCP connect deadline (ms). */
  connectTimeout: 10_000,
  /**
   * A connection healthy this long resets the backoff attempt count (ms). Losing a link
   * that heard the server after its WELCOME resets it too (see ClientConnection.linkLost).
   */
  stableAfter: 10_000,
  /** Consecutive failed attempts, or failed requests, that open the circuit breaker. */
  circuitThreshold: 3,
  /**
   * Opened by failed requests while connected, the circuit lets a probe request through
   * (half-open) after this long (ms).
   */
  circuitResetAfter: 5_000,
  /** Attempts before giving up (Infinity: never). */
  maxAttempts: Number.POSITIVE_INFINITY,
  /** Most UTF-8 bytes of clientId and of traceId: the server's default limit. */
  maxHelloFieldBytes: DEFAULT_MAX_HELLO_FIELD_BYTES,
});

/** Options of {@link connect}. */
export interface ClientOptions extends CommonOptions {
  /** Server host (with `port`), or use `servers`. @default '127.0.0.1' */
  host?: string;
  /** Server port (with `host`). */
  port?: number;
  /** Several servers as "h1:p1,h2:p2" or an array; tried in shuffled order with failover. */
  servers?: string | ReadonlyArray<string | ServerAddress>;
  /** Heartbeat interval to ask for (ms; the server decides). @default the server's */
  interval?: number;
  /** Heartbeat timeout to ask for (ms; the server decides). @default the server's */
  timeout?: number;
  /** Credentials for the server's authenticate hook. */
  auth?: string | Uint8Array;
  /** An id of the application's choosing, sent in HELLO. */
  clientId?: string;
  /** A trace id carried in HELLO for the server's logs. */
  traceId?: string;
  /**
   * Most UTF-8 bytes `clientId` and `traceId` may have, checked by connect() so that an
   * id the server would refuse (CLOSE policy violation, final) fails at once. Match the
   * server's `maxHelloFieldBytes` when it was raised. 1 to 65535. @default 256
   */
  maxHelloFieldBytes?: number;
  /** Reconnect after a close that is not final. @default true */
  reconnect?: boolean;
  /** Backoff policy between attempts. @default 500 ms x2 up to 30 s, full jitter */
  backoff?: BackoffOptions;
  /**
   * Attempts before 'give-up', counted since the last link that heard the server after
   * its handshake (or stayed healthy `stableAfter`). @default Infinity
   */
  maxAttempts?: number;
  /** TCP connect deadline (ms). @default 10000 */
  connectTimeout?: number;
  /**
   * Healthy this long resets the attempt count (ms); so does losing a link that heard the
   * server after its WELCOME. @default 10000
   */
  stableAfter?: number;
  /**
   * Consecutive failed attempts, or consecutive failed requests (timed out, overloaded,
   * no responder), that open the circuit. @default 3
   */
  circuitThreshold?: number;
  /**
   * After failed requests opened the circuit while connected: how long until it lets
   * requests through again as probes (half-open), in ms. @default 5000
   */
  circuitResetAfter?: number;
  /**
   * Throw HL_ERR_CIRCUIT_OPEN from send(), and reject request() with it, while the
   * circuit is open, instead of buffering. @default false
   */
  failFast?: boolean;
  /** Closes the connection when aborted. */
  signal?: AbortSignal;
  /** Randomness for server shuffling and jitter. @default Math.random */
  random?: () => number;
  /**
   * Opens the stream to an address: a `net.Socket` or `tls.TLSSocket` (HELLO waits for
   * its 'connect' or 'secureConnect'; heartline sets its TCP options), or any other
   * {@link Transport}, which runs as it is (HELLO goes out at once if it knows its
   * `remoteAddress`, else on its 'connect'). Called for every attempt. @default net.connect
   */
  createSocket?: (address: ServerAddress) => Transport;
  /**
   * Connect over TLS (node:tls connect options: ca, cert and key for mutual TLS,
   * servername...); HELLO waits for the TLS handshake, and `connectTimeout` covers it.
   * The server's certificate is verified (against `ca`, or the system CAs) and its name
   * checked against `servername` or the host. Conflicts with `createSocket`.
   * @default plain TCP
   */
  tls?: ConnectionOptions;
}

interface ResolvedClient extends ResolvedCommon {
  readonly servers: readonly ServerAddress[];
  readonly interval: number;
  readonly timeout: number;
  readonly auth: Uint8Array;
  readonly clientId: string;
  readonly traceId: string;
  readonly reconnect: boolean;
  readonly maxAttempts: number;
  readonly connectTimeout: number;
  readonly stableAfter: number;
  readonly circuitThreshold: number;
  readonly circuitResetAfter: number;
  readonly failFast: boolean;
  readonly random: () => number;
}

/** Checks a HELLO id option: a string of at most `max` UTF-8 bytes ('' when absent). */
function helloField(name: string, value: string | undefined, max: number): string {
  if (value === undefined) return '';
  if (typeof value !== 'string') {
    throw new InvalidArgumentError(`option "${name}" must be a string, got ${typeof value}`);
  }
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > max) {
    throw new InvalidArgumentError(
      `option "${name}" must be at most ${max} UTF-8 bytes (maxHelloFieldBytes), got ${bytes}`,
    );
  }
  return value;
}

function resolveClient(o: ClientOptions): ResolvedClient {
  if (o.tls !== undefined && (o.tls === null || typeof o.tls !== 'object')) {
    throw new InvalidArgumentError('option "tls" must be an object of node:tls connect options');
  }
  if (o.tls !== undefined && o.createSocket !== undefined) {
    throw new InvalidArgumentError(
      'options "tls" and "createSocket" conflict: open the TLS socket in createSocket, or drop it',
    );
  }
  const clock: Clock = o.clock ?? systemClock;
  const common = resolveCommon(o, clock, fixedDetector());
  const servers =
    o.servers !== undefined
      ? parseServerList(o.servers)
      : parseServerList([{ host: o.host ?? CLIENT_DEFAULTS.host, port: o.port as number }]);
  const auth =
    o.auth === undefined
      ? new Uint8Array(0)
      : typeof o.auth === 'string'
        ? Buffer.from(o.auth)
        : o.auth;
  const maxHelloFieldBytes = intOption(
    'maxHelloFieldBytes',
    o.maxHelloFieldBytes,
    CLIENT_DEFAULTS.maxHelloFieldBytes,
    1,
    0xffff,
  );
  return Object.freeze({
    ...common,
    servers,
    interval: intOption('interval', o.interval, 0, 0, 0xffff_ffff),
    timeout: intOption('timeout', o.timeout, 0, 0, 0xffff_ffff),
    auth,
    clientId: helloField('clientId', o.clientId, maxHelloFieldBytes),
    traceId: helloField('traceId', o.traceId, maxHelloFieldBytes),
    reconnect: boolOption('reconnect', o.reconnect, CLIENT_DEFAULTS.reconnect),
    maxAttempts: numberOption('maxAttempts', o.maxAttempts, CLIENT_DEFAULTS.maxAttempts, 1),
    // The timers these arm are wheel timers: bounded by the longest delay a wheel takes.
    connectTimeout: intOption(
      'connectTimeout',
      o.connectTimeout,
      CLIENT_DEFAULTS.connectTimeout,
      1,
      MAX_TIMER_DELAY_MS,
    ),
    stableAfter: intOption(
      'stableAfter',
      o.stableAfter,
      CLIENT_DEFAULTS.stableAfter,
      0,
      MAX_TIMER_DELAY_MS,
    ),
    circuitThreshold: intOption(
      'circuitThreshold',
      o.circuitThreshold,
      CLIENT_DEFAULTS.circuitThreshold,
      1,
    ),
    circuitResetAfter: intOption(
      'circuitResetAfter',
      o.circuitResetAfter,
      CLIENT_DEFAULTS.circuitResetAfter,
      1,
      MAX_TIMER_DELAY_MS,
    ),
    failFast: boolOption('failFast', o.failFast, CLIENT_DEFAULTS.failFast),
    random: o.random ?? Math.random,
  });
}

/** One wheel per clock, shared by every client in the process. */
const wheels = new WeakMap<Clock, TimingWheel>();
function wheelFor(clock: Clock): TimingWheel {
  let wheel = wheels.get(clock);
  if (!wheel) {
    wheel = new TimingWheel(clock);
    wheels.set(clock, wheel);
  }
  return wheel;
}

/** The client end of a session. Create it with {@link connect}. */
export class ClientConnection extends Connection {
  private readonly cfg: ResolvedClient;
  private readonly rotation: ServerRotation;
  private readonly backoff: Backoff;
  private readonly createSocket: (address: ServerAddress) => Transport;
  private pending: Link | null = null;
  private token: Uint8Array | null = null;
  private attempts = 0;
  private failures = 0;
  private circuitState: CircuitState = 'closed';
  // Every timer of a client is a wheel timer on the wheel of its links, created on first
  // use; their handlers are the static methods below (no closure each).
  private retryTimer: WheelTimer | null = null;
  /** Failed requests in a row (a success or a handshake resets it). */
  private requestFailures = 0;
  /** Half-opens a circuit that failed requests opened while connected. */
  private circuitTimer: WheelTimer | null = null;
  private connectTimer: WheelTimer | null = null;
  private stableTimer: WheelTimer | null = null;
  /** The link of the last WELCOME, kept until its loss to tell whether it heard the server. */
  private welcomed: Link | null = null;
  /** DATA, ACK or SETTINGS arrived on it (PING and PONG are counted by its heartbeat). */
  private heardAfterWelcome = false;
  private readonly onAbort = () => this.abort();
  private readonly signal: AbortSignal | undefined;
  /** False after unref(): neither the sockets nor the wait between attempts hold the process. */
  private refed = true;
  /** Whether this connection counts among the holders of the process (process-hold.ts). */
  private holding = false;
  /** The first handshake's event, once there was one (what ready() resolves with). */
  private firstOpen: OpenEvent | null = null;
  /** ready()'s promise and its settlers, made on the first call only. */
  private readyState: {
    promise: Promise<OpenEvent>;
    resolve: (e: OpenEvent) => void;
    reject: (err: HeartlineError) => void;
  } | null = null;

  constructor(options: ClientOptions) {
    const cfg = resolveClient(options);
    super(cfg, wheelFor(cfg.clock));
    this.cfg = cfg;
    this.rotation = new ServerRotation(cfg.servers, cfg.random);
    this.backoff = new Backoff({ random: cfg.random, ...options.backoff });
    const tls = options.tls;
    this.createSocket =
      options.createSocket ??
      (tls
        ? (a) =>
            tlsConnect({
              // SNI takes a host name, never an address.
              ...(isIP(a.host) === 0 ? { servername: a.host } : {}),
              ...tls,
              host: a.host,
              port: a.port,
            })
        : (a) => netConnect({ host: a.host, port: a.port, noDelay: true }));
    this.signal = options.signal;
    // Open until closed, like a net.Socket: a script must not exit between two attempts.
    this.updateHold();
    if (this.signal?.aborted) {
      queueMicrotask(() => this.onAbort());
      return;
    }
    this.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.dial();
  }

  /** The circuit-breaker view of the connection. */
  get circuit(): CircuitState {
    return this.circuitState;
  }

  /** The server address in use or being tried. */
  get server(): ServerAddress {
    return this.rotation.current;
  }

  /** The trace id this client sends in HELLO (empty when none was set). */
  get traceId(): string {
    return this.cfg.traceId;
  }

  /** The client id this client sends in HELLO (empty when none was set). */
  get clientId(): string {
    return this.cfg.clientId;
  }

  /**
   * Resolves with the first handshake's event (the first WELCOME), at once if there was
   * one already. Rejects with a HeartlineError when the connection ends for good before
   * that: HL_ERR_AUTH_FAILED, HL_ERR_UNSUPPORTED_VERSION, HL_ERR_POLICY_VIOLATION (the
   * server's final CLOSE), HL_ERR_GAVE_UP (`maxAttempts` spent), HL_ERR_ABORTED (the
   * `signal`), or HL_ERR_CONNECTION_CLOSED (close() or the server's CLOSE(normal)). With
   * the defaults the client retries forever, so the promise waits until a server answers:
   * bound it with `maxAttempts` or a `signal` (`AbortSignal.timeout(ms)`). Made on the
   * first call, so a connection nobody asks never holds a rejected promise.
   */
  ready(): Promise<OpenEvent> {
    if (this.readyState) return this.readyState.promise;
    if (this.firstOpen) return Promise.resolve(this.firstOpen);
    const info = this.closeInfo;
    if (info) return Promise.reject(notOpenedError(info));
    let resolve!: (e: OpenEvent) => void;
    let reject!: (err: HeartlineError) => void;
    const promise = new Promise<OpenEvent>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.readyState = { promise, resolve, reject };
    return promise;
  }

  /**
   * Lets the process exit while this connection is open, as `net.Socket.unref()` does:
   * its sockets and its wait between attempts no longer keep the event loop alive. By
   * default a connection keeps the process alive from connect() until 'close'.
   */
  unref(): this {
    this.refed = false;
    this.applyRef();
    return this;
  }

  /** Undoes {@link unref}: the connection keeps the process alive again until 'close'. */
  ref(): this {
    this.refed = true;
    this.applyRef();
    return this;
  }

  /** Puts the ref state on the sockets in use and on the process hold. */
  private applyRef(): void {
    for (const socket of [this.link?.transport, this.pending?.transport]) {
      if (!socket) continue;
      if (this.refed) socket.ref();
      else socket.unref();
    }
    this.updateHold();
  }

  /** Holds the process while the connection is open and ref'd; releases it otherwise. */
  private updateHold(): void {
    const want = this.refed && !this.closed;
    if (want === this.holding) return;
    this.holding = want;
    if (want) holdProcess();
    else releaseProcess();
  }

  protected override linkOpened(event: OpenEvent): void {
    if (this.firstOpen) return;
    this.firstOpen = event;
    // Settles after this turn: the 'open' listeners run first.
    this.readyState?.resolve(event);
  }

  /** Closes because the AbortSignal fired: like close(), with an HL_ERR_ABORTED error. */
  private abort(): void {
    const error = new HeartlineError('HL_ERR_ABORTED', 'the connection was aborted', {
      cause: this.signal?.reason,
    });
    this.closeLocal(CloseCode.NORMAL, 'aborted', error);
  }

  /** Closes for good: no more reconnects. */
  protected override closeLocal(
    code: number,
    reason: string,
    error?: HeartlineError,
    why: CloseReason = 'local',
  ): void {
    if (this.closed) return;
    this.clearTimers();
    const pending = this.pending;
    this.pending = null;
    pending?.close('local', code, reason);
    super.closeLocal(code, reason, error, why);
  }

  /** @internal */
  override onFrame(link: Link, frame: Frame): void {
    if (link === this.pending) {
      if (frame.type !== FrameType.WELCOME) {
        link.unexpected('the server must answer HELLO with WELCOME or CLOSE');
        return;
      }
      this.onWelcome(link, frame);
      return;
    }
    if (link === this.link) this.heardAfterWelcome = true;
    super.onFrame(link, frame);
  }

  /** @internal */
  override onClose(link: Link, info: CloseInfo): void {
    if (link === this.pending) {
      this.pending = null;
      this.clearConnectTimer();
      if (this.closed) return;
      this.health.transition(['connecting'], 'disconnected', info.reason);
      this.afterFailure(info, true);
      return;
    }
    super.onClose(link, info);
  }

  protected override onControlFrame(link: Link, frame: Frame): void {
    if (frame.type === FrameType.SETTINGS) {
      if (!(frame.interval > 0 && frame.timeout > frame.interval)) {
        link.unexpected(`SETTINGS with interval ${frame.interval} and timeout ${frame.timeout}`);
        return;
      }
      const settings = heartbeatSettings(frame.interval, frame.timeout);
      this.currentSettings = settings;
      link.beat?.retune(settings);
      return;
    }
    super.onControlFrame(link, frame);
  }

  protected override beforeSend(): void {
    if (this.cfg.failFast && this.circuitState === 'open') {
      throw new HeartlineError('HL_ERR_CIRCUIT_OPEN', 'the server is unreachable (circuit open)');
    }
  }

  /**
   * The breaker counts requests too: `circuitThreshold` failures in a row (timeouts,
   * overloaded, no responder; a responder's own error is an answer) open it while
   * connected, `circuitResetAfter` later it half-opens, and the next outcome closes or
   * reopens it. A lost link's attempts take over from there as before.
   */
  protected override requestOutcome(): (ok: boolean) => void {
    return (ok) => {
      if (this.closed) return;
      if (ok) {
        this.requestFailures = 0;
        if (this.circuitState !== 'closed' && this.link !== null) {
          this.clearTimer('circuitTimer');
          this.setCircuit('closed');
        }
        return;
      }
      this.requestFailures++;
      const trips =
        this.circuitState === 'half-open' || this.requestFailures >= this.cfg.circuitThreshold;
      if (!trips || this.link === null) return;
      this.setCircuit('open');
      this.circuitTimer ??= this.wheel.timerFor(this, ClientConnection.circuitDue);
      this.circuitTimer.arm(this.cfg.circuitResetAfter);
    };
  }

  protected willResume(info: CloseInfo): boolean {
    return this.cfg.reconnect && !FINAL_REASONS.has(info.reason);
  }

  /**
   * The backoff rule on a flapping link: a link that completed its handshake and then
   * heard the server (any frame but CLOSE after the WELCOME: data, an ACK, a PING or a
   * PONG) proved the server reachable, so its loss restarts the backoff and the attempt
   * count, and the next reconnect waits only the first delay (full jitter: under 500 ms
   * by default). Reconnects that keep succeeding therefore never climb toward the cap. A
   * link lost before the server said anything after its WELCOME (a server that accepts
   * and drops at once, or ends every link with a CLOSE) proves nothing and climbs like a
   * failed attempt, so such a server is retried at a falling rate. `stableAfter` of
   * health still resets the count as well.
   */
  protected linkLost(info: CloseInfo): void {
    this.clearTimer('stableTimer');
    if (this.serverHeardAfterWelcome()) this.resetAttempts();
    this.welcomed = null;
    this.heardAfterWelcome = false;
    this.afterFailure(info, false);
  }

  protected override onFinish(info: CloseInfo): void {
    this.clearTimers();
    this.signal?.removeEventListener('abort', this.onAbort);
    this.updateHold();
    if (!this.firstOpen) this.readyState?.reject(notOpenedError(info));
  }

  private dial(): void {
    if (this.closed) return;
    this.health.transition(['disconnected'], 'connecting', 'reconnecting');
    if (this.circuitState === 'open') this.setCircuit('half-open');
    const address = this.rotation.current;
    let transport: Transport;
    try {
      transport = this.createSocket(address);
    } catch (err) {
      const error = new HeartlineError('HL_ERR_SOCKET', `cannot open a socket: ${String(err)}`, {
        cause: err,
      });
      queueMicrotask(() => {
        this.health.transition(['connecting'], 'disconnected', 'error');
        this.afterFailure({ reason: 'error', message: error.message, error }, true);
      });
      return;
    }
    if (!this.refed) transport.unref();
    // A socket gets TCP's tuning; another transport (in memory, say) runs as it is.
    const socket = transport instanceof Socket ? transport : null;
    const link = socket
      ? new TcpLink(socket, this.config, this.wheel, this)
      : new Link(transport, this.config, this.wheel, this);
    this.pending = link;
    this.connectTimer ??= this.wheel.timerFor(this, ClientConnection.connectDue);
    this.connectTimer.arm(this.cfg.connectTimeout);
    // Over TLS the HELLO waits for the TLS handshake (and the connect deadline covers it).
    if (socket) {
      socket.once(socket instanceof TLSSocket ? 'secureConnect' : 'connect', () =>
        this.sendHello(link),
      );
    } else if (transport.remoteAddress === undefined) {
      transport.once('connect', () => this.sendHello(link));
    } else this.sendHello(link);
  }

  /** The link's stream is connected: HELLO, then the handshake deadline. */
  private sendHello(link: Link): void {
    this.clearConnectTimer();
    if (link !== this.pending) return;
    const sessionId = this.sessionId;
    link.write(
      encodeHello({
        version: PROTOCOL_VERSION,
        interval: this.cfg.interval,
        timeout: this.cfg.timeout,
        auth: this.cfg.auth,
        resume:
          sessionId !== null && this.token
            ? {
                sessionId: Buffer.from(sessionId, 'hex'),
                token: this.token,
                lastReceived: this.inbound.lastReceived,
              }
            : null,
        clientId: this.cfg.clientId,
        traceId: this.cfg.traceId,
        maxFrame: this.config.maxFrame,
      }),
    );
    link.startHandshakeTimer();
  }

  private onWelcome(link: Link, welcome: WelcomeFrame): void {
    // A refused WELCOME leaves the link pending, so that its close counts as a failed
    // attempt (onClose): retried, or final for a version this client does not speak.
    if (welcome.version !== PROTOCOL_VERSION) {
      const message = `WELCOME names protocol ${welcome.version}; the HELLO asked for ${PROTOCOL_VERSION}`;
      link.fail(
        'unsupported-version',
        message,
        new ProtocolError('HL_ERR_UNSUPPORTED_VERSION', message),
      );
      return;
    }
    const sessionId = sessionIdString(welcome.sessionId);
    if (welcome.resumed && sessionId !== this.sessionId) {
      link.unexpected('WELCOME resumed a session this client did not ask for');
      return;
    }
    if (!(welcome.interval > 0 && welcome.timeout > welcome.interval)) {
      link.unexpected(`WELCOME grants interval ${welcome.interval} and timeout ${welcome.timeout}`);
      return;
    }
    this.pending = null;
    if (!welcome.resumed && this.sessionId !== null) this.loseSession();
    this.token = welcome.token;
    this.failures = 0;
    this.requestFailures = 0;
    this.clearTimer('circuitTimer');
    this.welcomed = link;
    this.heardAfterWelcome = false;
    this.setCircuit('closed');
    this.stableTimer ??= this.wheel.timerFor(this, ClientConnection.stableDue);
    this.stableTimer.arm(this.cfg.stableAfter);
    const settings = heartbeatSettings(welcome.interval, welcome.timeout);
    this.attach(
      link,
      settings,
      sessionId,
      welcome.resumed,
      welcome.resumed ? welcome.lastReceived : 0,
      { version: welcome.version, maxFrame: welcome.maxFrame },
    );
    // A frame right after a resumed WELCOME tells the server this end holds the new
    // token, which ends the old one's validity (PROTOCOL.md 6.3); replayed DATA does it
    // too, else a PING (which also gives an RTT sample on the new path).
    if (welcome.resumed && this.link === link && !link.flushPending) link.beat?.ping();
  }

  /** Decides what follows a lost link or a failed attempt. */
  private afterFailure(info: CloseInfo, attemptFailed: boolean): void {
    if (this.closed) return;
    if (!this.cfg.reconnect || FINAL_REASONS.has(info.reason)) {
      this.finish(info);
      return;
    }
    if (attemptFailed) {
      this.failures++;
      if (this.circuitState === 'half-open' || this.failures >= this.cfg.circuitThreshold) {
        this.setCircuit('open');
      }
    }
    if (this.attempts >= this.cfg.maxAttempts) {
      this.giveUp(info);
      return;
    }
    this.attempts++;
    this.rotation.advance();
    // GOING_AWAY means "this server is draining": go elsewhere at once, no backoff.
    let delay = info.reason === 'going-away' ? 0 : this.backoff.next();
    if (info.reason === 'overloaded' && info.retryAfter !== undefined) {
      delay = Math.max(delay, info.retryAfter);
    }
    this.emit('reconnecting', {
      attempt: this.attempts,
      delayMs: delay,
      reason: info.reason,
      info,
    });
    this.retryTimer ??= this.wheel.timerFor(this, ClientConnection.retryDue);
    this.retryTimer.arm(delay);
  }

  /** Whether the last welcomed link heard any frame but CLOSE after its WELCOME. */
  private serverHeardAfterWelcome(): boolean {
    if (this.heardAfterWelcome) return true;
    const beat = this.welcomed?.beat?.stats;
    return beat !== undefined && beat.pingsReceived + beat.pongsReceived > 0;
  }

  /** Back to the first attempt: the next reconnect waits only the initial delay. */
  private resetAttempts(): void {
    this.attempts = 0;
    this.backoff.reset();
  }

  private giveUp(info: CloseInfo): void {
    const event: GiveUpEvent = {
      attempts: this.attempts,
      unacked: this.outbound.takeAll().map(asBuffer),
    };
    this.emit('give-up', event);
    this.finish({
      ...info,
      message: `gave up after ${this.attempts} attempts: ${info.message}`,
      error: new HeartlineError('HL_ERR_GAVE_UP', `gave up after ${this.attempts} attempts`, {
        cause: info.error,
      }),
    });
  }

  private setCircuit(state: CircuitState): void {
    if (state === this.circuitState) return;
    this.circuitState = state;
    this.emit('circuit', state);
  }

  private clearConnectTimer(): void {
    this.clearTimer('connectTimer');
  }

  private clearTimer(name: 'retryTimer' | 'connectTimer' | 'stableTimer' | 'circuitTimer'): void {
    this[name]?.cancel();
  }

  /** The backoff delay is over: the next attempt. */
  private static retryDue(conn: ClientConnection): void {
    conn.dial();
  }

  /** The attempt in progress did not connect (TCP, and TLS) within connectTimeout. */
  private static connectDue(conn: ClientConnection): void {
    const link = conn.pending;
    if (link === null) return;
    const address = conn.rotation.current;
    link.fail(
      'connect-timeout',
      `no connection to ${address.host}:${address.port} within ${conn.cfg.connectTimeout} ms`,
    );
  }

  /** Healthy for stableAfter: the next reconnect starts from the first delay. */
  private static stableDue(conn: ClientConnection): void {
    conn.resetAttempts();
  }

  /** circuitResetAfter since requests opened the circuit: the next outcome decides. */
  private static circuitDue(conn: ClientConnection): void {
    if (conn.circuitState === 'open' && conn.link !== null) conn.setCircuit('half-open');
  }

  private clearTimers(): void {
    this.clearTimer('retryTimer');
    this.clearTimer('connectTimer');
    this.clearTimer('stableTimer');
    this.clearTimer('circuitTimer');
  }
}

/**
 * The error ready() rejects with when the connection ended before its first handshake:
 * the close's own typed error (auth failed, gave up, aborted...), or
 * HL_ERR_CONNECTION_CLOSED for a close that was nobody's failure.
 */
function notOpenedError(info: CloseInfo): HeartlineError {
  if (info.error) return info.error;
  const code = info.code === undefined ? '' : ` ${info.code}`;
  return new HeartlineError(
    'HL_ERR_CONNECTION_CLOSED',
    `the connection closed (${info.reason}${code}${info.message ? `: ${info.message}` : ''}) before its first handshake`,
  );
}

/**
 * Connects to a heartline server; reconnects and resumes by default. Returns at once:
 * `await connect(options).ready()` waits for the first handshake and rejects on a final
 * failure.
 */
export function connect(options: ClientOptions): ClientConnection {
  return new ClientConnection(options);
}
