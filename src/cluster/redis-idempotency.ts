/**
 * The idempotency window on Redis, shared by the nodes of a cluster: a request retried on
 * another node (after a session-lost, a failover) still gets the first reply.
 *
 * One string key per (scope, key): `PREFIXidem:{H}` where H is the base64url SHA-256 of the
 * scope and key (so any scope or key makes a key of 53 bytes with the default prefix, and
 * the braces keep it in one hash slot). Its value is a pending marker (`p` and a random
 * 16-byte token per claim) while a handler runs, then the reply (`r`, the status as a
 * big-endian u32, the payload). Every write sets a PX TTL of `windowMs`, so Redis holds a
 * key at most one window past its last write.
 *
 * - begin: one script returns what the key holds (`done` or `pending`), else claims it
 *   with `SET PX` if the caps below allow (`run`), else answers `full`. A pending claim is
 *   polled with GET (25 ms, doubling to 200 ms) until it turns into a reply (the promise
 *   resolves with it), disappears (abandoned or expired: null) or the window ends (null).
 * - finish / abandon: a script that writes (`SET PX`) or deletes the key only if it still
 *   holds this claim's marker, so a late handler never overwrites a newer claim.
 *
 * Bounds, enforced atomically in the scripts with fixed-window counters under the same
 * prefix, each created with a PX TTL of `windowMs` by the first write of its window:
 * `PREFIXidem:n` counts the claims of all scopes, `PREFIXidem:s:{S}` (S the base64url
 * SHA-256 of the scope) the claims of one scope, `PREFIXidem:b` the bytes of the replies
 * kept. begin() answers `full` (the request is refused unrun) once a window has seen
 * `maxKeys` claims, or `maxKeysPerScope` of that scope; a key already claimed or answered
 * is still reported (`pending`, `done`) past the caps. finish() keeps no reply larger than
 * `maxReplyBytes` (checked here, no Redis write), nor one that would take the window's kept
 * bytes past `maxBytes` (checked in the script): either way it deletes the claim, so
 * waiters get null and a retry runs again, and `stats.unkept` counts it. Counters only grow
 * within their window (abandon gives nothing back).
 *
 * What that bounds: a key lives at most `windowMs` after its claim while pending and
 * `windowMs` after its reply was kept. Replies kept at one moment were kept within the last
 * `windowMs`, which overlaps at most two counter windows: at most 2 x `maxBytes` of reply
 * values. Keys live at one moment were claimed within the last `windowMs` plus a handler's
 * run time: at most 2 x `maxKeys` (3 x for the short while a handler that straddled a
 * counter window still runs), and as many scope counters at most (one scope per claim, the
 * worst case: a fresh client id per request on a server without authentication). Measured
 * on Redis 7.0 (jemalloc) with bench/redis-idempotency-memory.ts over 10^5 keys:
 * `used_memory` grew 181 bytes per key with an empty reply, 197 with 16 bytes, 1,445 with
 * 1 KiB, 10,405 with 8 KiB (values take jemalloc size classes, up to 25% over their
 * length), and 149 more per key with one scope counter per key. So Redis holds at most
 * about 2 x (`maxKeys` x 330 + `maxBytes` x 1.25) bytes for the window (docs/requests.md,
 * "Cluster mode"). The memory window's per-scope eviction has no equivalent here: a scope
 * past its cap is refused until its counter window ends.
 *
 * The counters are outside the request key's hash slot: fine on a standalone Redis or
 * Sentinel; Redis Cluster would refuse the scripts (CROSSSLOT), future work.
 *
 * Failures never throw out of a timer: begin(), finish() and abandon() reject with a
 * HeartlineError `HL_ERR_STORE` (Redis down, or no answer within `timeoutMs`), and a
 * pending wait that cannot reach Redis resolves null.
 */

