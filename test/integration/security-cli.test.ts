/**
 * The security flags of the command line, run from source (tsx) as child processes on
 * loopback: `serve --handshake-timeout/--max-frame/--max-ping-strikes`, mutual TLS with
 * `serve --tls-cert/--tls-key/--tls-ca` and `connect --tls-ca/--tls-cert/--tls-key`, and
 * usage errors (exit 2) for flags that cannot work together or files that cannot be read.
 */

import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { makePki, pkiUnavailable, type TestPki } from '../support/certs.js';
import { CLI_DEADLINE, cli, event } from '../support/cli.js';
import { withTimeout } from '../support/wait.js';

const DEADLINE = CLI_DEADLINE;

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
