/**
 * Keeps the benchmark harness from rotting: one tiny workload end to end (a heartline
 * server child, a client process, frozen peers, the measuring probe, the result file) and
 * the file-controlled probe the multi-process row relies on. Nothing here judges speed:
 * the tests check that the runs complete and write well-formed JSON.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { FlapRow } from '../../bench/flap.js';
import type { KeepaliveRow } from '../../bench/keepalive.js';
import type { IdleRow } from '../../bench/lib/idle-run.js';
import type { ProbeState } from '../../bench/lib/probe.mjs';
import { checkResult, type ResultDoc } from '../../bench/lib/results.js';
import type { RequestsRow } from '../../bench/requests.js';
import { hostsUnavailable } from '../support/netns.js';
import { waitFor } from '../support/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Generous: the machine has 2 cores and other suites run at the same time. */
const RUN_TIMEOUT_MS = 180_000;

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'heartline-bench-smoke-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Kills the child (and waits for it) when the test ends, pass or fail. */
function cleanup(t: { after: (fn: () => Promise<void>) => void }, child: ChildProcess): void {
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  });
}

const isFiniteNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

test('a tiny idle workload runs end to end and writes a well-formed result', {
  timeout: RUN_TIMEOUT_MS + 10_000,
}, async (t) => {
  const out = tempDir(t);
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/idle.ts',
      '--connections',
      '200',
      '--settle',
      '1',
      '--window',
      '3',
      '--frozen',
      '3',
      '--multi',
      '0',
      '--out',
      out,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  cleanup(t, child);
  let output = '';
  child.stdout.on('data', (d) => {
    output += d;
  });
  child.stderr.on('data', (d) => {
    output += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, `bench/idle.ts failed:\n${output}`);

  const doc = JSON.parse(readFileSync(join(out, 'idle.json'), 'utf8')) as ResultDoc<IdleRow>;
  assert.deepEqual(checkResult(doc), [], 'the result document is malformed');
  assert.equal(doc.name, 'idle');
  assert.equal(doc.rows.length, 1);
  const row = doc.rows[0]!;
  assert.equal(row.status, 'ok', row.note);
  assert.equal(row.system, 'heartline');
  for (const [name, value] of Object.entries({
    'memory.rssPerConnKiB': row.memory?.rssPerConnKiB,
    'memory.before.rss': row.memory?.before.rss,
    'cpu.serverS': row.cpu?.serverS,
    'cpu.per100kS': row.cpu?.per100kS,
    'cpu.nominalHeartbeats': row.cpu?.nominalHeartbeats,
    'eld.p99': row.eld?.p99,
    'detection.timeoutMs': row.detection?.timeoutMs,
  })) {
    assert.ok(isFiniteNumber(value), `${name} is not a number: ${String(value)}`);
  }
  assert.equal(row.detection?.frozen, 3);
  assert.ok(Array.isArray(row.detection?.peers));
  assert.ok(doc.targets.some((target) => target.id === 'detection-under-load'));
});

test('the file-controlled probe marks windows in a process it was loaded into', {
  timeout: 60_000,
}, async (t) => {
  const dir = tempDir(t);
  const probe = pathToFileURL(join(ROOT, 'bench', 'lib', 'probe.mjs')).href;
  // A process that knows nothing of the probe: it is loaded through NODE_OPTIONS, as in
  // the workers of a multi-process server.
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
    env: { ...process.env, NODE_OPTIONS: `--import=${probe}`, BENCH_PROBE_DIR: dir },
    stdio: 'ignore',
  });
  cleanup(t, child);
  const file = join(dir, `probe-${child.pid}.json`);
  const read = (): ProbeState | null => {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as ProbeState;
    } catch {
      return null;
    }
  };
  await waitFor(() => read() !== null, {
    timeout: 20_000,
    message: 'the probe wrote no state file',
  });
  writeFileSync(join(dir, 'control.json'), JSON.stringify({ seq: 1, gc: true }));
  await waitFor(() => read()?.seq === 1, {
    timeout: 20_000,
    message: 'the probe did not take mark 1',
  });
  const state = read()!;
  assert.equal(state.pid, child.pid);
  assert.ok(isFiniteNumber(state.mem.rssNet) && state.mem.rssNet > 0);
  assert.ok(state.previous, 'mark 1 closed no window');
  assert.ok(isFiniteNumber(state.previous.cpuUserMs));
  assert.ok(isFiniteNumber(state.previous.eld.p99));
  assert.ok(state.previous.elapsedMs > 0);
});

