/**
 * TCP socket options per connection: keepalive idle, interval and probe count, and
 * TCP_USER_TIMEOUT. Node itself sets only the keepalive idle time (`setKeepAlive(true, ms)`:
 * whole seconds, and libuv forces interval 1 s and count 10 on every call); the interval
 * and count arguments exist only from Node 24.19 / 26.4, and no Node version sets
 * TCP_USER_TIMEOUT. On Linux the missing options are set with setsockopt(2) on the
 * socket's file descriptor through koffi, an optional dependency loaded lazily on first
 * use. Where neither can set an option, {@link tcpOptionsSupport} says so and
 * {@link applyTcpOptions} emits one process warning (code `HL_WARN_TCP_OPTIONS`).
 *
 * Everything here takes and returns milliseconds; the kernel's keepalive options are in
 * whole seconds, so their values must be multiples of 1000 (checked up front by
 * `resolveTcpOptions` in options.ts, never rounded silently).
 */

import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { InvalidArgumentError } from '../errors.js';

/** The socket options one connection gets, in ms. `undefined` leaves an option as it is. */
export interface TcpSocketSettings {
  /** SO_KEEPALIVE on or off. When false the keepalive fields are not applied. */
  keepAlive: boolean;
  /** TCP_KEEPIDLE: silence before the first probe (ms, a multiple of 1000). */
  keepAliveIdle?: number;
  /** TCP_KEEPINTVL: time between probes (ms, a multiple of 1000). */
  keepAliveInterval?: number;
  /** TCP_KEEPCNT: unanswered probes before the kernel drops the connection. */
  keepAliveCount?: number;
  /** TCP_USER_TIMEOUT: longest time sent data may stay unacknowledged (ms; 0 = kernel default). */
  userTimeout?: number;
}

/** Which options this process can set, and through what. */
export interface TcpOptionsSupport {
  /** `process.platform` as seen when support was probed. */
  readonly platform: string;
  /** What sets the options Node cannot: 'koffi' (setsockopt), or 'none'. */
  readonly provider: 'koffi' | 'none';
  /** Node's own setKeepAlive takes interval and count (Node 24.19+ / 26.4+). */
  readonly nodeKeepAliveTuning: boolean;
  readonly keepAliveIdle: boolean;
  readonly keepAliveInterval: boolean;
  readonly keepAliveCount: boolean;
  readonly userTimeout: boolean;
  /** Why the provider is missing, when it is. */
  readonly reason?: string;
}

/** The options read back from a socket with getsockopt(2), in ms. */
export interface TcpOptionValues {
  keepAlive: boolean;
  keepAliveIdle: number;
  keepAliveInterval: number;
  keepAliveCount: number;
  userTimeout: number;
}

/** What {@link applyTcpOptions} did. */
export interface TcpApplyResult {
  /** Options set on the socket (or, for a socket still connecting, to be set on 'connect'). */
  applied: (keyof TcpSocketSettings)[];
  /** Options asked for that this platform cannot set. */
  unsupported: (keyof TcpSocketSettings)[];
  /** True when the socket was still connecting and the options wait for 'connect'. */
  deferred: boolean;
}

/** Kernel limits (Linux include/net/tcp.h): MAX_TCP_KEEPIDLE/KEEPINTVL 32767 s, KEEPCNT 127. */
export const TCP_OPTION_LIMITS = Object.freeze({
  keepAliveIdleMax: 32_767_000,
  keepAliveIntervalMax: 32_767_000,
  keepAliveCountMax: 127,
  /** TCP_USER_TIMEOUT is an int of ms. */
  userTimeoutMax: 0x7fff_ffff,
});

/** The warning code emitted once per process where options cannot be set. */
export const TCP_OPTIONS_WARNING = 'HL_WARN_TCP_OPTIONS';

// Linux option numbers (include/uapi/linux/tcp.h, asm-generic/socket.h).
const SOL_SOCKET = 1;
const SO_KEEPALIVE = 9;
const IPPROTO_TCP = 6;
const TCP_KEEPIDLE = 4;
const TCP_KEEPINTVL = 5;
const TCP_KEEPCNT = 6;
const TCP_USER_TIMEOUT = 18;

type SetSockOpt = (
  fd: number,
  level: number,
  name: number,
  value: Int32Array,
  len: number,
) => number;
type GetSockOpt = (
  fd: number,
  level: number,
  name: number,
  value: Int32Array,
  len: Uint32Array,
) => number;

interface Provider {
  setsockopt: SetSockOpt;
  getsockopt: GetSockOpt;
  errno: () => number;
}

let provider: Provider | null | undefined;
let providerError = '';
let support: TcpOptionsSupport | undefined;
let warned = false;

