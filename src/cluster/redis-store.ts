/**
 * The session store on Redis (through ioredis): resume state, sequence numbers, the
 * unacknowledged outbound log and the inbox of each session, presence, and the notes nodes
 * send each other, so that any node of a cluster can take a session over.
 *
 * Every write is one Lua script, which Redis runs atomically: a commit stores the new
 * received seq, the seen mark, the replies (numbered), the client's acks and the inbox trim
 * together or not at all. Every key of a session expires `ttl` ms (the session TTL) after
 * the owner's last write or touch, and a session whose log and inbox would pass its
 * `maxBytes` is deleted (its client then gets `session-lost`).
 *
 * Keys (prefix `hl:` by default; the braces keep a session's keys in one hash slot):
 * `hl:{SID}:s` hash of the session, `hl:{SID}:log` list of unacknowledged payloads,
 * `hl:{SID}:in` list of inbox payloads, `hl:{SID}:x` tombstone of a deleted session (for its
 * TTL, so a stale owner cannot bring it back), `hl:c:CLIENTID` set of session ids, `hl:nodes`
 * sorted set of live nodes by expiry, `hl:pn:NODE` hash of the sessions online on a node,
 * `hl:p:ID` set of `NODE\tSID` where a session or client id is online. Channels:
 * `hl:n:NODE` (notes to one node) and `hl:presence` (presence events).
 *
 * Standalone Redis and Sentinel (through ioredis options) are supported; Redis Cluster is
 * not (presence and the client index touch keys of several slots in one script).
 *
 * ioredis is loaded on first use, so importing heartline without Redis costs nothing.
 */

import type { ConnectionOptions } from 'node:tls';
import type { Redis, RedisOptions } from 'ioredis';
import { HeartlineError, InvalidArgumentError } from '../errors.js';
import { checkPeer, isMissingPackage, missingPackage } from '../optional-deps.js';
import type {
  AppendResult,
  CommitBatch,
  CommitResult,
  InboxEntry,
  OwnerFence,
  PresenceEntry,
  PresenceEvent,
  PresenceStore,
  SessionStore,
  StoredSession,
  StoreNote,
  Unsubscribe,
} from '../session/store.js';
import { isNoScript, Script } from './lua-script.js';
import { PRESENCE_SCRIPTS } from './presence.js';

/** What needs ioredis, as HL_ERR_MISSING_PACKAGE names it. */
const REDIS_FEATURE = 'A Redis session store (RedisStore, the "redis" option)';

/*
 * The public types below name ioredis's options and client by their shape instead of
 * importing ioredis's types: those fail to compile in a consumer with `skipLibCheck:
 * false` (their errors import the untyped `redis-errors`), and every heartline user would
 * load them through this file's declarations, Redis or not.
 */

/**
 * ioredis options (`new Redis(options)`): the common ones typed here, any other ioredis
 * option passed through as given. A value typed as ioredis's own `RedisOptions` (an
 * interface, which has no index signature) is passed as `{ ...options }`.
 */
export interface RedisConnectionOptions {
  /** Host of a standalone Redis. */
  host?: string;
  /** Port of a standalone Redis. */
  port?: number;
  /** ACL user name. */
  username?: string;
  /** Password (of the user, or of the default user). */
  password?: string;
  /** Database index. */
  db?: number;
  /** TLS options (`node:tls` `connect()` options); turns TLS on. */
  tls?: ConnectionOptions;
  /** Sentinel: the addresses of the sentinels. */
  sentinels?: Array<{ host?: string; port?: number }>;
  /** Sentinel: the name of the master group. */
  name?: string;
  /** Any other ioredis option, passed through to ioredis. */
  [option: string]: unknown;
}

/**
 * An ioredis client (`new Redis(...)` from ioredis), typed by the part of it this
 * declaration needs; the store uses it as the full ioredis client. Cast it to ioredis's
 * `Redis` to send it other commands.
 */
