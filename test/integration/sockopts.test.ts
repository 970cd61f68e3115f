/**
 * TCP socket options on real loopback sockets, read back from the kernel with
 * getsockopt on both ends: the provider (koffi on Linux), the defaults derived from the
 * granted heartbeat, explicit values, re-application after a later setKeepAlive and after
 * a retune, validation that names the option, and the one warning where the platform
 * cannot set them (a child process without koffi).
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer as netServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect } from '../../src/client/client.js';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  applyTcpOptions,
  readTcpOptions,
  TCP_OPTIONS_WARNING,
  type TcpOptionValues,
  tcpOptionsSupport,
} from '../../src/net/sockopts.js';
import { resolveTcpOptions, tcpSettingsFor } from '../../src/options.js';
import { createServer } from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { onceEvent, waitFor } from '../support/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const linux = process.platform === 'linux';
const noProvider = linux
  ? tcpOptionsSupport().provider === 'koffi'
    ? undefined
    : `koffi could not be loaded: ${tcpOptionsSupport().reason}`
  : 'setsockopt options are Linux only';
if (noProvider && process.env.HEARTLINE_REQUIRE_ALL === '1') {
  throw new Error(`HEARTLINE_REQUIRE_ALL=1 but ${noProvider}`);
}

/** A connected loopback pair, destroyed when the test ends. */
async function pair(t: TestContext): Promise<{ client: Socket; server: Socket }> {
  const srv = netServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  const accepted = once(srv, 'connection') as Promise<[Socket]>;
  const client = netConnect(port, '127.0.0.1');
  await once(client, 'connect');
  const [server] = await accepted;
  t.after(() => {
    client.destroy();
    server.destroy();
    srv.close();
  });
  return { client, server };
}

function read(socket: Socket): TcpOptionValues {
  const values = readTcpOptions(socket);
  assert.ok(values, 'getsockopt must work on a connected socket');
  return values;
}

