/**
 * Every option and default, declared once, and the one set of validators every module's
 * options go through. The options both ends share live here with a `@default` per field;
 * a module's own options (server, admission, load, workers, chaos, admin...) live with
 * that module in its one `*_DEFAULTS` object, never repeated elsewhere (a module that
 * needs another's default imports it). `resolve*` functions validate up front with the
 * validators below (InvalidArgumentError names the option), never mutate the caller's
 * object, and return frozen configs. docs/ tables of defaults are held to these
 * declarations by test/unit/options.test.ts.
 */

import { InvalidArgumentError } from './errors.js';
import type { DetectorFactory } from './health/index.js';
import {
  checkTcpSocketSettings,
  TCP_OPTION_LIMITS,
  type TcpSocketSettings,
} from './net/sockopts.js';
import { DEFAULT_MAX_FRAME } from './protocol/frames.js';
import type { Clock } from './time/clock.js';

/**
 * Heartbeat defaults and why:
 * - interval 10 s: well inside the idle timeouts that cut quiet flows (AWS ALB 60 s,
 *   Azure LB 4 min, AWS NAT gateway 350 s, most home NATs minutes), and at 100k
 *   connections it is 10k PING/PONG pairs a second, which one core handles with room.
 *   Heartbeats are only sent on idle links, so busy connections cost nothing.
 * - timeout 30 s (three intervals): one lost heartbeat or a slow GC pause never kills a
 *   healthy link, yet a dead peer is found faster than Socket.IO (45 s), MQTT (90 s) or
 *   NATS (about 6 min) detect it by default.
 * - suspect after 1.5 intervals: the first missed heartbeat raises suspicion and starts
 *   fast probing, so a live peer clears it in one round trip.
 */
export const HEARTBEAT_DEFAULTS = Object.freeze({
  /** Send a PING after this long without sending anything (ms). */
  interval: 10_000,
  /** Declare the peer DEAD after this long without hearing anything (ms). */
  timeout: 30_000,
  /** Declare the peer SUSPECT after this much silence (ms); derived when not given. */
  suspectFactor: 1.5,
  /** Close with 'write-stall' when buffered outgoing bytes make no progress this long (ms). */
  writeTimeout: 30_000,
});

/** Transport defaults shared by both ends. */
export const CONNECTION_DEFAULTS = Object.freeze({
  /** Largest frame (type byte + payload) accepted or sent. */
  maxFrame: DEFAULT_MAX_FRAME,
  /** A HELLO/WELCOME must arrive within this long after the TCP connect (ms). */
  handshakeTimeout: 10_000,
  /**
   * Send a cumulative ACK after this many unacknowledged messages. An ACK is a 13-byte
   * frame, so one per 32 messages keeps ack traffic small even for tiny messages, while
   * the sender frees its replay buffer often enough not to sit near its high-water mark.
   */
  ackEvery: 32,
  /** ...or after this long with anything unacknowledged (ms). */
  ackDelay: 20,
  /** request() rejects with HL_ERR_REQUEST_TIMEOUT after this long without a reply (ms; 0: never). */
  requestTimeout: 30_000,
  /**
   * send() returns false once the replay buffer holds this many bytes. The buffer holds
   * everything sent in the last round trip plus whatever piles up during a reconnect, so
   * it sits well above a socket's 16 KiB stream mark; 1 MiB still bounds memory per
   * connection in a server with thousands of them.
   */
  highWaterMark: 1024 * 1024,
  /**
   * send() throws HL_ERR_BUFFER_FULL past this many buffered bytes: 16x the soft limit, so
   * an application that ignores back-pressure for a short outage is not failed at once,
   * while a runaway producer still hits a bound.
   */
  maxBufferedBytes: 16 * 1024 * 1024,
  /**
   * DATA is handed to the socket only while its own buffer holds less than this, so a
   * PONG or ACK written next never waits behind megabytes of bulk data.
   */
  socketLowWater: 64 * 1024,
  /** OS keepalive backstop: idle time before the kernel probes (ms, whole seconds). */
  keepAliveDelay: 30_000,
  /**
   * A frame that started arriving must be complete within this long (ms), plus one second
   * per `minDataRate` bytes of it received: as long as the heartbeat timeout tolerates
   * silence, since a stalled path may pause a frame that long. Every byte keeps the
   * heartbeat alive, so without this a peer sending one byte of a frame per timeout held
   * its connection forever.
   */
  partialFrameTimeout: 30_000,
  /**
   * Minimum average rate of a frame in flight (bytes/s): 8 kbit/s, below any link that
   * carries real traffic, while a trickle of a byte per heartbeat is cut at
   * partialFrameTimeout. The allowance grows with the bytes received, not the length a
   * frame announces, so announcing a huge frame buys no time (Apache mod_reqtimeout's
   * `MinRate` works the same way).
   */
  minDataRate: 1024,
});

