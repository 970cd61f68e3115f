/**
 * The lifecycle of connections and servers as a script sees it: a client keeps the
 * process alive until 'close' (also between two attempts, with messages unacknowledged),
 * unless unref()'d; ready() resolves on the first handshake and rejects with the typed
 * final reason; connections have no 'error' event; `await server.close()` comes after
 * every connection's 'close'.
 *
 * The script tests run test/fixtures/client-lifecycle.ts as a child process in its own
 * process group, killed with its group in t.after, pass or fail.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer as netServer } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type ClientConnection, connect } from '../../src/client/client.js';
import { processHolders } from '../../src/client/process-hold.js';
import type { GiveUpEvent, OpenEvent } from '../../src/connection.js';
import { HeartlineError } from '../../src/errors.js';
import type { CloseInfo } from '../../src/link.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor, withTimeout } from '../support/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = join(ROOT, 'test', 'fixtures', 'client-lifecycle.ts');
const SERVER_FIXTURE = join(ROOT, 'test', 'fixtures', 'server-lifecycle.ts');
/** Generous: starting node with tsx on a loaded machine takes seconds. */
const SCRIPT_DEADLINE = 30_000;
const FAST_BACKOFF = { initialDelay: 10, maxDelay: 40 };

/** A loopback port nothing listens on (the kernel's pick, closed at once). */
async function closedPort(): Promise<number> {
  const srv = netServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

interface Line {
  event: string;
  [field: string]: unknown;
}

/** Runs the fixture script; resolves with its JSON lines and exit code once it exits. */
function runScript(
  t: TestContext,
  args: string[],
  onLine: (line: Line) => void = () => {},
  script = FIXTURE,
): Promise<{ lines: Line[]; code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  });
  const lines: Line[] = [];
  let text = '';
  let errText = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
      const raw = text.slice(0, nl);
      text = text.slice(nl + 1);
      let line: Line;
      try {
        line = JSON.parse(raw) as Line;
      } catch {
        line = { event: 'text', raw };
      }
      lines.push(line);
      onLine(line);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    errText += chunk;
  });
  // 'close', not 'exit': every line the script wrote has been read by then.
  const closed = once(child, 'close').then(([code]) => {
    const output = `\nstdout:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${errText}`;
    return { lines, code: code as number | null, output };
  });
  return withTimeout(closed, {
    timeout: SCRIPT_DEADLINE,
    message: `the script did not exit within ${SCRIPT_DEADLINE} ms`,
  });
}

const events = (lines: Line[]) => lines.map((l) => l.event);

test('a client-only script with an unacknowledged message stays alive until give-up, then exits 0', async (t) => {
  const port = await closedPort();
  const { lines, code, output } = await runScript(t, ['--port', String(port)]);
  assert.equal(code, 0, output);
  // One refused attempt and three retries: the backoff waits did not end the process.
  assert.deepEqual(
    events(lines),
    ['reconnecting', 'reconnecting', 'reconnecting', 'give-up', 'close', 'ready-rejected', 'exit'],
    output,
  );
  assert.deepEqual(
    lines.filter((l) => l.event === 'reconnecting').map((l) => l.attempt),
    [1, 2, 3],
  );
  const giveUp = lines.find((l) => l.event === 'give-up')!;
  assert.deepEqual(giveUp.unacked, ['hello'], output);
  assert.equal(giveUp.attempts, 3);
  assert.equal(lines.find((l) => l.event === 'close')!.error, 'HL_ERR_GAVE_UP');
  assert.equal(lines.find((l) => l.event === 'ready-rejected')!.code, 'HL_ERR_GAVE_UP');
  assert.equal(lines.at(-1)!.unacked, 0);
});

test('a script whose server dies mid-session stays alive through the retries and hands back what was not acknowledged', async (t) => {
  const { server, port } = await startServer(t, { interval: 1000, timeout: 3000 });
  const run = runScript(t, ['--port', String(port), '--send-on-disconnect', 'after'], (line) => {
    // The server goes away for good once the script is in session: its port stays closed.
    if (line.event === 'open') void server.close();
  });
  const { lines, code, output } = await run;
  assert.equal(code, 0, output);
  const seen = events(lines);
  assert.deepEqual(seen.slice(0, 3), ['open', 'ready', 'disconnect'], output);
  assert.deepEqual(seen.slice(-3), ['give-up', 'close', 'exit'], output);
  assert.ok(seen.filter((e) => e === 'reconnecting').length >= 3, output);
  const giveUp = lines.find((l) => l.event === 'give-up')!;
  // 'hello' may have been acknowledged before the server went; 'after' never was.
  assert.ok((giveUp.unacked as string[]).includes('after'), output);
  assert.equal(lines.find((l) => l.event === 'close')!.error, 'HL_ERR_GAVE_UP');
});

