/**
 * Admission control: which new sockets and sessions a server takes on. A refused socket
 * gets `CLOSE(OVERLOADED)` with a retry-after hint and is closed; connections already
 * admitted are never touched. Four limits, each an option of the server:
 *
 * - `maxConnections`: open sockets in total (handshaking and connected);
 * - `maxConnectionsPerAddress`: open sockets from one client address (an IPv6 address
 *   counts by its /64 prefix, the block one host usually owns);
 * - `maxSessions`: sessions, including those waiting for a resume;
 * - `maxSessionsPerAddress` / `maxSessionsPerIdentity`: sessions created from one client
 *   address, and bound to one identity (the server's session quota makes room by evicting
 *   abandoned sessions before refusing, see `session-quota.ts`);
 * - `acceptRate` / `acceptBurst`: a token bucket on accepted sockets.
 *
 * The decisions are pure: {@link Admission} takes the time as an argument (the server reads
 * its injected clock) and randomness is injected, so unit tests drive it without sockets.
 * The socket helpers at the end ({@link trackSocket}, {@link refuseOverloaded}) are the only
 * I/O here; they take any transport (a TCP socket is one), so every kind is admitted alike.
 */

import { readFileSync } from 'node:fs';
import { HeartlineError, InvalidArgumentError } from '../errors.js';
import type { CloseInfo } from '../link.js';
import { refuseSocket } from '../net/refuse.js';
import { intOption, limitOption, positiveOption } from '../options.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { TimingWheel } from '../time/wheel.js';
import type { Transport } from '../transport/transport.js';

/**
 * Admission defaults and why:
 * - maxConnections: 100,000, or the process's open-file limit minus a reserve of 256 when
 *   that is lower. Every connection holds one file descriptor, and the open-file limit is
 *   often far below 100,000 (docs/benchmarks.md, "The machine", gives an example). Past
 *   the limit the kernel refuses `accept()` with EMFILE and libuv drops the socket without
 *   a word; refusing earlier means every turned-away client gets CLOSE(overloaded) with a
 *   hint and the process keeps descriptors for its listening socket, stdio, logs, a Redis
 *   session store and sockets being refused (each holds its descriptor for up to a second).
 * - maxConnectionsPerAddress: unlimited. Behind a NAT, a corporate proxy or a load
 *   balancer thousands of legitimate clients share one address, and a default would turn
 *   them away; set it when clients connect directly.
 * - maxSessions: twice maxConnections: every connected client's session, plus as many again
 *   waiting for a resume (clients that crashed and came back with a new session while the
 *   old one waits out its TTL), each holding its replay buffer.
 * - maxSessionsPerAddress: 2 x maxConnectionsPerAddress, so unlimited by default for the
 *   same reason (one address may be a whole NAT), and in proportion when that is set, as
 *   maxSessions is to maxConnections.
 * - maxSessionsPerIdentity: 1,000. A person or a device holds a handful of sessions; at
 *   1,000 one stolen credential holds at most 1/39 of the default session table, so
 *   locking everyone out takes dozens of them. A fleet sharing one identity needs more
 *   (or Infinity). At the limit, the identity's own oldest disconnected session is
 *   evicted first: an identity is never locked out by sessions it abandoned.
 * - acceptRate / acceptBurst: 1,000 per second with a burst of 1,000. A plain handshake
 *   costs tens of microseconds of CPU and a TLS one about a millisecond, so a reconnect
 *   storm stays under one core even with TLS, while a full process refills in about 20 s.
 * - retryAfter: 5 s, the hint sent when the server is full or in danger; it is jittered by
 *   up to +50% so that refused clients do not come back together.
 */
