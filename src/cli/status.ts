/**
 * `heartline status ADMIN_HOST:PORT`: a table of a running server's connections, read
 * from its admin endpoint (`heartline serve --admin HOST:PORT`).
 */

import { parseAddress } from '../client/servers.js';
import { InvalidArgumentError } from '../errors.js';
import type { ConnectionInfo, ConnectionsPage } from '../observe/snapshot.js';
import { addressFlag, ExitCode, intFlag, parseFlags, UsageError } from './args.js';

export const statusHelp = `Usage: heartline status [ADMIN_HOST:]PORT [options]

Prints a table of a running server's connections, worst health first, from its admin
endpoint (start the server with --admin HOST:PORT), reading it page by page.

Options:
  --state LIST     only these states, e.g. suspect,dead
  --limit N        at most N rows
  --json           print the endpoint's JSON, every page's rows in one document
  -h, --help       show this help

Examples:
  heartline status 127.0.0.1:9464
  heartline status 9464                 # the same: the host defaults to 127.0.0.1
  heartline status 127.0.0.1:9464 --state suspect,dead --json`;

/** What status prints: one page, or every page's rows together. */
type Snapshot = Pick<ConnectionsPage, 'at' | 'server' | 'connections'> & Partial<ConnectionsPage>;

/** Rows asked for per request: the endpoint's default maximum page. */
const PAGE_ROWS = 5000;

/** How long one page may take (ms). */
const PAGE_TIMEOUT_MS = 5000;

/** Why a page could not be read: the message, and the exit code it earns. */
class PageError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/**
 * Reads `/api/connections` page after page (following `next`) until `limit` rows or the
 * last page. A connection that changed state between two pages may show up on both:
 * it is listed once.
 */
async function readPages(base: string, query: URLSearchParams, limit: number): Promise<Snapshot> {
  const seen = new Set<string>();
  const rows: ConnectionInfo[] = [];
  let first: ConnectionsPage | null = null;
  let offset = 0;
  for (;;) {
    const q = new URLSearchParams(query);
    q.set('limit', String(Math.min(PAGE_ROWS, limit - rows.length)));
    if (offset > 0) q.set('offset', String(offset));
    const url = `${base}?${q}`;
    let response: Response;
    try {
      response = await fetch(url, { signal: AbortSignal.timeout(PAGE_TIMEOUT_MS) });
    } catch (err) {
      // fetch says only "fetch failed": the cause has the code (ECONNREFUSED, ECONNRESET).
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new PageError(
        `cannot reach ${url}: ${why} (is the server started with --admin, and is this its admin port?)`,
        ExitCode.FAILURE,
      );
    }
    const body = await response.text();
    if (!response.ok) {
      const code = response.status === 400 ? ExitCode.USAGE : ExitCode.FAILURE;
      throw new PageError(`${url} answered ${response.status}: ${body}`, code);
    }
    const page = JSON.parse(body) as ConnectionsPage;
    first ??= page;
    for (const c of page.connections) {
      if (rows.length >= limit) break;
      if (seen.has(c.id)) continue;
      seen.add(c.id);
      rows.push(c);
    }
    // An endpoint without paging (next absent) answered everything at once.
    const next = page.next ?? null;
    if (next === null || next <= offset || rows.length >= limit) break;
    offset = next;
  }
  return { ...first, offset: 0, limit: rows.length, next: null, connections: rows };
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
  const more = (s.total ?? 0) - rows.length;
  const rest = more > 0 ? [`... and ${more} more not listed`] : [];
  return [summary, '', line(header), ...rows.map(line), ...rest].join('\n');
}

/** The flags of `status` (config files and the environment are checked against them too). */
export const statusFlags = {
  state: { type: 'string' },
  limit: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

export async function status(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, statusFlags, true);
  if (positionals.length !== 1) throw new UsageError('expected exactly one [ADMIN_HOST:]PORT');
  let address: { host: string; port: number };
  try {
    // A bare PORT is the admin port on loopback, as `serve --admin PORT` takes it.
    const given = positionals[0]!;
    address = parseAddress(addressFlag(/^\d+$/.test(given) ? `127.0.0.1:${given}` : given));
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new UsageError(err.message);
    throw err;
  }
  const query = new URLSearchParams();
  if (values.state !== undefined) query.set('state', values.state);
  const limit = intFlag('limit', values.limit, 1) ?? Number.POSITIVE_INFINITY;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  let snapshot: Snapshot;
  try {
    snapshot = await readPages(`http://${host}:${address.port}/api/connections`, query, limit);
  } catch (err) {
    if (!(err instanceof PageError)) throw err;
    process.stderr.write(`heartline status: ${err.message}\n`);
    return err.exitCode;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(snapshot)}\n`);
    return ExitCode.OK;
  }
  process.stdout.write(`${renderStatus(snapshot)}\n`);
  return ExitCode.OK;
}
