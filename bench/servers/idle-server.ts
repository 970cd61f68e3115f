/**
 * Child process: the idle server under test, alone in its process so that its CPU, memory
 * and event-loop delay are its own. Driven over IPC by bench/lib/idle-run.ts.
 *
 *   --system NAME   heartline | net | naive | ws | socketio | aedes
 *   --interval MS   heartbeat interval
 *   --workers N     worker processes (heartline's multi-process mode)
 *
 * Commands: mark {gc} (closes the current measurement window, opens the next; with gc,
 * after two full GCs), status, detections.
 */

import { childArgs, emit, numArg, serveParent } from '../lib/child.js';
import { getProbe } from '../lib/probe.mjs';
import { isSystemName, loadSystem } from '../systems/index.js';

const args = childArgs();
const name = args.system ?? '';
if (!isSystemName(name)) throw new Error(`unknown --system "${name}"`);
const probe = getProbe();
const system = await loadSystem(name);
const server = await system.startIdleServer({
  interval: numArg(args, 'interval'),
  workers: numArg(args, 'workers', 0),
});

serveParent({
  mark: ({ gc }: { gc: boolean }) => {
    // Counted before the mark: the counting belongs to the window that ends.
    const heartbeats = server.heartbeats();
    const connections = server.connections();
    return { ...probe.mark(gc), heartbeats, connections };
  },
  status: () => ({ connections: server.connections() }),
  detections: () => server.detections(),
  close: () => server.close(),
});
emit('ready', {
  port: server.port,
  pid: process.pid,
  heartbeat: server.heartbeat,
  deadAfterMs: server.deadAfterMs,
});