import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { HeartlineError, InvalidArgumentError } from '../errors.js';
import { intOption } from '../options.js';
import {
  checkIdempotencyKey,
  checkKeptReply,
  IDEMPOTENCY_DEFAULTS,
  type IdempotencyClaim,
  type IdempotencyStats,
  type IdempotencyWindow,
  type KeptReply,
  maxReplyBytesOption,
} from '../session/idempotency.js';
import { type Clock, type ClockTimer, systemClock } from '../time/clock.js';
import { CLUSTER_DEFAULTS } from './defaults.js';
import { Script } from './lua-script.js';
import { keyPrefixOption, REDIS_STORE_DEFAULTS, type RedisClient } from './redis-store.js';

/** Defaults of the Redis idempotency window. */
export const REDIS_IDEMPOTENCY_DEFAULTS = Object.freeze({
  /** See {@link IDEMPOTENCY_DEFAULTS.windowMs}. @default 120_000 */
  windowMs: IDEMPOTENCY_DEFAULTS.windowMs,
  /** Claims per counter window, all scopes: see {@link IDEMPOTENCY_DEFAULTS.maxKeys}. @default 100_000 */
  maxKeys: IDEMPOTENCY_DEFAULTS.maxKeys,
  /** Reply bytes kept per counter window: see {@link IDEMPOTENCY_DEFAULTS.maxBytes}. @default 64 MiB */
  maxBytes: IDEMPOTENCY_DEFAULTS.maxBytes,
  /** Claims per counter window, one scope: see {@link IDEMPOTENCY_DEFAULTS.maxKeysPerScope}. @default 10_000 */
  maxKeysPerScope: IDEMPOTENCY_DEFAULTS.maxKeysPerScope,
  /** Largest reply payload kept: see {@link IDEMPOTENCY_DEFAULTS.maxReplyBytes}. @default 64 KiB */
  maxReplyBytes: IDEMPOTENCY_DEFAULTS.maxReplyBytes,
  /**
   * A Redis call slower than this (ms) fails with `HL_ERR_STORE`: the same bound as the
   * cluster's `storeTimeout`, so a request with a key never waits on a dead Redis longer
   * than a session store call would.
   * @default 2000
   */
  timeoutMs: CLUSTER_DEFAULTS.storeTimeout,
  /** Prefix of every key (the session store's default). @default 'hl:' */
  keyPrefix: REDIS_STORE_DEFAULTS.keyPrefix,
  /** First delay between polls of a pending claim (ms); it doubles up to `pollMaxMs`. @default 25 */
  pollMs: 25,
  /** Longest delay between polls of a pending claim (ms). @default 200 */
  pollMaxMs: 200,
});

/** Options of {@link createRedisWindow}; each defaults to {@link REDIS_IDEMPOTENCY_DEFAULTS}. */
export interface RedisWindowOptions {
  /** How long a reply is kept (ms) from finish(); a pending claim lapses as long after begin(). @default 120_000 */
  windowMs?: number;
  /** Claims per counter window of `windowMs`, all scopes and nodes together. @default 100_000 */
  maxKeys?: number;
  /** Reply bytes (payload + 5) kept per counter window of `windowMs`. @default 64 MiB */
  maxBytes?: number;
  /** Claims per counter window of `windowMs` for one scope. @default 10_000 */
  maxKeysPerScope?: number;
  /** Largest reply payload kept (bytes); a larger one is answered, not kept. @default 64 KiB */
  maxReplyBytes?: number;
  /** A Redis call slower than this fails with `HL_ERR_STORE` (ms). @default 2000 */
  timeoutMs?: number;
  /** Prefix of every key; no braces or spaces. @default 'hl:' */
  keyPrefix?: string;
  /** First delay between polls of a pending claim (ms). @default 25 */
  pollMs?: number;
  /** Longest delay between polls of a pending claim (ms). @default 200 */
  pollMaxMs?: number;
  /** Where time and timers come from. @default systemClock */
  clock?: Clock;
}

/**
 * The Redis connection: an ioredis client, or a function giving one (for example
 * `() => store.client()` of a RedisStore, so the window shares the store's connection).
 * The window never closes it. A {@link RedisClient} is an ioredis client typed by the part
 * the public declarations need (so they do not import ioredis's types).
 */
export type RedisSource = RedisClient | (() => Promise<RedisClient>);

