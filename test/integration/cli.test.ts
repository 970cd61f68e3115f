/**
 * The built CLI (dist/cli/main.js) as a user runs it: real child processes on loopback,
 * their JSON events parsed line by line as they arrive. The JSON events are a public
 * contract (docs/cli.md), so every event any test sees is checked against it.
 *
 * Every child is started in its own process group and killed with its group in t.after,
 * pass or fail (a frozen client is thawed first). Nothing sleeps a fixed time: each wait
 * polls for an event with a generous deadline and fails with the child's output.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { before, describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor, withTimeout } from '../support/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist', 'cli', 'main.js');
const HOST = '127.0.0.1';
/** Heartbeat settings of the servers below: fast enough to keep the file short. */
const INTERVAL = 200;
const TIMEOUT = 600;
/** Generous: a loaded CI machine must not turn a pass into a failure. */
const DEADLINE = 10_000;

/** One JSON event as printed by `--json`. */
interface CliEvent {
  ts: number;
  event: string;
  [field: string]: unknown;
}

/** How a child ended. */
interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

// ---- the contract ------------------------------------------------------------------

const STATES = new Set(['connecting', 'healthy', 'suspect', 'dead', 'disconnected', 'closed']);

/**
 * Documented fields of each event (docs/cli.md). `session` is listed only where a
 * handshake must already have given one; elsewhere it is checked when present.
 */
const FIELDS: Readonly<Record<string, readonly string[]>> = {
  listening: ['port', 'host'],
  connection: ['conn', 'remote', 'session'],
  state: ['conn', 'from', 'to', 'reason'],
  message: ['conn', 'session', 'data'],
  rtt: ['conn', 'session', 'ms'],
  disconnect: ['conn', 'reason', 'code', 'errno'],
  close: ['conn', 'reason', 'code', 'errno'],
  rejected: ['remote', 'reason', 'code'],
  shutdown: ['signal'],
  load: ['level', 'previous', 'reasons'],
  retune: ['interval', 'factor', 'connections', 'demand', 'budget'],
  open: ['conn', 'session', 'remote'],
  reconnecting: ['conn', 'attempt', 'delayMs', 'reason', 'errno'],
  resumed: ['conn', 'session', 'replayed'],
  'session-lost': ['conn', 'session', 'unacked', 'count', 'truncated'],
  'give-up': ['conn', 'attempts', 'unacked', 'count', 'truncated'],
  dropped: ['count'],
};

const isNumber = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const isText = (v: unknown): boolean => typeof v === 'string' && v.length > 0;

/** The type each field must have wherever it appears. */
const FIELD_TYPES: Readonly<Record<string, (v: unknown) => boolean>> = {
  conn: isText,
  session: (v) => typeof v === 'string' && /^[0-9a-f]+$/.test(v),
  remote: (v) => typeof v === 'string' && /:\d+$/.test(v),
  port: (v) => Number.isInteger(v) && (v as number) > 0 && (v as number) < 65536,
  host: isText,
  from: (v) => STATES.has(v as string),
  to: (v) => STATES.has(v as string),
  reason: isText,
  code: (v) => v === null || Number.isInteger(v),
  errno: (v) => v === null || (typeof v === 'string' && /^[A-Z][A-Z0-9_]+$/.test(v)),
  data: (v) => typeof v === 'string',
  ms: (v) => isNumber(v) && (v as number) >= 0,
  signal: (v) => typeof v === 'string' && v.startsWith('SIG'),
  attempt: (v) => Number.isInteger(v) && (v as number) >= 1,
  attempts: (v) => Number.isInteger(v) && (v as number) >= 1,
  delayMs: (v) => isNumber(v) && (v as number) >= 0,
  replayed: (v) => Number.isInteger(v) && (v as number) >= 0,
  unacked: (v) => Array.isArray(v) && v.every((m) => typeof m === 'string'),
  count: (v) => Number.isInteger(v) && (v as number) >= 0,
  truncated: (v) => typeof v === 'boolean',
};

