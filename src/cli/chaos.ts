/**
 * `heartline chaos`: the fault-injecting TCP proxy the tests use, for users testing their
 * own systems. Commands come one per line on stdin and, with --control, as HTTP requests;
 * both go through the same parser, and every answer is one JSON line on stdout.
 */

import { createInterface } from 'node:readline';
import { startControlServer } from '../chaos/control.js';
import { createChaosProxy } from '../chaos/proxy.js';
import { parseAddress } from '../client/servers.js';
import { HeartlineError, InvalidArgumentError } from '../errors.js';
import { ExitCode, listenFlag, parseFlags, UsageError } from './args.js';

export const chaosHelp = `Usage: heartline chaos --listen [HOST:]PORT --target HOST:PORT [options]

A fault-injecting TCP proxy. Point your client at --listen and the proxy forwards to
--target, adding the faults you command, one per line on stdin (or POST /command to the
control port). Each command answers with one JSON line on stdout.

Commands:
  latency MS [JITTER] [both|up|down]   add one-way delay (+ random jitter); 0 removes it
  freeze [both|up|down]                hold bytes and stop reading: a frozen peer
  blackhole [both|up|down]             drop bytes silently: no FIN, no RST
  heal [both|up|down]                  end freeze/blackhole, deliver what was held
  reset                                cut every connection with TCP RST
  fin                                  cut every connection with FIN
  refuse on|off                        reset new connections while on
  clear                                heal everything, no latency, accept again
  status                               faults and counters
  (up = client to target, down = target to client; the default is both)

Options:
  --listen [HOST:]PORT   where to accept (host defaults to 127.0.0.1; port 0 picks one)
  --target HOST:PORT     where to forward
  --control [HOST:]PORT  also accept commands over HTTP: POST /command, GET /status
  -h, --help             show this help

Examples:
  heartline chaos --listen 7001 --target 127.0.0.1:7000
  echo "latency 200 50" | heartline chaos --listen 7001 --target 127.0.0.1:7000
  curl -d 'freeze up' 127.0.0.1:7002/command   # with --control 7002`;

/** The flags of `chaos` (config files and the environment are checked against them too). */
export const chaosFlags = {
  listen: { type: 'string' },
  target: { type: 'string' },
  control: { type: 'string' },
} as const;

export async function chaos(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, chaosFlags);
  if (values.listen === undefined || values.target === undefined) {
    throw new UsageError('--listen and --target are required');
  }
  const listen = listenFlag('listen', values.listen);
  let target: { host: string; port: number };
  try {
    target = parseAddress(values.target);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new UsageError(err.message);
    throw err;
  }
  const control = values.control === undefined ? null : listenFlag('control', values.control);
  const print = (record: Record<string, unknown>) =>
    process.stdout.write(`${JSON.stringify({ ts: Date.now(), ...record })}\n`);

  const proxy = await createChaosProxy({
    target,
    listenHost: listen.host,
    listenPort: listen.port,
  });
  const controlServer = control
    ? await startControlServer(proxy, { host: control.host, port: control.port })
    : null;
  print({
    event: 'listening',
    host: proxy.host,
    port: proxy.port,
    target: `${target.host}:${target.port}`,
    ...(controlServer ? { control: controlServer.port } : {}),
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      rl.close();
      process.stdin.destroy();
      await controlServer?.close();
      await proxy.close();
      resolve(ExitCode.OK);
    };
    const rl = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
    rl.on('line', (line) => {
      if (line.trim() === '') return;
      try {
        process.stdout.write(`${proxy.command(line)}\n`);
      } catch (err) {
        const code = err instanceof HeartlineError ? err.code : 'HL_ERR_INTERNAL';
        print({ event: 'error', ok: false, code, error: (err as Error).message });
      }
    });
    // Without a control port, the end of stdin ends the proxy; with one, it keeps running.
    rl.on('close', () => {
      if (!controlServer) void stop();
    });
    process.once('SIGINT', () => void stop());
    process.once('SIGTERM', () => void stop());
  });
}