export interface RedisClient {
  /** ioredis's connection status: 'wait', 'connecting', 'ready', 'end'... */
  readonly status: string;
  /** A new client with the same options (the store subscribes on one). */
  duplicate(): RedisClient;
  /** Closes the connection once the replies still pending have arrived. */
  quit(): Promise<unknown>;
  /** Listens for the client's events ('ready', 'error', 'end'...). */
  on(event: string, listener: (...args: never[]) => void): unknown;
}

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /** A redis:// or rediss:// URL. @default 'redis://127.0.0.1:6379' */
  url?: string;
  /** ioredis options (host, port, password, tls, sentinels...); merged over the defaults. */
  redis?: RedisConnectionOptions;
  /**
   * An ioredis client of your own; the store uses it (and a duplicate for subscriptions)
   * and leaves it open on close(). Conflicts with `url` and `redis`.
   */
  client?: RedisClient;
  /** Prefix of every key and channel. @default 'hl:' */
  keyPrefix?: string;
}

/** RedisStore defaults. */
export const REDIS_STORE_DEFAULTS = Object.freeze({
  /** Prefix of every key and channel: short, and apart from an application's own keys. */
  keyPrefix: 'hl:',
});

/**
 * Checks a `keyPrefix` option (the store's, and the Redis idempotency window's): a hash
 * tag's braces or a space in it would break the one-slot keys of a session.
 */
export function keyPrefixOption(value: string | undefined): string {
  const prefix = value ?? REDIS_STORE_DEFAULTS.keyPrefix;
  if (typeof prefix !== 'string' || /[{}\s]/.test(prefix)) {
    throw new InvalidArgumentError('option "keyPrefix" must be a string without braces or spaces');
  }
  return prefix;
}

/** Store connection state, as reported to {@link RedisStore.onStatus} listeners. */
export interface StoreStatus {
  /** True once the store can be reached (again). */
  up: boolean;
  /** Why it cannot, when it cannot. */
  error?: HeartlineError;
}

/**
 * Defaults for clients the store creates. A command waits through at most one reconnect
 * attempt before failing (ioredis waits through 20 by default, for many seconds): nodes
 * fall back to serving their links locally rather than stall them on a dead Redis.
 * Commands issued in one tick are written together anyway; the periodic touch of every
 * session goes out as one explicit pipeline.
 */
const CLIENT_DEFAULTS: RedisOptions = {
  maxRetriesPerRequest: 1,
  retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
};

const SESSION_ID = /^[0-9a-f]{32}$/;

function checkSessionId(sessionId: string): void {
  if (typeof sessionId !== 'string' || !SESSION_ID.test(sessionId)) {
    throw new InvalidArgumentError(`session id must be 32 lower-case hex digits, got ${sessionId}`);
  }
}

function checkNode(node: string): void {
  if (typeof node !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(node)) {
    throw new InvalidArgumentError(
      `node id must be 1 to 200 printable ASCII characters without spaces, got ${String(node)}`,
    );
  }
}

function storeError(err: unknown): HeartlineError {
  if (err instanceof HeartlineError) return err;
  return new HeartlineError('HL_ERR_STORE', `session store: ${(err as Error)?.message ?? err}`, {
    cause: err,
  });
}

// ---- Lua --------------------------------------------------------------------------------

/**
 * The owner's write. KEYS: s, log, in, tombstone. ARGV: node, gen, received, seen, acked (-1: none),
 * firstSeq (0: append), inboxThrough (-1: none), snapshot (0 no, 1 create or rebase), tok,
 * identity, hasIdentity, clientId, traceId, ttl, maxBytes, prefix, payloads..., session id.
 */
