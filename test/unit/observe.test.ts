/**
 * The observability pieces that need no socket: the dashboard's assets (they parse, load
 * nothing from elsewhere, meet the contrast they promise), log levels per close reason,
 * registry ownership, and that importing heartline loads neither pino nor prom-client
 * until they are used. Load-level and readiness readings, which listen on a port, are in
 * test/loopback/observe-readiness.test.ts.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { InvalidArgumentError } from '../../src/errors.js';
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS } from '../../src/observe/dashboard/index.js';
import { loadProm } from '../../src/observe/deps.js';
import { levelForReason } from '../../src/observe/log.js';
import { createLogger } from '../../src/observe/logger.js';
import { createRegistry, metricsFor } from '../../src/observe/metrics.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

test('the dashboard script parses and the page loads nothing from elsewhere', () => {
  assert.doesNotThrow(() => new Script(DASHBOARD_JS, { filename: 'dashboard.js' }));
  assert.match(DASHBOARD_HTML, /^<!doctype html>\n<html lang="en">/);
  assert.match(DASHBOARD_HTML, /<script src="dashboard.js" defer><\/script>/);
  assert.match(DASHBOARD_HTML, /<link rel="stylesheet" href="dashboard.css">/);
  // No inline script or style (the page is served under a CSP that forbids them).
  assert.doesNotMatch(DASHBOARD_HTML, /<script>|<style|style="/);
  for (const [name, text] of Object.entries({ DASHBOARD_HTML, DASHBOARD_CSS, DASHBOARD_JS })) {
    const urls = (text.match(/https?:\/\/[^\s'"]+/g) ?? []).filter(
      (u) => u !== 'http://www.w3.org/2000/svg',
    );
    assert.deepEqual(urls, [], `${name} refers to ${urls.join(', ')}`);
  }
  // The live region, the labelled filter and the focusable table region are there.
  assert.match(DASHBOARD_HTML, /<ol id="events"[^>]*role="log"[^>]*aria-live="polite"/);
  assert.match(DASHBOARD_HTML, /<label for="filter">/);
  assert.match(DASHBOARD_HTML, /class="table-wrap" tabindex="0" role="region"/);
});

/** WCAG 2 contrast ratio of two #rrggbb colours. */
function contrast(a: string, b: string): number {
  const lum = (hex: string): number => {
    const [r, g, bl] = [1, 3, 5].map((i) => {
      const c = Number.parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    }) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

test('every state colour pair of the dashboard is at least 4.5:1', () => {
  const vars = new Map<string, string>();
  for (const m of DASHBOARD_CSS.matchAll(/--([\w-]+):\s*(#[0-9a-f]{6})/g)) vars.set(m[1]!, m[2]!);
  const states = ['healthy', 'suspect', 'dead', 'disconnected', 'connecting', 'closed'];
  for (const state of states) {
    const fg = vars.get(`${state}-fg`);
    const bg = vars.get(`${state}-bg`);
    assert.ok(fg && bg, state);
    assert.ok(contrast(fg, bg) >= 4.5, `${state}: ${contrast(fg, bg).toFixed(2)}`);
    assert.ok(contrast(fg, '#ffffff') >= 4.5, `${state} text on white`);
  }
  for (const [fg, bg] of [
    [vars.get('text'), vars.get('bg')],
    [vars.get('text'), vars.get('panel')],
    [vars.get('muted'), vars.get('panel')],
    [vars.get('muted'), vars.get('bg')],
    [vars.get('accent'), vars.get('panel')],
  ]) {
    assert.ok(fg && bg);
    assert.ok(contrast(fg, bg) >= 4.5, `${fg} on ${bg}`);
  }
});

test('log levels per close reason', () => {
  assert.equal(levelForReason('heartbeat-timeout'), 'warn');
  assert.equal(levelForReason('write-stall'), 'warn');
  assert.equal(levelForReason('session-expired'), 'warn');
  assert.equal(levelForReason('internal-error'), 'error');
  for (const reason of ['eof', 'reset', 'local', 'remote', 'going-away', 'superseded'] as const) {
    assert.equal(levelForReason(reason), 'info', reason);
  }
});

test('a registry holds one set of heartline metrics; another copy of them is refused', () => {
  const registry = createRegistry();
  assert.equal(metricsFor(registry), metricsFor(registry));
  const foreign = createRegistry();
  const prom = loadProm();
  new prom.Gauge({ name: 'heartline_connections', help: 'x', registers: [foreign] });
  assert.throws(() => metricsFor(foreign), InvalidArgumentError);
  // The global registry is never touched.
  assert.equal(prom.register.getSingleMetric('heartline_connections'), undefined);
});

test('createLogger refuses a destination that cannot be written', () => {
  assert.throws(() => createLogger({ destination: -1 }), InvalidArgumentError);
  assert.throws(
    () => createLogger({ destination: {} as NodeJS.WritableStream }),
    InvalidArgumentError,
  );
});

test('importing heartline or its optional entries loads no optional peer dependency', () => {
  const script = `
    import { createRequire } from 'node:module';
    const require = createRequire(import.meta.url);
    const loaded = () => Object.keys(require.cache).filter((k) => /node_modules\\/(pino|pino-pretty|prom-client|ioredis)\\//.test(k)).length;
    await import('./src/index.ts');
    const main = loaded();
    await import('./src/entries/cluster.ts');
    await import('./src/entries/chaos.ts');
    await import('./src/entries/codec.ts');
    const observe = await import('./src/entries/observe.ts');
    const entries = loaded();
    observe.createRegistry();
    console.log(JSON.stringify({ main, entries, after: loaded() }));
  `;
  const child = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(child.status, 0, child.stderr);
  const { main, entries, after } = JSON.parse(child.stdout.trim()) as {
    main: number;
    entries: number;
    after: number;
  };
  assert.equal(main, 0);
  assert.equal(entries, 0);
  assert.ok(after > 0, 'createRegistry loads prom-client');
});