test('an unref()d client-only script exits at once, before its retries', async (t) => {
  const port = await closedPort();
  const { lines, code, output } = await runScript(t, [
    '--port',
    String(port),
    '--max-attempts',
    '1000',
    '--initial-delay',
    '60000',
    '--unref',
  ]);
  assert.equal(code, 0, output);
  const seen = events(lines);
  assert.equal(seen.at(-1), 'exit', output);
  assert.ok(!seen.includes('give-up') && !seen.includes('close'), output);
  assert.equal(lines.at(-1)!.unacked, 1, output);
});

test('a listening server holds the process unless unref()d', async (t) => {
  const unrefd = await runScript(t, ['--unref'], () => {}, SERVER_FIXTURE);
  assert.equal(unrefd.code, 0, unrefd.output);
  assert.deepEqual(events(unrefd.lines), ['listening', 'exit'], unrefd.output);
  // Without unref() it listens until stopped: still there a second after 'listening'.
  let listening = false;
  const held = runScript(
    t,
    [],
    (line) => {
      if (line.event === 'listening') listening = true;
    },
    SERVER_FIXTURE,
  );
  const exitedEarly = held.then((r) => `exited: ${r.output}`);
  await Promise.race([
    waitFor(() => listening, { timeout: SCRIPT_DEADLINE, message: 'never listened' }),
    exitedEarly.then((why) => assert.fail(why)),
  ]);
  const early = await Promise.race([exitedEarly, sleep(1000).then(() => 'alive')]);
  assert.equal(early, 'alive');
});

test('a connection holds the process from connect() to close, unless unref()d', async (t) => {
  const port = await closedPort();
  const before = processHolders();
  const conn = startClient(t, { port, backoff: FAST_BACKOFF });
  assert.equal(processHolders(), before + 1);
  conn.unref();
  conn.unref();
  assert.equal(processHolders(), before);
  conn.ref();
  assert.equal(processHolders(), before + 1);
  await onceEvent(conn, 'reconnecting');
  conn.close();
  assert.equal(processHolders(), before);
  // After close, ref() holds nothing.
  conn.ref();
  assert.equal(processHolders(), before);
});

test('ready() resolves with the first handshake, now and later', async (t) => {
  const { port } = await startServer(t);
  const conn = startClient(t, { port });
  let opens = 0;
  conn.on('open', () => opens++);
  const event: OpenEvent = await withTimeout(conn.ready());
  // The 'open' listeners ran before the promise settled.
  assert.equal(opens, 1);
  assert.equal(event.resumed, false);
  assert.equal(event.sessionId, conn.sessionId);
  assert.equal(await conn.ready(), event);
  conn.close();
  await onceEvent(conn, 'close');
  assert.equal(await conn.ready(), event, 'still the first handshake after close');
});

/** Awaits a rejection of `p` and returns its HeartlineError. */
async function rejection(p: Promise<unknown>): Promise<HeartlineError> {
  const err = await withTimeout(
    p.then(
      () => assert.fail('ready() resolved'),
      (e: unknown) => e,
    ),
  );
  assert.ok(err instanceof HeartlineError, `not a HeartlineError: ${String(err)}`);
  return err;
}

test('ready() rejects with HL_ERR_AUTH_FAILED when the server refuses the credentials', async (t) => {
  const { port } = await startServer(t, {
    authenticate: (hello) => hello.auth.toString() === 'ok',
  });
  const conn = startClient(t, { port, auth: 'wrong', backoff: FAST_BACKOFF });
  const err = await rejection(conn.ready());
  assert.equal(err.code, 'HL_ERR_AUTH_FAILED');
  assert.equal(conn.closeInfo?.reason, 'auth-failed');
  const good = startClient(t, { port, auth: 'ok' });
  assert.equal((await withTimeout(good.ready())).resumed, false);
});

test('ready() rejects with HL_ERR_GAVE_UP once maxAttempts are spent', async (t) => {
  const port = await closedPort();
  const conn = startClient(t, { port, maxAttempts: 2, backoff: FAST_BACKOFF });
  const ready = conn.ready();
  const giveUp = onceEvent(conn, 'give-up');
  const err = await rejection(ready);
  assert.equal(err.code, 'HL_ERR_GAVE_UP');
  const [event] = (await giveUp) as [GiveUpEvent];
  assert.equal(event.attempts, 2);
  // Asked after the close, it rejects the same way.
  assert.equal((await rejection(conn.ready())).code, 'HL_ERR_GAVE_UP');
});