export const ADMISSION_DEFAULTS = Object.freeze({
  /** Upper bound of the default maxConnections. */
  maxConnections: 100_000,
  /** No limit per address: one address may be a whole NAT. */
  maxConnectionsPerAddress: Number.POSITIVE_INFINITY,
  /** Descriptors kept free below the open-file limit when deriving maxConnections. */
  fileReserve: 256,
  /** Sessions allowed per allowed connection (default maxSessions = this x maxConnections). */
  sessionsPerConnection: 2,
  /** Sessions bound to one identity. */
  maxSessionsPerIdentity: 1000,
  /** Accepted sockets per second. */
  acceptRate: 1000,
  /** Hint for refusals other than the accept rate (ms). */
  retryAfter: 5000,
  /** Largest hint ever sent (ms): further out, the client's own backoff knows as much. */
  maxRetryAfter: 60_000,
  /** Hints are spread uniformly over [hint, hint x (1 + retryJitter)]. */
  retryJitter: 0.5,
});

/** Options of the server's admission control (part of `ServerOptions`). */
export interface AdmissionOptions {
  /**
   * Most open sockets (handshaking or connected); more are refused with
   * CLOSE(overloaded). `Infinity` for no limit.
   * @default min(100000, open-file limit - 256)
   */
  maxConnections?: number;
  /**
   * Most open sockets from one client address (IPv6: one /64 prefix). `Infinity` for no
   * limit.
   * @default Infinity
   */
  maxConnectionsPerAddress?: number;
  /**
   * Most sessions, including those waiting for a resume; a HELLO that would start one more
   * is refused (resumes of existing sessions are always admitted). `Infinity` for no limit.
   * @default 2 x maxConnections
   */
  maxSessions?: number;
  /**
   * Most sessions created from one client address (IPv6: one /64), including those waiting
   * for a resume. At the limit the address's oldest disconnected session without an
   * identity is evicted to make room; if it has none, the HELLO is refused.
   * `Infinity` for no limit.
   * @default 2 x maxConnectionsPerAddress (unlimited)
   */
  maxSessionsPerAddress?: number;
  /**
   * Most sessions bound to one identity (what `authenticate` returned). At the limit the
   * identity's oldest disconnected session is evicted to make room; if all are connected,
   * the HELLO is refused. `Infinity` for no limit.
   * @default 1000
   */
  maxSessionsPerIdentity?: number;
  /** Sockets accepted per second (token bucket refill rate). `Infinity` for no limit. @default 1000 */
  acceptRate?: number;
  /** Sockets accepted at once before the rate applies (bucket size). @default acceptRate */
  acceptBurst?: number;
  /**
   * Retry hint (ms) sent with CLOSE(overloaded) when the server is full or in danger,
   * jittered by up to +50%; 0 sends no hint. Refusals by the accept rate compute their own.
   * @default 5000
   */
  retryAfter?: number;
}

/** Which limit turned a socket or a HELLO away. */
export type AdmissionLimit =
  | 'max-connections'
  | 'max-connections-per-address'
  | 'max-sessions'
  | 'max-sessions-per-address'
  | 'max-sessions-per-identity'
  | 'accept-rate'
  | 'load';

/** The limits on sessions (see the server's session quota). */
export type SessionLimit = Extract<
  AdmissionLimit,
  'max-sessions' | 'max-sessions-per-address' | 'max-sessions-per-identity'
>;

/** A decision to refuse. */
export interface Refusal {
  limit: AdmissionLimit;
  /** Hint for the client (ms), sent in CLOSE(overloaded). */
  retryAfter: number;
  /** The reason text sent in the CLOSE frame (no counts or limits: those are the server's). */
  message: string;
}

/** Resolved admission settings. */
export interface ResolvedAdmission {
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  readonly maxSessions: number;
  readonly maxSessionsPerAddress: number;
  readonly maxSessionsPerIdentity: number;
  readonly acceptRate: number;
  readonly acceptBurst: number;
  readonly retryAfter: number;
}

const MESSAGES: Readonly<Record<AdmissionLimit, string>> = {
  'max-connections': 'connection limit reached',
  'max-connections-per-address': 'connection limit for this address reached',
  'max-sessions': 'session limit reached',
  'max-sessions-per-address': 'session limit for this address reached',
  'max-sessions-per-identity': 'session limit for this identity reached',
  'accept-rate': 'accept rate limit reached',
  load: 'server overloaded',
};

