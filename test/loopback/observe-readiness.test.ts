/**
 * The load level and the readiness probe are read from what a server exposes: its load
 * level (a name or a number), whether it is listening (on a loopback port) and whether it
 * drains.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadLevelName, loadLevelOf, readiness } from '../../src/observe/snapshot.js';
import { createServer } from '../../src/server/server.js';

test('load level and readiness are read from what the server exposes', async (t) => {
  const server = createServer();
  t.after(() => server.close()); // idempotent: also closes it when an assertion fails
  const shadow = (name: 'loadLevel' | 'draining', value: unknown) =>
    Object.defineProperty(server, name, { value, configurable: true });
  shadow('loadLevel', 'danger');
  assert.equal(loadLevelOf(server), 2);
  assert.equal(loadLevelName(server), 'danger');
  shadow('loadLevel', 'warning');
  assert.equal(loadLevelOf(server), 1);
  shadow('loadLevel', 3);
  assert.equal(loadLevelOf(server), 3);
  shadow('loadLevel', undefined);
  assert.equal(loadLevelOf(server), 0);
  assert.equal(loadLevelName(server), 'normal');
  assert.deepEqual(readiness(server), { ready: false, reason: 'not listening' });
  await server.listen(0, '127.0.0.1');
  assert.deepEqual(readiness(server), { ready: true });
  shadow('draining', true);
  assert.deepEqual(readiness(server), { ready: false, reason: 'draining' });
  delete (server as { draining?: unknown }).draining;
  delete (server as { loadLevel?: unknown }).loadLevel;
  await server.close();
});
