/**
 * The operator's commands end to end on the built CLI: `serve --admin` with `status`,
 * configuration precedence (file < environment < flags), and `--log-level` logs.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startAdmin } from '../../src/observe/index.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor } from '../support/wait.js';

const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

interface Run {
  child: ChildProcess;
  events: Array<Record<string, unknown>>;
  stderr: string[];
}

function run(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const r: Run = { child, events: [], stderr: [] };
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      r.events.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      r.events.push({ text: l });
    }
  });
  createInterface({ input: child.stderr! }).on('line', (l) => r.stderr.push(l));
  return r;
}

async function listening(r: Run): Promise<Record<string, unknown>> {
  await waitFor(() => r.events.some((e) => e.event === 'listening'), { timeout: 10_000 });
  return r.events.find((e) => e.event === 'listening')!;
}

/** Runs a command to its end and returns its exit code and stdout lines. */
async function finish(t: TestContext, args: string[]): Promise<{ code: number; lines: string[] }> {
  const r = run(t, args);
  const [code] = (await onceEvent(r.child, 'exit', { timeout: 10_000 })) as [number];
  await new Promise((resolve) => setImmediate(resolve));
  return {
    code,
    lines: r.events.map((e) => (typeof e.text === 'string' ? e.text : JSON.stringify(e))),
  };
}

test('serve --admin exposes the endpoint; status prints its connections; --log-level logs to stderr', async (t) => {
  const server = run(t, ['serve', '--port', '0', '--admin', '0', '--log-level', 'info', '--json']);
  const event = await listening(server);
  assert.match(String(event.admin), /^http:\/\/127\.0\.0\.1:\d+$/);
  const adminPort = new URL(String(event.admin)).port;
  const client = startClient(t, { port: event.port as number, clientId: 'sensor-7' });
  await opened(client);

  const table = await finish(t, ['status', `127.0.0.1:${adminPort}`]);
  assert.equal(table.code, 0, table.lines.join('\n'));
  assert.match(table.lines[0]!, /server 127\.0\.0\.1:\d+ {2}ready/);
  assert.ok(table.lines.some((l) => /^CONN\s+STATE\s+REMOTE/.test(l)));
  assert.ok(
    table.lines.some((l) => /^c\d+\s+healthy\s+127\.0\.0\.1:\d+/.test(l)),
    table.lines.join('\n'),
  );

  const json = await finish(t, ['status', `127.0.0.1:${adminPort}`, '--json']);
  const snapshot = JSON.parse(json.lines.join('\n')) as {
    connections: Array<{ state: string; client: string }>;
  };
  assert.equal(snapshot.connections.length, 1);
  assert.equal(snapshot.connections[0]!.client, 'sensor-7');

  const metrics = await fetch(`${String(event.admin)}/metrics`);
  assert.match(await metrics.text(), /heartline_connections\{state="healthy"\} 1/);
  // pino's JSON lines on stderr, one for the new connection at least.
  await waitFor(() => server.stderr.some((l) => l.includes('"conn"')));
  assert.ok(
    server.stderr.every((l) => JSON.parse(l) !== null),
    'stderr holds JSON log lines',
  );

  const unreachable = await finish(t, ['status', '127.0.0.1:1']);
  assert.equal(unreachable.code, 1);
  const bad = await finish(t, ['serve', '--log-level', 'loud']);
  assert.equal(bad.code, 2);
});

test('configuration precedence: defaults < --config file < HEARTLINE_SERVE_* < flags', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heartline-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'heartline.json');
  writeFileSync(file, JSON.stringify({ serve: { interval: 1500, admin: 0, json: true } }));

  const grantedInterval = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const server = run(t, ['serve', '--port', '0', ...args], env);
    const event = await listening(server);
    const client = startClient(t, { port: event.port as number });
    await opened(client);
    const interval = client.settings?.interval;
    client.close();
    server.child.kill('SIGKILL');
    return interval;
  };
  assert.equal(await grantedInterval(['--config', file]), 1500, 'from the file');
  assert.equal(
    await grantedInterval([], { HEARTLINE_CONFIG: file }),
    1500,
    'file named by HEARTLINE_CONFIG',
  );
  assert.equal(
    await grantedInterval(['--config', file], { HEARTLINE_SERVE_INTERVAL: '1700' }),
    1700,
    'the environment wins over the file',
  );
  assert.equal(
    await grantedInterval(['--config', file, '--interval', '1900'], {
      HEARTLINE_SERVE_INTERVAL: '1700',
    }),
    1900,
    'a flag wins over both',
  );

  writeFileSync(file, JSON.stringify({ serve: { bogus: 1 } }));
  const bad = await finish(t, ['serve', '--config', file]);
  assert.equal(bad.code, 2, 'an unknown key is a usage error');
});

test('status reads every page of /api/connections, or --limit rows of them', async (t) => {
  const { server, port } = await startServer(t, { interval: 60_000, timeout: 120_000 });
  for (let i = 0; i < 5; i++) await (await RawPeer.connect(t, port)).handshake();
  // Pages of 2: status must follow `next` to list all five.
  const admin = await startAdmin(server, { maxPageSize: 2 });
  t.after(() => admin.close());
  const target = `127.0.0.1:${admin.port}`;
  const rowsOf = (lines: string[]) => lines.filter((l) => /^c\d+\s+healthy\s/.test(l));

  const table = await finish(t, ['status', target]);
  assert.equal(table.code, 0, table.lines.join('\n'));
  assert.equal(rowsOf(table.lines).length, 5, table.lines.join('\n'));
  assert.ok(!table.lines.some((l) => l.includes('more not listed')));

  const limited = await finish(t, ['status', target, '--limit', '3']);
  assert.equal(rowsOf(limited.lines).length, 3, limited.lines.join('\n'));
  assert.equal(limited.lines.at(-1), '... and 2 more not listed');

  const json = await finish(t, ['status', target, '--json']);
  const doc = JSON.parse(json.lines.join('\n')) as {
    total: number;
    next: number | null;
    connections: Array<{ id: string }>;
  };
  assert.equal(doc.total, 5);
  assert.equal(doc.next, null);
  assert.equal(new Set(doc.connections.map((c) => c.id)).size, 5);
});
