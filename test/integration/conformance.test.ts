/**
 * `heartline conformance` end to end with the built CLI: the server kit against
 * `heartline serve --echo` and the client kit against `heartline connect` pass every
 * check; servers and clients broken on purpose (raw peers here) make the check for the
 * rule they break fail, and the command exit 1.
 */

import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, type TestContext, test } from 'node:test';
import { CLIENT_CHECKS } from '../../src/conformance/client-script.js';
import { SERVER_CHECKS } from '../../src/conformance/server-checks.js';
import { Decoder, encodeAck, encodeData, encodePing } from '../../src/protocol/codec.js';
import { FrameType } from '../../src/protocol/frames.js';
import { makePki, pkiUnavailable, type TestPki } from '../support/certs.js';
import { type CliEvent, requireBuiltCli, run } from '../support/cli.js';
import { welcomeBytes } from '../support/peers.js';
import { onceEvent, waitFor, withTimeout } from '../support/wait.js';

/** Generous: the whole server kit takes about 8 s on an idle machine. */
const RUN_TIMEOUT = 90_000;

const checks = (events: CliEvent[]): CliEvent[] => events.filter((e) => e.event === 'check');
const failures = (events: CliEvent[]): string =>
  checks(events)
    .filter((e) => e.status !== 'pass')
    .map((e) => `${e.status} ${e.id}: ${e.detail}`)
    .join('\n');