/**
 * Heartbeat-flood policing (PROTOCOL.md 7.6), enforced by the server. Each PING a peer
 * sends spends one credit; credits come back at one per interval / 8 (twice the fastest
 * rate a compliant peer ever pings, its quarter-interval probes), up to a cap covering
 * every PING a compliant peer can send during one heartbeat timeout, since a stalled
 * path may deliver them all at once. A PING with no credit left is a strike; strikes
 * reset once the credits are back at the cap. gRPC servers send GOAWAY "too_many_pings"
 * after 2 strikes; 3 leaves room for one more scheduling accident.
 */
export const PING_POLICY_DEFAULTS = Object.freeze({
  /** Strikes after which the server closes with CLOSE(POLICY_VIOLATION); 0 disables. */
  maxPingStrikes: 3,
});

/** Server-side heartbeat-flood policy. */
export interface PingPolicyOptions {
  /**
   * Close a client with CLOSE(policy violation) after this many PINGs sent faster than
   * its granted interval allows (0: never). @default 3
   */
  maxPingStrikes?: number;
}

/** Validates the ping policy (server side). */
export function resolvePingPolicy(o: PingPolicyOptions): { maxPingStrikes: number } {
  return {
    maxPingStrikes: intOption(
      'maxPingStrikes',
      o.maxPingStrikes,
      PING_POLICY_DEFAULTS.maxPingStrikes,
      0,
      1000,
    ),
  };
}

/** Options both a client and a server connection accept. */
export interface CommonOptions {
  /** Clock for every timer and timestamp (tests pass a FakeClock). @default systemClock */
  clock?: Clock;
  /** Largest frame in bytes. @default 1048576 */
  maxFrame?: number;
  /** Handshake deadline in ms. @default 10000 */
  handshakeTimeout?: number;
  /** Write-stall deadline in ms. @default 30000 */
  writeTimeout?: number;
  /** Cumulative ACK every N messages. @default 32 */
  ackEvery?: number;
  /** Cumulative ACK at most this late in ms. @default 20 */
  ackDelay?: number;
  /**
   * How long request() waits for its reply, reconnects included, in ms; 0 waits without
   * limit. A call's own `timeout` overrides it. @default 30000
   */
  requestTimeout?: number;
  /**
   * Replay-buffer bytes above which send() returns false (each message counted as its
   * payload plus 160 bytes). @default 1048576, or maxBufferedBytes when that is lower
   */
  highWaterMark?: number;
  /**
   * Replay-buffer bytes above which send() throws HL_ERR_BUFFER_FULL (each message
   * counted as its payload plus 160 bytes, what holding it costs). @default 16777216
   */
  maxBufferedBytes?: number;
  /** OS keepalive idle delay in ms (0 disables). @default 30000 */
  keepAliveDelay?: number;
  /**
   * A frame that started arriving must be complete within this many ms plus one second
   * per `minDataRate` bytes of it received, or the link closes with CLOSE(protocol error)
   * and `HL_ERR_SLOW_FRAME`. @default 30000
   */
  partialFrameTimeout?: number;
  /** Minimum average rate of an incomplete frame in bytes/s (0: no limit). @default 1024 */
  minDataRate?: number;
  /** Failure detector behind SUSPECT and DEAD. @default fixedDetector() */
  detector?: DetectorFactory;
  /**
   * TCP keepalive and TCP_USER_TIMEOUT per connection, applied after the handshake (the
   * defaults derive from the granted heartbeat; see {@link TcpOptions} and
   * docs/detection.md). `false` leaves the socket as Node makes it (only
   * `keepAliveDelay` applies). @default {} (every field derived)
   */
  tcp?: TcpOptions | false;
}