/** Node 24.19+ and 26.4+ take interval and count in setKeepAlive. */
function nodeHasKeepAliveTuning(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 26 || (major === 26 && minor >= 4) || (major === 24 && minor >= 19);
}

/**
 * Loads koffi and binds setsockopt/getsockopt from the C library, once. Lazy, so that
 * importing heartline never loads a native module, and optional: any failure (koffi not
 * installed, no prebuilt binary, no libc by that name) leaves the provider absent.
 */
function loadProvider(): Provider | null {
  if (provider !== undefined) return provider;
  provider = null;
  if (process.platform !== 'linux') {
    providerError = `setsockopt options are implemented for Linux only (this is ${process.platform})`;
    return provider;
  }
  try {
    const require = createRequire(import.meta.url);
    const koffi = require('koffi') as {
      load(path: string): { func(signature: string): unknown };
      errno(): number;
    };
    let lib: { func(signature: string): unknown } | null = null;
    const errors: string[] = [];
    // glibc, then musl (Alpine) under its two usual names.
    for (const name of [
      'libc.so.6',
      'libc.so',
      'libc.musl-x86_64.so.1',
      'libc.musl-aarch64.so.1',
    ]) {
      try {
        lib = koffi.load(name);
        break;
      } catch (err) {
        errors.push(`${name}: ${(err as Error).message}`);
      }
    }
    if (!lib) throw new Error(`no C library found (${errors.join('; ')})`);
    provider = {
      setsockopt: lib.func('int setsockopt(int, int, int, _In_ int *, uint32_t)') as SetSockOpt,
      getsockopt: lib.func(
        'int getsockopt(int, int, int, _Out_ int *, _Inout_ uint32_t *)',
      ) as GetSockOpt,
      errno: () => koffi.errno(),
    };
  } catch (err) {
    providerError = `the optional dependency koffi could not be loaded: ${(err as Error).message}`;
    provider = null;
  }
  return provider;
}

/**
 * Which TCP options this process can set per connection. Probes once (loading koffi on
 * Linux) and caches the answer.
 * @example
 * if (!tcpOptionsSupport().userTimeout) console.warn('no TCP_USER_TIMEOUT here');
 */
export function tcpOptionsSupport(): TcpOptionsSupport {
  if (support) return support;
  const p = loadProvider();
  const nodeTuning = nodeHasKeepAliveTuning();
  support = Object.freeze({
    platform: process.platform,
    provider: p ? 'koffi' : 'none',
    nodeKeepAliveTuning: nodeTuning,
    // Node's setKeepAlive sets the idle time everywhere it runs.
    keepAliveIdle: true,
    keepAliveInterval: p !== null || nodeTuning,
    keepAliveCount: p !== null || nodeTuning,
    userTimeout: p !== null,
    ...(p ? {} : { reason: providerError }),
  });
  return support;
}

/** The socket's file descriptor, or -1 (not connected, closed, or not a real fd). */
function fdOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** The int passed to setsockopt/getsockopt and its length: shared, calls are synchronous. */
const optValue = new Int32Array(1);
const optLength = new Uint32Array(1);

function setInt(p: Provider, fd: number, level: number, name: number, value: number): void {
  optValue[0] = value;
  if (p.setsockopt(fd, level, name, optValue, 4) !== 0) {
    const errno = p.errno();
    const err = new Error(`setsockopt(${name}) = ${value} failed with errno ${errno}`);
    (err as Error & { errno: number }).errno = errno;
    throw err;
  }
}

function getInt(p: Provider, fd: number, level: number, name: number): number {
  optValue[0] = 0;
  optLength[0] = 4;
  if (p.getsockopt(fd, level, name, optValue, optLength) !== 0) {
    throw new Error(`getsockopt(${name}) failed with errno ${p.errno()}`);
  }
  return optValue[0]!;
}

/**
 * Per-socket state, so that a later setKeepAlive can be followed by a re-apply: the probe
 * interval (s) and count we set, packed into one small integer (interval * 128 + count;
 * 0 for "not set", count <= 127), so a server's thousands of sockets hold no object each.
 * Absent or 0 when keepalive is off or neither was set.
 */
const kProbes = Symbol('heartline.tcpProbes');
type Tracked = Socket & { [kProbes]?: number };

function packProbes(s: TcpSocketSettings): number {
  if (!s.keepAlive) return 0;
  return ((s.keepAliveInterval ?? 0) / 1000) * 128 + (s.keepAliveCount ?? 0);
}

function unpackProbes(packed: number): { interval?: number; count?: number } {
  const interval = Math.floor(packed / 128) * 1000;
  const count = packed % 128;
  return {
    ...(interval > 0 ? { interval } : {}),
    ...(count > 0 ? { count } : {}),
  };
}