describe('TCP socket options', { skip: noProvider }, () => {
  test('tcpOptionsSupport: every option through koffi on Linux', () => {
    const s = tcpOptionsSupport();
    assert.equal(s.platform, 'linux');
    assert.equal(s.provider, 'koffi');
    assert.equal(s.keepAliveIdle, true);
    assert.equal(s.keepAliveInterval, true);
    assert.equal(s.keepAliveCount, true);
    assert.equal(s.userTimeout, true);
    assert.equal(s.reason, undefined);
    assert.strictEqual(tcpOptionsSupport(), s, 'probed once and cached');
  });

  test('applyTcpOptions sets every option; getsockopt reads each back on both ends', async (t) => {
    const { client, server } = await pair(t);
    // Node's own defaults first: keepalive off, no user timeout.
    assert.equal(read(client).keepAlive, false);
    assert.equal(read(client).userTimeout, 0);
    const a = {
      keepAlive: true,
      keepAliveIdle: 4000,
      keepAliveInterval: 2000,
      keepAliveCount: 5,
      userTimeout: 12_345,
    };
    const b = {
      keepAlive: true,
      keepAliveIdle: 7000,
      keepAliveInterval: 3000,
      keepAliveCount: 2,
      userTimeout: 9000,
    };
    const result = applyTcpOptions(client, a);
    assert.deepEqual(result, {
      applied: ['keepAlive', 'keepAliveIdle', 'keepAliveInterval', 'keepAliveCount', 'userTimeout'],
      unsupported: [],
      deferred: false,
    });
    applyTcpOptions(server, b);
    assert.deepEqual(read(client), a);
    assert.deepEqual(read(server), b);
  });

  test('a later setKeepAlive changes the idle time but keeps interval and count', async (t) => {
    const { client } = await pair(t);
    applyTcpOptions(client, {
      keepAlive: true,
      keepAliveIdle: 2000,
      keepAliveInterval: 4000,
      keepAliveCount: 6,
      userTimeout: 5000,
    });
    // Plain Node would reset interval and count to 1 s and 10 here (libuv).
    client.setKeepAlive(true, 9000);
    assert.deepEqual(read(client), {
      keepAlive: true,
      keepAliveIdle: 9000,
      keepAliveInterval: 4000,
      keepAliveCount: 6,
      userTimeout: 5000,
    });
    client.setKeepAlive(false);
    assert.equal(read(client).keepAlive, false);
  });

  test('one shared wrapper for every socket; the largest interval and count survive a later setKeepAlive; a wrapper installed before is chained to', async (t) => {
    const first = await pair(t);
    const second = await pair(t);
    const settings = {
      keepAlive: true,
      keepAliveIdle: 1000,
      keepAliveInterval: 32_767_000,
      keepAliveCount: 127,
    };
    applyTcpOptions(first.client, settings);
    applyTcpOptions(first.client, settings);
    // Someone else's wrapper, installed before heartline's.
    let theirs = 0;
    const own = second.client.setKeepAlive;
    second.client.setKeepAlive = function (
      this: Socket,
      ...args: Parameters<Socket['setKeepAlive']>
    ) {
      theirs++;
      return own.apply(this, args);
    };
    applyTcpOptions(second.client, { ...settings, keepAliveInterval: 3000, keepAliveCount: 1 });
    // No closure per socket: a server holds thousands of them.
    assert.equal(first.client.setKeepAlive, second.client.setKeepAlive);
    const calls = theirs;
    first.client.setKeepAlive(true, 5000);
    second.client.setKeepAlive(true, 7000);
    assert.ok(theirs > calls, 'the earlier wrapper is still called');
    assert.deepEqual(read(first.client), {
      ...settings,
      keepAliveIdle: 5000,
      userTimeout: read(first.client).userTimeout,
    });
    const b = read(second.client);
    assert.deepEqual([b.keepAliveIdle, b.keepAliveInterval, b.keepAliveCount], [7000, 3000, 1]);
  });

  test('a socket still connecting gets its options on connect', async (t) => {
    const srv = netServer((s) => t.after(() => s.destroy()));
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    t.after(() => srv.close());
    const socket = netConnect((srv.address() as { port: number }).port, '127.0.0.1');
    t.after(() => socket.destroy());
    assert.equal(readTcpOptions(socket), null, 'no fd before connect');
    const result = applyTcpOptions(socket, {
      keepAlive: true,
      keepAliveIdle: 3000,
      userTimeout: 4000,
    });
    assert.equal(result.deferred, true);
    await once(socket, 'connect');
    const values = read(socket);
    assert.equal(values.keepAliveIdle, 3000);
    assert.equal(values.userTimeout, 4000);
    assert.equal(values.keepAlive, true);
  });

  test('heartline applies the derived options on both ends after the handshake, and again on retune', async (t) => {
    const server = createServer({ interval: 1000, timeout: 3000 });
    const { port } = await server.listen(0, '127.0.0.1');
    t.after(() => server.close());
    const accepted = onceEvent(server, 'connection') as Promise<[ServerConnection]>;
    const client = connect({ servers: `127.0.0.1:${port}`, interval: 1000, timeout: 3000 });
    t.after(() => client.close());
    await onceEvent(client, 'open');
    const [sconn] = await accepted;
    const expected: TcpOptionValues = {
      keepAlive: true,
      keepAliveIdle: 4000,
      keepAliveInterval: 1000,
      keepAliveCount: 3,
      userTimeout: 3000,
    };
    await waitFor(() => sconn.tcpOptions() !== null);
    assert.deepEqual(client.tcpOptions(), expected);
    assert.deepEqual(sconn.tcpOptions(), expected);

    // The server retunes in-band (SETTINGS): both ends re-derive from the new grant.
    sconn.retune({ interval: 4000, timeout: 12_000, suspectAfter: 6000 });
    const retuned: TcpOptionValues = {
      keepAlive: true,
      keepAliveIdle: 16_000,
      keepAliveInterval: 4000,
      keepAliveCount: 3,
      userTimeout: 12_000,
    };
    assert.deepEqual(sconn.tcpOptions(), retuned);
    await waitFor(() => client.tcpOptions()?.userTimeout === 12_000, {
      message: 'the client did not re-apply after SETTINGS',
    });
    assert.deepEqual(client.tcpOptions(), retuned);
  });

  test('explicit tcp values win on both ends; tcp: false leaves Node keepalive only', async (t) => {
    const tcp = {
      keepAliveIdle: 5000,
      keepAliveInterval: 2000,
      keepAliveCount: 4,
      userTimeout: 7000,
    };
    const server = createServer({ interval: 1000, timeout: 3000, tcp });
    const { port } = await server.listen(0, '127.0.0.1');
    t.after(() => server.close());
    const accepted = onceEvent(server, 'connection') as Promise<[ServerConnection]>;
    const client = connect({ servers: `127.0.0.1:${port}`, tcp: false });
    t.after(() => client.close());
    await onceEvent(client, 'open');
    const [sconn] = await accepted;
    await waitFor(() => sconn.tcpOptions() !== null);
    assert.deepEqual(sconn.tcpOptions(), { keepAlive: true, ...tcp });
    // keepAliveDelay's 30 s through Node, libuv's interval and count, no user timeout.
    assert.deepEqual(client.tcpOptions(), {
      keepAlive: true,
      keepAliveIdle: 30_000,
      keepAliveInterval: 1000,
      keepAliveCount: 10,
      userTimeout: 0,
    });
  });

  test('keepAliveDelay 0 turns keepalive off but keeps the user timeout', async (t) => {
    const server = createServer({ interval: 1000, timeout: 3000, keepAliveDelay: 0 });
    const { port } = await server.listen(0, '127.0.0.1');
    t.after(() => server.close());
    const accepted = onceEvent(server, 'connection') as Promise<[ServerConnection]>;
    const client = connect({ servers: `127.0.0.1:${port}`, keepAliveDelay: 5000 });
    t.after(() => client.close());
    await onceEvent(client, 'open');
    const [sconn] = await accepted;
    await waitFor(() => sconn.tcpOptions() !== null);
    const s = sconn.tcpOptions()!;
    assert.equal(s.keepAlive, false);
    assert.equal(s.userTimeout, 3000);
    // An explicit keepAliveDelay becomes the idle time after the handshake.
    const c = client.tcpOptions()!;
    assert.equal(c.keepAliveIdle, 5000);
    assert.equal(c.userTimeout, 3000);
  });
});