/**
 * Reads the soft limit on open files of this process (Linux: /proc/self/limits), or
 * undefined where it cannot be read or is unlimited. Node raises the soft limit to the
 * hard one at startup, so this is the real ceiling.
 */
export function readOpenFileLimit(read: () => string = readProcLimits): number | undefined {
  try {
    return parseOpenFileLimit(read());
  } catch {
    return undefined;
  }
}

function readProcLimits(): string {
  return readFileSync('/proc/self/limits', 'utf8');
}

/** Parses the "Max open files" soft limit out of a /proc/<pid>/limits text. */
export function parseOpenFileLimit(text: string): number | undefined {
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** The default maxConnections for a process with this open-file limit. */
export function defaultMaxConnections(fileLimit: number | undefined): number {
  const { maxConnections, fileReserve } = ADMISSION_DEFAULTS;
  if (fileLimit === undefined) return maxConnections;
  // A tiny limit (a sandbox, ulimit -n 256) keeps half of it for everything else.
  const usable = fileLimit > 2 * fileReserve ? fileLimit - fileReserve : Math.floor(fileLimit / 2);
  return Math.max(1, Math.min(maxConnections, usable));
}

/** Validates the admission options; `fileLimit` is the open-file limit (read when omitted). */
export function resolveAdmission(
  o: AdmissionOptions,
  fileLimit: number | undefined = o.maxConnections === undefined ? readOpenFileLimit() : undefined,
): ResolvedAdmission {
  const maxConnections = limitOption(
    'maxConnections',
    o.maxConnections,
    defaultMaxConnections(fileLimit),
  );
  const maxConnectionsPerAddress = limitOption(
    'maxConnectionsPerAddress',
    o.maxConnectionsPerAddress,
    ADMISSION_DEFAULTS.maxConnectionsPerAddress,
  );
  const maxSessions = limitOption(
    'maxSessions',
    o.maxSessions,
    maxConnections * ADMISSION_DEFAULTS.sessionsPerConnection,
  );
  const maxSessionsPerAddress = limitOption(
    'maxSessionsPerAddress',
    o.maxSessionsPerAddress,
    maxConnectionsPerAddress * ADMISSION_DEFAULTS.sessionsPerConnection,
  );
  const maxSessionsPerIdentity = limitOption(
    'maxSessionsPerIdentity',
    o.maxSessionsPerIdentity,
    ADMISSION_DEFAULTS.maxSessionsPerIdentity,
  );
  const acceptRate = positiveOption('acceptRate', o.acceptRate, ADMISSION_DEFAULTS.acceptRate);
  const acceptBurst = limitOption(
    'acceptBurst',
    o.acceptBurst,
    Number.isFinite(acceptRate) ? Math.max(1, Math.ceil(acceptRate)) : Number.POSITIVE_INFINITY,
  );
  if (!Number.isFinite(acceptBurst) && Number.isFinite(acceptRate)) {
    throw new InvalidArgumentError('option "acceptBurst" must be finite when "acceptRate" is');
  }
  // u32 on the wire (CLOSE's retry-after field).
  const retryAfter = intOption(
    'retryAfter',
    o.retryAfter,
    ADMISSION_DEFAULTS.retryAfter,
    0,
    0xffff_ffff,
  );
  return Object.freeze({
    maxConnections,
    maxConnectionsPerAddress,
    maxSessions,
    maxSessionsPerAddress,
    maxSessionsPerIdentity,
    acceptRate,
    acceptBurst,
    retryAfter,
  });
}

/**
 * The key a client address counts under: IPv4 as is (also when mapped into IPv6), IPv6
 * by its /64 prefix, since one host or customer usually gets a whole /64 and could
 * otherwise take a fresh address per connection.
 */
export function addressKey(address: string): string {
  const zone = address.indexOf('%');
  const a = (zone >= 0 ? address.slice(0, zone) : address).toLowerCase();
  if (!a.includes(':')) return a;
  if (a.startsWith('::ffff:') && a.includes('.')) return a.slice(7);
  const groups = expandIpv6(a);
  if (!groups) return a;
  return `${groups.slice(0, 4).join(':')}::/64`;
}

/** The eight groups of an IPv6 address (without leading zeros), or null if malformed. */
function expandIpv6(a: string): string[] | null {
  const halves = a.split('::');
  if (halves.length > 2) return null;
  const part = (s: string): string[] | null => {
    if (s === '') return [];
    const out: string[] = [];
    for (const g of s.split(':')) {
      if (g.includes('.')) {
        // An embedded IPv4 tail (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) is two groups.
        const b = g.split('.').map(Number);
        if (b.length !== 4 || b.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) return null;
        out.push(((b[0]! << 8) | b[1]!).toString(16), ((b[2]! << 8) | b[3]!).toString(16));
      } else if (/^[0-9a-f]{1,4}$/.test(g)) {
        out.push(Number.parseInt(g, 16).toString(16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  return [...head, ...new Array<string>(missing).fill('0'), ...tail];
}

/**
 * A token bucket (RFC 2697's idea, in continuous time): `rate` tokens a second up to
 * `burst`. A refused caller is given the next free slot in a queue that advances by one
 * token time per refusal, so refused clients come back spread over the refill instead of
 * all at the next token.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  /** Monotonic ms up to which slots are promised to refused callers. */
  private promised: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
    this.promised = now;
  }

  /** Tokens available at `now` (fractional). */
  available(now: number): number {
    this.refill(now);
    return this.tokens;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** For a refused caller: ms until its slot (at least one token time), and promises it. */
  reserve(now: number): number {
    this.refill(now);
    const step = 1000 / this.rate;
    const firstToken = now + (1 - this.tokens) * step;
    const slot = Math.max(this.promised, firstToken);
    this.promised = slot + step;
    return Math.max(step, slot - now);
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
      this.last = now;
    }
  }
}

/**
 * The admission decisions and counts of one server. It counts open sockets in total and
 * per address key; the caller reports each admitted socket with {@link opened} and its end
 * with {@link closed} (or lets {@link trackSocket} do both).
 */
export class Admission {
  private open = 0;
  /** What waits for the last counted socket to close (see {@link whenIdle}). */
  private idle: Array<() => void> | null = null;
  private readonly perAddress = new Map<string, number>();
  private readonly bucket: TokenBucket | null;
  /** Refusals so far, by limit. */
  readonly refusals: Record<AdmissionLimit, number> = {
    'max-connections': 0,
    'max-connections-per-address': 0,
    'max-sessions': 0,
    'max-sessions-per-address': 0,
    'max-sessions-per-identity': 0,
    'accept-rate': 0,
    load: 0,
  };

  constructor(
    readonly config: ResolvedAdmission,
    now: number,
    private readonly random: () => number = Math.random,
  ) {
    this.bucket = Number.isFinite(config.acceptRate)
      ? new TokenBucket(config.acceptRate, config.acceptBurst, now)
      : null;
  }

  /** Open sockets counted. */
  get connections(): number {
    return this.open;
  }

  /** Open sockets counted under one address key. */
  connectionsFrom(key: string): number {
    return this.perAddress.get(key) ?? 0;
  }

  /**
   * Decides about a new socket from address key `key` at `now`: null admits it (and takes
   * an accept token), anything else says why not. It does not count the socket.
   */
  checkSocket(key: string, now: number): Refusal | null {
    const c = this.config;
    if (this.open >= c.maxConnections) return this.refuse('max-connections', this.hint());
    if (this.connectionsFrom(key) >= c.maxConnectionsPerAddress) {
      return this.refuse('max-connections-per-address', this.hint());
    }
    if (this.bucket && !this.bucket.take(now)) {
      return this.refuse('accept-rate', this.capped(this.bucket.reserve(now)));
    }
    return null;
  }

  /**
   * Decides about a HELLO that would start a new session while `sessions` exist. In
   * danger it is refused with a hint of at least `recoverAfter` (the soonest the level can
   * drop). Resumes of existing sessions are not asked about: they add no session, and
   * refusing them could make a session outlive its TTL.
   */
  checkSession(sessions: number, danger = false, recoverAfter = 0): Refusal | null {
    const load = this.checkLoad(danger, recoverAfter);
    if (load) return load;
    if (sessions >= this.config.maxSessions) return this.refuse('max-sessions', this.hint());
    return null;
  }

  /**
   * The load half of {@link checkSession}: in danger, a HELLO for a new session is refused
   * with a hint of at least `recoverAfter`. The server checks the session limits itself,
   * since it may evict an abandoned session instead of refusing.
   */
  checkLoad(danger: boolean, recoverAfter = 0): Refusal | null {
    return danger ? this.refuse('load', this.hint(recoverAfter)) : null;
  }

  /** Refuses a new session for one of the session limits (counted like every refusal). */
  refuseSession(limit: SessionLimit): Refusal {
    return this.refuse(limit, this.hint());
  }

  /** Counts an admitted socket. */
  opened(key: string): void {
    this.open++;
    this.perAddress.set(key, (this.perAddress.get(key) ?? 0) + 1);
  }

  /** Uncounts a socket counted by {@link opened}. */
  closed(key: string): void {
    this.open = Math.max(0, this.open - 1);
    const n = (this.perAddress.get(key) ?? 0) - 1;
    if (n > 0) this.perAddress.set(key, n);
    else this.perAddress.delete(key);
    if (this.open === 0 && this.idle !== null) {
      const waiting = this.idle;
      this.idle = null;
      for (const done of waiting) done();
    }
  }

  /** Calls `done` once no counted socket is open (at once if none is). */
  whenIdle(done: () => void): void {
    if (this.open === 0) {
      done();
      return;
    }
    this.idle ??= [];
    this.idle.push(done);
  }

  private refuse(limit: AdmissionLimit, retryAfter: number): Refusal {
    this.refusals[limit]++;
    return { limit, retryAfter, message: MESSAGES[limit] };
  }

  /** The configured hint (at least `atLeast`), jittered upwards; 0 when hints are off. */
  private hint(atLeast = 0): number {
    const base = this.config.retryAfter;
    if (base === 0) return 0;
    const jitter = 1 + this.random() * ADMISSION_DEFAULTS.retryJitter;
    return this.capped(Math.max(base, atLeast) * jitter);
  }

  /** Rounds a hint up to whole ms and caps it; a capped hint is jittered below the cap. */
  private capped(ms: number): number {
    const max = ADMISSION_DEFAULTS.maxRetryAfter;
    if (ms <= max) return Math.ceil(ms);
    const spread = max / (1 + ADMISSION_DEFAULTS.retryJitter);
    return Math.ceil(spread + this.random() * (max - spread));
  }
}

/** Admission counts (`server.admissionStats`). */
export interface AdmissionStats {
  /** Open sockets (handshaking or connected). */
  connections: number;
  /** Sessions, including those waiting for a resume. */
  sessions: number;
  /** Refusals since the server started, by limit. */
  refused: Readonly<Record<AdmissionLimit, number>>;
  /** Disconnected sessions evicted to make room for new ones since the server started. */
  evicted: number;
}

/** A socket's remote address as host:port, [v6]:port, or '?' once it is gone. */
export function socketRemote(socket: Transport): string {
  const { remoteAddress: a, remotePort: p } = socket;
  if (a === undefined) return '?';
  return a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`;
}

/** The close info a refusal is reported with (the 'rejected' event). */
export function refusalInfo(refusal: Refusal): CloseInfo {
  return {
    reason: 'overloaded',
    code: CloseCode.OVERLOADED,
    message: refusal.message,
    ...(refusal.retryAfter > 0 ? { retryAfter: refusal.retryAfter } : {}),
    error: new HeartlineError(
      'HL_ERR_OVERLOADED',
      `refused by admission control (${refusal.limit}): ${refusal.message}`,
    ),
  };
}

/**
 * The report of a failed accept (EMFILE, ENFILE, ENOMEM...), which a listening
 * net.Server emits as 'error': with no listener that would end the process, so a peer
 * that opens sockets until the descriptors run out could crash it. libuv closes the
 * connection it could not accept and the server goes on listening.
 */
export function acceptFailure(err: Error): { remote: string; info: CloseInfo } {
  const errno = (err as NodeJS.ErrnoException).code;
  return {
    remote: '?',
    info: {
      reason: 'error',
      message: `accept failed: ${err.message}`,
      error: new HeartlineError('HL_ERR_SOCKET', `accept failed: ${err.message}`, { cause: err }),
      ...(errno ? { errno } : {}),
    },
  };
}

/** A refusal as the server reports it (its 'rejected' event). */
export interface RefusalReport {
  remote: string;
  info: CloseInfo;
  limit: AdmissionLimit;
}

/** The report of a refusal of a peer at `remote`. */
export function refusalReport(refusal: Refusal, remote: string): RefusalReport {
  return { remote, info: refusalInfo(refusal), limit: refusal.limit };
}

/**
 * Admission of a socket the server just accepted, before anything else is built for it:
 * an admitted socket is counted until it closes (null is returned); a refused one gets
 * CLOSE(overloaded) and is closed, and the report of its refusal is returned. `plain`
 * false (a TLS listener, before the TLS handshake) closes a refused socket without a
 * CLOSE frame, which its peer could not read, and reports no code or hint.
 */
export function admitSocket(
  admission: Admission,
  socket: Transport,
  wheel: TimingWheel,
  now: number,
  plain = true,
): RefusalReport | null {
  // A socket already gone has no address; it is counted until its close, moments away.
  const key = addressKey(socket.remoteAddress ?? '?');
  const refused = refuseIfOverLimit(admission, socket, key, wheel, now, plain);
  if (!refused) trackSocket(admission, socket, key);
  return refused;
}

/**
 * Checks a new socket against the limits without counting it; a socket over a limit is
 * turned away with CLOSE(overloaded) and its report returned.
 */
export function refuseIfOverLimit(
  admission: Admission,
  socket: Transport,
  key: string,
  wheel: TimingWheel,
  now: number,
  plain = true,
): RefusalReport | null {
  const refusal = admission.checkSocket(key, now);
  if (!refusal) return null;
  refuseOverloaded(socket, wheel, refusal, plain);
  const report = refusalReport(refusal, socketRemote(socket));
  if (plain) return report;
  const { code: _code, retryAfter: _retryAfter, ...info } = report.info;
  return { ...report, info: { ...info, message: `${info.message} (closed before TLS)` } };
}

const kAdmission = Symbol('heartline.admission');
const kAddressKey = Symbol('heartline.addressKey');
type TrackedSocket = Transport & { [kAdmission]?: Admission; [kAddressKey]?: string };

/** One 'close' listener for every tracked socket, not a closure each (see src/connection.ts). */
function onTrackedClose(this: TrackedSocket): void {
  const admission = this[kAdmission];
  if (admission) admission.closed(this[kAddressKey]!);
}

/** Counts an admitted socket until it closes ('close' comes once: no once() wrapper). */
export function trackSocket(admission: Admission, socket: Transport, key: string): void {
  admission.opened(key);
  const tracked = socket as TrackedSocket;
  tracked[kAdmission] = admission;
  tracked[kAddressKey] = key;
  socket.on('close', onTrackedClose);
}

/**
 * Turns a socket away with CLOSE(OVERLOADED, retryAfter) (see `refuseSocket`); with
 * `plain` false (a peer expecting TLS, which could not read the frame) with the FIN alone.
 */
export function refuseOverloaded(
  socket: Transport,
  wheel: TimingWheel,
  refusal: Refusal,
  plain = true,
): void {
  refuseSocket(
    socket,
    wheel,
    plain
      ? { code: CloseCode.OVERLOADED, reason: refusal.message, retryAfter: refusal.retryAfter }
      : null,
  );
}
