/**
 * The multi-process mode with real processes and sockets: a primary (the fixture script,
 * or the built CLI) forks workers that run the same script; clients connect to the
 * primary's one port. Covers spreading over workers, resume across the hand-off (exactly
 * once, in order, back on the same worker), a SIGKILLed worker re-forked, garbage and slow
 * HELLOs closed as a single-process server closes them, and `heartline serve --workers`
 * draining on SIGTERM without orphans.
 *
 * Every child runs in its own process group, killed with its group in t.after, pass or fail.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createChaosProxy } from '../../src/chaos/proxy.js';
import { type ClientConnection, connect } from '../../src/client/client.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { Decoder, MAX_HELLO_LENGTH } from '../../src/protocol/codec.js';
import { type CloseFrame, FrameType } from '../../src/protocol/frames.js';
import { createServer } from '../../src/server/server.js';
import { limitsFor, workerLimits, workerRole } from '../../src/server/workers/mode.js';
import { helloBytes, opened } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = join(ROOT, 'test', 'fixtures', 'workers-server.ts');
const MAIN = join(ROOT, 'dist', 'cli', 'main.js');
const CRASH_SWITCH = join(ROOT, 'test', 'fixtures', 'crash-switch.mjs');
const HOST = '127.0.0.1';
/** Generous: forking workers through tsx on a loaded machine takes a while. */
const DEADLINE = 15_000;
const FAST_BACKOFF = { initialDelay: 10, maxDelay: 100 };

interface Line {
  event: string;
  [field: string]: unknown;
}

interface Started {
  child: ChildProcess;
  lines: Line[];
  port: number;
  output: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts a primary (its own process group) and waits for its 'listening' line. */
async function startPrimary(
  t: TestContext,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Started> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Line[] = [];
  let text = '';
  let errText = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
    let nl = text.indexOf('\n');
    while (nl >= 0) {
      const line = text.slice(0, nl);
      text = text.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Line);
      } catch {
        lines.push({ event: 'text', line });
      }
      nl = text.indexOf('\n');
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    errText += chunk;
  });
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  t.after(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  });
  const output = () =>
    `\nstdout:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${errText}`;
  await waitFor(() => lines.some((l) => l.event === 'listening'), {
    timeout: DEADLINE,
    message: `the primary did not listen${output()}`,
  });
  const port = lines.find((l) => l.event === 'listening')!.port as number;
  return { child, lines, port, output, stderr: () => errText, exited };
}

/** Worker pids by slot, from the primary's 'worker' lines (the latest online per slot). */
function onlineWorkers(lines: Line[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const l of lines) {
    if (l.event === 'worker' && l.state === 'online') out.set(l.slot as number, l.pid as number);
  }
  return out;
}

function client(t: TestContext, port: number, extra: object = {}): ClientConnection {
  const conn = connect({ host: HOST, port, backoff: FAST_BACKOFF, ...extra });
  t.after(() => conn.close());
  return conn;
}

/** Sends "who" and resolves with the slot and pid of the worker holding the session. */
async function who(conn: ClientConnection): Promise<{ slot: string; pid: number }> {
  return new Promise((resolve) => {
    const on = (m: Buffer) => {
      const text = m.toString();
      if (!text.startsWith('who:')) return;
      conn.off('message', on);
      const [, slot, pid] = text.split(':');
      resolve({ slot: slot!, pid: Number(pid) });
    };
    conn.on('message', on);
    conn.send('who');
  });
}

/** Writes `bytes` on a raw socket and resolves with the CLOSE it gets back. */
async function closeFrame(port: number, bytes: Buffer): Promise<CloseFrame | null> {
  const socket = netConnect({ host: HOST, port });
  const decoder = new Decoder();
  let close: CloseFrame | null = null;
  socket.on('data', (chunk) => {
    try {
      for (const f of decoder.push(chunk)) if (f.type === FrameType.CLOSE) close = f;
    } catch {
      // only the CLOSE matters
    }
  });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(bytes);
  // Not closed by then: no CLOSE (the assertion says so instead of the test hanging).
  const timer = setTimeout(() => socket.destroy(), 5000);
  await once(socket, 'close');
  clearTimeout(timer);
  return close;
}