const COMMIT = `
local s, log, inb = KEYS[1], KEYS[2], KEYS[3]
local node, gen = ARGV[1], tonumber(ARGV[2])
local received, seen = tonumber(ARGV[3]), tonumber(ARGV[4])
local acked, first, through = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local snap = ARGV[8]
local sid = ARGV[#ARGV]
local n = #ARGV - 17
local created = 0
if redis.call('EXISTS', s) == 0 then
  if snap == '0' then return {'missing'} end
  -- Deleted on purpose by an owner at least as recent: never bring it back.
  local dead = tonumber(redis.call('GET', KEYS[4]))
  if dead and dead >= gen then return {'fenced', '', dead} end
  redis.call('DEL', log, inb)
  local base, ih = 0, 1
  if first > 0 then base = first - 1 end
  if through >= 0 then ih = through + 1 end
  redis.call('HSET', s, 'tok', ARGV[9], 'cid', ARGV[12], 'tid', ARGV[13], 'ttl', ARGV[14],
    'cap', ARGV[15], 'own', node, 'gen', gen, 'recv', 0, 'seen', 0, 'ack', base, 'last', base,
    'bytes', 0, 'ih', ih, 'ib', 0)
  if ARGV[11] == '1' then redis.call('HSET', s, 'idn', ARGV[10]) end
  if ARGV[12] ~= '' then
    local ck = ARGV[16] .. 'c:' .. ARGV[12]
    redis.call('SADD', ck, sid)
  end
  created = 1
elseif node ~= '' then
  local f = redis.call('HMGET', s, 'own', 'gen')
  if f[1] ~= node or tonumber(f[2]) ~= gen then return {'fenced', f[1] or '', tonumber(f[2]) or 0} end
end
local f = redis.call('HMGET', s, 'recv', 'seen', 'ack', 'last', 'bytes', 'cap', 'ttl', 'ih', 'ib', 'cid', 'gen')
local recv, sn, ack, last = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
local bytes, cap, ttl, ih, ib = tonumber(f[5]), tonumber(f[6]), tonumber(f[7]), tonumber(f[8]), tonumber(f[9])
if first == 0 then first = last + 1 end
if first > last + 1 then
  if snap == '0' then return {'gap', last} end
  redis.call('DEL', log)
  bytes, ack, last = 0, first - 1, first - 1
end
if acked >= 0 then
  if acked > last then acked = last end
  if acked > ack then
    local popped = redis.call('LPOP', log, acked - ack)
    if popped then for i = 1, #popped do bytes = bytes - #popped[i] end end
    ack = acked
  end
end
local batch = {}
for i = 1, n do
  if first + i - 1 == last + 1 then
    local p = ARGV[16 + i]
    batch[#batch + 1] = p
    bytes = bytes + #p
    last = last + 1
    if #batch == 1000 then
      redis.call('RPUSH', log, unpack(batch))
      batch = {}
    end
  end
end
if #batch > 0 then redis.call('RPUSH', log, unpack(batch)) end
if through >= 0 then
  local k = math.min(through - ih + 1, redis.call('LLEN', inb))
  if k > 0 then
    local popped = redis.call('LPOP', inb, k)
    if popped then for i = 1, #popped do ib = ib - #popped[i] end end
    ih = ih + k
  end
end
if bytes + ib > cap then
  redis.call('DEL', s, log, inb)
  redis.call('SET', KEYS[4], f[11], 'PX', ttl)
  if f[10] and f[10] ~= '' then redis.call('SREM', ARGV[16] .. 'c:' .. f[10], sid) end
  return {'overflow'}
end
if received > recv then recv = received end
if seen > sn then sn = seen end
if recv > sn then sn = recv end
redis.call('HSET', s, 'recv', recv, 'seen', sn, 'ack', ack, 'last', last, 'bytes', bytes,
  'ih', ih, 'ib', ib)
redis.call('PEXPIRE', s, ttl)
redis.call('PEXPIRE', log, ttl)
redis.call('PEXPIRE', inb, ttl)
if f[10] and f[10] ~= '' then redis.call('PEXPIRE', ARGV[16] .. 'c:' .. f[10], ttl) end
if n == 0 then first = last + 1 end
return {'ok', first, last, ih + redis.call('LLEN', inb) - 1, created}
`;

/** KEYS: s, log, in. ARGV: node ('' to read only), notes channel prefix, session id. */
const CLAIM = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] ~= '' then
  local old = redis.call('HGET', KEYS[1], 'own')
  local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
  redis.call('HSET', KEYS[1], 'own', ARGV[1])
  local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl'))
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
  if old and old ~= '' and old ~= ARGV[1] then
    redis.call('PUBLISH', ARGV[2] .. old, 'superseded ' .. ARGV[3] .. ' ' .. gen)
  end
