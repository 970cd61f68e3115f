/**
 * The async iterator over a connection's messages is bounded: a peer floods 20,000
 * messages while the consumer iterates slowly, and once stops for longer than the
 * heartbeat's suspicion threshold. The iterator's queue stays within ITERATOR_HIGH_WATER
 * (plus the one socket read that crossed it), every message arrives exactly once and in
 * order, the stop does not make the peer suspect, and the flood waits in the sender's
 * replay buffer (its send() returns false, its unacked count stays high) instead of in
 * the receiver's memory.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ITERATOR_HIGH_WATER } from '../../src/connection.js';
import { DATA_OVERHEAD } from '../../src/protocol/codec.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { opened, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor } from '../support/wait.js';

const TOTAL = 20_000;
const PAYLOAD = 100;
/**
 * The messages of the socket read that crossed the bound: one read is at most 64 KiB,
 * plus the rest of a frame the previous read began.
 */
const ONE_READ = Math.ceil((64 * 1024) / (PAYLOAD + DATA_OVERHEAD)) + 1;
/**
 * Heartbeat of the test: suspectAfter is 1.5 intervals (1.5 s). The consumer stops for
 * longer than that, so that not reading would make the peer suspect if it counted, and
 * well below the timeout, past which the peer's kernel may end a link whose receive
 * window stays closed (TCP_USER_TIMEOUT; the session would then resume).
 */
const HEARTBEAT = { interval: 1000, timeout: 5000 };
const STOP_MS = 2500;

test('a slow iterator: bounded queue, every message once in order, the sender holds the rest', async (t) => {
  const { server, port } = await startServer(t, HEARTBEAT);
  const accepted = onceEvent(server, 'connection');
  const client = startClient(t, { port });
  await opened(client);
  const [conn] = (await accepted) as [ServerConnection];
  conn.on('disconnect', (info) => t.diagnostic(`server side: ${JSON.stringify(info)}`));
  const states: string[] = [];
  client.on('state', ({ to }) => states.push(to));
  let disconnects = 0;
  client.on('disconnect', (info) => {
    disconnects++;
    t.diagnostic(`disconnect: ${JSON.stringify(info)}`);
  });

  // The sender sends while send() says there is room, then waits for 'drain'.
  let sent = 0;
  let blocked = 0;
  const sending = (async () => {
    while (sent < TOTAL) {
      const payload = Buffer.alloc(PAYLOAD);
      payload.writeUInt32BE(sent);
      sent++;
      if (!conn.send(payload)) {
        blocked++;
        await onceEvent(conn, 'drain', { timeout: 30_000 });
      }
    }
  })();

  let consumed = 0;
  let maxQueued = 0;
  let atHalf: { sent: number; unacked: number } | null = null;
  for await (const message of client) {
    // What the iterator holds: delivered to it (it is the only listener) and not yet
    // taken, `message` excluded.
    maxQueued = Math.max(maxQueued, client.stats.messagesIn - consumed - 1);
    assert.equal(message.length, PAYLOAD);
    assert.equal(message.readUInt32BE(0), consumed, 'in order, none missing or doubled');
    consumed++;
    if (consumed === TOTAL / 4) await sleep(STOP_MS);
    else if (consumed % 10 === 0) await sleep(1);
    if (consumed === TOTAL / 2) atHalf = { sent, unacked: conn.unackedCount };
    if (consumed === TOTAL) break;
  }
  await sending;

  const bound = ITERATOR_HIGH_WATER.messages + ONE_READ;
  t.diagnostic(
    `queue peaked at ${maxQueued} (bound ${bound}); at half the sender had sent ${atHalf?.sent} with ${atHalf?.unacked} unacked; send() returned false ${blocked} times`,
  );
  assert.ok(maxQueued <= bound, `the queue peaked at ${maxQueued} > ${bound}`);
  assert.ok(maxQueued >= ITERATOR_HIGH_WATER.messages / 2, 'the consumer did fall behind');
  assert.ok(atHalf !== null);
  assert.ok(atHalf.sent < TOTAL, 'halfway through, the sender is held back by the consumer');
  assert.ok(atHalf.unacked >= 1000, `the sender holds the flood: ${atHalf.unacked} unacked`);
  assert.ok(blocked >= 2, 'send() returned false while the consumer was behind');
  assert.deepEqual(states, [], 'not reading is not a silent peer: never suspect');
  assert.equal(disconnects, 0, 'the link survived the stop');
  assert.equal(client.stats.links, 1);

  // The iterator is gone: the connection reads again, and messages reach listeners.
  await waitFor(() => conn.unackedCount === 0, { message: 'the sender never got its acks' });
  const after = onceEvent(client, 'message');
  conn.send('after');
  const [data] = (await after) as [Buffer];
  assert.equal(data.toString(), 'after');
});