/** The Redis window: the same contract, every call answered asynchronously. */
export interface RedisIdempotencyWindow extends IdempotencyWindow {
  begin(scope: string, key: string): Promise<IdempotencyClaim>;
  finish(scope: string, key: string, reply: KeptReply): Promise<void>;
  abandon(scope: string, key: string): Promise<void>;
  close(): void;
}

/**
 * Adds to a fixed-window counter read as `was` (false: absent), starting its window.
 * Shared by the scripts below.
 */
const CHARGE = `
local function charge(key, was, by, ttl)
  redis.call('INCRBY', key, by)
  if not was then redis.call('PEXPIRE', key, ttl) end
end
`;

/**
 * begin(): return what the key holds, else claim it if the caps allow (1), else 0 (full).
 * KEYS: k, total counter, scope counter. ARGV: marker, windowMs, maxKeys, maxKeysPerScope.
 */
const BEGIN = new Script(`${CHARGE}
local v = redis.call('GET', KEYS[1])
if v then return v end
local n = redis.call('GET', KEYS[2])
if n and tonumber(n) >= tonumber(ARGV[3]) then return 0 end
local s = redis.call('GET', KEYS[3])
if s and tonumber(s) >= tonumber(ARGV[4]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
charge(KEYS[2], n, 1, ARGV[2])
charge(KEYS[3], s, 1, ARGV[2])
return 1
`);

/**
 * finish(): keep the reply if the claim is still ours (1) and the window's kept bytes
 * allow; else delete the claim (2: unkept). 0: not our claim.
 * KEYS: k, bytes counter. ARGV: marker, reply, windowMs, maxBytes.
 */
const FINISH = new Script(`${CHARGE}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local size = string.len(ARGV[2])
local b = redis.call('GET', KEYS[2])
if (b and tonumber(b) or 0) + size > tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[1])
  return 2
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
charge(KEYS[2], b, size, ARGV[3])
return 1
`);

