/**
 * Memory held per entry of the in-memory idempotency window, to check the per-entry
 * overhead it charges (ENTRY_OVERHEAD_BYTES in src/session/idempotency.ts):
 *
 *   node --import tsx bench/idempotency-memory.ts [--entries 100000] [--key 36] [--reply 16] [--scopes 10]
 *
 * Fills a window with finished entries (keys of `--key` ASCII bytes, replies of `--reply`
 * bytes, 10 scopes) and prints, per entry, the growth of heapUsed + arrayBuffers and of
 * RSS after a forced GC, and that growth minus the key and reply bytes (the overhead).
 */

import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createMemoryWindow, ENTRY_OVERHEAD_BYTES } from '../src/session/idempotency.js';
import { FakeClock } from '../src/time/fake-clock.js';

const gc: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '100000' },
    key: { type: 'string', default: '36' },
    reply: { type: 'string', default: '16' },
    scopes: { type: 'string', default: '10' },
  },
});
const n = Number(values.entries);
const keyBytes = Number(values.key);
const replyBytes = Number(values.reply);
const scopes = Number(values.scopes);

function used(): { heap: number; rss: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.arrayBuffers, rss: m.rss };
}

const clock = new FakeClock();
const window = createMemoryWindow({ maxKeys: n, maxKeysPerScope: n, maxBytes: 2 ** 40 }, clock);
// Keys are made before the first reading: the caller holds them anyway (decoded frames),
// but the window keeps them alive, so they are counted in the figure below.
const before = used();
for (let i = 0; i < n; i++) {
  // Flat strings, as decoded from a frame (a padEnd() cons string would weigh more).
  const key = Buffer.from(`${i.toString(36)}-`.padEnd(keyBytes, 'k')).toString();
  const scope = `scope-${i % scopes}`;
  if (window.begin(scope, key).kind !== 'run') throw new Error(`entry ${i} was not run`);
  window.finish(scope, key, { status: 0, payload: new Uint8Array(replyBytes) });
}
const after = used();
const heap = (after.heap - before.heap) / n;
const rss = (after.rss - before.rss) / n;
const result = {
  entries: n,
  keyBytes,
  replyBytes,
  heapPerEntry: Math.round(heap),
  rssPerEntry: Math.round(rss),
  heapOverheadPerEntry: Math.round(heap - keyBytes - replyBytes),
  rssOverheadPerEntry: Math.round(rss - keyBytes - replyBytes),
  charged: ENTRY_OVERHEAD_BYTES,
  chargedPerEntry: Math.round(window.stats.bytes / n),
  node: process.version,
};
window.close();
console.log(JSON.stringify(result));