end
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1),
  redis.call('LLEN', KEYS[3])}
`;

/** KEYS: s, in. ARGV: payload, notes channel prefix, session id. */
const APPEND = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'bytes', 'ib', 'cap', 'own', 'ih')
local p = ARGV[1]
if tonumber(f[1]) + tonumber(f[2]) + #p > tonumber(f[3]) then return {'full'} end
local len = redis.call('RPUSH', KEYS[2], p)
redis.call('HINCRBY', KEYS[1], 'ib', #p)
local id = tonumber(f[5]) + len - 1
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 then redis.call('PEXPIRE', KEYS[2], pttl) end
local own = f[4] or ''
if own ~= '' then redis.call('PUBLISH', ARGV[2] .. own, 'inbox ' .. ARGV[3] .. ' ' .. id) end
return {'ok', id, own}
`;

/** KEYS: s, in. ARGV: after, max. Returns {first id, payloads}. */
const FETCH = `
local ih = tonumber(redis.call('HGET', KEYS[1], 'ih'))
if not ih then return {0, {}} end
local from = math.max(tonumber(ARGV[1]) + 1, ih)
local i = from - ih
return {from, redis.call('LRANGE', KEYS[2], i, i + tonumber(ARGV[2]) - 1)}
`;

/** KEYS: s, log, in. ARGV: node, prefix. The inbox tail, -1 (not the owner) or -2 (missing). */
const TOUCH = `
local f = redis.call('HMGET', KEYS[1], 'own', 'ttl', 'ih', 'cid')
if not f[2] then return -2 end
if f[1] ~= ARGV[1] then return -1 end
local ttl = tonumber(f[2])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
if f[4] and f[4] ~= '' then redis.call('PEXPIRE', ARGV[2] .. 'c:' .. f[4], ttl) end
return tonumber(f[3]) + redis.call('LLEN', KEYS[3]) - 1
`;

/**
 * KEYS: s, log, in, tombstone. ARGV: node ('' = any), gen, prefix, session id. Leaves a
 * tombstone for the TTL so that a stale owner's snapshot cannot bring the session back.
 */
const DELETE = `
local f = redis.call('HMGET', KEYS[1], 'own', 'gen', 'cid', 'ttl')
if not f[2] then return 0 end
if ARGV[1] ~= '' and (f[1] ~= ARGV[1] or tonumber(f[2]) ~= tonumber(ARGV[2])) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SET', KEYS[4], f[2], 'PX', f[4])
if f[3] and f[3] ~= '' then redis.call('SREM', ARGV[3] .. 'c:' .. f[3], ARGV[4]) end
return 1
`;

/** The owner replaces the resume token. KEYS: s. ARGV: node, gen, token, previous ('' none). */
const SET_TOKEN = `
local f = redis.call('HMGET', KEYS[1], 'own', 'gen')
if not f[2] then return 0 end
if f[1] ~= ARGV[1] or tonumber(f[2]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'tok', ARGV[3], 'ptok', ARGV[4])
return 1
`;

const SCRIPTS = {
  commit: new Script(COMMIT),
  claim: new Script(CLAIM),
  setToken: new Script(SET_TOKEN),
  append: new Script(APPEND),
  fetch: new Script(FETCH),
  touch: new Script(TOUCH),
  delete: new Script(DELETE),
  online: new Script(PRESENCE_SCRIPTS.online),
  offline: new Script(PRESENCE_SCRIPTS.offline),
  beat: new Script(PRESENCE_SCRIPTS.beat),
  clear: new Script(PRESENCE_SCRIPTS.clear),
  lookup: new Script(PRESENCE_SCRIPTS.lookup),
};

// ---- replies ------------------------------------------------------------------------------

const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
const num = (v: unknown): number => Number(text(v));

