/**
 * 500 real clients lose their server at the same instant (it dies: every socket reset)
 * and a new server comes up on the same port. Full jitter must spread their returns:
 * the README promises that no 100 ms window sees more than 40% of the fleet.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClientConnection } from '../../src/client/client.js';
import { connect } from '../../src/client/client.js';
import { startServer } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

const CLIENTS = 500;
/** The bound stated in README ("Reconnect storms"). */
const MAX_SHARE_PER_100MS = 0.4;

test('500 clients reconnecting after a server restart spread over the backoff window', async (t) => {
  const first = await startServer(t, {});
  const clients: ClientConnection[] = [];
  t.after(() => {
    for (const c of clients) c.close();
  });
  for (let i = 0; i < CLIENTS; i++) clients.push(connect({ port: first.port }));
  await waitFor(() => clients.every((c) => c.state === 'healthy'), { timeout: 20_000 });

  // The server dies: every socket is reset at once, then a new one listens on the port.
  for (const conn of first.server.connections.values()) {
    (
      conn as unknown as { link: { socket: { resetAndDestroy(): void } } }
    ).link.socket.resetAndDestroy();
  }
  await first.server.close();
  const diedAt = performance.now();
  const arrivals: number[] = [];
  const second = await startServer(t, {}, first.port);
  second.server.on('connection', () => arrivals.push(performance.now() - diedAt));
  await waitFor(() => arrivals.length === CLIENTS, {
    timeout: 20_000,
    message: `${arrivals.length} of ${CLIENTS} came back`,
  });

  arrivals.sort((a, b) => a - b);
  let peak = 0;
  for (let i = 0, j = 0; i < arrivals.length; i++) {
    while (arrivals[i]! - arrivals[j]! >= 100) j++;
    peak = Math.max(peak, i - j + 1);
  }
  const last = arrivals[arrivals.length - 1]!;
  t.diagnostic(
    `peak ${peak} new connections in 100 ms (${((100 * peak) / CLIENTS).toFixed(0)}%), all back within ${last.toFixed(0)} ms`,
  );
  assert.ok(peak <= MAX_SHARE_PER_100MS * CLIENTS, `peak ${peak} in one 100 ms window`);
});
