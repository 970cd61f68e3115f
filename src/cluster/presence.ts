/**
 * Presence: which session and client ids are online on which node. A session is online on
 * a node while it has a live link there. Each node announces its sessions as they come and
 * go, and beats every `ttl / 3` to stay alive; a node not heard for `ttl` is dead, its
 * entries stop counting at once, and the next beat of any node removes them, announcing
 * each offline exactly once. So lookups converge within `ttl` of a node's death and offline
 * events follow within `ttl` plus one beat.
 *
 * Events travel on Redis pub/sub (channel `hl:presence`) with a RedisStore, and in process
 * with a MemoryStore. (A server without a store answers presence itself: LocalDirectory.)
 */

import { HeartlineError } from '../errors.js';
import type { PresenceEntry, PresenceEvent, PresenceStore, Unsubscribe } from '../session/store.js';
import type { Clock, ClockTimer } from '../time/clock.js';

/** Lua shared by the presence scripts: time from Redis itself, so node clocks may differ. */
const PRELUDE = `
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function drop(node, sid, cid)
  redis.call('HDEL', p .. 'pn:' .. node, sid)
  local m = node .. '\\t' .. sid
  redis.call('SREM', p .. 'p:' .. sid, m)
  if cid ~= '' then redis.call('SREM', p .. 'p:' .. cid, m) end
  redis.call('PUBLISH', p .. 'presence', cjson.encode({o = 0, n = node, s = sid, c = cid}))
end
local function clear(node)
  local all = redis.call('HGETALL', p .. 'pn:' .. node)
  for i = 1, #all, 2 do drop(node, all[i], all[i + 1]) end
  redis.call('DEL', p .. 'pn:' .. node)
  redis.call('ZREM', p .. 'nodes', node)
end
`;

/**
 * The presence scripts of RedisStore. ARGV[1] is the key prefix in each. Keys: `nodes`
 * (sorted set node -> expiry ms), `pn:NODE` (hash session id -> client id), `p:ID` (set of
 * `NODE\tSID` for a session id or client id).
 */
export const PRESENCE_SCRIPTS = {
  /** ARGV: prefix, node, session id, client id. (The node counts once it beats.) */
  online: `${PRELUDE}
if redis.call('HSETNX', p .. 'pn:' .. ARGV[2], ARGV[3], ARGV[4]) == 1 then
  local m = ARGV[2] .. '\\t' .. ARGV[3]
  redis.call('SADD', p .. 'p:' .. ARGV[3], m)
  if ARGV[4] ~= '' then redis.call('SADD', p .. 'p:' .. ARGV[4], m) end
  redis.call('PUBLISH', p .. 'presence', cjson.encode({o = 1, n = ARGV[2], s = ARGV[3], c = ARGV[4]}))
end
return 1`,
  /** ARGV: prefix, node, session id. */
  offline: `${PRELUDE}
local cid = redis.call('HGET', p .. 'pn:' .. ARGV[2], ARGV[3])
if not cid then return 0 end
drop(ARGV[2], ARGV[3], cid)
return 1`,
  /** ARGV: prefix, node, ttl. Returns 1 when the node was not listed (new, or reaped). */
  beat: `${PRELUDE}
local added = redis.call('ZADD', p .. 'nodes', now + tonumber(ARGV[3]), ARGV[2])
local dead = redis.call('ZRANGEBYSCORE', p .. 'nodes', '-inf', now, 'LIMIT', 0, 32)
for _, d in ipairs(dead) do
  if d ~= ARGV[2] then clear(d) end
end
return added`,
  /** ARGV: prefix, node. */
  clear: `${PRELUDE}
clear(ARGV[2])
return 1`,
  /** ARGV: prefix, id. Returns {node, session id, client id} of live nodes. */
  lookup: `${PRELUDE}
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', p .. 'p:' .. ARGV[2])) do
  local tab = string.find(m, '\\t', 1, true)
  if tab then
    local node, sid = string.sub(m, 1, tab - 1), string.sub(m, tab + 1)
    local exp = tonumber(redis.call('ZSCORE', p .. 'nodes', node))
    if exp and exp > now then
      local cid = redis.call('HGET', p .. 'pn:' .. node, sid)
      if cid then out[#out + 1] = {node, sid, cid} end
    end
  end
end
return out`,
} as const;

