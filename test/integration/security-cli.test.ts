/**
 * The security flags of the command line, run as child processes (the built CLI) on
 * loopback: `serve --handshake-timeout/--max-frame/--max-ping-strikes`, mutual TLS with
 * `serve --tls-cert/--tls-key/--tls-ca` and `connect --tls-ca/--tls-cert/--tls-key`, and
 * usage errors (exit 2) for flags that cannot work together or files that cannot be read.
 */

import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { after, before, describe, type TestContext, test } from 'node:test';
import { makePki, pkiUnavailable, type TestPki } from '../support/certs.js';
import { type Child, requireBuiltCli, run } from '../support/cli.js';
import { withTimeout } from '../support/wait.js';

const DEADLINE = 20_000;

/** `heartline ...args` (the built CLI); killed when the test ends. */
function cli(t: TestContext, args: string[], stdin?: string): Child {
  requireBuiltCli();
  return run(t, args, args.slice(0, 2).join(' '), stdin);
}

async function exitCode(child: Child): Promise<number | null> {
  return (await withTimeout(child.exited, { timeout: DEADLINE })).code;
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
  const listening = await server.named('listening');
  const port = listening.port as number;
  const silent = netConnect({ host: '127.0.0.1', port });
  silent.on('error', () => {});
  t.after(() => silent.destroy());
  const rejected = await server.named('rejected', (e) => e.reason === 'handshake-timeout');
  assert.equal(rejected.code, 1010);

  const big = netConnect({ host: '127.0.0.1', port });
  big.on('error', () => {});
  t.after(() => big.destroy());
  const header = Buffer.alloc(4);
  header.writeUInt32BE(4097);
  big.write(header);
  const tooLarge = await server.named('rejected', (e) => e.reason === 'frame-too-large');
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
    const port = (await server.named('listening')).port as number;
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
    await client.named('open');
    client.proc.stdin!.write('hello over mutual tls\n');
    const message = await client.named('message');
    assert.equal(message.data, 'hello over mutual tls');
    client.proc.stdin!.end();
    assert.equal(await exitCode(client), 0);

    const anonymous = cli(t, ['connect', `127.0.0.1:${port}`, '--json', '--tls-ca', pki.caFile]);
    const close = await anonymous.named('close');
    assert.equal(close.reason, 'auth-failed');
    assert.equal(close.code, 1006);
    assert.equal(await exitCode(anonymous), 1);
    await server.named('rejected', (e) => e.reason === 'auth-failed');
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
        const code = await exitCode(run);
        assert.equal(code, 2, `${args.join(' ')}: ${run.stderr}`);
        assert.match(run.stderr, message);
      }),
    );
  });
});