/** Runs a bench file with `args` into `out`; fails with its output unless it exits 0. */
async function runBench(
  t: { after: (fn: () => Promise<void>) => void },
  file: string,
  args: string[],
): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanup(t, child);
  let output = '';
  child.stdout.on('data', (d) => {
    output += d;
  });
  child.stderr.on('data', (d) => {
    output += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, `${file} failed:\n${output}`);
}

test('a tiny flapping-link run completes, every message exactly once', {
  timeout: RUN_TIMEOUT_MS + 10_000,
}, async (t) => {
  const out = tempDir(t);
  await runBench(t, 'bench/flap.ts', [
    '--runs',
    '1',
    '--messages',
    '2000',
    '--seconds',
    '2',
    '--out',
    out,
  ]);
  const doc = JSON.parse(readFileSync(join(out, 'flap.json'), 'utf8')) as ResultDoc<FlapRow>;
  assert.deepEqual(checkResult(doc), [], 'the result document is malformed');
  assert.equal(doc.rows.length, 1);
  const row = doc.rows[0]!;
  assert.equal(row.exactlyOnce, true);
  assert.ok(isFiniteNumber(row.totalS) && isFiniteNumber(row.sendingS));
  assert.ok(doc.targets.some((target) => target.id === 'flap-ratio'));
});

test('a quick requests run measures every system and both memory figures', {
  timeout: RUN_TIMEOUT_MS + 10_000,
}, async (t) => {
  const out = tempDir(t);
  await runBench(t, 'bench/requests.ts', [
    '--quick',
    '--warmup',
    '0.1',
    '--duration',
    '0.2',
    '--pending',
    '200',
    '--out',
    out,
  ]);
  const doc = JSON.parse(
    readFileSync(join(out, 'requests.json'), 'utf8'),
  ) as ResultDoc<RequestsRow>;
  assert.deepEqual(checkResult(doc), [], 'the result document is malformed');
  for (const system of ['heartline', 'socketio', 'ws', 'net']) {
    for (const kind of ['sequential', 'pipelined'] as const) {
      const rows = doc.rows.filter((r) => r.system === system && r.kind === kind);
      assert.equal(rows.length, 2, `${system} ${kind}: one row per payload size`);
      for (const r of rows) {
        assert.ok(isFiniteNumber(r.perSecond) && r.perSecond > 0, `${system} ${kind} rate`);
        assert.ok(isFiniteNumber(r.latencyMs?.p99), `${system} ${kind} p99`);
        assert.equal(r.lost, 0, `${system} lost its connection`);
      }
    }
    const memory = doc.rows.find((r) => r.system === system && r.kind === 'pending-memory');
    assert.ok(isFiniteNumber(memory?.heapBytesPerRequest), `${system} pending memory`);
  }
  assert.equal(doc.rows.filter((r) => r.kind === 'acked').length, 3);
  const window = doc.rows.find((r) => r.kind === 'idempotency-memory');
  assert.ok(isFiniteNumber(window?.heapBytesPerRequest) && window.heapBytesPerRequest > 0);
});

test('a tiny keepalive-probe run counts probes in both namespaces', {
  timeout: RUN_TIMEOUT_MS + 10_000,
  skip: hostsUnavailable() ?? false,
}, async (t) => {
  const out = tempDir(t);
  await runBench(t, 'bench/keepalive.ts', ['--connections', '20', '--window', '3', '--out', out]);
  const doc = JSON.parse(
    readFileSync(join(out, 'keepalive.json'), 'utf8'),
  ) as ResultDoc<KeepaliveRow>;
  assert.deepEqual(checkResult(doc), [], 'the result document is malformed');
  assert.deepEqual(
    doc.rows.map((r) => r.id),
    ['before', 'derived'],
  );
  for (const row of doc.rows) {
    assert.ok(Number.isInteger(row.serverProbes) && row.serverProbes >= 0);
    assert.ok(Number.isInteger(row.clientProbes) && row.clientProbes >= 0);
  }
});
