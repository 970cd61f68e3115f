/**
 * A flapping link through the chaos proxy, on real sockets: every link completes its
 * handshake and moves data before the proxy cuts it (RST or FIN), so every reconnect must
 * wait only the initial backoff delay, never a climbing one. Jitter is pinned so the
 * delays are exact; the only real-time bound is a generous one on the whole run.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createChaosProxy } from '../../src/chaos/proxy.js';
import type { ReconnectingEvent } from '../../src/connection.js';
import { opened, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor } from '../support/wait.js';

const LINKS = 8;

test('links broken right after moving data keep every reconnect at the initial backoff delay', async (t) => {
  const { server, port } = await startServer(t, { interval: 1000, timeout: 3000 });
  const proxy = await createChaosProxy({ target: { host: '127.0.0.1', port } });
  t.after(() => proxy.close());
  const received: string[] = [];
  server.on('connection', (conn) => conn.on('message', (m) => received.push(m.toString())));

  // random() = 0.99 with full jitter: a delay is 0.99 x its ceiling, 495 ms at the first
  // attempt; without the rule the ceilings would double (990, 1980, 3960 ms...).
  const client = startClient(t, { port: proxy.port, random: () => 0.99 });
  const delays: number[] = [];
  client.on('reconnecting', (e: ReconnectingEvent) => delays.push(e.delayMs));
  await opened(client);

  const started = performance.now();
  for (let i = 1; i <= LINKS; i++) {
    client.send(`m${i}`);
    await waitFor(() => client.unackedCount === 0, { message: `m${i} acknowledged` });
    const reopened = onceEvent(client, 'open', { timeout: 10_000 });
    if (i % 2 === 1) proxy.reset();
    else proxy.fin();
    await reopened;
  }
  const elapsed = performance.now() - started;

  assert.deepEqual(delays, new Array(LINKS).fill(495));
  assert.deepEqual(
    received,
    Array.from({ length: LINKS }, (_, i) => `m${i + 1}`),
  );
  // 8 x 495 ms of backoff plus handshakes; the old rule needed over a minute of waiting.
  assert.ok(elapsed < 30_000, `${LINKS} broken links took ${elapsed.toFixed(0)} ms`);
  t.diagnostic(`${LINKS} broken links recovered in ${elapsed.toFixed(0)} ms`);
});