test('ready() rejects with HL_ERR_ABORTED when the signal fires while it retries', async (t) => {
  const port = await closedPort();
  const ac = new AbortController();
  const conn = startClient(t, { port, signal: ac.signal, backoff: FAST_BACKOFF });
  const ready = conn.ready();
  await onceEvent(conn, 'reconnecting');
  ac.abort(new Error('enough'));
  const err = await rejection(ready);
  assert.equal(err.code, 'HL_ERR_ABORTED');
  assert.equal((err.cause as Error).message, 'enough');
  // An already-aborted signal rejects too (the abort runs after connect() returns).
  const late = startClient(t, { port, signal: AbortSignal.abort() });
  assert.equal((await rejection(late.ready())).code, 'HL_ERR_ABORTED');
});

test('ready() rejects with HL_ERR_CONNECTION_CLOSED on close() before the first handshake', async (t) => {
  const port = await closedPort();
  const conn = startClient(t, { port, backoff: FAST_BACKOFF });
  const ready = conn.ready();
  conn.close();
  const err = await rejection(ready);
  assert.equal(err.code, 'HL_ERR_CONNECTION_CLOSED');
  assert.match(err.message, /before its first handshake/);
});

test('a failing connection nobody asked ready() of leaves no unhandled rejection and emits no error', async (t) => {
  const port = await closedPort();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  const conn: ClientConnection = connect({ port, maxAttempts: 1, backoff: FAST_BACKOFF });
  t.after(() => conn.close());
  // There is no 'error' event: failures arrive in 'disconnect'/'close' and ready().
  // @ts-expect-error 'error' is not an event of a connection (see ConnectionEvents)
  conn.on('error', () => {});
  conn.removeAllListeners('error');
  const [info] = (await onceEvent(conn, 'close')) as [CloseInfo];
  assert.equal(info.error?.code, 'HL_ERR_GAVE_UP');
  // Two turns of the loop: time for an unhandled rejection to be reported.
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(unhandled, []);
});

test('close(), abort and give-up emit state, session-lost, close in that order', async (t) => {
  const { port } = await startServer(t);
  const order = (conn: ClientConnection): string[] => {
    const seen: string[] = [];
    conn.on('state', (c) => seen.push(`state:${c.to}`));
    conn.on('session-lost', (e) => seen.push(`session-lost:${e.unacked.length}`));
    conn.on('give-up', (e) => seen.push(`give-up:${e.unacked.length}`));
    conn.on('close', (i) => seen.push(`close:${i.error?.code ?? i.reason}`));
    return seen;
  };
  // close() while retrying after its server went, with a message nobody acknowledged.
  const gone = await startServer(t);
  const a = startClient(t, { port: gone.port, backoff: FAST_BACKOFF });
  const seenA = order(a);
  await opened(a);
  await gone.server.close();
  a.send('x');
  await onceEvent(a, 'reconnecting');
  a.close();
  assert.deepEqual(seenA.slice(-3), ['state:closed', 'session-lost:1', 'close:local']);
  // abort while connected: the closing handshake runs, then the same order.
  const ac = new AbortController();
  const b = startClient(t, { port, signal: ac.signal });
  const seenB = order(b);
  await opened(b);
  ac.abort();
  await onceEvent(b, 'close');
  assert.deepEqual(seenB.slice(-2), ['state:closed', 'close:HL_ERR_ABORTED']);
  // give-up hands the messages back itself: no session-lost after it.
  const down = await closedPort();
  const c = startClient(t, { port: down, maxAttempts: 1, backoff: FAST_BACKOFF });
  const seenC = order(c);
  c.send('y');
  await onceEvent(c, 'close');
  assert.deepEqual(seenC.slice(-3), ['give-up:1', 'state:closed', 'close:HL_ERR_GAVE_UP']);
});

test("await server.close() comes after every connection's 'close', waiting sessions included", async (t) => {
  const { server, port } = await startServer(t, { interval: 1000, timeout: 3000 });
  const closed: string[] = [];
  server.on('connection', (conn) => {
    conn.on('close', () => closed.push(conn.id));
  });
  // Two live clients, and a session whose link is gone while it waits for a resume.
  const a = startClient(t, { port });
  const b = startClient(t, { port });
  await Promise.all([opened(a), opened(b)]);
  const raw = await RawPeer.connect(t, port);
  await raw.handshake();
  raw.socket.destroy();
  await waitFor(
    () =>
      server.connections.size === 3 &&
      [...server.connections.values()].some((c) => c.state === 'disconnected'),
  );
  // Recorded, not asserted, in the listener: a throw there would never settle close().
  let closedAtServerClose = -1;
  server.on('close', () => {
    closedAtServerClose = closed.length;
  });
  await withTimeout(server.close());
  assert.equal(closed.length, 3, 'close() resolved before every connection closed');
  assert.equal(closedAtServerClose, 3, "the server's 'close' came before a connection's");
  assert.equal(server.connections.size, 0);
});