function parseSession(sessionId: string, reply: unknown): StoredSession | null {
  if (!Array.isArray(reply)) return null;
  const [flat, log] = reply as [Buffer[], Buffer[], number];
  const h = new Map<string, Buffer>();
  for (let i = 0; i + 1 < flat.length; i += 2) h.set(text(flat[i]), flat[i + 1]!);
  const n = (k: string): number => (h.has(k) ? num(h.get(k)) : 0);
  const owner = h.has('own') ? text(h.get('own')) : '';
  const inboxHead = n('ih');
  return {
    sessionId,
    token: new Uint8Array(h.get('tok') ?? Buffer.alloc(0)),
    ...(h.get('ptok')?.length ? { previousToken: new Uint8Array(h.get('ptok')!) } : {}),
    identity: h.has('idn') ? text(h.get('idn')) : null,
    clientId: h.has('cid') ? text(h.get('cid')) : '',
    traceId: h.has('tid') ? text(h.get('tid')) : '',
    received: n('recv'),
    seen: n('seen'),
    acked: n('ack'),
    lastSeq: n('last'),
    log: log.map((b) => new Uint8Array(b)),
    bytes: n('bytes'),
    owner: owner === '' ? null : owner,
    gen: n('gen'),
    inboxHead,
    inboxTail: inboxHead + num(reply[2]) - 1,
    ttl: n('ttl'),
    maxBytes: n('cap'),
  };
}

// ---- the store --------------------------------------------------------------------------

/**
 * The {@link SessionStore} and {@link PresenceStore} contracts on Redis, sharing one
 * command connection and one subscriber connection. Create it with a URL, ioredis options
 * or a client; it connects on first use. Errors reaching Redis reject with `HL_ERR_STORE`;
 * connection state changes go to {@link onStatus} listeners (the server turns them into
 * 'store' events).
 */
export class RedisStore implements SessionStore, PresenceStore {
  readonly keyPrefix: string;
  readonly #options: RedisStoreOptions;
  #client: Promise<Redis> | null = null;
  #subscriber: Promise<Redis> | null = null;
  readonly #ownsClient: boolean;
  readonly #noteListeners = new Map<string, Set<(note: StoreNote) => void>>();
  readonly #presenceListeners = new Set<(event: PresenceEvent) => void>();
  readonly #statusListeners = new Set<(status: StoreStatus) => void>();
  #up: boolean | null = null;
  #closed = false;

  constructor(options: RedisStoreOptions | string = {}) {
    const o = typeof options === 'string' ? { url: options } : options;
    if (o === null || typeof o !== 'object') {
      throw new InvalidArgumentError('option "redis" must be a URL string or ioredis options');
    }
    if (o.client !== undefined && (o.url !== undefined || o.redis !== undefined)) {
      throw new InvalidArgumentError('RedisStore: "client" conflicts with "url" and "redis"');
    }
    if (o.url !== undefined && !/^rediss?:\/\//.test(o.url)) {
      throw new InvalidArgumentError(
        `Redis URL must start with redis:// or rediss://, got ${o.url}`,
      );
    }
    const prefix = keyPrefixOption(o.keyPrefix);
    // Refused here, not at the first command: ioredis is an optional peer dependency.
    if (o.client === undefined) checkPeer('ioredis', REDIS_FEATURE);
    this.keyPrefix = prefix;
    this.#options = o;
    this.#ownsClient = o.client === undefined;
  }