describe('TCP option defaults and validation', () => {
  test('defaults derive from the heartbeat: keepalive idle starts past timeout + interval', () => {
    const cases: [number, number, [number, number, number, number]][] = [
      [1000, 3000, [4000, 1000, 3, 3000]],
      [10_000, 30_000, [40_000, 10_000, 3, 30_000]],
      [2500, 4000, [7000, 3000, 3, 4000]],
      [200, 600, [1000, 1000, 3, 600]],
      [5000, 20_000, [25_000, 5000, 3, 20_000]],
    ];
    for (const [interval, timeout, [idle, intvl, count, ut]] of cases) {
      assert.deepEqual(
        tcpSettingsFor({ interval, timeout }),
        {
          keepAlive: true,
          keepAliveIdle: idle,
          keepAliveInterval: intvl,
          keepAliveCount: count,
          userTimeout: ut,
        },
        `interval ${interval}, timeout ${timeout}`,
      );
    }
  });

  test('explicit values win; the others keep their derived values', () => {
    assert.deepEqual(
      tcpSettingsFor({ interval: 1000, timeout: 30_000 }, { keepAliveInterval: 2000 }),
      {
        keepAlive: true,
        keepAliveIdle: 31_000,
        keepAliveInterval: 2000,
        keepAliveCount: 3,
        userTimeout: 30_000,
      },
    );
    assert.deepEqual(
      tcpSettingsFor({ interval: 1000, timeout: 3000 }, { keepAliveCount: 9, userTimeout: 0 }),
      {
        keepAlive: true,
        keepAliveIdle: 4000,
        keepAliveInterval: 1000,
        keepAliveCount: 9,
        userTimeout: 0,
      },
    );
  });

  test('values the kernel would refuse or round are InvalidArgumentErrors naming the option', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ keepAliveIdle: 1500 }, /tcp\.keepAliveIdle/],
      [{ keepAliveIdle: 0 }, /tcp\.keepAliveIdle/],
      [{ keepAliveIdle: 40_000_000 }, /tcp\.keepAliveIdle/],
      [{ keepAliveInterval: 999 }, /tcp\.keepAliveInterval/],
      [{ keepAliveCount: 0 }, /tcp\.keepAliveCount/],
      [{ keepAliveCount: 128 }, /tcp\.keepAliveCount/],
      [{ keepAliveCount: 2.5 }, /tcp\.keepAliveCount/],
      [{ userTimeout: -1 }, /tcp\.userTimeout/],
      [{ userTimeout: 1.5 }, /tcp\.userTimeout/],
      [{ userTimeout: 2 ** 31 }, /tcp\.userTimeout/],
      [{ userTimeout: '3000' }, /tcp\.userTimeout/],
      [{ keepAliveIdl: 1000 }, /tcp\.keepAliveIdl/],
    ];
    for (const [tcp, name] of bad) {
      assert.throws(
        () => createServer({ tcp: tcp as never }),
        (err: unknown) => err instanceof InvalidArgumentError && name.test(err.message),
        JSON.stringify(tcp),
      );
      assert.throws(
        () => connect({ servers: '127.0.0.1:1', tcp: tcp as never }),
        InvalidArgumentError,
      );
    }
    assert.throws(() => createServer({ tcp: 'on' as never }), /option "tcp"/);
    assert.throws(
      () =>
        applyTcpOptions(
          netConnect({ port: 1, host: '127.0.0.1' }).on('error', () => {}),
          {
            keepAlive: true,
            keepAliveInterval: 1200,
          },
        ),
      /tcp\.keepAliveInterval/,
    );
  });

  test('keepAliveDelay and tcp keepalive fields that conflict are refused', () => {
    assert.throws(
      () => createServer({ keepAliveDelay: 0, tcp: { keepAliveIdle: 2000 } }),
      /keepAliveDelay.*0.*keepalive/,
    );
    assert.throws(
      () => createServer({ keepAliveDelay: 5000, tcp: { keepAliveIdle: 6000 } }),
      /conflict/,
    );
    // The same value twice is no conflict; the delay's meaning (whole seconds) is kept.
    assert.equal(resolveTcpOptions({ keepAliveIdle: 5000 }, 5000) !== false, true);
    const r = resolveTcpOptions({}, 5900);
    assert.ok(r !== false);
    assert.equal(r.keepAliveIdle, 5000);
    assert.equal(resolveTcpOptions(false, 5000), false);
  });

  test('without koffi: capabilities say so, idle still set, one warning per process', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'hl-sockopts-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // A user without the optional dependency: resolving 'koffi' fails as if not installed.
    const block = join(dir, 'no-koffi.cjs');
    writeFileSync(
      block,
      `const M = require('node:module');
const resolve = M._resolveFilename;
M._resolveFilename = function (request, ...rest) {
  if (request === 'koffi') { const e = new Error("Cannot find module 'koffi'"); e.code = 'MODULE_NOT_FOUND'; throw e; }
  return resolve.call(this, request, ...rest);
};`,
    );
    const script = join(dir, 'child.mts');
    const src = (p: string) => JSON.stringify(join(ROOT, 'src', p));
    writeFileSync(
      script,
      `import { once } from 'node:events';
import { createServer, connect } from 'node:net';
import { applyTcpOptions, readTcpOptions, tcpOptionsSupport } from ${src('net/sockopts.ts')};
const srv = createServer((s) => s.destroy()).listen(0, '127.0.0.1');
await once(srv, 'listening');
const results = [];
for (let i = 0; i < 3; i++) {
  const c = connect(srv.address().port, '127.0.0.1');
  await once(c, 'connect');
  results.push(applyTcpOptions(c, { keepAlive: true, keepAliveIdle: 4000, keepAliveInterval: 2000, keepAliveCount: 3, userTimeout: 5000 }));
  results.push(readTcpOptions(c));
  c.destroy();
}
srv.close();
await new Promise((r) => setImmediate(r));
process.stdout.write(JSON.stringify({ support: tcpOptionsSupport(), results }));
`,
    );
    const child = spawnSync(process.execPath, ['--require', block, '--import', 'tsx', script], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(child.status, 0, child.stderr);
    const out = JSON.parse(child.stdout) as {
      support: Record<string, unknown>;
      results: unknown[];
    };
    assert.equal(out.support.provider, 'none');
    assert.equal(out.support.keepAliveIdle, true);
    assert.equal(out.support.userTimeout, false);
    assert.match(String(out.support.reason), /koffi/);
    assert.deepEqual(out.results[0], {
      applied: ['keepAlive', 'keepAliveIdle'],
      unsupported: ['keepAliveInterval', 'keepAliveCount', 'userTimeout'],
      deferred: false,
    });
    assert.equal(out.results[1], null, 'nothing to read back with');
    const warnings = child.stderr.split('\n').filter((l) => l.includes(TCP_OPTIONS_WARNING));
    assert.equal(warnings.length, 1, child.stderr);
    assert.match(warnings[0]!, /keepAliveInterval, keepAliveCount, userTimeout/);
  });
});
