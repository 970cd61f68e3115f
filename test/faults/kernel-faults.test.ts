/**
 * Detection under real kernel faults. Each test builds its own two hosts (network
 * namespaces joined by a veth pair, test/support/netns.ts), runs the built CLI's server
 * (`serve --echo`) and client (`connect`) as separate processes inside them, keeps a
 * stream of numbered lines flowing through the echo, then injects one fault with
 * nftables, iproute2 or a signal:
 *
 * - drop everything both ways (a true half-open connection: no FIN, no RST ever arrives);
 * - drop one direction only;
 * - answer with TCP RST;
 * - link down;
 * - SIGKILL of a peer process; SIGSTOP of a peer process; a server restart.
 *
 * For each side it measures the time from the fault (the clock starts just before the
 * rule, link change or signal is put in place) to the `disconnect` event, checks the close reason and the
 * configured bound (interval 1000, timeout 3000: timeout + interval + 250 ms for silent
 * faults, interval + 250 ms for faults the kernel reports), and after healing checks
 * that every numbered line came back: exactly once and in order where the session
 * resumes, at least once (in order of first arrival) where the server lost it. A table
 * of what was measured is printed as a diagnostic at the end.
 *
 * Skips with the reason without root, ip or nft (fails instead under
 * HEARTLINE_REQUIRE_ALL=1). Namespaces, links and rules are removed after each test,
 * pass or fail, and stale ones of dead runs at the start.
 */

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  addRule,
  clearRules,
  createHosts,
  type HostEnd,
  type Hosts,
  hostsUnavailable,
  removeStaleHosts,
  setLink,
  spawnIn,
} from '../support/netns.js';
import { waitFor } from '../support/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist', 'cli', 'main.js');
const PORT = 7000;
const INTERVAL = 1000;
const TIMEOUT = 3000;
/** Silent faults: found by the heartbeat within timeout (+ one interval of phase, + slack). */
const SLOW_BOUND = TIMEOUT + INTERVAL + 250;
/** Faults the kernel reports (RST, FIN, CLOSE): at the next packet, within an interval. */
const FAST_BOUND = INTERVAL + 250;
/** Generous waits: a loaded machine must not turn a pass into a failure. */
const WAIT = 20_000;
/** A numbered line every this many ms keeps data in flight when the fault hits. */
const SEND_EVERY = 25;

const skip = hostsUnavailable();

/** One JSON event from `--json`. */
interface CliEvent {
  ts: number;
  event: string;
  [field: string]: unknown;
}

/** A CLI process inside a namespace, its events parsed as they arrive. */
class Peer {
  readonly events: CliEvent[] = [];
  stderr = '';
  exit: { code: number | null; signal: string | null } | null = null;
  private readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    let buffer = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffer += chunk;
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim()) this.events.push(JSON.parse(line) as CliEvent);
        nl = buffer.indexOf('\n');
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    child.stdin?.on('error', () => {}); // a killed client closes its stdin under us
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve();
      });
    });
  }

  /** The first event from index `from` on that matches, waiting for it. */
  async next(
    match: (e: CliEvent) => boolean,
    what: string,
    from = 0,
    timeout = WAIT,
  ): Promise<CliEvent> {
    let found: CliEvent | undefined;
    await waitFor(
      () => {
        found = this.events.slice(from).find(match);
        return found !== undefined || this.exit !== null;
      },
      { timeout, message: `${this.name}: no ${what} within ${timeout} ms\n${this.describe()}` },
    );
    if (!found) throw new Error(`${this.name} exited before ${what}\n${this.describe()}`);
    return found;
  }

  describe(): string {
    return `exit ${JSON.stringify(this.exit)}; stderr: ${this.stderr.slice(-2000)}; last events: ${this.events
      .filter((e) => e.event !== 'message' && e.event !== 'rtt')
      .slice(-12)
      .map((e) => JSON.stringify(e))
      .join('\n')}`;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.exit === null) this.child.kill(sig);
  }

  async stop(): Promise<void> {
    if (this.exit !== null) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGKILL');
    await this.exited;
  }

  async waitExit(timeout = WAIT): Promise<{ code: number | null; signal: string | null }> {
    await waitFor(() => this.exit !== null, {
      timeout,
      message: `${this.name} did not exit\n${this.describe()}`,
    });
    return this.exit!;
  }
}

