/**
 * The runnable examples in examples/, run the way their headers tell a user to run them:
 * `node --import tsx examples/NAME.ts ...` as a child process. Each must exit 0 and print
 * its key lines; the servers are also driven from outside, through the library.
 *
 * Every child runs in its own process group and is killed with it in t.after, pass or
 * fail. Deadlines are generous: a cold tsx start on a loaded 2-core machine takes seconds.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ClientConnection, connect } from '../../src/index.js';
import { onceEvent, waitFor, withTimeout } from '../support/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEADLINE = 60_000;

/** A running example: its output so far and how it ended. */
class Example {
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private done = false;

  constructor(
    readonly child: ChildProcess,
    readonly label: string,
  ) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      this.stdout += chunk;
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.done = true;
        resolve({ code, signal });
      });
    });
  }

  /** Everything the child printed, for failure messages. */
  dump(): string {
    return `--- ${this.label} stdout:\n${this.stdout}\n--- stderr:\n${this.stderr}`;
  }

  /** Resolves with the exit code; fails with the output if it takes too long. */
  async exitCode(timeout = DEADLINE): Promise<number | null> {
    const { code, signal } = await withTimeout(this.exited, {
      timeout,
      message: `${this.label} did not exit within ${timeout} ms\n${this.dump()}`,
    });
    assert.equal(signal, null, `${this.label} was killed by ${signal}\n${this.dump()}`);
    return code;
  }

  /** Waits for a stdout line matching `pattern` and returns its match. */
  async line(pattern: RegExp, timeout = DEADLINE): Promise<RegExpMatchArray> {
    let match: RegExpMatchArray | null = null;
    await waitFor(
      () => {
        match = this.stdout.match(pattern);
        return match !== null || this.done;
      },
      { timeout, interval: 20, message: `${this.label}: no ${pattern}\n${this.dump()}` },
    );
    assert.ok(match, `${this.label} exited without printing ${pattern}\n${this.dump()}`);
    return match;
  }

  /** Asserts that stdout holds a line matching each pattern. */
  has(...patterns: RegExp[]): void {
    for (const pattern of patterns) {
      assert.match(this.stdout, pattern, `${this.label}: no ${pattern}\n${this.dump()}`);
    }
  }

  /** Kills the child's process group, if it is still running. */
  async kill(): Promise<void> {
    if (this.done) return;
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    await this.exited;
  }
}

/** Starts `node --import tsx examples/<name>.ts ...args` the way the README says. */
function runExample(t: TestContext, name: string, args: string[] = []): Example {
  const file = join(ROOT, 'examples', `${name}.ts`);
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  const example = new Example(child, `examples/${name}.ts ${args.join(' ')}`);
  t.after(() => example.kill());
  return example;
}

/** A client to an example's server, closed when the test ends. */
function client(t: TestContext, port: number, clientId: string): ClientConnection {
  const conn = connect({ port, clientId, reconnect: false });
  t.after(() => conn.close());
  return conn;
}

test('echo-server --self-test echoes a message and exits 0', async (t) => {
  const echo = runExample(t, 'echo-server', ['--self-test']);
  assert.equal(await echo.exitCode(), 0, echo.dump());
  echo.has(
    /^echo server listening on 127\.0\.0\.1:\d+$/m,
    /^c\d+ \(self-test\) connected from 127\.0\.0\.1:\d+$/m,
    /^c\d+ \(self-test\) connecting -> healthy: handshake complete$/m,
    /^self-test ok: echoed "hello heartline \d+"$/m,
    /^c\d+ \(self-test\) closed: remote$/m,
  );
});

test('echo-server serves other clients, prints their health events and stops on SIGTERM', async (t) => {
  const echo = runExample(t, 'echo-server', ['--port', '0']);
  const [, port] = await echo.line(/^echo server listening on 127\.0\.0\.1:(\d+)$/m);
  const conn = client(t, Number(port), 'tester');
  conn.send('ping 1');
  const [reply] = (await onceEvent(conn, 'message', { timeout: DEADLINE })) as [Buffer];
  assert.equal(reply.toString(), 'ping 1');
  await echo.line(/^c\d+ \(tester\) connecting -> healthy: handshake complete$/m);

  // The server shuts down cleanly: its clients are told it is going away.
  const closed = onceEvent(conn, 'close', { timeout: DEADLINE });
  echo.child.kill('SIGTERM');
  assert.equal(await echo.exitCode(), 0, echo.dump());
  echo.has(/^SIGTERM: closing$/m, /^c\d+ \(tester\) closed: local$/m);
  await closed;
});

