/**
 * The closing handshake (PROTOCOL.md 8): messages that cross a CLOSE are delivered and
 * acknowledged, so that what each end hands back is exactly what the other never
 * received, not a message it did.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SessionLostEvent } from '../../src/connection.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { opened, startClient, startServer } from '../support/peers.js';
import { onceEvent } from '../support/wait.js';

test('a client closing while the server streams: received and handed back partition what was sent', async (t) => {
  const { server, port } = await startServer(t, { maxBufferedBytes: 64 * 1024 * 1024 });
  const N = 30_000;
  const accepted = new Promise<ServerConnection>((r) => server.once('connection', r));
  const client = startClient(t, { servers: `127.0.0.1:${port}` });
  const received: string[] = [];
  const clientClosed = onceEvent(client, 'close', { timeout: 10_000 });
  client.on('message', (m) => {
    received.push(m.toString('utf8', 0, m.indexOf(32)));
    // Close in the middle of the stream: the rest is in flight towards us.
    if (received.length === 50) client.close();
  });
  await opened(client);
  const conn = await accepted;
  let handedBack: string[] = [];
  conn.on('session-lost', (e: SessionLostEvent) => {
    handedBack = e.unacked.map((b) => b.toString('utf8', 0, b.indexOf(32)));
  });
  const closed = onceEvent(conn, 'close', { timeout: 10_000 });
  // 30 MB: more than loopback's socket buffers take at once, so the server is still
  // sending when the CLOSE arrives, and some are in flight when the client sent it.
  const pad = ' '.repeat(1024);
  for (let i = 1; i <= N; i++) conn.send(`${i}${pad}`);
  await closed;
  await clientClosed;
  const all = Array.from({ length: N }, (_, i) => String(i + 1));
  // Everything the client received (some after its CLOSE) was acknowledged: none of it is
  // handed back to the server's application, and nothing handed back was received.
  const got = new Set(received);
  assert.ok(received.length >= 50);
  t.diagnostic(`received ${received.length}, handed back ${handedBack.length}`);
  assert.ok(handedBack.length > 0, 'the server was still sending when the CLOSE arrived');
  assert.deepEqual(
    handedBack.filter((m) => got.has(m)),
    [],
    'a received message was handed back',
  );
  assert.deepEqual([...received, ...handedBack], all, 'received, then handed back: all, in order');
  t.diagnostic(
    `received ${received.length} (${received.length - 50} after its CLOSE), handed back ${handedBack.length}`,
  );
});
