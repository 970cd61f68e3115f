/**
 * A Lua script run on Redis by its SHA1 (EVALSHA), loaded with EVAL on the first
 * NOSCRIPT. Shared by the session store and the idempotency window; not part of the
 * public types, so that they do not import ioredis's.
 */

import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A Lua script run by its SHA1, loaded on the first NOSCRIPT. */
export class Script {
  readonly sha: string;
  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  async run(
    redis: Redis,
    keys: readonly string[],
    args: ReadonlyArray<string | number | Buffer>,
  ): Promise<unknown> {
    const rest = [keys.length, ...keys, ...args];
    try {
      return await redis.callBuffer('EVALSHA', this.sha, ...rest);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return redis.callBuffer('EVAL', this.lua, ...rest);
    }
  }
}

/** True for Redis's NOSCRIPT reply: the script is not loaded on this server yet. */
export function isNoScript(err: unknown): boolean {
  return String((err as Error)?.message).startsWith('NOSCRIPT');
}