test('chat --demo shows joins, away and back across a cut link, messages and leaves', async (t) => {
  const chat = runExample(t, 'chat', ['--demo']);
  assert.equal(await chat.exitCode(), 0, chat.dump());
  chat.has(
    /^\* alice joined \(online: alice\)$/m,
    /^\* carol joined \(online: alice, bob, carol\)$/m,
    /^<alice> hi both$/m,
    /^\* carol is away \(online: alice, bob\)$/m,
    /^<bob> carol dropped off\?$/m,
    /^\* carol is back \(online: alice, bob, carol\)$/m,
    /^\* bob left \(online: alice, carol\)$/m,
    /^alice saw \d+ lines, all in order$/m,
    /^bob saw \d+ lines, all in order$/m,
    /^carol saw \d+ lines, all in order$/m,
    /^carol's session survived 1 lost link\(s\)$/m,
    /^demo ok$/m,
  );
  // Away comes before back, and what bob said meanwhile sits between them.
  const away = chat.stdout.indexOf('* carol is away');
  const said = chat.stdout.indexOf('<bob> carol dropped off?');
  const back = chat.stdout.indexOf('* carol is back');
  assert.ok(away < said && said < back, chat.dump());
});

test('chat server: presence by clientId, and bad input closed with code 4000', async (t) => {
  const chat = runExample(t, 'chat', ['--port', '0']);
  const [, port] = await chat.line(/^chat server listening on 127\.0\.0\.1:(\d+)$/m);

  const ann = client(t, Number(port), 'ann-phone');
  ann.send(JSON.stringify({ type: 'join', name: 'ann' }));
  ann.send(JSON.stringify({ type: 'say', text: 'anyone?' }));
  const seen: unknown[] = [];
  ann.on('message', (data) => seen.push(JSON.parse(data.toString())));
  await waitFor(() => seen.length === 2, { timeout: DEADLINE, message: 'ann saw no join+say' });
  assert.deepEqual(seen, [
    { type: 'presence', event: 'joined', name: 'ann', online: ['ann'] },
    { type: 'said', name: 'ann', text: 'anyone?' },
  ]);

  // The same clientId while ann is online is refused (application code 4001).
  const twin = client(t, Number(port), 'ann-phone');
  twin.send(JSON.stringify({ type: 'join', name: 'ann again' }));
  const [twinClose] = (await onceEvent(twin, 'close', { timeout: DEADLINE })) as [
    { code?: number },
  ];
  assert.equal(twinClose.code, 4001);

  const rude = client(t, Number(port), 'rude');
  rude.send('not json');
  const [info] = (await onceEvent(rude, 'close', { timeout: DEADLINE })) as [{ code?: number }];
  assert.equal(info.code, 4000);

  // A clean leave is 'left', never 'away'.
  const leftClosed = once(ann, 'close');
  ann.close();
  await leftClosed;
  await chat.line(/^\* ann left \(online: nobody\)$/m);
  assert.doesNotMatch(chat.stdout, /ann is away/);
  chat.child.kill('SIGTERM');
  assert.equal(await chat.exitCode(), 0, chat.dump());
});

test('telemetry: every reading arrives exactly once, in order, over a link broken at random', async (t) => {
  // A fixed seed fixes the sequence of faults (its first ones are a FIN and resets).
  const telemetry = runExample(t, 'telemetry', ['--duration', '3000', '--seed', '7']);
  assert.equal(await telemetry.exitCode(), 0, telemetry.dump());
  telemetry.has(/^running for 3000 ms \(seed 7\)$/m, /^fault: /m, /^telemetry ok$/m);
  const [, sent, reconnects, resumes, lost] = await telemetry.line(
    /^device: (\d+) readings sent, (\d+) reconnects, (\d+) resumes, (\d+) sessions lost$/m,
  );
  const [, received] = await telemetry.line(
    /^collector: (\d+) readings in 1 session\(s\), each exactly once and in order$/m,
  );
  assert.equal(received, sent);
  // 3 s at one reading per 50 ms: about 60, with room for a slow machine.
  assert.ok(Number(sent) >= 20, telemetry.dump());
  assert.ok(Number(reconnects) >= 1, telemetry.dump());
  assert.ok(Number(resumes) >= 1, telemetry.dump());
  assert.equal(lost, '0');
});
