/**
 * `heartline status ADMIN_HOST:PORT`: a table of a running server's connections, read
 * from its admin endpoint (`heartline serve --admin HOST:PORT`).
 */

import { parseArgs } from 'node:util';
import { parseAddress } from '../client/servers.js';
import { InvalidArgumentError } from '../errors.js';
import type { ConnectionInfo, ServerInfo } from '../observe/snapshot.js';
import { ExitCode, intFlag, UsageError } from './args.js';

export const statusHelp = `Usage: heartline status ADMIN_HOST:PORT [options]

Prints a table of a running server's connections, worst health first, from its admin
endpoint (start the server with --admin HOST:PORT).

Options:
  --state LIST     only these states, e.g. suspect,dead
  --limit N        at most N rows
  --json           print the endpoint's JSON as it is
  -h, --help       show this help

Examples:
  heartline status 127.0.0.1:9464
  heartline status 127.0.0.1:9464 --state suspect,dead --json`;

interface Snapshot {
  at: number;
  server: ServerInfo;
  total?: number;
  connections: ConnectionInfo[];
}

function cell(value: string | number | null | undefined): string {
  return value === null || value === undefined ? '-' : String(value);
}

/** Renders the snapshot as an aligned text table. */
export function renderStatus(s: Snapshot): string {
  const header = [
    'CONN',
    'STATE',
    'REMOTE',
    'RTT ms',
    'HEARD ms ago',
    'MSGS IN',
    'MSGS OUT',
    'UNACKED',
    'SESSION',
  ];
  const rows = s.connections.map((c) => [
    c.id,
    c.state,
    cell(c.remote),
    c.rtt === null ? '-' : c.rtt.toFixed(2),
    c.lastHeardMsAgo === null ? '-' : String(Math.round(c.lastHeardMsAgo)),
    String(c.messagesIn),
    String(c.messagesOut),
    String(c.unacked),
    c.session === null ? '-' : c.session.slice(0, 12),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const states = Object.entries(s.server.states)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  const summary =
    `server ${cell(s.server.address)}  ${s.server.ready ? 'ready' : 'not ready'}` +
    `${s.server.draining ? ' (draining)' : ''}  load ${s.server.loadLevelName}  ` +
    `${s.server.connections} connections${states ? `: ${states}` : ''}`;
  return [summary, '', line(header), ...rows.map(line)].join('\n');
}

export async function status(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      state: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (positionals.length !== 1) throw new UsageError('expected exactly one ADMIN_HOST:PORT');
  let address: { host: string; port: number };
  try {
    address = parseAddress(positionals[0]!);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new UsageError(err.message);
    throw err;
  }
  const query = new URLSearchParams();
  if (values.state !== undefined) query.set('state', values.state);
  const limit = intFlag('limit', values.limit, 1);
  if (limit !== undefined) query.set('limit', String(limit));
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  const url = `http://${host}:${address.port}/api/connections${query.size > 0 ? `?${query}` : ''}`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    process.stderr.write(`heartline status: cannot reach ${url}: ${(err as Error).message}\n`);
    return ExitCode.FAILURE;
  }
  const body = await response.text();
  if (!response.ok) {
    process.stderr.write(`heartline status: ${url} answered ${response.status}: ${body}\n`);
    return response.status === 400 ? ExitCode.USAGE : ExitCode.FAILURE;
  }
  if (values.json) {
    process.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
    return ExitCode.OK;
  }
  process.stdout.write(`${renderStatus(JSON.parse(body) as Snapshot)}\n`);
  return ExitCode.OK;
}