/** abandon(): delete the key if the claim is still ours. KEYS: k. ARGV: marker. */
const ABANDON = new Script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`);

const PENDING = 0x70; // 'p'
const REPLY = 0x72; // 'r'

function storeError(err: unknown): HeartlineError {
  if (err instanceof HeartlineError) return err;
  return new HeartlineError(
    'HL_ERR_STORE',
    `idempotency window: ${(err as Error)?.message ?? String(err)}`,
    { cause: err },
  );
}

function encodeReply(reply: KeptReply): Buffer {
  const out = Buffer.allocUnsafe(5 + reply.payload.byteLength);
  out[0] = REPLY;
  out.writeUInt32BE(reply.status, 1);
  out.set(reply.payload, 5);
  return out;
}

/** A stored value read back: a reply, a pending marker, or nothing. */
function decode(value: unknown): KeptReply | 'pending' | null {
  if (!Buffer.isBuffer(value) || value.length === 0) return null;
  if (value[0] === REPLY && value.length >= 5) {
    return { status: value.readUInt32BE(1), payload: new Uint8Array(value.subarray(5)) };
  }
  if (value[0] === PENDING) return 'pending';
  throw storeError(new Error('unexpected value under an idempotency key'));
}

/** A claim this node holds open. */
interface Claim {
  readonly marker: Buffer;
  readonly at: number;
}

class RedisWindow implements RedisIdempotencyWindow {
  readonly #source: RedisSource;
  readonly #clock: Clock;
  readonly #windowMs: number;
  readonly #timeoutMs: number;
  readonly #prefix: string;
  readonly #pollMs: number;
  readonly #pollMaxMs: number;
  readonly #maxKeys: number;
  readonly #maxBytes: number;
  readonly #maxPerScope: number;
  readonly #maxReplyBytes: number;
  /** The counters of all scopes: claims, and bytes kept. */
  readonly #claimCounter: string;
  readonly #byteCounter: string;
  /** Claims begun here and not yet finished or abandoned, by Redis key, oldest first. */
  readonly #claims = new Map<string, Claim>();
  /** Pending waits, so close() can end them. */
  readonly #waits = new Set<() => void>();
  #unkept = 0;
  #closed = false;

  constructor(source: RedisSource, o: RedisWindowOptions) {
    const d = REDIS_IDEMPOTENCY_DEFAULTS;
    this.#source = source;
    this.#clock = o.clock ?? systemClock;
    this.#windowMs = intOption('windowMs', o.windowMs, d.windowMs, 1, 86_400_000);
    this.#timeoutMs = intOption('timeoutMs', o.timeoutMs, d.timeoutMs, 10, 600_000);
    this.#pollMs = intOption('pollMs', o.pollMs, d.pollMs, 1, 60_000);
    this.#pollMaxMs = intOption('pollMaxMs', o.pollMaxMs, d.pollMaxMs, this.#pollMs, 60_000);
    // The memory window's ranges, so one `idempotency` server option suits both.
    this.#maxKeys = intOption('maxKeys', o.maxKeys, d.maxKeys, 1, 100_000_000);
    this.#maxBytes = intOption('maxBytes', o.maxBytes, d.maxBytes, 1024, 2 ** 40);
    this.#maxPerScope = intOption(
      'maxKeysPerScope',
      o.maxKeysPerScope,
      d.maxKeysPerScope,
      1,
      100_000_000,
    );
    this.#maxReplyBytes = maxReplyBytesOption(o.maxReplyBytes);
    const prefix = keyPrefixOption(o.keyPrefix);
    this.#prefix = prefix;
    this.#claimCounter = `${prefix}idem:n`;
    this.#byteCounter = `${prefix}idem:b`;
  }

  get stats(): IdempotencyStats {
    return { keys: this.#claims.size, bytes: 0, unkept: this.#unkept };
  }

  /** The claim counter of one scope (its own hash slot: the scope's digest in braces). */
  #scopeCounter(scope: string): string {
    return `${this.#prefix}idem:s:{${createHash('sha256').update(scope).digest('base64url')}}`;
  }

  #key(scope: string, key: string): string {
    checkIdempotencyKey(key);
    if (typeof scope !== 'string')
      throw new InvalidArgumentError('idempotency scope must be a string');
    // The length prefix keeps (scope, key) pairs apart: ('a:b', 'c') is not ('a', 'b:c').
    const digest = createHash('sha256')
      .update(`${Buffer.byteLength(scope)}:${scope}`)
      .update(key)
      .digest('base64url');
    return `${this.#prefix}idem:{${digest}}`;
  }

  async #redis(): Promise<Redis> {
    // Every RedisClient is an ioredis client (see RedisClient): the full type is safe here.
    const source = this.#source as Redis | (() => Promise<Redis>);
    return typeof source === 'function' ? source() : source;
  }

  /**
   * Runs one script, bounded by `timeoutMs`. `late` sees the result of a call that
   * answered after its timeout (to undo a claim nobody will finish).
   */
  #call(
    script: Script,
    keys: readonly string[],
    args: ReadonlyArray<string | number | Buffer>,
    late?: (result: unknown) => void,
  ): Promise<unknown> {
    const op = this.#redis().then((redis) => script.run(redis, keys, args));
    return new Promise((resolve, reject) => {
      let timedOut = false;
      const timer = this.#clock.setTimeout(() => {
        timedOut = true;
        reject(storeError(new Error(`Redis did not answer within ${this.#timeoutMs} ms`)));
      }, this.#timeoutMs);
      op.then(
        (result) => {
          this.#clock.clearTimeout(timer);
          if (timedOut) late?.(result);
          else resolve(result);
        },
        (err: unknown) => {
          this.#clock.clearTimeout(timer);
          if (!timedOut) reject(storeError(err));
        },
      );
    });
  }

  /** Forgets local claims older than the window (a handler that never finished). */
  #expireClaims(now: number): void {
    for (const [k, claim] of this.#claims) {
      if (claim.at + this.#windowMs > now) break;
      this.#claims.delete(k);
    }
  }

  async begin(scope: string, key: string): Promise<IdempotencyClaim> {
    const k = this.#key(scope, key);
    if (this.#closed) return { kind: 'full' };
    const marker = Buffer.concat([Buffer.of(PENDING), randomBytes(16)]);
    const undo = (result: unknown): void => {
      // The claim went through after begin() gave up on it: release it, or retries of
      // this key would wait for a handler that never runs.
      if (result === 1) this.#call(ABANDON, [k], [marker]).catch(() => {});
    };
    const result = await this.#call(
      BEGIN,
      [k, this.#claimCounter, this.#scopeCounter(scope)],
      [marker, this.#windowMs, this.#maxKeys, this.#maxPerScope],
      undo,
    );
    const now = this.#clock.now();
    this.#expireClaims(now);
    if (result === 1) {
      this.#claims.delete(k); // re-inserted at the tail: the map stays in claim order
      this.#claims.set(k, { marker, at: now });
      return { kind: 'run' };
    }
    if (result === 0) return { kind: 'full' };
    const value = decode(result);
    // The script returns the key's value only when it exists: null would be a broken Redis.
    if (value === null) throw storeError(new Error('claim neither taken nor found'));
    if (value !== 'pending') return { kind: 'done', reply: value };
    return { kind: 'pending', settled: this.#wait(k) };
  }

  /** Polls a pending key until it holds a reply, disappears, or the window ends. */
  #wait(k: string): Promise<KeptReply | null> {
    return new Promise((resolve) => {
      const deadline = this.#clock.now() + this.#windowMs;
      let delay = this.#pollMs;
      let timer: ClockTimer | null = null;
      const end = (outcome: KeptReply | null): void => {
        if (timer !== null) this.#clock.clearTimeout(timer);
        timer = null;
        this.#waits.delete(stop);
        resolve(outcome);
      };
      const stop = (): void => end(null);
      const poll = (): void => {
        timer = null;
        this.#redis()
          .then((redis) => redis.getBuffer(k))
          .then(
            (value) => {
              if (!this.#waits.has(stop)) return; // closed meanwhile
              let state: KeptReply | 'pending' | null;
              try {
                state = decode(value);
              } catch {
                state = null; // not ours to read: stop waiting
              }
              if (state !== 'pending') return end(state);
              const left = deadline - this.#clock.now();
              if (left <= 0) return end(null);
              timer = this.#clock.setTimeout(poll, Math.min(delay, left));
              delay = Math.min(delay * 2, this.#pollMaxMs);
            },
            // Redis unreachable: the wait is over; a new begin() reports the error.
            () => end(null),
          );
      };
      this.#waits.add(stop);
      timer = this.#clock.setTimeout(poll, delay);
      delay = Math.min(delay * 2, this.#pollMaxMs);
    });
  }

  async finish(scope: string, key: string, reply: KeptReply): Promise<void> {
    checkKeptReply(reply);
    const k = this.#key(scope, key);
    const claim = this.#claims.get(k);
    if (!claim || this.#closed) return;
    this.#claims.delete(k);
    if (reply.payload.byteLength > this.#maxReplyBytes) {
      // Too large to keep: release the claim (waiters get null, a retry runs again).
      this.#unkept++;
      await this.#call(ABANDON, [k], [claim.marker]);
      return;
    }
    const kept = await this.#call(
      FINISH,
      [k, this.#byteCounter],
      [claim.marker, encodeReply(reply), this.#windowMs, this.#maxBytes],
    );
    if (kept === 2) this.#unkept++;
  }

  async abandon(scope: string, key: string): Promise<void> {
    const k = this.#key(scope, key);
    const claim = this.#claims.get(k);
    if (!claim || this.#closed) return;
    this.#claims.delete(k);
    await this.#call(ABANDON, [k], [claim.marker]);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const stop of [...this.#waits]) stop();
    this.#claims.clear();
  }
}

/**
 * Creates the idempotency window of a cluster on Redis (see the module comment for keys,
 * bounds and failures). Options default to {@link REDIS_IDEMPOTENCY_DEFAULTS} and are
 * validated here (InvalidArgumentError names the option).
 */
export function createRedisWindow(
  redis: RedisSource,
  options: RedisWindowOptions = {},
): RedisIdempotencyWindow {
  if (redis === null || (typeof redis !== 'function' && typeof redis !== 'object')) {
    throw new InvalidArgumentError(
      'createRedisWindow: "redis" must be an ioredis client or a function giving one',
    );
  }
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('idempotency window options must be an object');
  }
  return new RedisWindow(redis, options);
}