/**
 * Applies `settings` to a connected socket (or, while it is still connecting, on its
 * 'connect'). Keepalive idle goes through Node's own `setKeepAlive` (which keeps Node's
 * view of the socket in step); interval and count through Node where it takes them,
 * else setsockopt; TCP_USER_TIMEOUT through setsockopt. The socket's `setKeepAlive` is
 * wrapped, on this socket only, so that a later call (which makes libuv reset interval
 * and count to 1 s and 10) is followed by setting interval and count again.
 *
 * Options this platform cannot set are reported in `unsupported`, and the first time
 * that happens in the process a warning with code {@link TCP_OPTIONS_WARNING} is emitted.
 * @throws InvalidArgumentError for a value the kernel would refuse or round.
 * @throws Error when the kernel refuses a valid value (errno on the error).
 */
export function applyTcpOptions(socket: Socket, settings: TcpSocketSettings): TcpApplyResult {
  checkTcpSocketSettings(settings);
  const can = tcpOptionsSupport();
  const wanted = (Object.keys(settings) as (keyof TcpSocketSettings)[]).filter(
    (k) =>
      settings[k] !== undefined &&
      (k !== 'keepAliveIdle' && k !== 'keepAliveInterval' && k !== 'keepAliveCount'
        ? true
        : settings.keepAlive),
  );
  const unsupported = wanted.filter((k) => k !== 'keepAlive' && !can[k]);
  const applied = wanted.filter((k) => !unsupported.includes(k));
  if (unsupported.length > 0) warnOnce(unsupported, can);
  if (socket.destroyed) return { applied: [], unsupported, deferred: false };
  if (socket.connecting) {
    socket.once('connect', () => {
      if (socket.destroyed) return;
      try {
        setAll(socket as Tracked, settings, can);
      } catch (err) {
        // Nobody is there to catch it now: report it the way the platform gap is reported.
        if (!socket.destroyed) {
          process.emitWarning(`heartline could not set TCP options: ${(err as Error).message}`, {
            code: TCP_OPTIONS_WARNING,
            type: 'HeartlineWarning',
          });
        }
      }
    });
    return { applied, unsupported, deferred: true };
  }
  setAll(socket as Tracked, settings, can);
  return { applied, unsupported, deferred: false };
}

function setAll(socket: Tracked, s: TcpSocketSettings, can: TcpOptionsSupport): void {
  socket[kProbes] = packProbes(s);
  wrapSetKeepAlive(socket);
  if (s.keepAlive) {
    // Node keeps its own record of keepalive and re-applies it on reconnect-like paths;
    // going through it keeps that record right. 0 = leave the idle time as it is.
    if (
      can.nodeKeepAliveTuning &&
      s.keepAliveInterval !== undefined &&
      s.keepAliveCount !== undefined
    ) {
      (
        originalSetKeepAlive(socket) as (e: boolean, d: number, i: number, c: number) => Socket
      ).call(socket, true, s.keepAliveIdle ?? 0, s.keepAliveInterval, s.keepAliveCount);
    } else {
      originalSetKeepAlive(socket).call(socket, true, s.keepAliveIdle ?? 0);
      setProbes(socket, s.keepAliveInterval, s.keepAliveCount);
    }
  } else {
    originalSetKeepAlive(socket).call(socket, false);
  }
  if (s.userTimeout !== undefined && can.userTimeout) {
    const p = loadProvider();
    const fd = fdOf(socket);
    if (p && fd >= 0) setInt(p, fd, IPPROTO_TCP, TCP_USER_TIMEOUT, s.userTimeout);
  }
}

/** Sets interval and count with setsockopt (libuv just reset them to 1 s and 10). */
function setProbes(socket: Socket, interval?: number, count?: number): void {
  const p = loadProvider();
  const fd = fdOf(socket);
  if (!p || fd < 0) return;
  if (interval !== undefined) setInt(p, fd, IPPROTO_TCP, TCP_KEEPINTVL, interval / 1000);
  if (count !== undefined) setInt(p, fd, IPPROTO_TCP, TCP_KEEPCNT, count);
}

/** A setKeepAlive some other code installed on the socket before us (rare): chained to. */
const kOriginal = Symbol('heartline.setKeepAlive');
type Wrapped = Tracked & { [kOriginal]?: Socket['setKeepAlive'] };

/** The setKeepAlive our wrapper stands in front of: the class's, unless someone else's. */
function originalSetKeepAlive(socket: Wrapped): Socket['setKeepAlive'] {
  if (socket[kOriginal]) return socket[kOriginal];
  if (socket.setKeepAlive === keepAliveWrapper) {
    return (Object.getPrototypeOf(socket) as Socket).setKeepAlive;
  }
  return socket.setKeepAlive;
}