/** Heartbeat timing for one link. */
export interface HeartbeatSettings {
  interval: number;
  timeout: number;
  suspectAfter: number;
}

/** Derives suspectAfter: 1.5 intervals, kept strictly below the timeout. */
export function deriveSuspectAfter(interval: number, timeout: number): number {
  return Math.max(
    1,
    Math.min(Math.round(interval * HEARTBEAT_DEFAULTS.suspectFactor), timeout - 1),
  );
}

/** Builds the settings of one link from a granted interval and timeout. */
export function heartbeatSettings(interval: number, timeout: number): HeartbeatSettings {
  return Object.freeze({ interval, timeout, suspectAfter: deriveSuspectAfter(interval, timeout) });
}

// ---------------------------------------------------------------------------------------
// Validators: every option of every module is checked by one of these, so that a bad
// value always reads `option "<name>" must be ..., got <value>`. Each returns the fallback
// when the value is undefined (never for null or NaN: those are mistakes, not omissions).

/** "in [min, max]", or ">= min" when there is no upper bound worth printing. */
function range(min: number, max: number): string {
  return max >= Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
}

/** Refuses a left-out option that has no default; pass its value on to its validator. */
export function requiredOption<T>(name: string, value: T | undefined): T {
  if (value === undefined) throw new InvalidArgumentError(`option "${name}" is required`);
  return value;
}