/** Asserts that one event follows the documented contract. */
function assertContract(e: CliEvent): void {
  const text = JSON.stringify(e);
  assert.ok(Number.isInteger(e.ts), `ts must be integer epoch ms: ${text}`);
  assert.ok(Math.abs(e.ts - Date.now()) < 60_000, `ts must be epoch ms of now: ${text}`);
  const fields = FIELDS[e.event];
  assert.ok(fields, `undocumented event "${e.event}": ${text}`);
  for (const f of fields) assert.ok(f in e, `"${e.event}" lacks "${f}": ${text}`);
  for (const [k, v] of Object.entries(e)) {
    const ok = FIELD_TYPES[k];
    if (ok) assert.ok(ok(v), `"${e.event}" has a bad "${k}": ${text}`);
  }
}

// ---- running the CLI ----------------------------------------------------------------

/** A running CLI process with its output parsed as it arrives. */
class Cli {
  /** Everything printed on stdout, as it came. */
  stdout = '';
  /** Every complete stdout line, in order. */
  readonly lines: string[] = [];
  /** Every stdout line that parsed as a JSON object, in order. */
  readonly events: CliEvent[] = [];
  /** Stdout lines that did not parse as JSON (must stay empty with --json). */
  readonly notJson: string[] = [];
  stderr = '';
  exit: Exit | null = null;
  private partial = '';
  private readonly exited: Promise<Exit>;

  constructor(
    readonly child: ChildProcess,
    readonly label: string,
  ) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.onStdout(chunk));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    // The child may exit before reading its stdin: ignore EPIPE there.
    child.stdin!.on('error', () => {});
    this.exited = new Promise((resolve) => {
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Everything the child printed, for failure messages. */
  dump(): string {
    return `--- ${this.label} stdout:\n${this.lines.join('\n')}${this.partial}\n--- stderr:\n${this.stderr}`;
  }

  /** Events named `name` (and about `conn`, when given). */
  named(name: string, conn?: unknown): CliEvent[] {
    return this.events.filter((e) => e.event === name && (conn === undefined || e.conn === conn));
  }

  /** Resolves with the first event matching `match`, waiting for it if needed. */
  async event(
    what: string,
    match: (e: CliEvent) => boolean,
    timeout = DEADLINE,
  ): Promise<CliEvent> {
    let found: CliEvent | undefined;
    await waitFor(
      () => {
        found = this.events.find(match);
        return found !== undefined;
      },
      { timeout, message: `${this.label}: no ${what} within ${timeout} ms\n${this.dump()}` },
    );
    return found!;
  }

  /** Waits until `predicate` holds on this child's output. */
  async until(what: string, predicate: () => boolean, timeout = DEADLINE): Promise<void> {
    await waitFor(predicate, {
      timeout,
      message: `${this.label}: ${what} not seen within ${timeout} ms\n${this.dump()}`,
    });
  }

  /** Resolves with how the child ended. */
  ended(timeout = DEADLINE): Promise<Exit> {
    return withTimeout(this.exited, {
      timeout,
      message: `${this.label} did not exit within ${timeout} ms\n${this.dump()}`,
    });
  }

  /** Sends a signal to the child alone. */
  signal(sig: NodeJS.Signals): void {
    process.kill(this.pid, sig);
  }

  /** Kills the child's process group (thawing it first) and waits for it to end. */
  async kill(): Promise<void> {
    if (this.exit === null) {
      for (const sig of ['SIGCONT', 'SIGKILL'] as const) {
        try {
          // Negative pid: the whole group the child leads (demo's clients, npx's node).
          process.kill(-this.pid, sig);
        } catch {
          // already gone
        }
      }
    }
    await this.ended(5000);
  }

  private onStdout(chunk: string): void {
    this.stdout += chunk;
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop()!;
    for (const line of parts) {
      this.lines.push(line);
      try {
        const value: unknown = JSON.parse(line);
        if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
          this.events.push(value as CliEvent);
          continue;
        }
      } catch {
        // a readable line
      }
      this.notJson.push(line);
    }
  }
}

/**
 * Starts `node dist/cli/main.js ...args` (or `command ...args`) in the repo root, in its
 * own process group, and kills that group when the test ends.
 */
