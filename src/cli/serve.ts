/**
 * `heartline serve`: runs a server and reports every connection event.
 */

import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../errors.js';
import { CloseCode } from '../protocol/close-codes.js';
import { createServer } from '../server/server.js';
import { ExitCode, intFlag, UsageError } from './args.js';
import { EventOutput, reportConnection } from './output.js';

export const serveHelp = `Usage: heartline serve [options]

Runs a heartline server and prints one line per event.

Options:
  --host H             address to listen on (default 127.0.0.1)
  --port P             port to listen on; 0 picks a free one (default 0)
  --interval MS        heartbeat interval granted to clients (default 10000)
  --timeout MS         heartbeat timeout granted to clients (default 3 x interval)
  --session-ttl MS     how long a lost session waits for a resume (default 120000)
  --echo               send every received message back to its sender
  --json               one JSON event per line on stdout
  -h, --help           show this help

Examples:
  heartline serve --port 7000 --echo
  heartline serve --port 0 --interval 1000 --timeout 3000 --json`;

/** Runs the command; resolves with the exit code once the server has closed. */
export async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      interval: { type: 'string' },
      timeout: { type: 'string' },
      'session-ttl': { type: 'string' },
      echo: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  // Parsed up front so that a bad --port is a usage error (exit 2), not a listen
  // failure (exit 1).
  const port = intFlag('port', values.port, 0, 65535);
  const out = new EventOutput(values.json);
  const options = {
    interval: intFlag('interval', values.interval, 1),
    timeout: intFlag('timeout', values.timeout, 1),
    sessionTtl: intFlag('session-ttl', values['session-ttl'], 0),
  };
  let server: ReturnType<typeof createServer>;
  try {
    server = createServer(options);
  } catch (err) {
    // Flags the library refuses together (say --timeout below 2 x --interval) are usage
    // errors too: exit 2 with the help, not a stack trace.
    if (err instanceof InvalidArgumentError) throw new UsageError(err.message);
    throw err;
  }
  server.on('connection', (conn) => {
    out.event('connection', { conn: conn.id, remote: conn.remote, session: conn.sessionId });
    reportConnection(out, conn);
    if (values.echo) conn.on('message', (data) => conn.send(data));
  });
  server.on('rejected', (e) =>
    out.event('rejected', { remote: e.remote, reason: e.info.reason, code: e.info.code ?? null }),
  );
  let address: { port: number; address: string };
  try {
    address = await server.listen(port, values.host);
  } catch (err) {
    process.stderr.write(`heartline serve: cannot listen: ${(err as Error).message}\n`);
    return ExitCode.FAILURE;
  }
  out.event('listening', { port: address.port, host: address.address });

  return new Promise<number>((resolve) => {
    let signals = 0;
    const stop = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        out.event('shutdown', { signal, forced: true });
        process.exit(ExitCode.FAILURE);
      }
      out.event('shutdown', { signal, code: CloseCode.GOING_AWAY });
      void server.close().then(() => resolve(ExitCode.OK));
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
