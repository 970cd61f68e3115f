/**
 * A node of a cluster drains (or closes) while one of its sessions holds messages the
 * client never acknowledged. The session store keeps them, so the session goes on: the
 * client resumes on another node and receives each exactly once, and the node that went
 * away must not also hand them back to its application with 'session-lost' as lost (a
 * store-backed close keeps what a plain close hands back). On a shared MemoryStore and on
 * a RedisStore over a real redis-server.
 */

import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { type ChaosProxy, createChaosProxy } from '../../src/chaos/proxy.js';
import { joinCluster } from '../../src/cluster/node.js';
import { RedisStore } from '../../src/cluster/redis-store.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import type { Server } from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { MemoryStore } from '../../src/session/memory-store.js';
import type { ClusterStore } from '../../src/session/store.js';
import { opened, startClient, startServer } from '../support/peers.js';
import { RedisServer, redisSkip } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

const FAST = { interval: 200, timeout: 600 };
const FAST_BACKOFF = { initialDelay: 10, maxDelay: 50 };
/** Messages the draining node holds unacknowledged. */
const N = 200;

interface Node {
  server: Server;
  proxy: ChaosProxy;
  conns: ServerConnection[];
  /** Payloads its connections handed back with 'session-lost'. */
  handedBack: string[];
}

/** A node of the cluster behind its own chaos proxy, recording what it hands back. */
async function startNode(t: TestContext, store: ClusterStore, nodeId: string): Promise<Node> {
  const { server, port } = await startServer(t, {
    ...FAST,
    nodeId,
    cluster: joinCluster({ store, storeTimeout: 2000 }),
  });
  const proxy = await createChaosProxy({ target: { host: '127.0.0.1', port } });
  t.after(() => proxy.close());
  const node: Node = { server, proxy, conns: [], handedBack: [] };
  server.on('connection', (conn) => {
    node.conns.push(conn);
    conn.on('session-lost', (e) => node.handedBack.push(...e.unacked.map((b) => b.toString())));
  });
  return node;
}

async function redisStore(t: TestContext): Promise<ClusterStore> {
  const redis = await RedisServer.start(t);
  const store = new RedisStore({ url: redis.url });
  t.after(() => store.close());
  return store;
}

const STORES: Array<[string, (t: TestContext) => Promise<ClusterStore>, { skip?: string }]> = [
  ['a shared MemoryStore', async () => new MemoryStore(), {}],
  ['Redis', redisStore, { skip: redisSkip() }],
];

for (const [name, makeStore, opts] of STORES) {
  describe(`cluster drain on ${name}`, opts, () => {
    for (const how of ['drain', 'close'] as const) {
      test(`${how}() with unacknowledged messages: the client gets each once from the next node, none is handed back as lost`, async (t) => {
        const shared = await makeStore(t);
        const a = await startNode(t, shared, 'a');
        const b = await startNode(t, shared, 'b');
        let target = a.proxy.port;
        const client = startClient(t, {
          port: 1,
          backoff: FAST_BACKOFF,
          createSocket: () => netConnect({ host: '127.0.0.1', port: target, noDelay: true }),
        });
        const got: string[] = [];
        client.on('message', (m) => got.push(m.toString()));
        let clientLost = 0;
        client.on('session-lost', () => clientLost++);
        await opened(client);
        const sessionId = client.sessionId!;
        await waitFor(async () => (await shared.load(sessionId)) !== null, {
          message: 'the session never reached the store',
        });
        const conn = a.conns[0]!;

        // Nothing A writes reaches the client any more: it can acknowledge nothing.
        a.proxy.blackhole('down');
        const sent = Array.from({ length: N }, (_, i) => `m${i + 1}`);
        for (const m of sent) conn.send(m);
        await waitFor(async () => (await shared.load(sessionId))?.lastSeq === N, {
          timeout: 10_000,
          message: 'the store never held every message',
        });
        assert.equal(conn.unackedCount, N, 'A holds every message unacknowledged');

        target = b.proxy.port;
        if (how === 'drain') await a.server.drain({ timeout: 100 });
        else await a.server.close();
        assert.equal(conn.closeInfo?.code, CloseCode.GOING_AWAY);
        assert.deepEqual(a.handedBack, [], 'A hands back nothing: the store keeps it all');

        // The client finds A silent, resumes on B, and B sends what the store kept.
        await waitFor(() => got.length >= N, {
          timeout: 20_000,
          message: `the client got ${got.length} of ${N}`,
        });
        await waitFor(() => b.conns[0]?.unackedCount === 0, {
          timeout: 10_000,
          message: 'the client never acknowledged everything on B',
        });
        assert.deepEqual(got, sent, 'every message exactly once, in order');
        assert.equal(clientLost, 0, 'the client never lost its session');
        assert.equal(b.conns.length, 1, 'B took the session over');
        assert.equal(b.conns[0]!.sessionId, sessionId);
        assert.deepEqual(b.handedBack, []);
        await waitFor(async () => (await shared.load(sessionId))?.acked === N, {
          message: 'the store never learned that the client has everything',
        });
      });
    }
  });
}