/** Checks an integer option in [min, max]; returns the default when undefined. */
export function intOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(
      `option "${name}" must be an integer ${range(min, max)}, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Checks a number option in [min, max]. Infinity passes when max is Infinity (no limit);
 * with a finite max of Number.MAX_VALUE the option must be finite.
 */
export function numberOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min = 0,
  max = Number.POSITIVE_INFINITY,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || value > max) {
    const what =
      max === Number.MAX_VALUE ? `a finite number >= ${min}` : `a number ${range(min, max)}`;
    throw new InvalidArgumentError(`option "${name}" must be ${what}, got ${String(value)}`);
  }
  return value;
}

/**
 * Checks a number above 0 and at most `max`: a rate or a delay (Infinity, for no limit,
 * passes when max is Infinity).
 */
export function positiveOption(
  name: string,
  value: number | undefined,
  fallback: number,
  max = Number.POSITIVE_INFINITY,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || value > max) {
    const what =
      max === Number.POSITIVE_INFINITY
        ? 'a positive number or Infinity'
        : `a number in (0, ${max}]`;
    throw new InvalidArgumentError(`option "${name}" must be ${what}, got ${String(value)}`);
  }
  return value;
}

/** Checks a count limit: a positive integer, or Infinity for no limit. */
export function limitOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError(
      `option "${name}" must be a positive integer or Infinity, got ${String(value)}`,
    );
  }
  return value;
}

/** Checks a boolean option. */
export function boolOption(name: string, value: boolean | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw new InvalidArgumentError(`option "${name}" must be a boolean, got ${String(value)}`);
  }
  return value;
}

/** Checks a non-empty string option (a host, an id). */
export function stringOption(name: string, value: string | undefined, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value === '') {
    throw new InvalidArgumentError(
      `option "${name}" must be a non-empty string, got ${String(value)}`,
    );
  }
  return value;
}

/** Checks one of a fixed set of values (a mode). */
export function choiceOption<T extends string>(
  name: string,
  value: T | undefined,
  fallback: T,
  choices: readonly T[],
): T {
  if (value === undefined) return fallback;
  if (!choices.includes(value)) {
    throw new InvalidArgumentError(
      `option "${name}" must be one of ${choices.map((c) => `'${c}'`).join(', ')}, got ${String(value)}`,
    );
  }
  return value;
}

/** Checks a hook option: a function, or undefined (then null: no hook). */
export function functionOption<F extends (...args: never[]) => unknown>(
  name: string,
  value: F | undefined,
): F | null {
  if (value === undefined) return null;
  if (typeof value !== 'function') {
    throw new InvalidArgumentError(`option "${name}" must be a function`);
  }
  return value;
}

/**
 * The byte budget a server shares between its connections' replay buffers and partial
 * frames (`maxTotalBufferedBytes`): what a connection needs of it. session/budget.ts
 * `MemoryBudget` is the implementation the server makes.
 */
export interface SharedBudget {
  /** The cap (bytes). */
  readonly limit: number;
  /** Bytes reserved now. */
  readonly used: number;
  /** Reserves `n` bytes for a holder that holds `held` already; false when they do not fit. */
  tryReserve(n: number, held?: number): boolean;
  /** Reserves `n` bytes even past the limit (what is held already). */
  reserve(n: number): void;
  /** Gives back `n` bytes reserved earlier. */
  release(n: number): void;
}

/** Resolved transport settings shared by client and server connections. */
export interface ResolvedCommon {
  readonly clock: Clock;
  readonly maxFrame: number;
  readonly handshakeTimeout: number;
  readonly writeTimeout: number;
  readonly ackEvery: number;
  readonly ackDelay: number;
  readonly requestTimeout: number;
  readonly highWaterMark: number;
  readonly maxBufferedBytes: number;
  readonly keepAliveDelay: number;
  readonly partialFrameTimeout: number;
  /** 0: no limit on how slowly a frame may arrive. */
  readonly minDataRate: number;
  readonly socketLowWater: number;
  readonly detector: DetectorFactory;
  /** TCP options given explicitly (undefined fields derive from the heartbeat), or false. */
  readonly tcp: ResolvedTcpOptions | false;
  /** PINGs sent too fast before CLOSE(policy violation); 0 (no policing) unless a server sets it. */
  readonly maxPingStrikes: number;
  /** The byte budget every connection's replay buffer draws from (a server's); null for none. */
  readonly budget: SharedBudget | null;
}

/** Validates the common options; `clock` and `detector` defaults are passed in. */
export function resolveCommon(
  o: CommonOptions,
  clock: Clock,
  detector: DetectorFactory,
): ResolvedCommon {
  const d = CONNECTION_DEFAULTS;
  const maxFrame = intOption('maxFrame', o.maxFrame, d.maxFrame, 64, 0xffff_ffff);
  const maxBufferedBytes = intOption('maxBufferedBytes', o.maxBufferedBytes, d.maxBufferedBytes, 1);
  // A cap below the default soft limit brings the soft limit down with it.
  const highWaterMark = intOption(
    'highWaterMark',
    o.highWaterMark,
    Math.min(d.highWaterMark, maxBufferedBytes),
    1,
  );
  if (maxBufferedBytes < highWaterMark) {
    throw new InvalidArgumentError('option "maxBufferedBytes" must be >= "highWaterMark"');
  }
  const keepAliveDelay = intOption('keepAliveDelay', o.keepAliveDelay, d.keepAliveDelay, 0);
  if (keepAliveDelay > 0 && keepAliveDelay < 1000) {
    // Node silently keeps the kernel default (2 h) for delays under one second.
    throw new InvalidArgumentError('option "keepAliveDelay" must be 0 (off) or at least 1000 ms');
  }
  return Object.freeze({
    clock: o.clock ?? clock,
    maxFrame,
    handshakeTimeout: intOption('handshakeTimeout', o.handshakeTimeout, d.handshakeTimeout, 1),
    writeTimeout: intOption('writeTimeout', o.writeTimeout, HEARTBEAT_DEFAULTS.writeTimeout, 1),
    ackEvery: intOption('ackEvery', o.ackEvery, d.ackEvery, 1),
    ackDelay: intOption('ackDelay', o.ackDelay, d.ackDelay, 0),
    requestTimeout: intOption('requestTimeout', o.requestTimeout, d.requestTimeout, 0, 0x7fff_ffff),
    highWaterMark,
    maxBufferedBytes,
    keepAliveDelay,
    partialFrameTimeout: intOption(
      'partialFrameTimeout',
      o.partialFrameTimeout,
      d.partialFrameTimeout,
      1,
    ),
    minDataRate: intOption('minDataRate', o.minDataRate, d.minDataRate, 0),
    socketLowWater: d.socketLowWater,
    detector: o.detector ?? detector,
    tcp: resolveTcpOptions(o.tcp, o.keepAliveDelay === undefined ? undefined : keepAliveDelay),
    // Only a server polices its peer's PINGs; it overrides this from its own options.
    maxPingStrikes: 0,
    // Only a server shares one budget between connections; it sets its own.
    budget: null,
  });
}

// ---------------------------------------------------------------------------------------
// TCP socket options

/**
 * TCP options of one connection, all in ms (the keepalive ones whole seconds). Every
 * field left out is derived from the granted heartbeat by {@link tcpSettingsFor}; a value
 * the kernel would refuse or round is an InvalidArgumentError, never silently ignored.
 */
export interface TcpOptions {
  /**
   * TCP_KEEPIDLE: silence before the kernel's first keepalive probe. The heartbeat already
   * covers every link; keepalive is the backstop for when it cannot act (heartline's
   * process stalled, the heartbeat off), so its probes start only after the heartbeat's
   * own deadline and a live link is never probed.
   * @default timeout + interval, rounded up to whole seconds (at least 1000)
   */
  keepAliveIdle?: number;
  /**
   * TCP_KEEPINTVL: time between unanswered probes.
   * @default the heartbeat interval, rounded up to whole seconds (at least 1000)
   */
  keepAliveInterval?: number;
  /**
   * TCP_KEEPCNT: unanswered probes before the kernel drops the connection, which it then
   * does at most idle + interval x count after the peer was last heard. On Linux a
   * TCP_USER_TIMEOUT shorter than the idle time (the default) ends it sooner: the first
   * probe left unanswered for one interval.
   * @default 3
   */
  keepAliveCount?: number;
  /**
   * TCP_USER_TIMEOUT (Linux): longest time sent data may stay unacknowledged, and the
   * bound on keepalive probing, before the kernel drops the connection with ETIMEDOUT.
   * Without it, data in flight to a vanished peer keeps the kernel retransmitting for
   * about 15 minutes (tcp_retries2 = 15) and keepalive never fires. 0 keeps the kernel
   * default. @default the heartbeat timeout
   */
  userTimeout?: number;
}

/** {@link TcpOptions} validated: explicit values, with `undefined` meaning "derive". */
export interface ResolvedTcpOptions {
  readonly keepAlive: boolean;
  readonly keepAliveIdle: number | undefined;
  readonly keepAliveInterval: number | undefined;
  readonly keepAliveCount: number | undefined;
  readonly userTimeout: number | undefined;
}

/** How the TCP options are derived when not given; see {@link tcpSettingsFor}. */
export const TCP_DEFAULTS = Object.freeze({
  /**
   * Probes after the idle time: where no user timeout cuts probing short (off Linux, or
   * `userTimeout: 0`), one lost probe is not fatal.
   */
  keepAliveCount: 3,
});

/**
 * Validates the `tcp` option. `keepAliveDelay` is the caller's explicit keepAliveDelay
 * (undefined when not given): it becomes the idle time unless `tcp.keepAliveIdle` is
 * given, and 0 (keepalive off) conflicts with any explicit keepalive field.
 * @throws InvalidArgumentError naming the option.
 */
export function resolveTcpOptions(
  tcp: TcpOptions | false | undefined,
  keepAliveDelay: number | undefined,
): ResolvedTcpOptions | false {
  if (tcp === false) return false;
  if (tcp !== undefined && (typeof tcp !== 'object' || tcp === null)) {
    throw new InvalidArgumentError(`option "tcp" must be an object or false, got ${String(tcp)}`);
  }
  const t = tcp ?? {};
  for (const key of Object.keys(t)) {
    if (!['keepAliveIdle', 'keepAliveInterval', 'keepAliveCount', 'userTimeout'].includes(key)) {
      throw new InvalidArgumentError(`option "tcp.${key}" is not a TCP option`);
    }
  }
  const keepAlive = keepAliveDelay !== 0;
  if (!keepAlive && (t.keepAliveIdle ?? t.keepAliveInterval ?? t.keepAliveCount) !== undefined) {
    throw new InvalidArgumentError(
      'option "keepAliveDelay" is 0 (keepalive off) but "tcp" sets keepalive fields',
    );
  }
  // keepAliveDelay always was whole seconds (Node floors it); keep that meaning.
  const idleFromDelay =
    keepAliveDelay !== undefined && keepAliveDelay > 0
      ? Math.min(Math.floor(keepAliveDelay / 1000) * 1000, TCP_OPTION_LIMITS.keepAliveIdleMax)
      : undefined;
  if (
    t.keepAliveIdle !== undefined &&
    idleFromDelay !== undefined &&
    t.keepAliveIdle !== idleFromDelay
  ) {
    throw new InvalidArgumentError(
      'options "keepAliveDelay" and "tcp.keepAliveIdle" conflict: give one of them',
    );
  }
  const resolved: ResolvedTcpOptions = Object.freeze({
    keepAlive,
    keepAliveIdle: t.keepAliveIdle ?? idleFromDelay,
    keepAliveInterval: t.keepAliveInterval,
    keepAliveCount: t.keepAliveCount,
    userTimeout: t.userTimeout,
  });
  checkTcpSocketSettings(resolved);
  return resolved;
}

const SECOND = 1000;
const ceilSeconds = (ms: number): number => Math.ceil(ms / SECOND) * SECOND;

/**
 * The socket options heartline applies to a link with the granted heartbeat `interval`
 * and `timeout` (ms), given the `tcp` option (see {@link deriveTcpSettings}).
 * @throws InvalidArgumentError naming an invalid `tcp` field.
 * @example
 * tcpSettingsFor({ interval: 1000, timeout: 3000 });
 * // { keepAlive: true, keepAliveIdle: 4000, keepAliveInterval: 1000, keepAliveCount: 3, userTimeout: 3000 }
 */
export function tcpSettingsFor(
  heartbeat: { interval: number; timeout: number },
  tcp: TcpOptions = {},
): TcpSocketSettings {
  const resolved = resolveTcpOptions(tcp, undefined);
  if (resolved === false) throw new InvalidArgumentError('option "tcp" must be an object');
  return deriveTcpSettings(resolved, heartbeat);
}

/**
 * The socket options for a link with the granted `interval` and `timeout` (ms):
 * - keepAliveIdle = timeout + interval, rounded up to whole seconds: the kernel probes
 *   only a link the heartbeat would already have closed (its bound is timeout plus one
 *   interval), so a live link, heard at least once per interval, is never probed and
 *   keepalive adds no packets to the heartbeat's (with idle = interval at 1 s, the
 *   kernel probed each socket about every five seconds: bench/keepalive.ts);
 * - keepAliveInterval = interval (whole seconds, at least 1 s), keepAliveCount = 3: the
 *   kernel drops a silent connection at most idle + interval x count after the peer was
 *   last heard (off Linux, or with `userTimeout: 0`);
 * - userTimeout = timeout: data the peer never acknowledges (a blackhole with data in
 *   flight, where keepalive never probes) is given up after the same bound as silence.
 *   On Linux it also ends keepalive probing at the first probe left unanswered once that
 *   much time passed since the last packet heard, so with the defaults the kernel gives
 *   up after idle + one keepAliveInterval.
 * Explicit values in `tcp` win. The application heartbeat fires first: it counts from the
 * last byte heard, which is never later than the first unacknowledged byte sent, and the
 * kernel's keepalive starts only after the heartbeat's deadline.
 */
export function deriveTcpSettings(
  tcp: ResolvedTcpOptions,
  heartbeat: { interval: number; timeout: number },
): TcpSocketSettings {
  const L = TCP_OPTION_LIMITS;
  const userTimeout = tcp.userTimeout ?? Math.min(Math.round(heartbeat.timeout), L.userTimeoutMax);
  if (!tcp.keepAlive) return { keepAlive: false, userTimeout };
  const idle =
    tcp.keepAliveIdle ??
    Math.min(
      Math.max(SECOND, ceilSeconds(heartbeat.timeout + heartbeat.interval)),
      L.keepAliveIdleMax,
    );
  const interval =
    tcp.keepAliveInterval ??
    Math.min(Math.max(SECOND, ceilSeconds(heartbeat.interval)), L.keepAliveIntervalMax);
  const count = tcp.keepAliveCount ?? TCP_DEFAULTS.keepAliveCount;
  return {
    keepAlive: true,
    keepAliveIdle: idle,
    keepAliveInterval: interval,
    keepAliveCount: count,
    userTimeout,
  };
}
