/**
 * `heartline request`: sends one request and prints its reply, for scripts and for
 * trying a server by hand (`serve --echo` answers every request with its own bytes).
 */

import { HeartlineError, RequestError } from '../errors.js';
import { CONNECTION_DEFAULTS } from '../options.js';
import { escapeControl } from '../text.js';
import { ExitCode, intFlag, parseFlags, UsageError } from './args.js';
import { clientFlags, openClient, serversArg } from './client-flags.js';
import { EventOutput, errnoOf } from './output.js';

/** Connection attempts before `request` gives up, unless --max-attempts says otherwise. */
const DEFAULT_ATTEMPTS = 5;

export const requestHelp = `Usage: heartline request HOST:PORT[,HOST:PORT...] DATA [options]

Sends DATA as one request and prints the reply's bytes on stdout. "-" as DATA sends
what stdin holds. The request survives lost links (it is resumed with its session) and
reaches the server's handler once. Exits 0 with a reply, 1 when the request failed (the
error's code and message on stderr), 2 for a usage error.

Options:
  --timeout MS         how long to wait for the reply, reconnects included
                       (default ${CONNECTION_DEFAULTS.requestTimeout}; 0 waits without limit)
  --key KEY            idempotency key: the server answers a repeat of the key from
                       the same identity with the first reply, without running it again
  --max-attempts N     give up after N failed connection attempts (default ${DEFAULT_ATTEMPTS})
  --auth TOKEN         credentials for the server's authenticate hook
  --client-id ID       an id of your choosing, sent in the handshake
  --trace-id ID        a trace id for the server's logs
  --tls                connect over TLS, trusting the system CAs
  --tls-ca FILE        connect over TLS, trusting this PEM CA for the server
  --tls-cert FILE      mutual TLS: present this PEM client certificate...
  --tls-key FILE       ...with this PEM private key
  --tls-servername N   the name to check in the server's certificate
  --json               one JSON object on stdout: {"event":"reply",...} or {"event":"error",...}
  -h, --help           show this help

Examples:
  heartline request 127.0.0.1:7000 ping
  heartline request 127.0.0.1:7000 - --key order-42 < order.json`;

/** The flags of `request` (config files and the environment are checked against them too). */
export const requestFlags = {
  timeout: { type: 'string' },
  key: { type: 'string' },
  ...clientFlags,
} as const;

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function request(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, requestFlags, true);
  if (positionals.length !== 2) throw new UsageError('expected HOST:PORT[,HOST:PORT...] and DATA');
  const servers = serversArg(positionals[0]!);
  const timeout = intFlag('timeout', values.timeout, 0, 0x7fff_ffff);
  const data = positionals[1] === '-' ? await readStdin() : Buffer.from(positionals[1]!, 'utf8');
  const out = new EventOutput(values.json);
  const { conn } = openClient(
    {
      servers,
      maxAttempts: intFlag('max-attempts', values['max-attempts'], 1) ?? DEFAULT_ATTEMPTS,
    },
    values,
  );
  const started = performance.now();
  try {
    const reply = await conn.request(data, {
      ...(timeout !== undefined ? { timeout } : {}),
      ...(values.key !== undefined ? { idempotencyKey: values.key } : {}),
    });
    const ms = Math.round((performance.now() - started) * 100) / 100;
    if (values.json) {
      out.event('reply', { bytes: reply.length, ms, reply: reply.toString('utf8') });
    } else {
      process.stdout.write(reply);
      process.stdout.write('\n');
    }
    return ExitCode.OK;
  } catch (err) {
    // A connection that ended for good says why better than "closed before the reply".
    const info = conn.closeInfo;
    const cause = info && info.reason !== 'local' ? info : null;
    const code =
      cause?.error?.code ?? (err instanceof HeartlineError ? err.code : 'HL_ERR_INTERNAL');
    const handled = err instanceof RequestError ? err.mayHaveBeenHandled : false;
    let message = (err as Error).message;
    if (cause) {
      const errno = errnoOf(cause);
      message = `${cause.reason}${errno ? ` ${errno}` : ''}: ${cause.message}`;
    }
    if (values.json) out.event('error', { code, message, mayHaveBeenHandled: handled });
    process.stderr.write(
      `heartline request: ${code}: ${escapeControl(message)}${handled ? ' (it may have been handled)' : ''}\n`,
    );
    return ExitCode.FAILURE;
  } finally {
    conn.close();
  }
}
