/**
 * The security flags of the command line, run from source (tsx) as child processes on
 * loopback: `serve --handshake-timeout/--max-frame/--max-ping-strikes`, mutual TLS with
 * `serve --tls-cert/--tls-key/--tls-ca` and `connect --tls-ca/--tls-cert/--tls-key`, and
 * usage errors (exit 2) for flags that cannot work together or files that cannot be read.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { after, before, describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makePki, pkiUnavailable, type TestPki } from '../support/certs.js';
import { waitFor, withTimeout } from '../support/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEADLINE = 20_000;

interface Run {
  child: ChildProcess;
  events: Array<Record<string, unknown>>;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Runs `heartline ...args` from source; killed when the test ends. */
function cli(t: TestContext, args: string[], stdin?: string): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const events: Array<Record<string, unknown>> = [];
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    out += chunk;
    const lines = out.split('\n');
    events.length = 0;
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a partial last line
      }
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    err += chunk;
  });
  child.stdin!.on('error', () => {});
  if (stdin !== undefined) child.stdin!.end(stdin);
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => resolve(code)),
  );
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, events, stdout: () => out, stderr: () => err, exited };
}

async function event(
  run: Run,
  name: string,
  match: (e: Record<string, unknown>) => boolean = () => true,
) {
  let found: Record<string, unknown> | undefined;
  await waitFor(
    () => {
      found = run.events.find((e) => e.event === name && match(e));
      return found !== undefined;
    },
    { timeout: DEADLINE, message: `no "${name}" event:\n${run.stdout()}\n${run.stderr()}` },
  );
  return found!;
}

test('serve --handshake-timeout and --max-frame close slowloris and over-size frames with their codes', async (t) => {
  const server = cli(t, [
    'serve',
    '--json',
    '--handshake-timeout',
    '800',
    '--max-frame',
    '4096',
    '--max-ping-strikes',
    '2',
  ]);
  const listening = await event(server, 'listening');
  const port = listening.port as number;
  const silent = netConnect({ host: '127.0.0.1', port });
  silent.on('error', () => {});
  t.after(() => silent.destroy());
  const rejected = await event(server, 'rejected', (e) => e.reason === 'handshake-timeout');
  assert.equal(rejected.code, 1010);

  const big = netConnect({ host: '127.0.0.1', port });
  big.on('error', () => {});
  t.after(() => big.destroy());
  const header = Buffer.alloc(4);
  header.writeUInt32BE(4097);
  big.write(header);
  const tooLarge = await event(server, 'rejected', (e) => e.reason === 'frame-too-large');
  assert.equal(tooLarge.code, 1004);
});

describe('CLI mutual TLS', { skip: pkiUnavailable() }, () => {
  let pki: TestPki;
  before(() => {
    pki = makePki();
  });
  after(() => pki?.remove());

  test('serve and connect with --tls-cert/--tls-key/--tls-ca echo a message; without a client certificate connect fails with auth-failed', async (t) => {
    const server = cli(t, [
      'serve',
      '--json',
      '--echo',
      '--tls-cert',
      pki.server.certFile,
      '--tls-key',
      pki.server.keyFile,
      '--tls-ca',
      pki.caFile,
    ]);
    const port = (await event(server, 'listening')).port as number;
    const client = cli(
      t,
      [
        'connect',
        `127.0.0.1:${port}`,
        '--json',
        '--tls-ca',
        pki.caFile,
        '--tls-cert',
        pki.alice.certFile,
        '--tls-key',
        pki.alice.keyFile,
      ],
      undefined,
    );
    await event(client, 'open');
    client.child.stdin!.write('hello over mutual tls\n');
    const message = await event(client, 'message');
    assert.equal(message.data, 'hello over mutual tls');
    client.child.stdin!.end();
    assert.equal(await withTimeout(client.exited, { timeout: DEADLINE }), 0);

    const anonymous = cli(t, ['connect', `127.0.0.1:${port}`, '--json', '--tls-ca', pki.caFile]);
    const close = await event(anonymous, 'close');
    assert.equal(close.reason, 'auth-failed');
    assert.equal(close.code, 1006);
    assert.equal(await withTimeout(anonymous.exited, { timeout: DEADLINE }), 1);
    await event(server, 'rejected', (e) => e.reason === 'auth-failed');
  });

  test('bad TLS flags are usage errors (exit 2) naming the flag', async (t) => {
    const cases: Array<[string[], RegExp]> = [
      [['serve', '--tls-cert', pki.server.certFile], /--tls-cert and --tls-key go together/],
      [['serve', '--tls-ca', pki.caFile], /--tls-ca needs --tls-cert and --tls-key/],
      [['serve', '--max-frame', '10'], /--max-frame must be an integer/],
      [['serve', '--handshake-timeout', '0'], /--handshake-timeout must be an integer/],
      [['connect', '127.0.0.1:1', '--tls-ca', '/nonexistent/ca.pem'], /--tls-ca: cannot read/],
      [['connect', '127.0.0.1:1', '--tls-key', pki.alice.keyFile], /--tls-cert and --tls-key/],
    ];
    await Promise.all(
      cases.map(async ([args, message]) => {
        const run = cli(t, args, '');
        const code = await withTimeout(run.exited, { timeout: DEADLINE });
        assert.equal(code, 2, `${args.join(' ')}: ${run.stderr()}`);
        assert.match(run.stderr(), message);
      }),
    );
  });
});
