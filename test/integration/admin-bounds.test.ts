/**
 * The admin endpoint's output is bounded whatever the peers send and however many there
 * are: /api/connections serves pages (limit, offset, next, total) of at most maxPageSize
 * rows, the dashboard's snapshot at most maxRows, and each peer-chosen id is cut at
 * MAX_SHOWN_CHARS even when the server's HELLO limit allows more. Real sockets: 300
 * sessions whose ids are the largest the server accepts, of control characters (each
 * escapes to 6 bytes in JSON).
 */

import assert from 'node:assert/strict';
import { get, type IncomingMessage } from 'node:http';
import { type TestContext, test } from 'node:test';
import {
  ADMIN_DEFAULTS,
  type ConnectionInfo,
  type ConnectionsPage,
  MAX_SHOWN_CHARS,
  startAdmin,
} from '../../src/observe/index.js';
import { DEFAULT_MAX_HELLO_FIELD_BYTES, FrameType } from '../../src/protocol/frames.js';
import type { Server } from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';

/** Long enough that raw peers, which never answer a PING, stay healthy for the test. */
const QUIET = { interval: 60_000, timeout: 120_000 } as const;
const SESSIONS = 300;
/** Ids at the server's limit, each character escaped to 6 bytes (\u0001) in JSON. */
const WORST_ID = '\u0001'.repeat(DEFAULT_MAX_HELLO_FIELD_BYTES);
/**
 * The most one row may take in JSON: two ids of 256 characters at 6 bytes each, plus the
 * other fields (about 600 bytes; 1 KiB allowed).
 */
const ROW_BOUND = 2 * 6 * MAX_SHOWN_CHARS + 1024;
/** The rest of a page or snapshot: `at`, `server`, counts, the RTT histogram. */
const PAGE_OVERHEAD = 2048;

async function startAdminFor(
  t: TestContext,
  server: Server,
  options: Parameters<typeof startAdmin>[1] = {},
) {
  const admin = await startAdmin(server, options);
  t.after(() => admin.close());
  return admin;
}

/** Opens `n` raw sessions with the worst ids the server accepts, 50 at a time. */
async function worstSessions(t: TestContext, port: number, n: number): Promise<void> {
  for (let done = 0; done < n; done += 50) {
    const batch = Array.from({ length: Math.min(50, n - done) }, async () => {
      const peer = await RawPeer.connect(t, port);
      const answer = await peer.handshake({ clientId: WORST_ID, traceId: WORST_ID });
      assert.equal(answer.type, FrameType.WELCOME);
    });
    await Promise.all(batch);
  }
}

async function page(url: string): Promise<{ body: ConnectionsPage; bytes: number }> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  const text = await res.text();
  return { body: JSON.parse(text) as ConnectionsPage, bytes: Buffer.byteLength(text) };
}

/** The first `snapshot` event of the admin's event stream, and its size in bytes. */
function firstSnapshot(
  t: TestContext,
  url: string,
): Promise<{ data: { connections: ConnectionInfo[]; truncated: number }; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = get(`${url}/api/events`, (res: IncomingMessage) => {
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        const m = /event: snapshot\ndata: ([^\n]*)\n\n/.exec(buffer);
        if (!m) return;
        resolve({ data: JSON.parse(m[1]!), bytes: Buffer.byteLength(m[1]!) });
        res.destroy();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    t.after(() => req.destroy());
  });
}