/** Presence defaults. */
export const PRESENCE_DEFAULTS = Object.freeze({
  /**
   * A node not heard for this long is dead and its sessions offline (ms). Nodes beat three
   * times per TTL, so two lost beats in a row are survived; 10 s keeps a dead node's
   * sessions listed no longer than a client takes to notice with the default heartbeat.
   */
  ttl: 10_000,
});

/** Where presence reports trouble. */
export interface PresenceHost {
  clock: Clock;
  /** A presence event, from this node or (with a shared store) any node. */
  event(event: PresenceEvent): void;
  /** A store call failed (presence keeps its local view and re-announces later). */
  error(err: HeartlineError): void;
  /** The store answered (again). */
  ok(): void;
  /** Bounds a store call by the store timeout (a dead store must not hang a close). */
  call<T>(op: Promise<T>): Promise<T>;
}

function asError(err: unknown): HeartlineError {
  return err instanceof HeartlineError
    ? err
    : new HeartlineError('HL_ERR_STORE', `presence: ${String(err)}`, { cause: err });
}

/**
 * One node's presence service: its own online sessions (kept locally, so they can be
 * announced again after the store lost them or reaped this node during a pause), the beat,
 * lookups and the cluster's events.
 */
export class Presence {
  readonly #store: PresenceStore;
  readonly #node: string;
  readonly #ttl: number;
  readonly #host: PresenceHost;
  readonly #local = new Map<string, PresenceEntry>();
  #timer: ClockTimer | null = null;
  #unsubscribe: Unsubscribe | null = null;
  #started: Promise<void> | null = null;
  #closed = false;

  constructor(store: PresenceStore, node: string, ttl: number, host: PresenceHost) {
    this.#store = store;
    this.#node = node;
    this.#ttl = ttl;
    this.#host = host;
  }

  /** The presence TTL in ms. */
  get ttl(): number {
    return this.#ttl;
  }

  /**
   * Subscribes to the cluster's events, clears what a previous process with this node id
   * left behind and starts beating. Failures are reported and retried by the beat.
   */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    const store = this.#store;
    this.#schedule();
    try {
      const call = this.#host.call;
      const unsubscribe = await call(store.onPresence((e) => this.#host.event(e)));
      if (this.#closed) await unsubscribe();
      else this.#unsubscribe = unsubscribe;
      await call(store.presenceClear(this.#node));
      await this.#beat();
    } catch (err) {
      this.#host.error(asError(err));
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = this.#host.clock.setTimeout(() => {
      this.#timer = null;
      void this.#beat().finally(() => this.#schedule());
    }, this.#ttl / 3);
  }

  async #beat(): Promise<void> {
    const store = this.#store;
    if (this.#closed) return;
    try {
      const call = this.#host.call;
      const fresh = await call(store.presenceBeat(this.#node, this.#ttl));
      this.#host.ok();
      // Reaped during a pause, or the store lost everything: announce our sessions again.
      if (fresh) {
        for (const e of this.#local.values()) await call(store.presenceOnline(e));
      }
    } catch (err) {
      this.#host.error(asError(err));
    }
  }

  /** A session of this node came online (its link is up). */
  online(entry: PresenceEntry): void {
    if (this.#closed || this.#local.has(entry.sessionId)) return;
    this.#local.set(entry.sessionId, entry);
    this.#host.call(this.#store.presenceOnline(entry)).then(
      () => this.#host.ok(),
      (err) => this.#host.error(asError(err)),
    );
  }

  /** A session of this node went offline (its link closed, or the session ended). */
  offline(sessionId: string): void {
    const entry = this.#local.get(sessionId);
    if (!entry) return;
    this.#local.delete(sessionId);
    this.#host.call(this.#store.presenceOffline(entry)).then(
      () => this.#host.ok(),
      (err) => this.#host.error(asError(err)),
    );
  }

  /** Where a session id or client id is online; rejects with HL_ERR_STORE when unreachable. */
  async lookup(id: string): Promise<PresenceEntry[]> {
    try {
      return await this.#host.call(this.#store.presenceLookup(id));
    } catch (err) {
      throw asError(err);
    }
  }

  /** Stops beating and announces every local session offline (an orderly stop). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) this.#host.clock.clearTimeout(this.#timer);
    this.#timer = null;
    const store = this.#store;
    this.#local.clear();
    await this.#started?.catch(() => {});
    await this.#host
      .call(store.presenceClear(this.#node))
      .catch((err: unknown) => this.#host.error(asError(err)));
    if (this.#unsubscribe) await this.#host.call(this.#unsubscribe()).catch(() => {});
  }
}
