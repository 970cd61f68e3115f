/**
 * Graceful drain: a server stops accepting, lets in-flight messages be acknowledged,
 * closes every client with CLOSE(going away), and the client moves to a second server
 * at once. Nothing is lost: every message the client sent reaches exactly one server's
 * application, and every echo either reaches the client or is handed back to the
 * draining server's application.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ReconnectingEvent } from '../../src/connection.js';
import type { Server } from '../../src/server/server.js';
import { opened, startClient, startServer } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

const N = 2000;

function echoServer(server: Server, delivered: number[], handedBack: number[]): void {
  server.on('connection', (conn) => {
    conn.on('message', (m) => {
      delivered.push(Number(m.toString()));
      conn.send(m);
    });
    conn.on('session-lost', (e) => handedBack.push(...e.unacked.map((b) => Number(b.toString()))));
  });
}

test('a client loses nothing across a drain and a move to a second server', async (t) => {
  const atA: number[] = [];
  const atB: number[] = [];
  const backA: number[] = [];
  const backB: number[] = [];
  const a = await startServer(t, { interval: 200, timeout: 600 });
  const b = await startServer(t, { interval: 200, timeout: 600 });
  echoServer(a.server, atA, backA);
  echoServer(b.server, atB, backB);

  // The client starts on A (B is only in the list, second, after A's drain).
  const client = startClient(t, {
    servers: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
    random: () => 0.999, // keep the list order: A first
  });
  await opened(client);
  assert.equal(a.server.connections.size, 1);
  const echoes: number[] = [];
  const retries: ReconnectingEvent[] = [];
  client.on('message', (m) => echoes.push(Number(m.toString())));
  client.on('reconnecting', (e) => retries.push(e));
  // What A's session never acknowledged is handed back; the application sends it again.
  client.on('session-lost', (e) => {
    for (const m of e.unacked) client.send(m);
  });

  let sent = 0;
  const pump = setInterval(() => {
    for (let i = 0; i < 20 && sent < N; i++) client.send(String(++sent));
  }, 5);
  t.after(() => clearInterval(pump));
  await waitFor(() => sent >= N / 2);
  const drained = a.server.drain({ timeout: 2000 });
  assert.equal(a.server.draining, true);
  await drained;
  await waitFor(() => sent === N);
  clearInterval(pump);
  await waitFor(() => client.unackedCount === 0 && atA.length + atB.length >= N, {
    timeout: 10_000,
    message: `A ${atA.length} + B ${atB.length}`,
  });
  await waitFor(() => echoes.length + backA.length >= N, { timeout: 10_000 });

  const all = Array.from({ length: N }, (_, i) => i + 1);
  assert.ok(
    retries.length >= 1 && retries[0]!.reason === 'going-away' && retries[0]!.delayMs === 0,
  );
  assert.ok(atA.length > 0 && atB.length > 0, `A ${atA.length}, B ${atB.length}`);
  assert.deepEqual(
    [...atA, ...atB].sort((x, y) => x - y),
    all,
    'every message reached exactly one server',
  );
  assert.deepEqual(
    [...echoes, ...backA].sort((x, y) => x - y),
    all,
    'every echo reached the client or came back to the draining server',
  );
  assert.equal(backB.length, 0);
  t.diagnostic(
    `A delivered ${atA.length}, B ${atB.length}; echoes ${echoes.length}, handed back on A ${backA.length}`,
  );
});