/** Writes `bytes` on a raw socket and resolves with the code of the CLOSE it gets back. */
async function closeCode(port: number, bytes: Buffer): Promise<number | null> {
  return (await closeFrame(port, bytes))?.code ?? null;
}

/**
 * The crash switch (test/fixtures/crash-switch.mjs) for one test: `env` for the primary,
 * `crash(slot)` makes every worker forked into `slot` exit at once (null: none).
 */
function crashSwitch(t: TestContext): { env: NodeJS.ProcessEnv; crash(slot: number | null): void } {
  const dir = mkdtempSync(join(tmpdir(), 'heartline-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'slot');
  return {
    env: { ...process.env, HEARTLINE_TEST_CRASH_FILE: file },
    crash: (slot) => writeFileSync(file, slot === null ? '' : String(slot)),
  };
}

/** The 'worker' lines of one slot with this state. */
function workerLines(lines: Line[], slot: number, state: string): Line[] {
  return lines.filter((l) => l.event === 'worker' && l.slot === slot && l.state === state);
}

const HELLO = helloBytes({ clientId: 'slow' });

test('connections spread over the workers (least loaded), messages echo, ids name the slot', async (t) => {
  const p = await startPrimary(t, ['--import', 'tsx', FIXTURE, '--workers', '2']);
  const workers = onlineWorkers(p.lines);
  assert.equal(workers.size, 2, p.output());
  const conns = Array.from({ length: 6 }, () => client(t, p.port));
  await Promise.all(conns.map((c) => opened(c, DEADLINE)));
  const seen = await Promise.all(conns.map((c) => who(c)));
  const bySlot = new Map<string, number>();
  for (const s of seen) bySlot.set(s.slot, (bySlot.get(s.slot) ?? 0) + 1);
  // Six new sessions, none closed: least-loaded gives three each.
  assert.deepEqual([...bySlot.entries()].sort(), [
    ['0', 3],
    ['1', 3],
  ]);
  for (const [i, s] of seen.entries()) {
    assert.equal(s.pid, workers.get(Number(s.slot)), 'the pid the primary reported');
    // The slot is the first byte of the session id.
    assert.equal(Number.parseInt(conns[i]!.sessionId!.slice(0, 2), 16), Number(s.slot));
    assert.notEqual(s.pid, p.child.pid);
  }
  // The primary's counts, as the workers reported them.
  await waitFor(
    async () => {
      process.kill(p.child.pid!, 'SIGUSR2');
      await new Promise((r) => setTimeout(r, 100));
      const last = p.lines.filter((l) => l.event === 'stats').at(-1);
      const stats = (last?.workers ?? []) as Array<Record<string, unknown>>;
      return stats.length === 2 && stats.every((w) => w.sessions === 3);
    },
    { timeout: DEADLINE, message: `worker stats${p.output()}` },
  );
  const stats = p.lines.filter((l) => l.event === 'stats').at(-1)!.workers as Array<
    Record<string, unknown>
  >;
  for (const [slot, w] of stats.entries()) {
    assert.deepEqual(w, {
      slot,
      pid: workers.get(slot),
      state: 'online',
      connections: 3,
      sessions: 3,
      handoffs: 3,
      restarts: 0,
      crashes: 0,
    });
  }
  const echoes: string[] = [];
  conns[0]!.on('message', (m) => echoes.push(m.toString()));
  conns[0]!.send('c:1');
  await waitFor(() => echoes.length > 0, { timeout: DEADLINE });
  assert.equal(echoes[0], `e:1:${seen[0]!.slot}`);
});

test('a resume is routed back to the worker that holds the session: exactly once, in order', async (t) => {
  const p = await startPrimary(t, ['--import', 'tsx', FIXTURE, '--workers', '2']);
  const proxy = await createChaosProxy({ target: { host: HOST, port: p.port } });
  t.after(() => proxy.close());
  // Another client first, so that both workers hold a session.
  const other = client(t, p.port);
  await opened(other, DEADLINE);
  const conn = client(t, proxy.port, { interval: 200, timeout: 1000 });
  await opened(conn, DEADLINE);
  const home = await who(conn);
  const echoes: string[] = [];
  let resumes = 0;
  let lost = 0;
  conn.on('message', (m) => {
    if (m.toString().startsWith('e:')) echoes.push(m.toString());
  });
  conn.on('resumed', () => resumes++);
  conn.on('session-lost', () => lost++);

  const N = 400;
  let sent = 0;
  const pump = setInterval(() => {
    for (let i = 0; i < 8 && sent < N; i++) conn.send(`c:${++sent}`);
  }, 10);
  t.after(() => clearInterval(pump));
  // Cut the link several times mid-stream; each reconnect goes through the primary again.
  for (let cut = 0; cut < 5; cut++) {
    await waitFor(() => conn.state === 'healthy' && sent > (cut + 1) * 50, { timeout: DEADLINE });
    proxy.reset();
    await waitFor(() => resumes > cut, {
      timeout: DEADLINE,
      message: `no resume after cut ${cut}`,
    });
  }
  await waitFor(() => echoes.length >= N, {
    timeout: DEADLINE,
    message: `${echoes.length} of ${N} echoes${p.output()}`,
  });
  clearInterval(pump);
  assert.equal(lost, 0, 'no session was lost');
  assert.ok(resumes >= 5, `resumed ${resumes} times`);
  // Exactly once, in order, every one handled by the same worker.
  assert.deepEqual(
    echoes,
    Array.from({ length: N }, (_, i) => `e:${i + 1}:${home.slot}`),
  );
  assert.deepEqual(await who(conn), home);
});

test('a SIGKILLed worker is re-forked into its slot and serves new clients', async (t) => {
  const p = await startPrimary(t, ['--import', 'tsx', FIXTURE, '--workers', '2']);
  const before = onlineWorkers(p.lines);
  const survivor = client(t, p.port);
  await opened(survivor, DEADLINE);
  const survivorHome = await who(survivor);
  const victimSlot = Number(survivorHome.slot) === 0 ? 1 : 0;
  const victim = before.get(victimSlot)!;
  process.kill(victim, 'SIGKILL');
  await waitFor(
    () => {
      const now = onlineWorkers(p.lines).get(victimSlot);
      return now !== undefined && now !== victim;
    },
    { timeout: DEADLINE, message: `slot ${victimSlot} was not re-forked${p.output()}` },
  );
  const exit = p.lines.find((l) => l.event === 'worker' && l.state === 'exit');
  assert.equal(exit?.pid, victim);
  assert.equal(exit?.signal, 'SIGKILL');
  assert.equal(alive(victim), false);
  const reborn = onlineWorkers(p.lines).get(victimSlot)!;
  // The re-forked worker holds nothing yet: the least loaded, it gets the next client.
  const fresh = client(t, p.port);
  await opened(fresh, DEADLINE);
  assert.deepEqual(await who(fresh), { slot: String(victimSlot), pid: reborn });
  const more = Array.from({ length: 3 }, () => client(t, p.port));
  await Promise.all(more.map((c) => opened(c, DEADLINE)));
  for (const c of more) assert.ok([reborn, survivorHome.pid].includes((await who(c)).pid));
  // The other worker's client never noticed.
  assert.equal(survivor.state, 'healthy');
  assert.deepEqual(await who(survivor), survivorHome);
});

test('with every worker down, sockets get CLOSE(overloaded) and a retry hint; the slot comes back', async (t) => {
  const sw = crashSwitch(t);
  const p = await startPrimary(
    t,
    ['--import', 'tsx', '--import', CRASH_SWITCH, FIXTURE, '--workers', '1', '--admin'],
    sw.env,
  );
  const admin = p.lines.find((l) => l.event === 'listening')!.admin as string;
  const first = onlineWorkers(p.lines).get(0)!;
  sw.crash(0);
  process.kill(first, 'SIGKILL');
  // Every re-fork now exits before it registers: no worker is online until the switch is off.
  await waitFor(() => workerLines(p.lines, 0, 'exit').some((l) => Number(l.crashes) >= 3), {
    timeout: DEADLINE,
    message: `slot 0 did not crash three times${p.output()}`,
  });
  const refusal = await closeFrame(p.port, HELLO);
  assert.equal(refusal?.code, CloseCode.OVERLOADED, p.output());
  assert.ok(
    refusal.retryAfter > 0 && refusal.retryAfter <= 5100,
    `retryAfter ${refusal.retryAfter}`,
  );
  assert.equal(refusal.reason, 'no worker is online');
  // A load balancer takes the instance out meanwhile.
  const ready = await fetch(`${admin}/readyz`);
  assert.equal(ready.status, 503);
  assert.deepEqual(await ready.json(), { status: 'not ready', reason: 'no worker online' });
  sw.crash(null);
  await waitFor(() => (onlineWorkers(p.lines).get(0) ?? first) !== first, {
    timeout: DEADLINE,
    message: `slot 0 did not come back${p.output()}`,
  });
  const conn = client(t, p.port);
  await opened(conn, DEADLINE);
  assert.equal((await who(conn)).slot, '0');
  assert.equal((await fetch(`${admin}/readyz`)).status, 200);
  assert.equal(p.child.exitCode, null, 'the primary never exited');
  // Each crash was an exit with its count and the delay before the next fork, doubling.
  const exits = workerLines(p.lines, 0, 'exit');
  assert.deepEqual(
    exits.slice(0, 3).map((l) => [l.crashes, l.retryIn]),
    [
      [1, 100],
      [2, 200],
      [3, 400],
    ],
  );
});

test('heartline serve --workers 2: a slot in a crash loop is re-forked with backoff, the other serves on', async (t) => {
  assert.ok(existsSync(MAIN), `${MAIN} is missing: run "npm run build" first`);
  const sw = crashSwitch(t);
  const p = await startPrimary(
    t,
    [
      '--import',
      CRASH_SWITCH,
      MAIN,
      'serve',
      '--workers',
      '2',
      '--echo',
      '--json',
      '--admin',
      '0',
      '--log-level',
      'warn',
    ],
    sw.env,
  );
  const admin = p.lines.find((l) => l.event === 'listening')!.admin as string;
  await waitFor(() => onlineWorkers(p.lines).size === 2, { timeout: DEADLINE });
  // The bystander's worker is named by its session id's first byte; the other slot crashes.
  const bystander = client(t, p.port);
  await opened(bystander, DEADLINE);
  const home = Number.parseInt(bystander.sessionId!.slice(0, 2), 16);
  const victim = home === 0 ? 1 : 0;
  let lost = 0;
  bystander.on('session-lost', () => lost++);
  bystander.on('close', () => lost++);
  const echoes: string[] = [];
  bystander.on('message', (m) => echoes.push(m.toString()));
  let sent = 0;
  const pump = setInterval(() => bystander.send(`m${++sent}`), 20);
  t.after(() => clearInterval(pump));

  sw.crash(victim);
  process.kill(onlineWorkers(p.lines).get(victim)!, 'SIGKILL');
  // Six crashes in a row: the fifth and sixth are a crash loop. Before, the fifth made the
  // primary emit 'error' unheard and exit, taking the healthy worker with it.
  await waitFor(() => workerLines(p.lines, victim, 'crash-loop').length >= 2, {
    timeout: DEADLINE * 2,
    message: `no crash loop reported${p.output()}`,
  });
  const loops = workerLines(p.lines, victim, 'crash-loop');
  assert.deepEqual(
    loops.slice(0, 2).map((l) => [l.crashes, l.retryIn]),
    [
      [5, 1600],
      [6, 3200],
    ],
  );
  assert.equal(p.child.exitCode, null, 'the primary is up');
  assert.equal((await fetch(`${admin}/healthz`)).status, 200);
  // One worker online is enough to be ready; new clients go to it.
  assert.equal((await fetch(`${admin}/readyz`)).status, 200);
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  assert.match(metrics, /^heartline_workers_online 1$/m, metrics);
  assert.match(metrics, /^heartline_workers_crash_looping 1$/m, metrics);
  const restarts = Number(/^heartline_worker_restarts_total (\d+)$/m.exec(metrics)?.[1]);
  assert.ok(restarts >= 5, `restarts ${restarts}`);
  assert.match(p.stderr(), /"msg":"worker crash loop"/, p.output());
  const newcomer = client(t, p.port);
  await opened(newcomer, DEADLINE);
  assert.equal(Number.parseInt(newcomer.sessionId!.slice(0, 2), 16), home);

  // Crashes stop: the slot is forked again at its next retry and serves; once it has stayed
  // up for stableAfter, the crash loop is over.
  sw.crash(null);
  const crashedPids = new Set(workerLines(p.lines, victim, 'exit').map((l) => l.pid));
  await waitFor(
    () => {
      const pid = onlineWorkers(p.lines).get(victim);
      return pid !== undefined && !crashedPids.has(pid);
    },
    { timeout: DEADLINE, message: `slot ${victim} did not come back${p.output()}` },
  );
  const fresh = client(t, p.port);
  await opened(fresh, DEADLINE);
  assert.equal(Number.parseInt(fresh.sessionId!.slice(0, 2), 16), victim, 'least loaded');
  const freshEchoes: string[] = [];
  fresh.on('message', (m) => freshEchoes.push(m.toString()));
  fresh.send('back');
  await waitFor(() => freshEchoes.length > 0, { timeout: DEADLINE });
  assert.deepEqual(freshEchoes, ['back']);
  await waitFor(() => workerLines(p.lines, victim, 'recovered').length === 1, {
    timeout: DEADLINE,
    message: `no recovery reported${p.output()}`,
  });
  const after = await (await fetch(`${admin}/metrics`)).text();
  assert.match(after, /^heartline_workers_online 2$/m, after);
  assert.match(after, /^heartline_workers_crash_looping 0$/m, after);

  // The bystander's stream went on the whole time: exactly once, in order.
  clearInterval(pump);
  await waitFor(() => echoes.length >= sent, {
    timeout: DEADLINE,
    message: `${echoes.length} of ${sent} echoes`,
  });
  assert.ok(sent > 100, `only ${sent} messages sent`);
  assert.deepEqual(
    echoes,
    Array.from({ length: sent }, (_, i) => `m${i + 1}`),
  );
  assert.equal(lost, 0);
  assert.equal(bystander.state, 'healthy');
  assert.doesNotMatch(p.stderr(), /Unhandled|Error:/);
});

test('when the primary is killed, its workers close their connections and exit', async (t) => {
  const p = await startPrimary(t, ['--import', 'tsx', FIXTURE, '--workers', '2']);
  const pids = [...onlineWorkers(p.lines).values()];
  assert.equal(pids.length, 2);
  const conn = client(t, p.port, { reconnect: false });
  await opened(conn, DEADLINE);
  let reason = '';
  conn.once('close', (info) => {
    reason = info.reason;
  });
  process.kill(p.child.pid!, 'SIGKILL');
  await waitFor(() => !pids.some(alive), { timeout: DEADLINE, message: 'orphaned workers' });
  // The worker closed it on its way out: CLOSE(going away), not a silent drop.
  await waitFor(() => reason !== '', { timeout: DEADLINE });
  assert.equal(reason, 'going-away');
});

test('garbage and a slow HELLO get the CLOSE a single-process server sends; others go on', async (t) => {
  const handshakeTimeout = 400;
  const p = await startPrimary(t, [
    '--import',
    'tsx',
    FIXTURE,
    '--workers',
    '2',
    '--handshake-timeout',
    String(handshakeTimeout),
  ]);
  const single = createServer({ handshakeTimeout });
  const { port: singlePort } = await single.listen(0, HOST);
  t.after(() => single.close());
  const bystander = client(t, p.port);
  await opened(bystander, DEADLINE);

  const http = Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n');
  const zero = Buffer.alloc(4);
  const notHello = Buffer.from([0, 0, 0, 1, 0x7e]);
  const slow = HELLO.subarray(0, 10);
  for (const [name, bytes, expected] of [
    ['http', http, CloseCode.FRAME_TOO_LARGE],
    ['zero length', zero, CloseCode.PROTOCOL_ERROR],
    ['unknown frame', notHello, CloseCode.PROTOCOL_ERROR],
    ['slow hello', slow, CloseCode.HANDSHAKE_TIMEOUT],
    // Bytes after the HELLO travel with it to the worker, which judges them.
    ['hello, then a bad frame', Buffer.concat([HELLO, zero]), CloseCode.PROTOCOL_ERROR],
  ] as const) {
    const reference = await closeCode(singlePort, bytes);
    const started = performance.now();
    const viaPrimary = await closeCode(p.port, bytes);
    assert.equal(reference, expected, `${name}: single-process reference`);
    assert.equal(viaPrimary, reference, `${name}: through the primary${p.output()}`);
    if (name === 'slow hello') {
      assert.ok(performance.now() - started >= handshakeTimeout - 50, 'not before the timeout');
    }
  }
  // A HELLO longer than any HELLO can be: the single process fails it once the whole frame is
  // in; the primary refuses it with the same code as soon as its version byte is.
  const oversized = Buffer.alloc(4 + MAX_HELLO_LENGTH + 1);
  oversized.writeUInt32BE(MAX_HELLO_LENGTH + 1);
  oversized[4] = FrameType.HELLO;
  oversized[5] = 1;
  assert.equal(await closeCode(singlePort, oversized), CloseCode.PROTOCOL_ERROR, 'reference');
  // Six bytes only: a wait for the rest would end in CLOSE(handshake timeout) instead.
  assert.equal(await closeCode(p.port, oversized.subarray(0, 6)), CloseCode.PROTOCOL_ERROR);
  await waitFor(
    () =>
      p.lines.some(
        (l) =>
          l.event === 'rejected' && l.slot === 'primary' && l.code === CloseCode.PROTOCOL_ERROR,
      ),
    { timeout: DEADLINE, message: `the primary reports its refusal${p.output()}` },
  );
  // A HELLO trickled in pieces is read whole by the primary and welcomed by a worker.
  const trickle = netConnect({ host: HOST, port: p.port });
  t.after(() => trickle.destroy());
  await once(trickle, 'connect');
  const frames = new Decoder();
  const got: number[] = [];
  trickle.on('data', (chunk) => {
    for (const f of frames.push(chunk)) got.push(f.type);
  });
  for (const [from, to] of [
    [0, 3],
    [3, 20],
    [20, HELLO.length],
  ]) {
    trickle.write(HELLO.subarray(from, to));
    await new Promise((r) => setTimeout(r, 30));
  }
  await waitFor(() => got.length > 0, { timeout: DEADLINE });
  assert.equal(got[0], FrameType.WELCOME);
  assert.equal(bystander.state, 'healthy');
  const echoes: string[] = [];
  bystander.on('message', (m) => echoes.push(m.toString()));
  bystander.send('c:7');
  await waitFor(() => echoes.length > 0, { timeout: DEADLINE });
  assert.match(echoes[0]!, /^e:7:[01]$/);
  // Each refusal was reported once by the worker that closed it.
  await waitFor(() => p.lines.filter((l) => l.event === 'rejected').length >= 6, {
    timeout: DEADLINE,
  });
});

test('a closing worker waits out a peer that ignores its CLOSE, then exits by itself', async (t) => {
  const p = await startPrimary(t, ['--import', 'tsx', FIXTURE, '--workers', '1']);
  // allowHalfOpen: the peer reads the server's CLOSE and FIN and never closes its side.
  const peer = netConnect({ host: HOST, port: p.port, allowHalfOpen: true });
  peer.on('error', () => {});
  t.after(() => peer.destroy());
  await once(peer, 'connect');
  peer.write(helloBytes({ clientId: 'stubborn' }));
  await once(peer, 'data'); // WELCOME
  // At once, well inside the 1 s heartbeat timeout: the close, not the heartbeat, ends it.
  const peerEnded = once(peer, 'end');
  p.child.kill('SIGTERM');
  await peerEnded; // CLOSE(going away) and FIN; the peer keeps its side open
  // The worker's link destroys the socket after its CLOSE grace; only then may it exit.
  const exit = await p.exited;
  assert.equal(exit.code, 0, p.output());
  const exits = p.lines.filter((l) => l.event === 'worker' && l.state === 'exit');
  assert.equal(exits.length, 1, p.output());
  // Not killed by the primary's exit grace: it closed once its last socket was gone.
  assert.equal(exits[0]!.signal, null, p.output());
  assert.equal(exits[0]!.code, 0, p.output());
});

test('heartline serve --workers 2: echoes, then SIGTERM drains and exits 0, no worker left', async (t) => {
  assert.ok(existsSync(MAIN), `${MAIN} is missing: run "npm run build" first`);
  const p = await startPrimary(t, [
    MAIN,
    'serve',
    '--workers',
    '2',
    '--echo',
    '--json',
    '--admin',
    '0',
  ]);
  const admin = p.lines.find((l) => l.event === 'listening')!.admin as string;
  await waitFor(() => onlineWorkers(p.lines).size === 2, { timeout: DEADLINE });
  const pids = [...onlineWorkers(p.lines).values()];
  assert.ok(pids.every(alive));
  const conns = Array.from({ length: 4 }, () => client(t, p.port, { reconnect: false }));
  await Promise.all(conns.map((c) => opened(c, DEADLINE)));
  const echoes: string[] = [];
  for (const [i, c] of conns.entries()) {
    c.on('message', (m) => echoes.push(m.toString()));
    c.send(`hello ${i}`);
  }
  await waitFor(() => echoes.length === 4, { timeout: DEADLINE });
  assert.deepEqual(echoes.sort(), ['hello 0', 'hello 1', 'hello 2', 'hello 3']);
  // Connection events come from the workers, where the sessions live.
  const connections = p.lines.filter((l) => l.event === 'connection');
  assert.equal(connections.length, 4);
  assert.equal(p.lines.filter((l) => l.event === 'listening').length, 1, 'only the primary');
  // The primary's admin endpoint: its /metrics adds up the workers' registries.
  const health = await fetch(`${admin}/healthz`);
  assert.equal(health.status, 200);
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  assert.match(metrics, /^heartline_connections\{state="healthy"\} 4$/m, metrics);
  p.child.kill('SIGTERM');
  const exit = await p.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, p.output());
  assert.equal(p.lines.filter((l) => l.event === 'shutdown').length, 1, 'only the primary');
  await waitFor(() => !pids.some(alive), { timeout: DEADLINE, message: 'a worker outlived it' });
  await waitFor(() => conns.every((c) => c.state === 'closed'), { timeout: DEADLINE });
});

test('heartline serve --workers 2 --json: lines over 4 KiB from both workers reach stdout whole', async (t) => {
  assert.ok(existsSync(MAIN), `${MAIN} is missing: run "npm run build" first`);
  const p = await startPrimary(t, [MAIN, 'serve', '--workers', '2', '--echo', '--json']);
  await waitFor(() => onlineWorkers(p.lines).size === 2, { timeout: DEADLINE });
  const conns = [client(t, p.port), client(t, p.port)];
  await Promise.all(conns.map((c) => opened(c, DEADLINE)));
  // Two new sessions on an idle pool: one on each worker.
  const slots = conns.map((c) => Number.parseInt(c.sessionId!.slice(0, 2), 16));
  assert.deepEqual([...slots].sort(), [0, 1]);
  // Each worker prints a 'message' line of about 16 KiB per message (four times PIPE_BUF),
  // both at once: written by two processes to one pipe, such lines came out spliced.
  const N = 40;
  const texts = conns.map((_, i) =>
    Array.from({ length: N }, (_, k) => `${i}:${k}:${String.fromCharCode(97 + i).repeat(16_384)}`),
  );
  const echoes = [0, 0];
  // A slow reader: while stdout is not read the pipe fills, and a writer that finds it
  // full writes part of its line, sleeps, and writes the rest after whoever woke first.
  p.child.stdout!.pause();
  for (const [i, c] of conns.entries()) {
    c.on('message', () => echoes[i]!++);
    for (const text of texts[i]!) c.send(text);
  }
  await new Promise((r) => setTimeout(r, 500));
  p.child.stdout!.resume();
  await waitFor(() => echoes.every((n) => n === N), {
    timeout: DEADLINE,
    message: `echoes ${echoes}`,
  });
  // Every line in, or one that is not JSON (spliced lines also make fewer lines).
  const broken = () => p.lines.filter((l) => l.event === 'text');
  await waitFor(
    () => broken().length > 0 || p.lines.filter((l) => l.event === 'message').length >= 2 * N,
    { timeout: DEADLINE, message: 'message lines missing' },
  );
  assert.equal(broken().length, 0, `lines that are not JSON: ${broken().length}`);
  const printed = p.lines.filter((l) => l.event === 'message').map((l) => l.data as string);
  assert.deepEqual(printed.sort(), texts.flat().sort());
});

test('options: workers with tls or out of range are refused; a worker holds its share', () => {
  // Refused before any certificate is looked at.
  assert.throws(() => createServer({ workers: 2, tls: {} }), {
    code: 'HL_ERR_INVALID_ARGUMENT',
    message: /"workers" and "tls"/,
  });
  for (const workers of [-1, 1.5, 257, Number.NaN]) {
    assert.throws(() => createServer({ workers }), { code: 'HL_ERR_INVALID_ARGUMENT' });
  }
  assert.equal(workerRole({}), null);
  assert.equal(workerRole({ workers: 0 }), null);
  // The slot must name one of the workers, and a worker needs its IPC channel.
  assert.deepEqual(workerRole({ workers: 2 }, { HEARTLINE_WORKER: '1' }, true), {
    role: 'worker',
    workers: 2,
    slot: 1,
  });
  assert.deepEqual(workerRole({ workers: 2 }, { HEARTLINE_WORKER: '1' }, false), {
    role: 'primary',
    workers: 2,
  });
  assert.deepEqual(workerRole({ workers: 2 }, { HEARTLINE_WORKER: '2' }, true), {
    role: 'primary',
    workers: 2,
  });
  const share = workerLimits(
    {
      maxConnections: 1001,
      maxSessions: 10,
      maxHeartbeatsPerSecond: 5000,
      acceptRate: 50,
      acceptBurst: 9,
      interval: 7,
    },
    4,
  );
  assert.deepEqual(share, {
    maxConnections: 251,
    maxSessions: 3,
    maxHeartbeatsPerSecond: 1250,
    acceptRate: Number.POSITIVE_INFINITY,
    interval: 7,
  });
  // Unset and unlimited stay as they are (defaults derive from per-process resources).
  assert.deepEqual(workerLimits({ maxSessions: Number.POSITIVE_INFINITY }, 3), {
    maxSessions: Number.POSITIVE_INFINITY,
    acceptRate: Number.POSITIVE_INFINITY,
  });
  // The replay budget is split too, never below one connection's cap.
  assert.equal(
    workerLimits({ maxTotalBufferedBytes: 400 << 20 }, 4).maxTotalBufferedBytes,
    100 << 20,
  );
  assert.equal(
    workerLimits({ maxTotalBufferedBytes: 3 << 20, maxBufferedBytes: 2 << 20 }, 4)
      .maxTotalBufferedBytes,
    2 << 20,
  );
  // Only a worker runs with its share: the primary and a single process keep the options.
  const limits = { maxConnections: 1001 };
  assert.equal(limitsFor(limits, null), limits);
  assert.equal(limitsFor(limits, { role: 'primary', workers: 4 }), limits);
  assert.equal(limitsFor(limits, { role: 'worker', workers: 4, slot: 3 }).maxConnections, 251);
});
