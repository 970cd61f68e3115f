/**
 * `heartline request`: one request, its reply on stdout, exit codes and the error line
 * on stderr, against `serve --echo` and against in-process servers that count how often
 * their handler ran.
 */

import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { type Child, requireBuiltCli, run } from '../support/cli.js';
import { startServer } from '../support/peers.js';
import { freePort } from '../support/redis.js';

requireBuiltCli();

/** The lines a readable child printed on stdout. */
function stdoutLines(child: Child): string[] {
  return child.events.map((e) => (e.event === 'not-json' ? String(e.line) : JSON.stringify(e)));
}

async function finished(child: Child): Promise<number | null> {
  const { code } = await child.exited;
  return code;
}

/** A server whose handler counts the requests it ran and answers `answer(data)`. */
async function counting(
  t: TestContext,
  answer: ((data: string) => string) | null,
): Promise<{ port: number; runs: () => number }> {
  const { server, port } = await startServer(t);
  let runs = 0;
  server.on('connection', (conn: ServerConnection) => {
    if (answer === null) return; // no 'message' listener: nobody answers requests
    conn.on('message', (data, info) => {
      if (!info.isRequest) return;
      runs++;
      // An empty answer means: never reply (a request that times out).
      const reply = answer(data.toString());
      if (reply !== '') info.reply(reply);
    });
  });
  return { port, runs: () => runs };
}

describe('heartline request', () => {
  test('against serve --echo: the reply on stdout and nothing else, exit 0; - reads stdin', async (t) => {
    const server = run(t, ['serve', '--port', '0', '--echo', '--json'], 'serve');
    const { port } = (await server.named('listening')) as unknown as { port: number };
    const plain = run(t, ['request', `127.0.0.1:${port}`, 'hello world'], 'request');
    assert.equal(await finished(plain), 0, plain.dump());
    assert.deepEqual(stdoutLines(plain), ['hello world']);
    const piped = run(t, ['request', `127.0.0.1:${port}`, '-', '--json'], 'stdin', '{"a":1}');
    assert.equal(await finished(piped), 0, piped.dump());
    const [reply] = piped.events;
    assert.equal(reply?.event, 'reply');
    assert.equal(reply?.reply, '{"a":1}');
    assert.equal(reply?.bytes, 7);
  });

  test('--key: a repeat from the same client id gets the first reply, the handler ran once', async (t) => {
    const { port, runs } = await counting(t, (d) => `charged ${d} (run ${Date.now()})`);
    const args = [
      'request',
      `127.0.0.1:${port}`,
      '10',
      '--key',
      'order-42',
      '--client-id',
      'alice',
    ];
    const first = run(t, args, 'first');
    assert.equal(await finished(first), 0, first.dump());
    const second = run(t, args, 'second');
    assert.equal(await finished(second), 0, second.dump());
    assert.deepEqual(stdoutLines(second), stdoutLines(first));
    assert.equal(runs(), 1);
    // Another client id is another scope: it runs.
    const other = run(t, [...args.slice(0, -1), 'bob'], 'bob');
    assert.equal(await finished(other), 0, other.dump());
    assert.equal(runs(), 2);
  });

  test('failures: exit 1 with the code on stderr; a usage error exits 2', async (t) => {
    const none = await counting(t, null);
    const noResponder = run(t, ['request', `127.0.0.1:${none.port}`, 'x'], 'no-responder');
    assert.equal(await finished(noResponder), 1);
    assert.match(noResponder.stderr, /^heartline request: HL_ERR_NO_RESPONDER: /m);
    assert.doesNotMatch(noResponder.stderr, /may have been handled/);
    assert.deepEqual(stdoutLines(noResponder), []);

    const silent = await counting(t, () => '');
    const timeout = run(
      t,
      ['request', `127.0.0.1:${silent.port}`, 'x', '--timeout', '300'],
      'slow',
    );
    assert.equal(await finished(timeout), 1);
    assert.match(timeout.stderr, /HL_ERR_REQUEST_TIMEOUT: .*\(it may have been handled\)/);
    assert.equal(silent.runs(), 1);

    const closed = await freePort();
    const refused = run(
      t,
      ['request', `127.0.0.1:${closed}`, 'x', '--max-attempts', '1'],
      'refused',
    );
    assert.equal(await finished(refused), 1);
    assert.match(refused.stderr, /HL_ERR_GAVE_UP: refused ECONNREFUSED/);

    const usage = run(t, ['request', `127.0.0.1:${closed}`], 'usage');
    assert.equal(await finished(usage), 2);
    assert.match(usage.stderr, /expected HOST:PORT/);
  });
});
