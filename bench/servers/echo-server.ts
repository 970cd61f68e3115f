/**
 * Child process: an echo server under test (every message goes back to its sender),
 * alone in its process so that its CPU time is its own.
 *
 *   --system NAME   heartline | net | ws
 *
 * Commands: mark (closes the current measurement window, opens the next).
 */

import { childArgs, emit, serveParent } from '../lib/child.js';
import { getProbe } from '../lib/probe.mjs';
import { isSystemName, loadSystem } from '../systems/index.js';

const args = childArgs();
const name = args.system ?? '';
if (!isSystemName(name)) throw new Error(`unknown --system "${name}"`);
const probe = getProbe();
const system = await loadSystem(name);
if (!system.startEchoServer) throw new Error(`${name} has no echo server`);
const server = await system.startEchoServer({ host: '127.0.0.1' });

serveParent({
  mark: () => probe.mark(false),
  close: () => server.close(),
});
emit('ready', { port: server.port, pid: process.pid });