function startServer(t: TestContext, end: HostEnd, name = 'server'): Peer {
  const peer = new Peer(
    name,
    spawnIn(end, process.execPath, [
      MAIN,
      'serve',
      '--host',
      end.address,
      '--port',
      String(PORT),
      '--interval',
      String(INTERVAL),
      '--timeout',
      String(TIMEOUT),
      '--echo',
      '--json',
    ]),
  );
  t.after(() => peer.stop());
  return peer;
}

function startClient(t: TestContext, end: HostEnd, server: HostEnd): Peer {
  const peer = new Peer(
    'client',
    spawnIn(end, process.execPath, [
      MAIN,
      'connect',
      `${server.address}:${PORT}`,
      '--interval',
      String(INTERVAL),
      '--timeout',
      String(TIMEOUT),
      '--json',
    ]),
  );
  t.after(() => peer.stop());
  return peer;
}

/** Writes numbered lines to the client's stdin until stopped. */
class Sender {
  sent = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly client: Peer) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.client.exit !== null) return;
      this.sent++;
      this.client.child.stdin!.write(`n${this.sent}\n`);
    }, SEND_EVERY);
  }

  /** Stops sending and ends stdin: the client exits 0 once everything is acknowledged. */
  finish(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.client.child.stdin!.end();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/** One row of the table. */
interface Row {
  fault: string;
  side: 'server' | 'client';
  detectedMs: number | null;
  reason: string;
  bound: number | null;
  delivery: string;
}

const rows: Row[] = [];

function echoes(client: Peer): string[] {
  return client.events.filter((e) => e.event === 'message').map((e) => String(e.data));
}

/** Every line 1..sent exactly once, in order. */
function assertExactlyOnce(client: Peer, sent: number): string {
  const got = echoes(client);
  const want = Array.from({ length: sent }, (_, i) => `n${i + 1}`);
  assert.deepEqual(got, want, `echoes differ from the ${sent} lines sent`);
  return `${sent}/${sent} exactly once, in order`;
}

/** Every line at least once, first arrivals in order (a lost session is re-sent). */
function assertAtLeastOnce(client: Peer, sent: number): string {
  const got = echoes(client);
  const first: number[] = [];
  const seen = new Set<string>();
  for (const g of got) {
    if (seen.has(g)) continue;
    seen.add(g);
    first.push(Number(g.slice(1)));
  }
  assert.equal(seen.size, sent, `${sent - seen.size} of ${sent} lines never came back`);
  for (let i = 1; i < first.length; i++) {
    assert.ok(first[i]! > first[i - 1]!, `first arrivals out of order at ${first[i]}`);
  }
  return `${sent}/${sent} at least once (${got.length - sent} re-sent after session loss)`;
}

/** The setup every test shares: hosts, server, client, lines flowing through the echo. */
async function setup(t: TestContext) {
  const hosts: Hosts = createHosts();
  // Registered first, so it runs last: after the processes inside are gone.
  t.after(() => hosts.destroy());
  const server = startServer(t, hosts.server);
  await server.next((e) => e.event === 'listening', 'listening');
  const client = startClient(t, hosts.client, hosts.server);
  await client.next((e) => e.event === 'open', 'open');
  const sender = new Sender(client);
  t.after(() => sender.stop());
  sender.start();
  await waitFor(() => echoes(client).length >= 20, {
    timeout: WAIT,
    message: `no echoes\n${client.describe()}`,
  });
  return { hosts, server, client, sender };
}

/** Waits for a `disconnect` after index `from` and returns ms since `t0` and its reason. */
async function detection(peer: Peer, from: number, t0: number) {
  const e = await peer.next((ev) => ev.event === 'disconnect', 'disconnect', from);
  return { ms: e.ts - t0, reason: String(e.reason) };
}

function record(
  t: TestContext,
  fault: string,
  side: Row['side'],
  d: { ms: number; reason: string } | null,
  bound: number | null,
  delivery: string,
  note = '',
): void {
  const row: Row = {
    fault,
    side,
    detectedMs: d?.ms ?? null,
    reason: d?.reason ?? note,
    bound,
    delivery,
  };
  rows.push(row);
  t.diagnostic(
    `${fault} / ${side}: ${d ? `${d.ms} ms, ${d.reason}` : note} (bound ${bound ?? 'n/a'} ms); ${delivery}`,
  );
}

function assertDetected(
  side: string,
  d: { ms: number; reason: string },
  reasons: readonly string[],
  bound: number,
): void {
  assert.ok(reasons.includes(d.reason), `${side}: reason ${d.reason}, expected one of ${reasons}`);
  assert.ok(d.ms <= bound, `${side}: detected after ${d.ms} ms, bound ${bound} ms`);
  assert.ok(d.ms >= 0, `${side}: detected before the fault (${d.ms} ms)`);
}

/** Heals, waits until both ends resumed, sends a few more lines, finishes. */
async function healAndFinish(
  server: Peer,
  client: Peer,
  sender: Sender,
  serverFrom: number,
  clientFrom: number,
): Promise<void> {
  await client.next((e) => e.event === 'resumed', 'resumed after healing', clientFrom);
  await server.next((e) => e.event === 'resumed', 'resumed after healing', serverFrom);
  const more = sender.sent + 10;
  await waitFor(() => sender.sent >= more, { timeout: WAIT });
  sender.finish();
  const exit = await client.waitExit();
  assert.equal(exit.code, 0, `client exit ${JSON.stringify(exit)}\n${client.describe()}`);
}

/** Silent faults: both ends must find out through the heartbeat (or the kernel's timeout). */
const SILENT = ['heartbeat-timeout', 'keepalive-timeout'] as const;

/**
 * A network fault both ends must detect: injected after the setup, healed once both have
 * reported it; then the session must resume and every line arrive exactly once.
 */
async function bothEndsDetect(
  t: TestContext,
  fault: string,
  reasons: readonly string[],
  bound: number,
  inject: (hosts: Hosts) => void,
  heal: (hosts: Hosts) => void,
): Promise<void> {
  const { hosts, server, client, sender } = await setup(t);
  const [sf, cf] = [server.events.length, client.events.length];
  // The clock starts before the fault: a rule can take effect before the next one exists.
  const t0 = Date.now();
  inject(hosts);
  const [s, c] = await Promise.all([detection(server, sf, t0), detection(client, cf, t0)]);
  heal(hosts);
  await healAndFinish(server, client, sender, sf, cf);
  const delivery = assertExactlyOnce(client, sender.sent);
  record(t, fault, 'server', s, bound, delivery);
  record(t, fault, 'client', c, bound, delivery);
  assertDetected('server', s, reasons, bound);
  assertDetected('client', c, reasons, bound);
}

/**
 * SIGSTOP of one end's process: its kernel still ACKs, so only the other end's heartbeat
 * can tell. After SIGCONT the session must resume with every line exactly once.
 */
async function frozenProcess(t: TestContext, frozen: 'server' | 'client'): Promise<void> {
  const peers = await setup(t);
  const { sender } = peers;
  const watcher = frozen === 'server' ? 'client' : 'server';
  const [sf, cf] = [peers.server.events.length, peers.client.events.length];
  const t0 = Date.now();
  peers[frozen].signal('SIGSTOP');
  const d = await detection(peers[watcher], watcher === 'server' ? sf : cf, t0);
  peers[frozen].signal('SIGCONT');
  await healAndFinish(peers.server, peers.client, sender, sf, cf);
  const delivery = assertExactlyOnce(peers.client, sender.sent);
  record(t, `SIGSTOP ${frozen}`, watcher, d, SLOW_BOUND, delivery);
  record(t, `SIGSTOP ${frozen}`, frozen, null, null, delivery, 'stopped');
  assertDetected(watcher, d, ['heartbeat-timeout'], SLOW_BOUND);
}

describe('kernel faults between two network namespaces', { skip }, () => {
  before(() => {
    if (!existsSync(MAIN)) {
      throw new Error(`${MAIN} is missing: the fault suite runs the built CLI ("npm run build").`);
    }
    removeStaleHosts();
  });

  after(() => {
    removeStaleHosts();
  });

  test('drop everything both ways (half-open: no FIN, no RST)', (t) =>
    bothEndsDetect(
      t,
      'drop both ways',
      SILENT,
      SLOW_BOUND,
      (hosts) => {
        addRule(hosts.client, 'in', 'meta l4proto tcp drop');
        addRule(hosts.client, 'out', 'meta l4proto tcp drop');
      },
      (hosts) => clearRules(hosts.client),
    ));

  // The server hears nothing; the client still hears the server, whose CLOSE reaches it.
  test('drop client -> server only', (t) =>
    bothEndsDetect(
      t,
      'drop client->server',
      SILENT,
      SLOW_BOUND,
      (hosts) => addRule(hosts.client, 'out', 'meta l4proto tcp drop'),
      (hosts) => clearRules(hosts.client),
    ));

  test('drop server -> client only', (t) =>
    bothEndsDetect(
      t,
      'drop server->client',
      SILENT,
      SLOW_BOUND,
      (hosts) => addRule(hosts.server, 'out', 'meta l4proto tcp drop'),
      (hosts) => clearRules(hosts.server),
    ));

  // Each namespace answers the other's segments with an RST in the receiver's name (RSTs
  // themselves pass, or each rule would swallow the other's answers).
  test('answer with TCP RST', (t) =>
    bothEndsDetect(
      t,
      'TCP RST',
      ['reset'],
      FAST_BOUND,
      (hosts) => {
        addRule(hosts.server, 'in', `tcp dport ${PORT} tcp flags & rst == 0 reject with tcp reset`);
        addRule(hosts.client, 'in', `tcp sport ${PORT} tcp flags & rst == 0 reject with tcp reset`);
      },
      (hosts) => {
        clearRules(hosts.server);
        clearRules(hosts.client);
      },
    ));

  test('link down', (t) =>
    bothEndsDetect(
      t,
      'link down',
      SILENT,
      SLOW_BOUND,
      (hosts) => setLink(hosts.client, false),
      (hosts) => setLink(hosts.client, true),
    ));

  test('SIGKILL of the client process', async (t) => {
    const { server, client, sender } = await setup(t);
    const sf = server.events.length;
    sender.stop();
    const t0 = Date.now();
    client.signal('SIGKILL');
    const s = await detection(server, sf, t0);
    record(t, 'SIGKILL client', 'server', s, FAST_BOUND, 'n/a (client gone)');
    record(t, 'SIGKILL client', 'client', null, null, 'n/a', 'killed');
    // The client's kernel closes its socket: FIN, or RST with unread data.
    assertDetected('server', s, ['eof', 'reset'], FAST_BOUND);
  });

  test('SIGKILL of the server process, then a new server', async (t) => {
    const { hosts, server, client, sender } = await setup(t);
    const cf = client.events.length;
    const t0 = Date.now();
    server.signal('SIGKILL');
    const c = await detection(client, cf, t0);
    const next = startServer(t, hosts.server, 'server2');
    await next.next((e) => e.event === 'listening', 'listening');
    // The new server has no session: the client re-sends what was never acknowledged.
    await client.next((e) => e.event === 'session-lost', 'session-lost', cf);
    const more = sender.sent + 10;
    await waitFor(() => sender.sent >= more, { timeout: WAIT });
    sender.finish();
    const exit = await client.waitExit();
    assert.equal(exit.code, 0, client.describe());
    const delivery = assertAtLeastOnce(client, sender.sent);
    record(t, 'SIGKILL server + restart', 'client', c, FAST_BOUND, delivery);
    record(t, 'SIGKILL server + restart', 'server', null, null, delivery, 'killed');
    assertDetected('client', c, ['eof', 'reset'], FAST_BOUND);
  });

  test('SIGSTOP of the server process', (t) => frozenProcess(t, 'server'));

  test('SIGSTOP of the client process', (t) => frozenProcess(t, 'client'));

  test('server restart (SIGTERM, then a new server on the same address)', async (t) => {
    const { hosts, server, client, sender } = await setup(t);
    const cf = client.events.length;
    const t0 = Date.now();
    server.signal('SIGTERM');
    const c = await detection(client, cf, t0);
    await server.waitExit();
    const next = startServer(t, hosts.server, 'server2');
    await next.next((e) => e.event === 'listening', 'listening');
    await client.next((e) => e.event === 'session-lost', 'session-lost', cf);
    const more = sender.sent + 10;
    await waitFor(() => sender.sent >= more, { timeout: WAIT });
    sender.finish();
    const exit = await client.waitExit();
    assert.equal(exit.code, 0, client.describe());
    const delivery = assertAtLeastOnce(client, sender.sent);
    record(t, 'server restart', 'client', c, FAST_BOUND, delivery);
    record(t, 'server restart', 'server', null, null, delivery, 'restarted');
    // The server says goodbye (CLOSE going away) before it exits.
    assertDetected('client', c, ['going-away'], FAST_BOUND);
  });

  test('table of what was measured', (t) => {
    assert.ok(rows.length > 0, 'no fault was measured');
    const header =
      '| fault | side | detected (ms) | bound (ms) | reason | delivery after healing |';
    const lines = [header, '|---|---|---|---|---|---|'];
    for (const r of rows) {
      lines.push(
        `| ${r.fault} | ${r.side} | ${r.detectedMs ?? 'n/a'} | ${r.bound ?? 'n/a'} | ${r.reason} | ${r.delivery} |`,
      );
    }
    for (const line of lines) t.diagnostic(line);
  });
});