  /** Calls `listener` whenever Redis becomes reachable or unreachable. */
  onStatus(listener: (status: StoreStatus) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  #status(up: boolean, err?: unknown): void {
    if (this.#up === up) return;
    this.#up = up;
    const status: StoreStatus = up ? { up } : { up, error: storeError(err) };
    for (const l of this.#statusListeners) l(status);
  }

  /**
   * The command connection (an ioredis client), created on first use. Its type names only
   * what the declarations need: cast it to ioredis's `Redis` for other commands.
   */
  client(): Promise<RedisClient> {
    // Also checks, at compile time, that an ioredis client fits RedisClient.
    return this.#command();
  }

  #command(): Promise<Redis> {
    if (this.#closed) return Promise.reject(storeError(new Error('the store is closed')));
    this.#client ??= this.#connect(false);
    return this.#client;
  }

  async #connect(subscriber: boolean): Promise<Redis> {
    let redis: Redis;
    const given = this.#options.client;
    if (given) {
      // Typed by its shape in the options; it is an ioredis client (the docs say so).
      redis = (subscriber ? given.duplicate() : given) as Redis;
    } else {
      const { Redis: RedisClass } = await import('ioredis').catch((err: unknown) => {
        throw isMissingPackage(err, 'ioredis')
          ? missingPackage('ioredis', REDIS_FEATURE, err)
          : err;
      });
      const opts: RedisOptions = { ...CLIENT_DEFAULTS, ...this.#options.redis };
      if (subscriber) opts.maxRetriesPerRequest = null;
      redis =
        this.#options.url !== undefined
          ? new RedisClass(this.#options.url, opts)
          : new RedisClass(opts);
    }
    // ioredis prints errors nobody listens to; a library reports them instead.
    redis.on('error', (err: Error) => {
      if (!subscriber) this.#status(false, err);
    });
    if (!subscriber) {
      redis.on('ready', () => this.#status(true));
      redis.on('end', () => this.#status(false, new Error('connection ended')));
      if (redis.status === 'ready') this.#status(true);
    }
    return redis;
  }

  async #run(
    script: keyof typeof SCRIPTS,
    keys: readonly string[],
    args: ReadonlyArray<string | number | Buffer>,
  ): Promise<unknown> {
    const redis = await this.#command();
    try {
      return await SCRIPTS[script].run(redis, keys, args);
    } catch (err) {
      throw storeError(err);
    }
  }

  #keys(sessionId: string): [string, string, string] {
    checkSessionId(sessionId);
    const base = `${this.keyPrefix}{${sessionId}}`;
    return [`${base}:s`, `${base}:log`, `${base}:in`];
  }

  #tombstone(sessionId: string): string {
    return `${this.keyPrefix}{${sessionId}}:x`;
  }

  async load(sessionId: string): Promise<StoredSession | null> {
    const reply = await this.#run('claim', this.#keys(sessionId), ['', '', sessionId]);
    return parseSession(sessionId, reply);
  }

  async claim(sessionId: string, node: string): Promise<StoredSession | null> {
    checkNode(node);
    const reply = await this.#run('claim', this.#keys(sessionId), [
      node,
      `${this.keyPrefix}n:`,
      sessionId,
    ]);
    return parseSession(sessionId, reply);
  }

  async setToken(
    sessionId: string,
    owner: OwnerFence,
    token: Uint8Array,
    previous: Uint8Array | null,
  ): Promise<boolean> {
    checkNode(owner.node);
    const reply = await this.#run(
      'setToken',
      [this.#keys(sessionId)[0]!],
      [owner.node, owner.gen, Buffer.from(token), previous ? Buffer.from(previous) : ''],
    );
    return num(reply) === 1;
  }