function run(
  t: TestContext,
  args: string[],
  opts: { command?: string; label?: string; env?: NodeJS.ProcessEnv } = {},
): Cli {
  const command = opts.command ?? process.execPath;
  const argv = opts.command === undefined ? [MAIN, ...args] : args;
  const child = spawn(command, argv, {
    cwd: ROOT,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...opts.env },
  });
  const cli = new Cli(child, opts.label ?? `heartline ${args.join(' ')}`);
  t.after(() => cli.kill());
  return cli;
}

/** Starts `serve --json` and resolves with it and its port once it listens. */
async function serve(t: TestContext, extra: string[] = []): Promise<{ server: Cli; port: number }> {
  const args = ['serve', '--port', '0', '--json', '--interval', `${INTERVAL}`];
  const server = run(t, [...args, '--timeout', `${TIMEOUT}`, ...extra]);
  const listening = await server.event('"listening"', (e) => e.event === 'listening');
  assertContract(listening);
  assert.equal(listening.host, HOST);
  return { server, port: listening.port as number };
}

/** Checks every event a --json child printed, and that it printed nothing else. */
function assertAllContract(...clis: Cli[]): void {
  for (const cli of clis) {
    assert.deepEqual(cli.notJson, [], `${cli.label} printed non-JSON lines with --json`);
    for (const e of cli.events) assertContract(e);
  }
}

/** The `to` states of a connection's state events, in order. */
const statePath = (cli: Cli, conn: unknown): string[] =>
  cli.named('state', conn).map((e) => e.to as string);

