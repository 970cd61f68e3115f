/**
 * What the command line says when something is wrong (issue 15, "The first hour"): one
 * line naming the mistake and the fix, `run 'heartline <cmd> --help'` rather than the
 * help, no stack trace, and the exit code docs/cli.md promises (2 usage, 1 failure).
 * Each case runs the built CLI as a child process on loopback.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import { makePki, pkiUnavailable, type TestPki } from '../support/certs.js';
import { type Child, requireBuiltCli, run } from '../support/cli.js';
import { withTimeout } from '../support/wait.js';

const DEADLINE = 20_000;

/** Runs `heartline ...args` to its end: exit code, stderr lines, the child (for events). */
async function finish(
  t: TestContext,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdin?: string } = {},
): Promise<{ code: number | null; lines: string[]; child: Child }> {
  requireBuiltCli();
  const child = run(t, args, args.slice(0, 2).join(' '), options.stdin ?? '', options.env);
  const { code } = await withTimeout(child.exited, {
    timeout: DEADLINE,
    message: `heartline ${args.join(' ')} did not end\n${child.dump()}`,
  });
  return { code, lines: child.stderr.split('\n').filter((l) => l !== ''), child };
}

/**
 * A usage error: exit 2, exactly `heartline <cmd>: <message>` and the help command on
 * stderr, nothing else (no help text, no stack).
 */
async function usage(
  t: TestContext,
  args: string[],
  message: string | RegExp,
  env?: NodeJS.ProcessEnv,
): Promise<void> {
  const { code, lines, child } = await finish(t, args, env ? { env } : {});
  const what = `heartline ${args.join(' ')}\n${child.stderr}`;
  assert.equal(code, 2, what);
  assert.equal(lines.length, 2, `one error line and the help command: ${what}`);
  const cmd = args[0] && ['serve', 'connect', 'status', 'demo', 'chaos'].includes(args[0]);
  const who = cmd ? `heartline ${args[0]}` : 'heartline';
  assert.ok(lines[0]!.startsWith(`${who}: `), what);
  if (typeof message === 'string') assert.ok(lines[0]!.includes(message), what);
  else assert.match(lines[0]!, message, what);
  assert.equal(
    lines[1],
    `run '${cmd ? `heartline ${args[0]}` : 'heartline'} --help' for the options`,
  );
}

/** A port with nothing listening on it (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('config files and the environment are checked in their own words', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'heartline-cli-errors-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(content));
    return path;
  };

  test('a misspelt key names the key and the near option', async (t) => {
    const path = file('typo.json', { serve: { ecko: true } });
    await usage(
      t,
      ['serve', '--config', path],
      `${path}: serve.ecko is not an option (did you mean echo?)`,
    );
  });

  test('a misspelt section is refused, not skipped', async (t) => {
    const path = file('section.json', { sevre: { port: 7000 } });
    await usage(
      t,
      ['serve', '--config', path],
      `${path}: unknown section "sevre" (did you mean serve?)`,
    );
  });

  test('a value of the wrong type says which type', async (t) => {
    const path = file('type.json', { serve: { echo: 'yes' } });
    await usage(t, ['serve', '--config', path], `${path}: serve.echo must be true or false`);
  });

  test('a misspelt environment variable is named, with the near one', async (t) => {
    await usage(
      t,
      ['serve'],
      'HEARTLINE_SERVE_PROT names no option of "serve" (did you mean HEARTLINE_SERVE_PORT?)',
      { HEARTLINE_SERVE_PROT: '7000' },
    );
  });
});

describe('flags and commands', () => {
  test('--port -1 gets the port range message, as --port=-1 does', async (t) => {
    const message = '--port must be an integer in [0, 65535], got "-1"';
    await usage(t, ['serve', '--port', '-1'], message);
    await usage(t, ['serve', '--port=-1'], message);
  });

  test('connect HOST:70000 says the port must be 1-65535', async (t) => {
    await usage(
      t,
      ['connect', '127.0.0.1:70000'],
      'port 70000 in "127.0.0.1:70000" must be 1-65535',
    );
  });

  test('an unknown flag is one line, with a did-you-mean where one is close', async (t) => {
    await usage(t, ['serve', '--bogus'], /^heartline serve: unknown option --bogus$/);
    await usage(t, ['serve', '--prot', '7000'], 'unknown option --prot (did you mean --port?)');
    await usage(
      t,
      ['connect', '127.0.0.1:7000', '--max-attempt', '1'],
      '(did you mean --max-attempts?)',
    );
  });

  test('an unknown command suggests the near one', async (t) => {
    await usage(t, ['sever'], 'unknown command "sever" (did you mean serve?)');
  });

  test('--interval 0 asks for a positive number of milliseconds and gives the range', async (t) => {
    await usage(
      t,
      ['serve', '--interval', '0'],
      /--interval must be a positive number of milliseconds, got "0" \(.*1000-120000/,
    );
    await usage(
      t,
      ['connect', '127.0.0.1:7000', '--interval', '0'],
      /--interval must be a positive number of milliseconds, got "0" \(.*1000-120000/,
    );
  });
});

describe('TLS files are checked up front', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'heartline-cli-errors-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('--tls-cert that is not PEM', async (t) => {
    const bad = join(dir, 'server.crt');
    writeFileSync(bad, 'not a certificate\n');
    await usage(
      t,
      ['serve', '--tls-cert', bad, '--tls-key', bad],
      `--tls-cert ${bad}: not a PEM certificate`,
    );
  });
});

describe('TLS and connection failures', { skip: pkiUnavailable() }, () => {
  let pki: TestPki;
  before(() => {
    pki = makePki();
  });
  after(() => pki.remove());

  test('a key that does not match the certificate', async (t) => {
    await usage(
      t,
      ['serve', '--tls-cert', pki.server.certFile, '--tls-key', pki.alice.keyFile],
      `--tls-key ${pki.alice.keyFile}: key does not match certificate ${pki.server.certFile}`,
    );
  });

  /** A TLS server (the built CLI); its port. */
  async function tlsServer(t: TestContext): Promise<number> {
    const server = run(
      t,
      ['serve', '--json', '--tls-cert', pki.server.certFile, '--tls-key', pki.server.keyFile],
      'serve --tls',
    );
    return (await server.named('listening')).port as number;
  }

  test('a TLS name mismatch gives the TLS error code in the event and on stderr', async (t) => {
    const port = await tlsServer(t);
    const args = ['connect', `127.0.0.1:${port}`, '--json', '--no-reconnect'];
    const tls = ['--tls-ca', pki.caFile, '--tls-servername', 'wrong.example'];
    const { code, lines, child } = await finish(t, [...args, ...tls]);
    assert.equal(code, 1, child.dump());
    const close = child.events.find((e) => e.event === 'close');
    assert.equal(close?.reason, 'tls-error', child.dump());
    assert.equal(close?.errno, 'ERR_TLS_CERT_ALTNAME_INVALID', child.dump());
    assert.equal(lines.length, 1, child.dump());
    assert.match(lines[0]!, /^heartline connect: tls-error: ERR_TLS_CERT_ALTNAME_INVALID /);
  });

  test('a plain client to a TLS server hears that the server may require TLS', async (t) => {
    const port = await tlsServer(t);
    const { code, lines, child } = await finish(t, [
      'connect',
      `127.0.0.1:${port}`,
      '--no-reconnect',
    ]);
    assert.equal(code, 1, child.dump());
    // Without --json the events are readable lines on stderr too: one error line among them.
    const errors = lines.filter((l) => l.startsWith('heartline connect: '));
    assert.equal(errors.length, 1, child.dump());
    assert.match(errors[0]!, /^heartline connect: eof: .*the server may require TLS: try --tls/);
    assert.ok(
      lines.some((l) => / close .*reason=eof/.test(l)),
      child.dump(),
    );
    assert.equal(child.events.length, 0, `nothing on stdout\n${child.dump()}`);
  });
});

