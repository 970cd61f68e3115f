/**
 * Child process: a reply server under test (every request is answered with its own
 * payload), alone in its process, for bench/requests.ts.
 *
 *   --system NAME   heartline | net | ws | socketio
 *
 * Commands: hold (stop answering, keep the requests), release (answer every held request,
 * answer at once again; returns how many were held), held.
 */

import { childArgs, emit, serveParent } from '../lib/child.js';
import { isSystemName, loadSystem } from '../systems/index.js';

const args = childArgs();
const name = args.system ?? '';
if (!isSystemName(name)) throw new Error(`unknown --system "${name}"`);
const system = await loadSystem(name);
if (!system.startReplyServer) throw new Error(`${name} has no reply server`);
const server = await system.startReplyServer({ host: '127.0.0.1' });

serveParent({
  hold: () => server.hold(),
  release: () => server.release(),
  held: () => server.held(),
  close: () => server.close(),
});
emit('ready', { port: server.port, pid: process.pid });
