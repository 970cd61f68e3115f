/**
 * `heartline demo` (also `npm run demo`): a server and three clients in one terminal.
 * Client 3 is frozen with SIGSTOP: its process stops but its kernel keeps the socket
 * open and ACKs, the half-open case that only heartbeats can reveal. The demo shows its
 * SUSPECT then DEAD within the bound, live RTTs, then shuts everything down cleanly.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServer } from '../server/server.js';
import type { ServerConnection } from '../server/server-connection.js';
import { ExitCode, intFlag, parseFlags } from './args.js';
import { EventOutput } from './output.js';

export const demoHelp = `Usage: heartline demo [options]

Starts a server and three client processes, freezes one client (SIGSTOP) and shows
the server detect it: healthy -> suspect -> dead within the timeout, with live RTTs.
Ends by itself after about ten seconds.

Options:
  --interval MS   heartbeat interval (default 1000)
  --timeout MS    heartbeat timeout (default 3000)
  -h, --help      show this help

Example:
  heartline demo`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The flags of `demo` (config files and the environment are checked against them too). */
export const demoFlags = { interval: { type: 'string' }, timeout: { type: 'string' } } as const;

export async function demo(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, demoFlags);
  const interval = intFlag('interval', values.interval, 100) ?? 1000;
  const timeout = intFlag('timeout', values.timeout, 2 * interval) ?? 3 * interval;
  const out = new EventOutput(false);
  const say = (text: string) => process.stdout.write(`\n== ${text}\n`);
  const server = createServer({ interval, timeout, sessionTtl: 1000 });
  const conns: ServerConnection[] = [];
  let deadAt = 0;
  let frozenAt = 0;
  let silentFor = 0;
  server.on('connection', (conn) => {
    conns.push(conn);
    out.event('connection', { conn: conn.id, remote: conn.remote });
    conn.on('state', (c) => {
      out.event('state', { conn: conn.id, from: c.from, to: c.to, reason: c.reason });
      if (c.to === 'dead' && frozenAt > 0) {
        deadAt = Date.now();
        silentFor = performance.now() - conn.lastHeardAt;
      }
    });
    conn.on('message', (data) => out.event('message', { conn: conn.id, data: data.toString() }));
    conn.on('disconnect', (i) => out.event('disconnect', { conn: conn.id, reason: i.reason }));
  });
  const { port } = await server.listen(0, '127.0.0.1');
  say(`server on 127.0.0.1:${port}, interval ${interval} ms, timeout ${timeout} ms`);

  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const clients: ChildProcess[] = [];
  for (let i = 1; i <= 3; i++) {
    const child = spawn(
      process.execPath,
      [main, 'connect', `127.0.0.1:${port}`, '--json', '--no-reconnect'],
      {
        stdio: ['pipe', 'ignore', 'inherit'],
      },
    );
    clients.push(child);
  }
  const watchdog = setTimeout(() => {
    process.stderr.write('demo: did not finish within 60 s\n');
    for (const c of clients) c.kill('SIGKILL');
    process.exit(ExitCode.FAILURE);
  }, 60_000);
  watchdog.unref();

  const rttTable = () => {
    const rows = conns.map(
      (c) =>
        `${c.id} ${c.state.padEnd(12)} rtt ${c.rtt === undefined ? '-' : `${c.rtt.toFixed(3)} ms`}`,
    );
    process.stdout.write(`   ${rows.join(' | ')}\n`);
  };
  const until = async (cond: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!cond() && Date.now() < end) await sleep(50);
    return cond();
  };
  await until(() => conns.length === 3, 5000);
  for (const [i, c] of clients.entries()) c.stdin?.write(`hello from client ${i + 1}\n`);
  await sleep(interval * 2.5);
  rttTable();

  const frozen = clients[2]!;
  say('freezing client 3 with SIGSTOP: its socket stays open and its kernel still ACKs');
  frozenAt = Date.now();
  frozen.kill('SIGSTOP');
  const ticker = setInterval(rttTable, interval);
  const detected = await until(() => deadAt > 0, timeout + interval * 3);
  clearInterval(ticker);
  const elapsed = deadAt - frozenAt;
  if (detected) {
    say(
      `client 3 declared dead ${elapsed} ms after the freeze, ${Math.round(silentFor)} ms after it was last heard (timeout ${timeout} ms)`,
    );
  } else {
    say('client 3 was NOT declared dead in time');
  }

  say('shutting down: thawing and ending client 3, closing the others cleanly');
  frozen.kill('SIGCONT');
  frozen.kill('SIGTERM');
  for (const c of clients.slice(0, 2)) c.stdin?.end();
  await Promise.all(
    clients.map((c) =>
      c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r)),
    ),
  );
  await server.close();
  clearTimeout(watchdog);
  say('done');
  return detected ? ExitCode.OK : ExitCode.FAILURE;
}