describe('connect and status say why they failed', () => {
  test('an unknown host is named with its error code', async (t) => {
    const { code, lines, child } = await finish(t, [
      'connect',
      'no-such-host.invalid:7000',
      '--json',
      '--max-attempts',
      '1',
    ]);
    assert.equal(code, 1, child.dump());
    // .invalid never resolves (RFC 6761); a resolver that cannot be reached says EAI_AGAIN.
    const errno = /ENOTFOUND|EAI_AGAIN/;
    assert.match(String(child.events.find((e) => e.event === 'close')?.errno), errno, child.dump());
    assert.match(String(child.events.find((e) => e.event === 'reconnecting')?.errno), errno);
    assert.equal(lines.length, 2, child.dump());
    assert.match(
      lines[0]!,
      /^heartline connect: .*(ENOTFOUND|EAI_AGAIN) no-such-host\.invalid; retrying$/,
    );
    assert.match(
      lines[1]!,
      /^heartline connect: .*gave up after 1 attempts: .*no-such-host\.invalid/,
    );
  });

  test('connect with empty stdin and nothing listening fails with the reason', async (t) => {
    const port = await closedPort();
    const { code, lines, child } = await finish(t, [
      'connect',
      `127.0.0.1:${port}`,
      '--json',
      '--no-reconnect',
    ]);
    assert.equal(code, 1, child.dump());
    assert.equal(child.events.find((e) => e.event === 'close')?.errno, 'ECONNREFUSED');
    assert.deepEqual(lines, [`heartline connect: refused: connect ECONNREFUSED 127.0.0.1:${port}`]);
  });

  test('status against a dead port or the heartline port names the cause and the --admin hint', async (t) => {
    const dead = await closedPort();
    const refused = await finish(t, ['status', `127.0.0.1:${dead}`]);
    assert.equal(refused.code, 1, refused.child.dump());
    assert.equal(refused.lines.length, 1, refused.child.dump());
    assert.match(
      refused.lines[0]!,
      /^heartline status: cannot reach .*: ECONNREFUSED \(is the server started with --admin/,
    );

    const server = run(t, ['serve', '--json', '--admin', '0'], 'serve --admin');
    const listening = await server.named('listening');
    const wrong = await finish(t, ['status', String(listening.port)]);
    assert.equal(wrong.code, 1, wrong.child.dump());
    assert.equal(wrong.lines.length, 1, wrong.child.dump());
    assert.match(
      wrong.lines[0]!,
      /^heartline status: cannot reach .*\(is the server started with --admin/,
    );

    // A bare port is the admin port on loopback, as `serve --admin PORT` takes it.
    const adminPort = new URL(String(listening.admin)).port;
    const ok = await finish(t, ['status', adminPort, '--json']);
    assert.equal(ok.code, 0, ok.child.dump());
    assert.equal(ok.lines.length, 0, ok.child.dump());
  });
});
