/**
 * `heartline conformance server HOST:PORT` checks a server implementation against
 * PROTOCOL.md; `heartline conformance client` plays a scripted server that a client
 * implementation connects to. Both print one line per check and a summary; exit 1 on
 * any failure (docs/conformance.md).
 */

import { parseAddress } from '../client/servers.js';
import { runClientScript } from '../conformance/client-script.js';
import { Reporter } from '../conformance/report.js';
import {
  KIT_VERSIONS,
  runServerChecks,
  SERVER_CHECK_DEFAULTS,
  selectChecks,
} from '../conformance/server-checks.js';
import { WirePeer } from '../conformance/wire.js';
import { InvalidArgumentError } from '../errors.js';
import {
  addressFlag,
  ExitCode,
  intFlag,
  listenFlag,
  msFlag,
  parseFlags,
  UsageError,
} from './args.js';
import { clientTls, serverTls } from './tls-flags.js';

export const conformanceHelp = `Usage: heartline conformance server HOST:PORT [options]
       heartline conformance client [options]

Checks an implementation of the heartline wire protocol against PROTOCOL.md and prints
one line per check (PASS/FAIL/SKIP id  description), then "N passed, M failed".
Exit code 1 when a check fails. docs/conformance.md lists every check.

server HOST:PORT   connects to a server that echoes every message back to its sender
                   (heartline serve --echo) and checks it
client             listens as a scripted server (prints "listening on HOST:PORT" to
                   stderr first) and checks the first client that connects; the client
                   must send at least 3 messages and keep its connection open

Options (server):
  --only LIST          only these checks: ids or prefixes, e.g. ping.pong,malformed
  --quick              skip the checks that wait on long server timers
                       (handshake.timeout)
  --protocol LIST      the protocol versions whose checks run (default 1,2; a
                       version 1 server: --protocol 1)
  --max-frame BYTES    the server's maximum frame size (default ${SERVER_CHECK_DEFAULTS.maxFrame})
  --handshake-timeout MS
                       the server's handshake timeout (default ${SERVER_CHECK_DEFAULTS.handshakeTimeout})
  --interval MS        the shortest heartbeat interval the server grants; the
                       heartbeat checks ask for it and 2 x it (default ${SERVER_CHECK_DEFAULTS.interval})
  --tls                connect over TLS, trusting the system CAs
  --tls-ca FILE        connect over TLS, trusting this PEM CA for the server
  --tls-cert FILE      mutual TLS: present this PEM client certificate...
  --tls-key FILE       ...with this PEM private key
  --tls-servername N   the name to check in the server's certificate
Options (client):
  --port P             port to listen on; 0 picks a free one (default 0)
  --host H             address to listen on (default 127.0.0.1)
  --wait MS            how long to wait for the client to connect (default 60000)
  --tls-cert FILE      serve TLS with this PEM certificate (chain)...
  --tls-key FILE       ...and this PEM private key
  --tls-ca FILE        mutual TLS: require client certificates signed by this PEM CA
Both:
  --slack MS           how late an answer or a detection may be (default ${SERVER_CHECK_DEFAULTS.slack})
  --json               one JSON object per check and a summary object on stdout
  -h, --help           show this help

Examples:
  heartline serve --port 7000 --echo &
  heartline conformance server 127.0.0.1:7000 --quick
  heartline conformance client --port 7100 &
  (printf 'a\\nb\\nc\\n'; sleep 30) | heartline connect 127.0.0.1:7100`;

/** The flags of `conformance` (config files and the environment are checked against them too). */
export const conformanceFlags = {
  only: { type: 'string' },
  quick: { type: 'boolean', default: false },
  protocol: { type: 'string', default: '1,2' },
  'max-frame': { type: 'string' },
  'handshake-timeout': { type: 'string' },
  interval: { type: 'string' },
  slack: { type: 'string' },
  port: { type: 'string', default: '0' },
  host: { type: 'string', default: '127.0.0.1' },
  wait: { type: 'string' },
  tls: { type: 'boolean', default: false },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-servername': { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

export async function conformance(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, conformanceFlags, true);
  const [side, address, ...extra] = positionals;
  const reporter = new Reporter(values.json);
  if (side === 'server') {
    if (address === undefined || extra.length > 0) {
      throw new UsageError('expected exactly one HOST:PORT after "server"');
    }
    let target: { host: string; port: number };
    try {
      target = parseAddress(addressFlag(address));
    } catch (err) {
      if (err instanceof InvalidArgumentError) throw new UsageError(err.message);
      throw err;
    }
    const only =
      values.only
        ?.split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '') ?? [];
    try {
      selectChecks(only);
    } catch (err) {
      throw new UsageError(`--only: ${(err as Error).message}`);
    }
    const versions = values.protocol.split(',').map((v) => v.trim());
    for (const v of versions) {
      if (!KIT_VERSIONS.map(String).includes(v)) {
        throw new UsageError(
          `--protocol: no checks for version "${v}" (the kit knows ${KIT_VERSIONS.join(', ')})`,
        );
      }
    }
    const tls = clientTls(values);
    // A server that cannot be reached is one line, not every check failing alike.
    try {
      (await WirePeer.connect(target.host, target.port, 5000, undefined, tls)).cut();
    } catch (err) {
      process.stderr.write(`heartline conformance: ${(err as Error).message}\n`);
      return ExitCode.FAILURE;
    }
    const d = SERVER_CHECK_DEFAULTS;
    await runServerChecks(
      {
        ...target,
        maxFrame: intFlag('max-frame', values['max-frame'], 64, 0xffff_ffff) ?? d.maxFrame,
        handshakeTimeout:
          msFlag('handshake-timeout', values['handshake-timeout'], "the server's deadline") ??
          d.handshakeTimeout,
        interval:
          msFlag('interval', values.interval, 'the shortest the server grants') ?? d.interval,
        slack: intFlag('slack', values.slack, 0) ?? d.slack,
        ...(tls ? { tls } : {}),
      },
      {
        only,
        quick: values.quick,
        versions: versions.map(Number),
        onResult: (r) => reporter.add(r),
      },
    );
  } else if (side === 'client') {
    if (address !== undefined) throw new UsageError(`unexpected argument "${address}"`);
    const { host, port } = listenFlag('port', `${values.host}:${values.port}`);
    if (values.tls || values['tls-servername'] !== undefined) {
      throw new UsageError(
        '--tls and --tls-servername are for "server"; serve TLS with --tls-cert and --tls-key',
      );
    }
    const tls = serverTls(values);
    await runClientScript({
      host,
      port,
      wait: msFlag('wait', values.wait, 'how long to wait for the client') ?? 60_000,
      slack: intFlag('slack', values.slack, 0) ?? SERVER_CHECK_DEFAULTS.slack,
      ...(tls ? { tls } : {}),
      onListening: (addr) => {
        if (values.json) {
          process.stdout.write(
            `${JSON.stringify({ ts: Date.now(), event: 'listening', host: addr.host, port: addr.port })}\n`,
          );
        } else {
          process.stderr.write(`listening on ${addr.host}:${addr.port}\n`);
        }
      },
      onResult: (r) => reporter.add(r),
    });
  } else {
    throw new UsageError(
      side === undefined
        ? 'expected "server HOST:PORT" or "client"'
        : `unknown side "${side}": expected "server" or "client"`,
    );
  }
  const summary = reporter.summary();
  return summary.failed > 0 ? ExitCode.FAILURE : ExitCode.OK;
}
