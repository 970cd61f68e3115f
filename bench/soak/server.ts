/**
 * Child process of the soak (bench/soak.ts): a heartline echo server, alone in its
 * process and started with --expose-gc, so that its heap can be measured after a full
 * garbage collection.
 *
 *   --interval MS --timeout MS --session-ttl MS
 *
 * Commands: stats (counters and the live heap), heap (heapUsed after gc), close.
 */

import { setImmediate as tick } from 'node:timers/promises';
import { createServer } from '../../src/server/server.js';
import { childArgs, emit, numArg, serveParent } from '../lib/child.js';

const args = childArgs();
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('the soak server needs --expose-gc');

const server = createServer({
  interval: numArg(args, 'interval'),
  timeout: numArg(args, 'timeout'),
  sessionTtl: numArg(args, 'session-ttl'),
  // Thousands of clients reconnect through faults at once: the default accept rate
  // (1000/s) is exercised, but a refusal must never be what the soak measures.
  acceptRate: Number.POSITIVE_INFINITY,
});

const counts = {
  sessions: 0,
  peakConnections: 0,
  rejected: {} as Record<string, number>,
  disconnects: {} as Record<string, number>,
  closes: {} as Record<string, number>,
  sessionsLost: 0,
  echoErrors: 0,
  /** Load level changes, with the metrics that caused them. */
  load: [] as string[],
};
const bump = (table: Record<string, number>, key: string) => {
  table[key] = (table[key] ?? 0) + 1;
};

server.on('connection', (conn) => {
  counts.sessions++;
  counts.peakConnections = Math.max(counts.peakConnections, server.connections.size);
  conn.on('message', (m) => {
    try {
      conn.send(m);
    } catch {
      counts.echoErrors++;
    }
  });
  conn.on('disconnect', (i) => bump(counts.disconnects, i.reason));
  conn.on('close', (i) => bump(counts.closes, i.reason));
  conn.on('session-lost', () => counts.sessionsLost++);
});
server.on('rejected', (e) =>
  bump(counts.rejected, e.limit ? `${e.info.reason}:${e.limit}` : e.info.reason),
);
server.on('load', (e) => {
  const why = e.reasons.map(
    (r) => `${r.metric} ${Math.round(r.value)} >= ${Math.round(r.threshold)}`,
  );
  if (counts.load.length < 50)
    counts.load.push(`${e.from}->${e.to}${why.length ? ` (${why.join(', ')})` : ''}`);
});
const { port } = await server.listen(0, '127.0.0.1');

/** heapUsed after full collections, the smallest of a few (a collection may leave some). */
async function settledHeap(): Promise<number> {
  let least = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 5; i++) {
    gc!();
    await tick();
    least = Math.min(least, process.memoryUsage().heapUsed);
  }
  return least;
}

serveParent({
  stats: () => ({
    ...counts,
    connections: server.connections.size,
    heapUsed: process.memoryUsage().heapUsed,
    rss: process.memoryUsage().rss,
  }),
  heap: () => settledHeap(),
  close: () => server.close(),
});
emit('ready', { port, pid: process.pid });