  async commit(sessionId: string, batch: CommitBatch): Promise<CommitResult> {
    const keys = this.#keys(sessionId);
    const owner = batch.owner;
    if (owner) checkNode(owner.node);
    const snap = batch.snapshot;
    if (snap && snap.sessionId !== sessionId) {
      throw new InvalidArgumentError('snapshot.sessionId must be the committed session');
    }
    const seq = (name: string, v: number | undefined, none: number): number => {
      if (v === undefined) return none;
      if (!Number.isSafeInteger(v) || v < 0) {
        throw new InvalidArgumentError(`${name} must be a safe integer >= 0, got ${String(v)}`);
      }
      return v;
    };
    const args: Array<string | number | Buffer> = [
      owner?.node ?? '',
      owner?.gen ?? 0,
      seq('received', batch.received, 0),
      seq('seen', batch.seen, 0),
      seq('acked', batch.acked, -1),
      seq('firstSeq', batch.firstSeq, 0),
      seq('inboxThrough', batch.inboxThrough, -1),
      snap ? '1' : '0',
      snap ? Buffer.from(snap.token) : '',
      snap?.identity ?? '',
      snap && snap.identity !== null ? '1' : '0',
      snap?.clientId ?? '',
      snap?.traceId ?? '',
      snap?.ttl ?? 0,
      snap?.maxBytes ?? 0,
      this.keyPrefix,
      ...batch.replies.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)),
    ];
    // The session id follows the payloads: the script adds it to the client index.
    const reply = (await this.#run(
      'commit',
      [...keys, this.#tombstone(sessionId)],
      [...args, sessionId],
    )) as unknown[];
    const status = text(reply[0]);
    switch (status) {
      case 'ok':
        return {
          status,
          firstSeq: num(reply[1]),
          lastSeq: num(reply[2]),
          inboxTail: num(reply[3]),
          created: num(reply[4]) === 1,
        };
      case 'missing':
      case 'overflow':
        return { status };
      case 'fenced': {
        const o = text(reply[1]);
        return { status, owner: o === '' ? null : o, gen: num(reply[2]) };
      }
      case 'gap':
        return { status, lastSeq: num(reply[1]) };
      default:
        throw storeError(new Error(`unexpected commit reply ${status}`));
    }
  }

  async fetchInbox(sessionId: string, after: number, max: number): Promise<InboxEntry[]> {
    const [s, , inbox] = this.#keys(sessionId);
    const reply = (await this.#run('fetch', [s, inbox], [after, max])) as [number, Buffer[]];
    const first = num(reply[0]);
    return reply[1].map((b, i) => ({ id: first + i, payload: new Uint8Array(b) }));
  }

  async append(sessionId: string, payload: Uint8Array): Promise<AppendResult> {
    const [s, , inbox] = this.#keys(sessionId);
    const reply = (await this.#run(
      'append',
      [s, inbox],
      [
        Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
        `${this.keyPrefix}n:`,
        sessionId,
      ],
    )) as unknown[];
    const status = text(reply[0]);
    if (status === 'ok') {
      const owner = text(reply[2]);
      return { status, id: num(reply[1]), owner: owner === '' ? null : owner };
    }
    return { status: status === 'full' ? 'full' : 'missing' };
  }

  async sessionsOf(clientId: string): Promise<string[]> {
    const redis = await this.#command();
    try {
      return await redis.smembers(`${this.keyPrefix}c:${clientId}`);
    } catch (err) {
      throw storeError(err);
    }
  }

  async touch(sessionIds: readonly string[], node: string): Promise<number[]> {
    checkNode(node);
    if (sessionIds.length === 0) return [];
    const redis = await this.#command();
    const touch = SCRIPTS.touch;
    const send = async (): Promise<Array<[Error | null, unknown]>> => {
      const pipeline = redis.pipeline();
      for (const id of sessionIds) {
        pipeline.callBuffer('EVALSHA', touch.sha, 3, ...this.#keys(id), node, this.keyPrefix);
      }
      return ((await pipeline.exec()) ?? []) as Array<[Error | null, unknown]>;
    };
    try {
      let replies = await send();
      if (replies.some(([err]) => isNoScript(err))) {
        await redis.call('SCRIPT', 'LOAD', touch.lua);
        replies = await send();
      }
      return replies.map(([err, r]) => {
        if (err) throw err;
        return num(r);
      });
    } catch (err) {
      throw storeError(err);
    }
  }

  async delete(sessionId: string, owner?: OwnerFence): Promise<boolean> {
    const reply = await this.#run(
      'delete',
      [...this.#keys(sessionId), this.#tombstone(sessionId)],
      [owner?.node ?? '', owner?.gen ?? 0, this.keyPrefix, sessionId],
    );
    return num(reply) === 1;
  }

  async #subscriberClient(): Promise<Redis> {
    if (this.#closed) throw storeError(new Error('the store is closed'));
    if (!this.#subscriber) {
      this.#subscriber = this.#connect(true).then((sub) => {
        sub.on('messageBuffer', (channel: Buffer, message: Buffer) =>
          this.#onMessage(text(channel), text(message)),
        );
        return sub;
      });
    }
    return this.#subscriber;
  }

  #onMessage(channel: string, message: string): void {
    if (channel === `${this.keyPrefix}presence`) {
      let event: PresenceEvent;
      try {
        const m = JSON.parse(message) as { o: number; n: string; s: string; c: string };
        event = { online: m.o === 1, node: m.n, sessionId: m.s, clientId: m.c };
      } catch {
        return; // not ours
      }
      for (const l of this.#presenceListeners) l(event);
      return;
    }
    const node = channel.slice(`${this.keyPrefix}n:`.length);
    const [type, sessionId, n] = message.split(' ');
    if (!sessionId || n === undefined) return;
    const note: StoreNote =
      type === 'inbox'
        ? { type, sessionId, id: Number(n) }
        : { type: 'superseded', sessionId, gen: Number(n) };
    for (const l of this.#noteListeners.get(node) ?? []) l(note);
  }

  async #listen(channel: string): Promise<void> {
    const sub = await this.#subscriberClient();
    try {
      await sub.subscribe(channel);
    } catch (err) {
      throw storeError(err);
    }
  }

  async #unlisten(channel: string): Promise<void> {
    const sub = await this.#subscriber;
    if (!sub || this.#closed) return;
    // While Redis is away the command would wait for it: let it go out on reconnect.
    const done = sub.unsubscribe(channel).catch(() => {});
    if (sub.status === 'ready') await done;
  }

  async subscribe(node: string, onNote: (note: StoreNote) => void): Promise<Unsubscribe> {
    checkNode(node);
    let set = this.#noteListeners.get(node);
    if (!set) {
      set = new Set();
      this.#noteListeners.set(node, set);
    }
    set.add(onNote);
    if (set.size === 1) await this.#listen(`${this.keyPrefix}n:${node}`);
    return async () => {
      const s = this.#noteListeners.get(node);
      if (!s?.delete(onNote) || s.size > 0) return;
      this.#noteListeners.delete(node);
      await this.#unlisten(`${this.keyPrefix}n:${node}`);
    };
  }

  async presenceOnline(entry: PresenceEntry): Promise<void> {
    checkNode(entry.node);
    checkSessionId(entry.sessionId);
    await this.#run('online', [], [this.keyPrefix, entry.node, entry.sessionId, entry.clientId]);
  }

  async presenceOffline(entry: PresenceEntry): Promise<void> {
    checkNode(entry.node);
    checkSessionId(entry.sessionId);
    await this.#run('offline', [], [this.keyPrefix, entry.node, entry.sessionId]);
  }

  async presenceBeat(node: string, ttl: number): Promise<boolean> {
    checkNode(node);
    return num(await this.#run('beat', [], [this.keyPrefix, node, ttl])) === 1;
  }

  async presenceClear(node: string): Promise<void> {
    checkNode(node);
    await this.#run('clear', [], [this.keyPrefix, node]);
  }

  async presenceLookup(id: string): Promise<PresenceEntry[]> {
    const reply = (await this.#run('lookup', [], [this.keyPrefix, id])) as Buffer[][];
    return reply.map(([node, sessionId, clientId]) => ({
      node: text(node),
      sessionId: text(sessionId),
      clientId: text(clientId),
    }));
  }

  async onPresence(listener: (event: PresenceEvent) => void): Promise<Unsubscribe> {
    this.#presenceListeners.add(listener);
    if (this.#presenceListeners.size === 1) await this.#listen(`${this.keyPrefix}presence`);
    return async () => {
      if (!this.#presenceListeners.delete(listener) || this.#presenceListeners.size > 0) return;
      await this.#unlisten(`${this.keyPrefix}presence`);
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const clients = await Promise.allSettled([this.#client, this.#subscriber]);
    for (const [i, c] of clients.entries()) {
      if (c.status !== 'fulfilled' || !c.value) continue;
      const own = i === 1 || this.#ownsClient;
      if (!own) continue;
      const redis = c.value;
      // quit() lets replies still pending arrive, but never waits long for a Redis that
      // went away meanwhile; disconnect() drops the socket at once.
      if (redis.status === 'ready') {
        let timer: NodeJS.Timeout | undefined;
        const bounded = new Promise<void>((r) => {
          timer = setTimeout(r, 1000);
        });
        await Promise.race([redis.quit().catch(() => {}), bounded]);
        clearTimeout(timer);
      }
      redis.disconnect();
    }
  }
}
