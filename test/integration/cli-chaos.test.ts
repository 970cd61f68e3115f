/**
 * `heartline chaos` end to end: the built CLI proxies a real client to a real server and
 * injects the faults it is told on stdin and on its HTTP control port.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { opened, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor } from '../support/wait.js';

const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

test('chaos proxies a client and applies stdin and HTTP commands', async (t) => {
  assert.ok(existsSync(MAIN), 'dist/cli/main.js is missing: run npm run build');
  const { server, port } = await startServer(t, { interval: 200, timeout: 600 });
  const child = spawn(
    process.execPath,
    [MAIN, 'chaos', '--listen', '0', '--target', `127.0.0.1:${port}`, '--control', '0'],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(JSON.parse(l)));
  await waitFor(() => lines.some((l) => l.event === 'listening'));
  const listening = lines.find((l) => l.event === 'listening')!;
  const proxyPort = listening.port as number;
  const controlPort = listening.control as number;

  const serverSide: Promise<ServerConnection> = new Promise((r) => server.once('connection', r));
  const client = startClient(t, { port: proxyPort, backoff: { initialDelay: 10, maxDelay: 50 } });
  await opened(client);
  const conn = await serverSide;

  // stdin: freeze both ways -> the client turns suspect; heal -> healthy again.
  child.stdin!.write('freeze both\n');
  await waitFor(() => lines.some((l) => l.command === 'freeze'));
  await waitFor(() => client.state === 'suspect', { message: `client is ${client.state}` });
  child.stdin!.write('heal\n');
  await waitFor(() => client.state === 'healthy' && conn.state === 'healthy');

  // A bad command answers with a typed error and the proxy keeps running.
  child.stdin!.write('bogus 12\n');
  await waitFor(() => lines.some((l) => l.event === 'error'));
  assert.equal(lines.find((l) => l.event === 'error')!.code, 'HL_ERR_INVALID_ARGUMENT');

  // HTTP: reset cuts the link with RST; the client resumes through the proxy.
  const resumed = onceEvent(client, 'resumed');
  const response = await fetch(`http://127.0.0.1:${controlPort}/command`, {
    method: 'POST',
    body: 'reset',
  });
  assert.equal(response.status, 200);
  assert.equal(((await response.json()) as { ok: boolean }).ok, true);
  await resumed;
  const echo = onceEvent(client, 'message');
  conn.send('through the proxy');
  assert.equal(((await echo) as [Buffer])[0].toString(), 'through the proxy');

  child.kill('SIGTERM');
  const [code] = (await onceEvent(child, 'exit')) as [number];
  assert.equal(code, 0);
});