/** A loopback port with nothing listening (bound, read, released). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, HOST, resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

// ---- tests --------------------------------------------------------------------------

describe('heartline CLI (built)', () => {
  before(() => {
    if (!existsSync(MAIN)) {
      throw new Error(
        `${MAIN} is missing: these tests run the built CLI. Run "npm run build" first ` +
          '(npm test builds before testing).',
      );
    }
  });

  test('serve --echo and connect --json: echoes in order, one conn and session per connection', async (t) => {
    const { server, port } = await serve(t, ['--echo']);
    const client = run(t, ['connect', `${HOST}:${port}`, '--json'], { label: 'connect' });
    const lines = ['one', 'two', 'three'];
    client.child.stdin!.write(`${lines.join('\n')}\n`);
    // End stdin at once: the client closes once its lines are acknowledged, and its
    // closing handshake still delivers the echoes the server sent before it saw CLOSE.
    client.child.stdin!.end();
    assert.deepEqual(await client.ended(), { code: 0, signal: null }, client.dump());

    // The client: one conn, its session from "open", the echoes in order, a local close.
    const open = await client.event('"open"', (e) => e.event === 'open');
    assert.equal(open.remote, `${HOST}:${port}`);
    assert.deepEqual(
      client.named('message').map((e) => e.data),
      lines,
    );
    assert.ok(client.events.every((e) => e.conn === open.conn));
    for (const e of client.named('message')) assert.equal(e.session, open.session);
    const clientClose = client.named('close');
    assert.equal(clientClose.length, 1, client.dump());
    assert.equal(clientClose[0]!.reason, 'local');
    assert.equal(clientClose[0]!.code, 1000);

    // The server: connection, healthy, the 3 messages, close; same conn and session.
    const connection = await server.event('"connection"', (e) => e.event === 'connection');
    const conn = connection.conn;
    assert.equal(connection.session, open.session, 'both ends name the same session');
    const close = await server.event('"close"', (e) => e.event === 'close' && e.conn === conn);
    assert.equal(close.reason, 'remote');
    assert.equal(close.code, 1000);
    const about = server.events.filter((e) => e.conn === conn);
    const names = new Set(about.map((e) => e.event));
    for (const name of ['connection', 'state', 'message', 'close']) {
      assert.ok(names.has(name), `no "${name}" for ${String(conn)}\n${server.dump()}`);
    }
    for (const e of about) assert.equal(e.session, open.session, JSON.stringify(e));
    assert.deepEqual(
      server.named('message', conn).map((e) => e.data),
      lines,
    );
    const path = statePath(server, conn);
    assert.equal(path[0], 'healthy');
    assert.equal(path.at(-1), 'closed');
    assert.equal(server.named('state', conn)[0]!.from, 'connecting');
    // Events come in time order.
    const ts = server.events.map((e) => e.ts);
    assert.deepEqual(
      ts,
      [...ts].sort((a, b) => a - b),
    );
    assertAllContract(server, client);
  });

  test('connect: at stdin EOF every line reaches the server before it exits 0', async (t) => {
    // No echo here: the point is the ack wait, with the lines and the EOF sent at once.
    const { server, port } = await serve(t);
    const client = run(t, ['connect', `${HOST}:${port}`, '--json'], { label: 'connect' });
    client.child.stdin!.end('a\nb\nc\n');
    assert.deepEqual(await client.ended(), { code: 0, signal: null }, client.dump());
    const connection = await server.event('"connection"', (e) => e.event === 'connection');
    await server.event('"close"', (e) => e.event === 'close' && e.conn === connection.conn);
    assert.deepEqual(
      server.named('message', connection.conn).map((e) => e.data),
      ['a', 'b', 'c'],
    );
    assertAllContract(server, client);
  });

  test('connect without --json: the messages alone on stdout, the events on stderr', async (t) => {
    const { port } = await serve(t, ['--echo']);
    const client = run(t, ['connect', `${HOST}:${port}`], { label: 'connect (readable)' });
    const lines = ['hello world', '{"not":"an event"}', 'tab\there', 'last line'];
    client.child.stdin!.write(`${lines.join('\n')}\n`);
    // The tab comes back escaped, as every control character in a readable line.
    const printed = lines.map((l) => l.replace('\t', '\\t'));
    await client.until('the echoed lines', () => printed.every((l) => client.lines.includes(l)));
    client.child.stdin!.end();
    assert.deepEqual(await client.ended(), { code: 0, signal: null }, client.dump());
    // Stdout is exactly the messages, one per line, in order: it pipes like nc.
    assert.deepEqual(client.lines, printed, client.dump());
    // The events are readable lines on stderr: the handshake, the state, the close.
    const events = client.stderr.split('\n').filter((l) => l !== '');
    for (const pattern of [/ c\d+ open session=/, / c\d+ connecting -> healthy /, / c\d+ close /]) {
      assert.ok(
        events.some((l) => pattern.test(l)),
        `no ${pattern} on stderr\n${client.dump()}`,
      );
    }
    for (const l of events) assert.match(l, /^\d\d:\d\d:\d\d\.\d{3} /, `an event line: ${l}`);
  });

  test('echo hi | connect against serve --echo prints exactly "hi" on stdout', async (t) => {
    const { port } = await serve(t, ['--echo']);
    const client = run(t, ['connect', `${HOST}:${port}`], { label: 'echo hi | connect' });
    client.child.stdin!.end('hi\n');
    assert.deepEqual(await client.ended(), { code: 0, signal: null }, client.dump());
    assert.equal(client.stdout, 'hi\n', client.dump());
    assert.match(client.stderr, / connecting -> healthy /, client.dump());
  });

  test('connect | head -1: a reader that goes away ends connect quietly with exit 0', async (t) => {
    const { port } = await serve(t, ['--echo']);
    // bash reports connect's own exit status (head's is the pipeline's) on stderr.
    const script = `"${process.execPath}" "${MAIN}" connect ${HOST}:${port} | head -1; echo "connect exited $PIPESTATUS" >&2`;
    const pipeline = run(t, ['-c', script], { command: 'bash', label: 'connect | head -1' });
    pipeline.child.stdin!.write('first\n');
    await pipeline.until('the first echo through head', () => pipeline.lines.includes('first'));
    // head has its line and exits; connect learns it at its next write (EPIPE). Keep
    // sending until it has (no fixed sleep: each line is one more write it must make).
    let sent = 0;
    const feeder = setInterval(() => pipeline.child.stdin!.write(`more ${++sent}\n`), 100);
    t.after(() => clearInterval(feeder));
    const exit = await pipeline.ended(DEADLINE);
    clearInterval(feeder);
    assert.deepEqual(exit, { code: 0, signal: null }, pipeline.dump());
    assert.deepEqual(pipeline.lines, ['first'], pipeline.dump());
    assert.match(pipeline.stderr, /^connect exited 0$/m, pipeline.dump());
    assert.doesNotMatch(pipeline.stderr, /EPIPE|Error|\n\s+at /, pipeline.dump());
  });

  test('a frozen client (SIGSTOP) goes healthy -> suspect -> dead, then heartbeat-timeout', async (t) => {
    const { server, port } = await serve(t);
    const client = run(t, ['connect', `${HOST}:${port}`, '--json'], { label: 'frozen connect' });
    const open = await client.event('"open"', (e) => e.event === 'open');
    const connection = await server.event(
      '"connection"',
      (e) => e.event === 'connection' && e.session === open.session,
    );
    const conn = connection.conn;
    await server.event(
      'healthy',
      (e) => e.event === 'state' && e.conn === conn && e.to === 'healthy',
    );

    const frozenAt = Date.now();
    client.signal('SIGSTOP');
    const dead = await server.event(
      '"dead"',
      (e) => e.event === 'state' && e.conn === conn && e.to === 'dead',
    );
    const disconnect = await server.event(
      '"disconnect"',
      (e) => e.event === 'disconnect' && e.conn === conn,
    );

    assert.deepEqual(statePath(server, conn).slice(0, 3), ['healthy', 'suspect', 'dead']);
    assert.equal(dead.from, 'suspect');
    assert.equal(disconnect.reason, 'heartbeat-timeout');
    assert.ok(disconnect.ts >= dead.ts);
    // The client may have last sent up to one interval before the freeze; the timer
    // wheel and the event loop add a little on top.
    const detection = dead.ts - frozenAt;
    assert.ok(
      detection >= TIMEOUT - INTERVAL && detection <= TIMEOUT + INTERVAL + 250,
      `dead ${detection} ms after SIGSTOP, expected [${TIMEOUT - INTERVAL}, ${TIMEOUT + INTERVAL + 250}]\n${server.dump()}`,
    );
    assertAllContract(server);
  });

  test('serve reports a peer that fails the handshake as "rejected" with its remote address', async (t) => {
    const { server, port } = await serve(t);
    const peer = netConnect(port, HOST);
    t.after(() => peer.destroy());
    peer.on('error', () => {});
    peer.resume();
    await once(peer, 'connect');
    const local = `${HOST}:${peer.localPort}`;
    // Not a heartline frame: its first 4 bytes read as a length far above the maximum.
    peer.end('GET / HTTP/1.1\r\n\r\n');
    const rejected = await server.event('"rejected"', (e) => e.event === 'rejected');
    assert.equal(rejected.reason, 'frame-too-large');
    assert.equal(rejected.code, 1004);
    assert.equal(server.named('connection').length, 0);
    assert.equal(rejected.remote, local);
    assertAllContract(server);
  });

  test('connect to a port with nothing listening: reconnecting, give-up, exit 1', async (t) => {
    const port = await freePort();
    const client = run(t, ['connect', `${HOST}:${port}`, '--json', '--max-attempts', '2'], {
      label: 'connect (refused)',
    });
    // stdin stays open: at EOF with nothing to send the client would just close.
    assert.deepEqual(await client.ended(), { code: 1, signal: null }, client.dump());
    const names = client.events.map((e) => e.event);
    const giveUp = names.indexOf('give-up');
    assert.ok(giveUp > 0, `no give-up:\n${client.dump()}`);
    const reconnecting = client.named('reconnecting');
    assert.ok(reconnecting.length >= 1, client.dump());
    assert.ok(names.lastIndexOf('reconnecting') < giveUp, 'reconnecting comes before give-up');
    for (const e of reconnecting) assert.equal(e.reason, 'refused');
    assert.deepEqual(
      reconnecting.map((e) => e.attempt),
      reconnecting.map((_, i) => i + 1),
    );
    const gaveUp = client.named('give-up')[0]!;
    assert.equal(gaveUp.attempts, 2);
    assert.deepEqual(gaveUp.unacked, []);
    const close = client.named('close');
    assert.equal(close.length, 1);
    assert.equal(close[0]!.reason, 'refused');
    assert.ok(!('session' in close[0]!), 'no session without a handshake');
    assertAllContract(client);
  });

  test('--help on heartline and each command exits 0; usage errors exit 2', async (t) => {
    const helps = [
      ['--help'],
      ['-h'],
      ['help'],
      ...['serve', 'connect', 'demo'].map((c) => [c, '--help']),
    ];
    const usage = [
      ['bogus'],
      ['serve', '--port', 'abc'],
      ['serve', '--bogus'],
      ['serve', '--interval', '1000', '--timeout', '10'],
      ['connect'],
      ['connect', 'no-port-here'],
      ['connect', `${HOST}:1`, '--max-attempts', 'x'],
      ['demo', '--interval', 'fast'],
    ];
    const help = helps.map((args) => run(t, args));
    const bad = usage.map((args) => run(t, args));
    for (const cli of help) {
      assert.deepEqual(await cli.ended(), { code: 0, signal: null }, cli.dump());
      const out = cli.lines.join('\n');
      assert.match(out, /Usage/, cli.label);
      assert.match(out, /Example/, cli.label);
    }
    for (const cli of bad) {
      assert.deepEqual(await cli.ended(), { code: 2, signal: null }, cli.dump());
      // One line saying what is wrong, then where the help is: not the help itself.
      const lines = cli.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 2, cli.dump());
      assert.match(lines[0]!, /^heartline( \w+)?: \S/, cli.label);
      assert.match(lines[1]!, /^run 'heartline( \w+)? --help' for the options$/, cli.label);
    }
  });

  test('npx heartline --help works from the repo root', async (t) => {
    const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
    const cli = run(t, ['heartline', '--help'], {
      command: npx,
      label: 'npx heartline --help',
      // Never install: it must resolve this package's own bin, not a registry package.
      env: { npm_config_yes: 'false', npm_config_update_notifier: 'false' },
    });
    assert.deepEqual(await cli.ended(30_000), { code: 0, signal: null }, cli.dump());
    assert.match(cli.lines.join('\n'), /Usage: heartline <command>/);
  });

  test('SIGTERM to serve sends CLOSE(going away) and exits 0', async (t) => {
    const { server, port } = await serve(t);
    const client = run(t, ['connect', `${HOST}:${port}`, '--json'], { label: 'connect' });
    const open = await client.event('"open"', (e) => e.event === 'open');
    await server.event(
      'the healthy client',
      (e) => e.event === 'state' && e.to === 'healthy' && e.session === open.session,
    );

    server.signal('SIGTERM');
    assert.deepEqual(await server.ended(), { code: 0, signal: null }, server.dump());
    const shutdown = server.named('shutdown');
    assert.equal(shutdown.length, 1, server.dump());
    assert.equal(shutdown[0]!.signal, 'SIGTERM');
    const told = await client.event(
      'a going-away disconnect or reconnecting',
      (e) => (e.event === 'disconnect' || e.event === 'reconnecting') && e.reason === 'going-away',
    );
    assert.equal(told.conn, open.conn);
    const disconnect = client.named('disconnect')[0];
    if (disconnect) assert.equal(disconnect.code, 1001);
    assertAllContract(server, client);
  });

  test('demo exits 0 and shows a connection turn suspect, then dead', async (t) => {
    const demo = run(t, ['demo', '--interval', '300', '--timeout', '900']);
    assert.deepEqual(await demo.ended(30_000), { code: 0, signal: null }, demo.dump());
    const out = demo.lines.join('\n');
    const suspect = /(c\d+) \S+ -> suspect/.exec(out);
    assert.ok(suspect, `no suspect:\n${demo.dump()}`);
    const dead = new RegExp(`${suspect[1]} \\S+ -> dead`).exec(out);
    assert.ok(dead, `${suspect[1]} never went dead:\n${demo.dump()}`);
    assert.ok(dead.index > suspect.index, 'suspect comes before dead');
    assert.match(out, /declared dead/);
    assert.match(out, /done/);
  });
});