test('/api/connections pages 300 sessions with the largest ids; every page and snapshot stays small', async (t) => {
  const { server, port } = await startServer(t, QUIET);
  await worstSessions(t, port, SESSIONS);
  assert.equal(server.connections.size, SESSIONS);
  const admin = await startAdminFor(t, server, { maxRows: 50 });

  // The default page holds every row here (300 < 500), each within its bound.
  const all = await page(`${admin.url}/api/connections`);
  assert.equal(all.body.total, SESSIONS);
  assert.equal(all.body.offset, 0);
  assert.equal(all.body.limit, ADMIN_DEFAULTS.pageSize);
  assert.equal(all.body.next, null);
  assert.equal(all.body.connections.length, SESSIONS);
  assert.equal(all.body.connections[0]!.client, WORST_ID);
  assert.ok(
    all.bytes < SESSIONS * ROW_BOUND + PAGE_OVERHEAD,
    `${all.bytes} bytes for ${SESSIONS} rows`,
  );

  // Pages of 100 follow `next` and add up to the same rows in the same order.
  const seen: string[] = [];
  const offsets: Array<number | null> = [];
  let next: number | null = 0;
  while (next !== null) {
    const p = await page(`${admin.url}/api/connections?limit=100&offset=${next}`);
    assert.equal(p.body.offset, next);
    assert.equal(p.body.total, SESSIONS);
    assert.ok(p.body.connections.length <= 100);
    assert.ok(p.bytes < 100 * ROW_BOUND + PAGE_OVERHEAD, `${p.bytes} bytes for a page of 100`);
    seen.push(...p.body.connections.map((c) => c.id));
    next = p.body.next;
    offsets.push(next);
  }
  assert.deepEqual(offsets, [100, 200, null]);
  assert.deepEqual(
    seen,
    all.body.connections.map((c) => c.id),
  );
  assert.equal(new Set(seen).size, SESSIONS);

  // A larger limit is lowered to maxPageSize; past the end is an empty last page.
  const huge = await page(`${admin.url}/api/connections?limit=1000000`);
  assert.equal(huge.body.limit, ADMIN_DEFAULTS.maxPageSize);
  const past = await page(`${admin.url}/api/connections?offset=1000`);
  assert.deepEqual([past.body.connections.length, past.body.next], [0, null]);
  assert.equal((await fetch(`${admin.url}/api/connections?offset=-1`)).status, 400);
  assert.equal((await fetch(`${admin.url}/api/connections?offset=x`)).status, 400);

  // The dashboard's snapshot: maxRows rows and the count of the others.
  const snapshot = await firstSnapshot(t, admin.url);
  assert.equal(snapshot.data.connections.length, 50);
  assert.equal(snapshot.data.truncated, SESSIONS - 50);
  assert.ok(
    snapshot.bytes < 50 * ROW_BOUND + PAGE_OVERHEAD,
    `${snapshot.bytes} bytes for a snapshot of 50 rows`,
  );
});

test('maxPageSize and pageSize shape the default page; bad values are refused up front', async (t) => {
  const { server, port } = await startServer(t, QUIET);
  await worstSessions(t, port, 5);
  const small = await startAdminFor(t, server, { maxPageSize: 2 });
  const first = await page(`${small.url}/api/connections`);
  assert.deepEqual([first.body.limit, first.body.connections.length, first.body.next], [2, 2, 2]);
  const last = await page(`${small.url}/api/connections?offset=4&limit=9`);
  assert.deepEqual([last.body.limit, last.body.connections.length, last.body.next], [2, 1, null]);
  const limited = await page(`${small.url}/api/connections?limit=0`);
  assert.deepEqual([limited.body.total, limited.body.connections.length], [5, 0]);
  assert.equal(limited.body.next, null);

  const sized = await startAdminFor(t, server, { pageSize: 3 });
  const p = await page(`${sized.url}/api/connections`);
  assert.deepEqual([p.body.limit, p.body.next], [3, 3]);

  await assert.rejects(startAdmin(server, { maxPageSize: 0 }), /option "maxPageSize"/);
  await assert.rejects(startAdmin(server, { pageSize: 11, maxPageSize: 10 }), /option "pageSize"/);
  await assert.rejects(startAdmin(server, { maxRows: 5001 }), /option "maxRows"/);
});

test('ids longer than MAX_SHOWN_CHARS are cut in the admin output, never a surrogate pair in half', async (t) => {
  const wide = { maxHelloFieldBytes: 4096 };
  const { server, port } = await startServer(t, { ...QUIET, ...wide });
  const admin = await startAdminFor(t, server);
  const accepted = new Promise<ServerConnection>((r) => server.once('connection', r));
  // 'a' then emoji (two UTF-16 units each): unit 255 is the high half of an emoji.
  const traceId = `a${'😀'.repeat(200)}`;
  const client = startClient(t, { port, clientId: 'c'.repeat(1000), traceId, ...QUIET, ...wide });
  await opened(client);
  const conn = await accepted;
  assert.equal(conn.clientId.length, 1000, 'the server keeps what its limit allows');

  const { body } = await page(`${admin.url}/api/connections`);
  const [info] = body.connections;
  assert.equal(info?.client, `${'c'.repeat(MAX_SHOWN_CHARS)}…`);
  assert.equal(info?.trace, `a${'😀'.repeat(127)}…`);
  assert.ok(info && !/[\ud800-\udbff](?![\udc00-\udfff])/.test(info.trace), 'no lone surrogate');
});
