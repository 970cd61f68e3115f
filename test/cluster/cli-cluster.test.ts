/**
 * The cluster end to end, as a user runs it: a real redis-server, three
 * `heartline serve --echo --redis URL` processes (the built CLI) and one
 * `heartline connect A,B,C --json` client sending 2,000 numbered lines, while the node the
 * client is on is killed with SIGKILL mid-stream and started again, several times. Every
 * echo must come back exactly once, in order, and the client must exit 0. Then sendTo from
 * another node reaches a CLI client, and presence converges within its TTL after the
 * client's node dies.
 *
 * Every child runs in its own process group and is killed with it when the test ends, pass
 * or fail; redis-server is stopped by its PID and its directory removed.
 */

import assert from 'node:assert/strict';
import { before, describe, type TestContext, test } from 'node:test';
import { joinCluster } from '../../src/cluster/node.js';
import { RedisStore } from '../../src/cluster/redis-store.js';
import { createServer } from '../../src/server/server.js';
import type { PresenceEvent } from '../../src/session/store.js';
import { type Child, requireBuiltCli, run } from '../support/cli.js';
import { freePort, RedisServer, redisSkip } from '../support/redis.js';
import { waitFor, withTimeout } from '../support/wait.js';

const skip = redisSkip();

/** One `serve --echo --redis` node, restartable on the same port with the same node id. */
class ServeNode {
  child: Child | null = null;
  kills = 0;

  constructor(
    private readonly t: TestContext,
    readonly port: number,
    readonly nodeId: string,
    private readonly redisUrl: string,
  ) {}

  async start(): Promise<void> {
    const args = ['serve', '--echo', '--json', '--port', String(this.port)];
    args.push('--redis', this.redisUrl, '--node-id', this.nodeId);
    args.push('--interval', '500', '--session-ttl', '60000', '--presence-ttl', '1500');
    this.child = run(this.t, args, `node ${this.nodeId}`);
    await this.child.event('"listening"', (e) => e.event === 'listening');
  }

  /** True while this process holds the client's link (its last state event says so). */
  get linked(): boolean {
    const states = this.child?.events.filter((e) => e.event === 'state') ?? [];
    const last = states.at(-1)?.to;
    return last === 'healthy' || last === 'suspect';
  }

  async sigkill(): Promise<void> {
    this.kills++;
    await this.child?.kill();
    this.child = null;
  }
}