/**
 * Stands in for a socket's setKeepAlive (one function for every socket, so wrapping
 * allocates nothing per connection): the 2-argument form makes libuv reset interval and
 * count, so ours are set again after it while keepalive is on. A caller who passes
 * interval and count (Node 24.19+) has chosen them: theirs are kept.
 */
function keepAliveWrapper(this: Wrapped, ...args: unknown[]): Socket {
  const original = originalSetKeepAlive(this) as (...a: unknown[]) => Socket;
  original.apply(this, args);
  const packed = this[kProbes] ?? 0;
  if (args[0] === true && args.length <= 2 && packed !== 0 && !this.destroyed) {
    try {
      const { interval: i, count: c } = unpackProbes(packed);
      if (tcpOptionsSupport().nodeKeepAliveTuning && i !== undefined && c !== undefined) {
        original.call(this, true, args[1] ?? 0, i, c);
      } else {
        setProbes(this, i, c);
      }
    } catch {
      // the socket is closing: nothing left to keep alive
    }
  }
  return this;
}

/** Wraps this socket's setKeepAlive so that interval and count survive a later call. */
function wrapSetKeepAlive(socket: Wrapped): void {
  if (socket.setKeepAlive === keepAliveWrapper) return;
  // Someone else's own wrapper: keep it to chain to (the class's is found on the prototype).
  if (Object.hasOwn(socket, 'setKeepAlive')) socket[kOriginal] = socket.setKeepAlive;
  socket.setKeepAlive = keepAliveWrapper as Socket['setKeepAlive'];
}

/**
 * Reads the options back with getsockopt(2), in ms, or returns null where that is not
 * possible (no provider, or the socket has no open file descriptor).
 */
export function readTcpOptions(socket: Socket): TcpOptionValues | null {
  const p = loadProvider();
  const fd = fdOf(socket);
  if (!p || fd < 0 || socket.destroyed) return null;
  return {
    keepAlive: getInt(p, fd, SOL_SOCKET, SO_KEEPALIVE) !== 0,
    keepAliveIdle: getInt(p, fd, IPPROTO_TCP, TCP_KEEPIDLE) * 1000,
    keepAliveInterval: getInt(p, fd, IPPROTO_TCP, TCP_KEEPINTVL) * 1000,
    keepAliveCount: getInt(p, fd, IPPROTO_TCP, TCP_KEEPCNT),
    userTimeout: getInt(p, fd, IPPROTO_TCP, TCP_USER_TIMEOUT),
  };
}

function warnOnce(unsupported: (keyof TcpSocketSettings)[], can: TcpOptionsSupport): void {
  if (warned) return;
  warned = true;
  process.emitWarning(
    `heartline cannot set ${unsupported.join(', ')} on this platform (${can.reason ?? 'unsupported'}); ` +
      'the application heartbeat still detects dead peers, but the kernel keeps its own ' +
      'defaults for these. Set the "tcp" option to false to silence this warning.',
    { code: TCP_OPTIONS_WARNING, type: 'HeartlineWarning' },
  );
}

function checkSeconds(name: string, value: number | undefined, max: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < 1000 || value > max || value % 1000 !== 0) {
    throw new InvalidArgumentError(
      `option "tcp.${name}" must be a whole number of seconds in ms, in [1000, ${max}], got ${String(value)}`,
    );
  }
}

/**
 * Checks settings against what the kernel accepts without rounding.
 * @throws InvalidArgumentError naming the option.
 */
export function checkTcpSocketSettings(s: TcpSocketSettings): void {
  if (typeof s.keepAlive !== 'boolean') {
    throw new InvalidArgumentError(
      `option "tcp.keepAlive" must be a boolean, got ${String(s.keepAlive)}`,
    );
  }
  const L = TCP_OPTION_LIMITS;
  checkSeconds('keepAliveIdle', s.keepAliveIdle, L.keepAliveIdleMax);
  checkSeconds('keepAliveInterval', s.keepAliveInterval, L.keepAliveIntervalMax);
  const count = s.keepAliveCount;
  if (
    count !== undefined &&
    (!Number.isInteger(count) || count < 1 || count > L.keepAliveCountMax)
  ) {
    throw new InvalidArgumentError(
      `option "tcp.keepAliveCount" must be an integer in [1, ${L.keepAliveCountMax}], got ${String(count)}`,
    );
  }
  const ut = s.userTimeout;
  if (ut !== undefined && (!Number.isInteger(ut) || ut < 0 || ut > L.userTimeoutMax)) {
    throw new InvalidArgumentError(
      `option "tcp.userTimeout" must be an integer in [0, ${L.userTimeoutMax}] ms, got ${String(ut)}`,
    );
  }
}