/** A raw server on a free loopback port whose connections `handle` serves; closed after the test. */
async function rawServer(
  t: TestContext,
  handle: (socket: Socket, frames: ReturnType<Decoder['push']>) => void,
): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const decoder = new Decoder();
    socket.on('data', (chunk) => {
      try {
        handle(socket, decoder.push(chunk));
      } catch {
        socket.destroy();
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await onceEvent(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

test('conformance server: heartline serve --echo passes every check, exit 0', async (t) => {
  requireBuiltCli();
  const serve = run(
    t,
    ['serve', '--port', '0', '--echo', '--json', '--handshake-timeout', '2000'],
    'serve',
  );
  const { port } = await serve.named('listening');
  const kit = run(
    t,
    ['conformance', 'server', `127.0.0.1:${port}`, '--json', '--handshake-timeout', '2000'],
    'conformance server',
  );
  const exit = await withTimeout(kit.exited, { timeout: RUN_TIMEOUT, message: kit.dump() });
  assert.equal(failures(kit.events), '', kit.dump());
  assert.deepEqual(
    checks(kit.events).map((e) => e.id),
    SERVER_CHECKS.map((c) => c.id),
    'every check of the table ran, in order',
  );
  const summary = kit.events.find((e) => e.event === 'summary');
  assert.deepEqual(
    { passed: summary?.passed, failed: summary?.failed, skipped: summary?.skipped },
    { passed: SERVER_CHECKS.length, failed: 0, skipped: 0 },
  );
  assert.equal(exit.code, 0, kit.dump());
  for (const e of checks(kit.events)) t.diagnostic(`${e.id}: ${e.ms} ms ${e.detail}`);
});

test('conformance client: heartline connect passes every check, exit 0', async (t) => {
  requireBuiltCli();
  const kit = run(t, ['conformance', 'client', '--port', '0', '--json'], 'conformance client');
  const { port } = await kit.named('listening');
  // Three messages, then stdin ends: connect keeps its link open until they are
  // acknowledged, which the script never does.
  const client = run(t, ['connect', `127.0.0.1:${port}`, '--json'], 'connect', 'a\nb\nc\n');
  const exit = await withTimeout(kit.exited, { timeout: RUN_TIMEOUT, message: kit.dump() });
  assert.equal(failures(kit.events), '', `${kit.dump()}\n${client.dump()}`);
  assert.deepEqual(
    checks(kit.events).map((e) => e.id),
    CLIENT_CHECKS.map((c) => c.id),
  );
  assert.equal(exit.code, 0, kit.dump());
  // The final CLOSE(AUTH_FAILED) ends connect with exit 1, and without a crash: the
  // session it lost has nothing to be resent into.
  const connectExit = await withTimeout(client.exited, { timeout: 10_000, message: client.dump() });
  assert.equal(connectExit.code, 1, client.dump());
  assert.ok(!client.stderr.includes('HL_ERR_CONNECTION_CLOSED'), client.dump());
  assert.ok(
    client.events.some((e) => e.event === 'session-lost'),
    client.dump(),
  );
});

test('conformance server: a server that sends ACK before WELCOME fails handshake.welcome, exit 1', async (t) => {
  requireBuiltCli();
  const port = await rawServer(t, (socket, frames) => {
    for (const f of frames) {
      if (f.type === FrameType.HELLO)
        socket.write(Buffer.concat([encodeAck(0), welcomeBytes({ version: 1 })]));
    }
  });
  const kit = run(
    t,
    ['conformance', 'server', `127.0.0.1:${port}`, '--only', 'handshake.welcome'],
    'conformance server',
  );
  const exit = await withTimeout(kit.exited, { timeout: 30_000, message: kit.dump() });
  const lines = kit.events.map((e) => String(e.line));
  assert.match(
    lines[0] ?? '',
    /^FAIL handshake\.welcome {2}.*ACK\(0\).*expected WELCOME/,
    kit.dump(),
  );
  assert.equal(lines.at(-1), '0 passed, 1 failed');
  assert.equal(exit.code, 1);
});

test('conformance server: a server that never answers PING fails ping.pong only, exit 1', async (t) => {
  requireBuiltCli();
  const port = await rawServer(t, (socket, frames) => {
    for (const f of frames) {
      if (f.type === FrameType.HELLO)
        socket.write(welcomeBytes({ version: 1, interval: 10_000, timeout: 30_000 }));
      // An echo (with its ACK) but no PONG.
      if (f.type === FrameType.DATA)
        socket.write(Buffer.concat([encodeAck(f.seq), encodeData(f.seq, f.payload)]));
    }
  });
  const kit = run(
    t,
    ['conformance', 'server', `127.0.0.1:${port}`, '--only', 'ping.pong,data.echo', '--json'],
    'conformance server',
  );
  const exit = await withTimeout(kit.exited, { timeout: 30_000, message: kit.dump() });
  const byId = new Map(checks(kit.events).map((e) => [e.id, e]));
  assert.equal(byId.get('data.echo')?.status, 'pass', kit.dump());
  assert.equal(byId.get('ping.pong')?.status, 'fail', kit.dump());
  assert.match(String(byId.get('ping.pong')?.detail), /no PONG within/);
  assert.equal(exit.code, 1);
});

test('conformance client: a client whose first frame is not HELLO fails client.hello-first, exit 1', async (t) => {
  requireBuiltCli();
  const kit = run(t, ['conformance', 'client', '--port', '0', '--json'], 'conformance client');
  const { port } = await kit.named('listening');
  const { connect } = await import('node:net');
  const socket = connect({ host: '127.0.0.1', port: port as number });
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  let ended = false;
  socket.on('close', () => {
    ended = true;
  });
  socket.resume();
  await onceEvent(socket, 'connect');
  socket.write(encodePing(1, 1));
  const exit = await withTimeout(kit.exited, { timeout: 30_000, message: kit.dump() });
  const results = checks(kit.events);
  assert.equal(results[0]?.id, 'client.hello-first');
  assert.equal(results[0]?.status, 'fail', kit.dump());
  assert.match(String(results[0]?.detail), /first frame was PING.*expected HELLO/);
  assert.equal(results.length, CLIENT_CHECKS.length, 'every check is reported');
  assert.ok(
    results.slice(1).every((e) => e.status === 'fail' && /not reached/.test(String(e.detail))),
    kit.dump(),
  );
  assert.equal(exit.code, 1);
  await waitFor(() => ended, {
    message: 'the script kept the socket',
  });
});

test('conformance server: a server that cannot be reached is one line on stderr, exit 1', async (t) => {
  requireBuiltCli();
  // Port 1 on loopback: nothing listens there.
  const closed = run(t, ['conformance', 'server', '127.0.0.1:1'], 'unreachable');
  const exit = await withTimeout(closed.exited, { timeout: 15_000, message: closed.dump() });
  assert.equal(exit.code, 1, closed.dump());
  assert.match(
    closed.stderr,
    /^heartline conformance: could not connect to 127\.0\.0\.1:1: .*ECONNREFUSED/,
  );
  assert.equal(closed.events.length, 0, 'no check was run');
});

test('conformance: usage errors exit 2', async (t) => {
  requireBuiltCli();
  for (const args of [
    ['conformance'],
    ['conformance', 'server'],
    ['conformance', 'server', '127.0.0.1:7000', '--only', 'no.such.check'],
    ['conformance', 'sideways'],
    ['conformance', 'server', '127.0.0.1:7000', '--protocol', '3'],
  ]) {
    const child = run(t, args, args.join(' '));
    const exit = await withTimeout(child.exited, { timeout: 10_000 });
    assert.equal(exit.code, 2, `${args.join(' ')}: ${child.stderr}`);
  }
});

/**
 * The server checks run over TLS: all but those of long timers (handshake.timeout,
 * heartbeat.*, which TLS does not change). handshake.second-hello and data.gap answer a
 * protocol error right behind a frame written in the same turn (the WELCOME, an echo):
 * they once lost their CLOSE over TLS, where the server destroyed the socket while the
 * CLOSE was still in the TLS stream.
 */
const TLS_CHECKS = [
  'handshake.welcome',
  'handshake.grant',
  'handshake.pipelined',
  'handshake.first-frame',
  'handshake.second-hello',
  'data.gap',
  'data.echo',
  'data.seq-zero',
  'ack',
  'ping',
  'resume',
  'malformed',
  'unexpected',
  'close',
  'v2',
].join(',');

// The two sides run side by side: each has its own processes and ports.
describe('conformance over TLS', { skip: pkiUnavailable(), concurrency: true }, () => {
  let pki: TestPki;
  before(() => {
    pki = makePki();
  });
  after(() => pki?.remove());

  test('conformance server --tls-ca: serve --echo over TLS passes, exit 0', async (t) => {
    requireBuiltCli();
    const serve = run(
      t,
      ['serve', '--port', '0', '--echo', '--json', '--handshake-timeout', '2000'].concat([
        '--tls-cert',
        pki.server.certFile,
        '--tls-key',
        pki.server.keyFile,
      ]),
      'serve',
    );
    const { port } = await serve.named('listening');
    const kit = run(
      t,
      ['conformance', 'server', `127.0.0.1:${port}`, '--json', '--tls-ca', pki.caFile].concat([
        '--handshake-timeout',
        '2000',
        '--only',
        TLS_CHECKS,
      ]),
      'conformance server',
    );
    const exit = await withTimeout(kit.exited, { timeout: RUN_TIMEOUT, message: kit.dump() });
    assert.equal(failures(kit.events), '', kit.dump());
    assert.ok(checks(kit.events).length >= 30, kit.dump());
    assert.equal(exit.code, 0, kit.dump());
  });

  test('conformance client --tls-cert: connect --tls-ca passes, exit 0', async (t) => {
    requireBuiltCli();
    const kit = run(
      t,
      ['conformance', 'client', '--port', '0', '--json'].concat([
        '--tls-cert',
        pki.server.certFile,
        '--tls-key',
        pki.server.keyFile,
      ]),
      'conformance client',
    );
    const { port } = await kit.named('listening');
    const client = run(
      t,
      ['connect', `127.0.0.1:${port}`, '--json', '--tls-ca', pki.caFile],
      'connect',
      'a\nb\nc\n',
    );
    const exit = await withTimeout(kit.exited, { timeout: RUN_TIMEOUT, message: kit.dump() });
    assert.equal(failures(kit.events), '', `${kit.dump()}\n${client.dump()}`);
    assert.equal(checks(kit.events).length, CLIENT_CHECKS.length);
    assert.equal(exit.code, 0, kit.dump());
  });
});