describe('heartline serve --redis: a cluster of CLI processes', { skip }, () => {
  before(requireBuiltCli);

  test('2,000 numbered lines echo exactly once, in order, while the client node is SIGKILLed again and again', async (t) => {
    const redis = await RedisServer.start(t);
    const nodes: ServeNode[] = [];
    for (const id of ['a', 'b', 'c']) nodes.push(new ServeNode(t, await freePort(), id, redis.url));
    await Promise.all(nodes.map((n) => n.start()));
    const list = nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
    const client = run(t, ['connect', list, '--json'], 'client');
    await client.event('"open"', (e) => e.event === 'open');

    const N = 2000;
    let written = 0;
    const feeding = (async () => {
      while (written < N) {
        const lines: string[] = [];
        for (let i = 0; i < 10 && written < N; i++) lines.push(String(++written));
        client.proc.stdin!.write(`${lines.join('\n')}\n`);
        await new Promise((r) => setTimeout(r, 40));
      }
    })();

    // Kill the node the client is on every 700 ms while the lines flow (about 8 s); restart
    // it 300 ms later on the same port.
    const killed: string[] = [];
    while (written < N - 200 && killed.length < 8) {
      await new Promise((r) => setTimeout(r, 700));
      const victim = nodes.find((n) => n.linked);
      if (!victim) continue; // the client is between nodes right now
      killed.push(`${victim.nodeId}@${written}`);
      await victim.sigkill();
      setTimeout(() => void victim.start().catch(() => {}), 300);
    }
    await feeding;
    client.proc.stdin!.end();
    const exit = await withTimeout(client.exited, {
      timeout: 40_000,
      message: `the client did not exit\n${client.dump()}\n${nodes.map((n) => n.child?.dump()).join('\n')}`,
    });
    t.diagnostic(`SIGKILLed ${killed.length} times: ${killed.join(', ')}`);
    const echoes = client.events.filter((e) => e.event === 'message').map((e) => e.data);
    const resumes = client.events.filter((e) => e.event === 'resumed').length;
    t.diagnostic(`the client resumed ${resumes} times`);
    const missing = Array.from({ length: N }, (_, i) => String(i + 1)).filter(
      (line) => !echoes.includes(line),
    );
    if (missing.length > 0) {
      t.diagnostic(`missing ${missing.length}: ${missing.slice(0, 5).join(', ')}...`);
    }
    assert.equal(exit.code, 0, `client exit ${JSON.stringify(exit)}\n${client.dump()}`);
    assert.ok(killed.length >= 3, `only ${killed.length} kills landed mid-stream`);
    assert.deepEqual(
      client.events.filter((e) => e.event === 'session-lost'),
      [],
    );
    assert.equal(echoes.length, N, `${echoes.length} echoes`);
    assert.deepEqual(
      echoes,
      Array.from({ length: N }, (_, i) => String(i + 1)),
      'every echo exactly once, in order',
    );
  });

  test('sendTo from another node reaches a CLI client; presence converges within its TTL after its node dies', async (t) => {
    const redis = await RedisServer.start(t);
    const node = new ServeNode(t, await freePort(), 'far', redis.url);
    await node.start();
    const here = createServer({
      nodeId: 'here',
      cluster: joinCluster({ redis: redis.url, presenceTtl: 1500 }),
    });
    await here.listen(0, '127.0.0.1');
    t.after(() => here.close());
    const events: PresenceEvent[] = [];
    here.on('presence', (e) => events.push(e));

    const client = run(
      t,
      // Its node is killed for good below: bounded attempts, so it never lingers.
      [
        'connect',
        `127.0.0.1:${node.port}`,
        '--json',
        '--client-id',
        'cli-42',
        '--max-attempts',
        '40',
      ],
      'client',
    );
    const open = await client.event('"open"', (e) => e.event === 'open');
    const session = open.session as string;
    await waitFor(async () => (await here.presence('cli-42')).online, {
      timeout: 10_000,
      message: 'the client never showed online',
    });
    assert.deepEqual((await here.presence('cli-42')).sessions, [
      { node: 'far', sessionId: session, clientId: 'cli-42' },
    ]);
    assert.equal(await here.sendTo('cli-42', 'from-here'), 1);
    assert.equal(await here.sendTo(session, 'by-session'), 1);
    await client.event('the routed messages', () => {
      const got = client.events.filter((e) => e.event === 'message').map((e) => e.data);
      return got.includes('from-here') && got.includes('by-session');
    });
    const got = client.events.filter((e) => e.event === 'message').map((e) => e.data);
    assert.deepEqual(got, ['from-here', 'by-session'], 'each exactly once, in order');

    // The node dies with its client on it: within the presence TTL nobody lists it.
    const diedAt = performance.now();
    await node.sigkill();
    await waitFor(async () => !(await here.presence(session)).online, {
      timeout: 1500 + 1500,
      message: 'presence did not converge',
    });
    const converged = performance.now() - diedAt;
    // ...and one offline event follows from a live node's beat.
    await waitFor(() => events.some((e) => !e.online && e.sessionId === session), {
      timeout: 5000,
      message: 'no offline event',
    });
    t.diagnostic(`presence converged ${Math.round(converged)} ms after SIGKILL (TTL 1500 ms)`);
    assert.ok(converged <= 1500 + 1000, `${converged} ms`);
    // The client's messages wait in its session for it meanwhile.
    assert.equal(await here.sendTo(session, 'while-away'), 1);
    const store = new RedisStore(redis.url);
    t.after(() => store.close());
    const stored = await store.load(session);
    assert.ok(stored, 'the session outlives its node');
    assert.equal(stored.inboxTail - stored.inboxHead + 1, 1, 'one message waits in its inbox');
  });
});

describe('heartline serve cluster flags', () => {
  before(requireBuiltCli);

  for (const [args, message] of [
    [['--redis', 'http://127.0.0.1:6379'], '--redis must be a redis:// or rediss:// URL'],
    [['--node-id', 'a'], '--node-id, --presence-ttl and --store-timeout need --redis'],
    [['--redis', 'redis://127.0.0.1:1', '--presence-ttl', '10'], '--presence-ttl must be'],
    [['--redis', 'redis://127.0.0.1:1', '--store-timeout', '5'], '--store-timeout must be'],
    [['--store-timeout', '500'], '--node-id, --presence-ttl and --store-timeout need --redis'],
    [['--redis', 'redis://127.0.0.1:1', '--node-id', 'a b'], 'option "nodeId" must be'],
  ] as const) {
    test(`serve ${args.join(' ')} is a usage error (exit 2)`, async (t) => {
      const child = run(t, ['serve', ...args], `serve ${args.join(' ')}`);
      const exit = await withTimeout(child.exited, { timeout: 10_000 });
      assert.equal(exit.code, 2, child.dump());
      assert.ok(child.stderr.includes(message), child.stderr);
    });
  }
});
