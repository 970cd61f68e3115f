/**
 * `heartline connect`: a client that sends each stdin line as a message and prints each
 * message it receives. It reconnects and resumes by default. At stdin EOF it waits until
 * everything it sent is acknowledged (across reconnects), then exits 0.
 *
 * It pipes like `nc`: without --json, stdout carries the received messages and nothing
 * else, and every event line goes to stderr; with --json, stdout carries one JSON event
 * per line (the documented contract), messages included.
 */

import { createInterface } from 'node:readline';
import type { CloseInfo } from '../link.js';
import { SERVER_DEFAULTS } from '../server/server.js';
import { escapeControl } from '../text.js';
import { ExitCode, intFlag, msFlag, parseFlags, UsageError } from './args.js';
import { clientFlags, openClient, serversArg } from './client-flags.js';
import { EventOutput, errnoOf, reportConnection } from './output.js';

export const connectHelp = `Usage: heartline connect HOST:PORT[,HOST:PORT...] [options]

Connects to a heartline server. Each line read from stdin is sent as one message; each
message received is printed on stdout, one per line, and nothing else is: the events
(open, state changes, disconnects, reconnects) go to stderr, so it pipes like nc. At the
end of stdin it waits until the server has acknowledged everything sent, then exits 0.
Reconnects and resumes by default.

Options:
  --interval MS        heartbeat interval to ask for (the server decides)
  --timeout MS         heartbeat timeout to ask for (the server decides)
  --no-reconnect       exit on the first lost connection instead of reconnecting
  --max-attempts N     give up after N failed attempts in a row (default unlimited)
  --auth TOKEN         credentials for the server's authenticate hook
  --client-id ID       an id of your choosing, sent in the handshake
  --trace-id ID        a trace id for the server's logs
  --tls                connect over TLS, trusting the system CAs
  --tls-ca FILE        connect over TLS, trusting this PEM CA for the server
  --tls-cert FILE      mutual TLS: present this PEM client certificate...
  --tls-key FILE       ...with this PEM private key
  --tls-servername N   the name to check in the server's certificate (and send as
                       SNI; default the host)
  --json               one JSON event per line on stdout, messages included
  -h, --help           show this help

Examples:
  echo hello | heartline connect 127.0.0.1:7000
  heartline connect 10.0.0.1:7000,10.0.0.2:7000 --json < messages.txt
  heartline connect 127.0.0.1:7000 --tls-ca ca.crt --tls-cert me.crt --tls-key me.key`;

/** The flags of `connect` (config files and the environment are checked against them too). */
export const connectFlags = {
  interval: { type: 'string' },
  timeout: { type: 'string' },
  'no-reconnect': { type: 'boolean', default: false },
  ...clientFlags,
} as const;

/** What a server grants by default, for the messages of --interval and --timeout. */
const GRANTED = `a server grants ${SERVER_DEFAULTS.minInterval}-${SERVER_DEFAULTS.maxInterval} ms by default`;

export async function connect(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, connectFlags, true);
  if (positionals.length !== 1)
    throw new UsageError('expected exactly one HOST:PORT[,HOST:PORT...]');
  const servers = serversArg(positionals[0]!);
  // Readable events go to stderr so that stdout holds only the messages (`| grep` sees
  // what the server sent); JSON events are the stdout contract of docs/cli.md.
  const out = new EventOutput(values.json, values.json ? process.stdout : process.stderr);
  const options = {
    servers,
    interval: msFlag('interval', values.interval, GRANTED),
    timeout: msFlag('timeout', values.timeout, 'at least 2 x the interval'),
    reconnect: !values['no-reconnect'],
    maxAttempts: intFlag('max-attempts', values['max-attempts'], 1),
  };
  const { conn, tls } = openClient(options, values);
  reportConnection(out, conn, { messages: values.json });
  // One stdout line per message, whatever the server put in it (escaped as readable lines
  // are, so a newline in a message cannot split it into two).
  if (!values.json) {
    conn.on('message', (data) => process.stdout.write(`${escapeControl(data.toString('utf8'))}\n`));
  }
  let opened = false;
  conn.on('open', (e) => {
    opened = true;
    if (!e.resumed) out.event('open', { conn: conn.id, session: e.sessionId, remote: conn.remote });
  });
  // Why it failed goes to stderr too, whatever --json says: once for the first failure
  // (then it retries in silence, the events say the rest) and once for the last.
  const failure = (info: CloseInfo, then: string): void => {
    const errno = errnoOf(info);
    const what = errno && !info.message.includes(errno) ? `${errno} ${info.message}` : info.message;
    const hint =
      info.reason === 'eof' && !opened && !tls
        ? ' (the server may require TLS: try --tls or --tls-ca FILE)'
        : '';
    process.stderr.write(
      `heartline connect: ${info.reason}${what ? `: ${escapeControl(what)}` : ''}${hint}${then}\n`,
    );
  };
  conn.once('reconnecting', (e) =>
    failure(
      e.info,
      values['max-attempts'] ? '; retrying' : '; retrying (--max-attempts N to give up)',
    ),
  );

  return new Promise<number>((resolve) => {
    let stdinDone = false;
    // The connection itself keeps the process alive until 'close', also while it waits to
    // reconnect after stdin ended with messages still unacknowledged.
    const rl = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
    rl.on('line', (line) => {
      if (conn.closed) return;
      if (!conn.send(line)) {
        rl.pause();
        conn.once('drain', () => rl.resume());
      }
    });
    // Rejected when a session is lost (its messages are re-sent below): wait again.
    const closeWhenAcked = (): void => {
      if (conn.closed) return;
      // Nothing sent is acknowledged at once: still, reach the server first, so that an
      // empty stdin with no server is a failure, not a silent exit 0.
      if (!opened) {
        conn.once('open', closeWhenAcked);
        return;
      }
      conn.whenAcked().then(() => conn.close(), closeWhenAcked);
    };
    rl.on('close', () => {
      stdinDone = true;
      closeWhenAcked();
    });
    conn.on('session-lost', (e) => {
      // What the lost session never delivered is sent again in the new session; a session
      // lost to a final close (AUTH_FAILED on a resume) has no new session to send it in.
      if (conn.closed) return;
      for (const m of e.unacked) conn.send(m);
    });
    conn.once('close', (info) => {
      rl.close();
      const ok = info.reason === 'local' && stdinDone;
      if (!ok && info.reason !== 'local') failure(info, '');
      resolve(ok ? ExitCode.OK : ExitCode.FAILURE);
    });
    const stop = () => conn.close();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
