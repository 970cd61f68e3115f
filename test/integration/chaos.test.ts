/**
 * The chaos proxy over real loopback sockets: an in-test target server, the proxy in
 * front of it, and clients connecting through it. Every test cleans up in t.after, even
 * when it fails, and waits on events or polled conditions rather than fixed sleeps.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { startControlServer } from '../../src/chaos/control.js';
import { type ChaosProxy, createChaosProxy } from '../../src/chaos/proxy.js';
import { HeartlineError } from '../../src/errors.js';
import { mulberry32 } from '../support/prng.js';
import { onceEvent, waitFor, withTimeout } from '../support/wait.js';

const HOST = '127.0.0.1';

/** Everything a socket received, plus how it ended. */
interface Recorder {
  readonly socket: Socket;
  chunks: Buffer[];
  bytes: number;
  ended: boolean;
  closed: boolean;
  error: (Error & { code?: string }) | undefined;
  text(): string;
  data(): Buffer;
}

function record(socket: Socket): Recorder {
  const rec: Recorder = {
    socket,
    chunks: [],
    bytes: 0,
    ended: false,
    closed: false,
    error: undefined,
    text: () => Buffer.concat(rec.chunks).toString('latin1'),
    data: () => Buffer.concat(rec.chunks),
  };
  socket.on('data', (chunk: Buffer) => {
    rec.chunks.push(chunk);
    rec.bytes += chunk.length;
  });
  socket.on('end', () => {
    rec.ended = true;
  });
  socket.on('close', () => {
    rec.closed = true;
  });
  socket.on('error', (err) => {
    rec.error = err;
  });
  return rec;
}

interface Target {
  readonly server: Server;
  readonly port: number;
  /** The target's side of every connection the proxy opened, in order. */
  readonly peers: Recorder[];
}

/**
 * A target server that records what it gets and, with `echo`, sends it back. Its sockets
 * allow half-open connections so a test can answer after the client's FIN.
 */
async function startTarget(t: TestContext, echo = true): Promise<Target> {
  const peers: Recorder[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const rec = record(socket);
    peers.push(rec);
    if (echo) {
      socket.on('data', (chunk: Buffer) => socket.write(chunk));
      socket.on('end', () => socket.end());
    }
  });
  server.listen(0, HOST);
  await onceEvent(server, 'listening');
  t.after(async () => {
    for (const peer of peers) peer.socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, port: address.port, peers };
}

async function startProxy(t: TestContext, port: number): Promise<ChaosProxy> {
  const proxy = await createChaosProxy({ target: { host: HOST, port } });
  t.after(() => proxy.close());
  return proxy;
}

/** Connects a client to the proxy; it is destroyed after the test. */
async function dial(t: TestContext, proxy: ChaosProxy): Promise<Recorder> {
  const socket = connect({ host: HOST, port: proxy.port, noDelay: true });
  const rec = record(socket);
  t.after(() => {
    socket.destroy();
  });
  await onceEvent(socket, 'connect');
  return rec;
}

interface Env {
  target: Target;
  proxy: ChaosProxy;
}

async function setup(t: TestContext, echo = true): Promise<Env> {
  const target = await startTarget(t, echo);
  const proxy = await startProxy(t, target.port);
  return { target, proxy };
}

/** Dials and round-trips a byte so that both sockets of the pair certainly exist. */
async function pair(t: TestContext, env: Env): Promise<{ client: Recorder; peer: Recorder }> {
  const before = env.target.peers.length;
  const client = await dial(t, env.proxy);
  await waitFor(() => env.target.peers.length > before, { message: 'target never saw the pair' });
  const peer = env.target.peers[before]!;
  const clientBytes = client.bytes;
  peer.socket.write('!');
  await waitFor(() => client.bytes > clientBytes, { message: 'pair did not carry a byte' });
  client.chunks = [];
  client.bytes = 0;
  return { client, peer };
}

/** A free loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, HOST);
  await onceEvent(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise((resolve) => server.close(resolve));
  return address.port;
}

function assertInvalid(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HeartlineError, `expected a HeartlineError, got ${String(err)}`);
    assert.equal(err.code, 'HL_ERR_INVALID_ARGUMENT');
    return true;
  });
}

function status(proxy: ChaosProxy): {
  faults: { up: { mode: string; latencyMs: number }; down: { mode: string }; refuseNew: boolean };
} {
  return JSON.parse(proxy.command('status'));
}

describe('chaos proxy: forwarding', () => {
  test('passes 1 MB of random data each way intact', async (t) => {
    const env = await setup(t);
    const client = await dial(t, env.proxy);
    const data = randomBytes(1024 * 1024);
    client.socket.write(data);
    await waitFor(() => client.bytes >= data.length, { message: 'echo incomplete' });
    assert.ok(client.data().equals(data), 'echoed bytes differ');
    const peer = env.target.peers[0]!;
    assert.ok(peer.data().equals(data), 'bytes at the target differ');
    const stats = env.proxy.stats();
    assert.equal(stats.bytesUp, data.length);
    assert.equal(stats.bytesDown, data.length);
    assert.equal(stats.accepted, 1);
    assert.equal(env.proxy.connections, 1);
  });

  test('forwards half-closes: FIN up, data still down, then FIN down', async (t) => {
    const env = await setup(t, false);
    const { client, peer } = await pair(t, env);
    // The client keeps reading after its own FIN only with allowHalfOpen.
    client.socket.allowHalfOpen = true;
    client.socket.end('last words');
    await waitFor(() => peer.ended, { message: 'target never saw the FIN' });
    assert.equal(peer.text(), 'last words');
    peer.socket.end('reply after FIN');
    await waitFor(() => client.ended, { message: 'client never saw the FIN' });
    assert.equal(client.text(), 'reply after FIN');
    await waitFor(() => env.proxy.connections === 0);
    assert.equal(env.proxy.stats().finned, 1);
    assert.equal(env.proxy.stats().reset, 0);
  });
});

describe('chaos proxy: latency', () => {
  test('adds one-way delay per direction and 0 removes it', async (t) => {
    const env = await setup(t);
    const { client } = await pair(t, env);
    const roundTrip = async (): Promise<number> => {
      const expected = client.bytes + 1;
      const start = performance.now();
      client.socket.write('x');
      await waitFor(() => client.bytes >= expected, { interval: 1 });
      return performance.now() - start;
    };
    env.proxy.setLatency(150, 0, 'up');
    assert.ok((await roundTrip()) >= 149, 'up latency not applied');
    env.proxy.setLatency(0, 0, 'up');
    env.proxy.setLatency(120, 0, 'down');
    assert.ok((await roundTrip()) >= 119, 'down latency not applied');
    env.proxy.setLatency(0);
    assert.ok((await roundTrip()) < 100, 'latency 0 did not remove the delay');
  });

  test('keeps byte order under heavy jitter', async (t) => {
    const env = await setup(t);
    const { client } = await pair(t, env);
    env.proxy.setLatency(2, 30, 'both');
    let expected = '';
    for (let i = 0; i < 300; i++) {
      const line = `${i};`;
      expected += line;
      client.socket.write(line);
      // Yield so the writes reach the proxy as separate chunks with different jitter.
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => client.bytes >= expected.length, { message: 'jittered echo incomplete' });
    assert.equal(client.text(), expected);
  });
});

describe('chaos proxy: freeze and blackhole', () => {
  test('freeze holds bytes and stops reading; heal delivers everything in order', async (t) => {
    const env = await setup(t);
    const { client, peer } = await pair(t, env);
    env.proxy.freeze('up');
    // Keep writing, yielding to the proxy between writes, until the client's own buffer
    // holds a megabyte: the kernel buffers between client and proxy are then full. A proxy
    // that kept reading would instead pile the bytes up in its own queue.
    const sent: Buffer[] = [];
    let total = 0;
    let i = 0;
    await waitFor(
      () => {
        if (client.socket.writableLength > 1024 * 1024) return true;
        const chunk = Buffer.alloc(64 * 1024, i++ % 251);
        sent.push(chunk);
        total += chunk.length;
        client.socket.write(chunk);
        return false;
      },
      { timeout: 20_000, interval: 1, message: 'the sender never felt backpressure' },
    );
    t.diagnostic(`sender blocked after ${total} bytes`);
    // The other direction still flows; it doubles as a barrier for the proxy's loop.
    peer.socket.write('down');
    await waitFor(() => client.bytes === 4, { message: 'down direction stalled' });
    assert.equal(client.text(), 'down');
    assert.equal(peer.bytes, 0, 'a frozen direction forwarded bytes');
    assert.ok(env.proxy.stats().queuedUp < 1024 * 1024, 'the proxy kept reading');
    assert.equal(client.closed || peer.closed, false);

    client.chunks = [];
    client.bytes = 0;
    env.proxy.heal('up');
    await waitFor(() => client.bytes >= total, { timeout: 20_000, message: 'heal lost bytes' });
    assert.ok(client.data().equals(Buffer.concat(sent)), 'bytes reordered or corrupted');
  });

  test('freeze down holds the target side until heal', async (t) => {
    const env = await setup(t);
    const { client, peer } = await pair(t, env);
    env.proxy.freeze('down');
    peer.socket.write('held-1;');
    peer.socket.write('held-2;');
    client.socket.write('up'); // up still flows
    await waitFor(() => peer.text() === 'up', { message: 'up direction stalled' });
    assert.equal(client.bytes, 0);
    assert.equal(status(env.proxy).faults.down.mode, 'frozen');
    env.proxy.heal();
    // The echo of 'up' went down after the held bytes, so it must come after them.
    await waitFor(() => client.text() === 'held-1;held-2;up', { message: 'heal lost bytes' });
  });

  test('new connections inherit the current faults', async (t) => {
    const env = await setup(t);
    env.proxy.freeze();
    const client = await dial(t, env.proxy);
    client.socket.write('early');
    await waitFor(() => env.target.peers.length === 1, { message: 'upstream not opened' });
    await waitFor(() => client.socket.writableLength === 0);
    assert.equal(env.target.peers[0]!.bytes, 0, 'a new pair ignored the freeze');
    env.proxy.heal();
    await waitFor(() => client.text() === 'early', { message: 'held bytes not delivered' });
  });

  test('blackhole drops bytes silently, keeps sockets open, holds the FIN', async (t) => {
    const env = await setup(t);
    const { client, peer } = await pair(t, env);

    env.proxy.blackhole('up');
    client.socket.write('lost');
    await waitFor(() => env.proxy.stats().droppedUp === 4, { message: 'nothing dropped' });
    assert.equal(peer.bytes, 0);
    env.proxy.heal('up');
    client.socket.write('kept');
    await waitFor(() => client.text() === 'kept', { message: 'no traffic after heal' });

    env.proxy.blackhole('down');
    peer.socket.write('gone');
    await waitFor(() => env.proxy.stats().droppedDown === 4, { message: 'nothing dropped' });
    assert.equal(client.text(), 'kept');
    env.proxy.heal('down');
    peer.socket.write('back');
    await waitFor(() => client.text() === 'keptback', { message: 'no traffic after heal' });

    // A FIN is neither forwarded nor lost while blackholed: it waits for heal.
    env.proxy.blackhole('up');
    client.socket.allowHalfOpen = true;
    client.socket.end();
    peer.socket.write('barrier');
    await waitFor(() => client.text() === 'keptbackbarrier');
    assert.equal(peer.ended || peer.closed || client.closed, false, 'blackhole passed a FIN');
    assert.equal(env.proxy.stats().reset, 0);
    env.proxy.heal();
    await waitFor(() => peer.ended, { message: 'FIN lost after heal' });
  });
});

describe('chaos proxy: cutting connections', () => {
  test('reset() gives both peers ECONNRESET', async (t) => {
    const env = await setup(t);
    const { client, peer } = await pair(t, env);
    const clientError = onceEvent(client.socket, 'error');
    const peerError = onceEvent(peer.socket, 'error');
    assert.equal(env.proxy.reset(), 1);
    const [err] = (await clientError) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNRESET');
    const [peerErr] = (await peerError) as [NodeJS.ErrnoException];
    assert.equal(peerErr.code, 'ECONNRESET');
    await waitFor(() => env.proxy.connections === 0);
    assert.equal(env.proxy.stats().reset, 1);
    assert.equal(env.proxy.stats().finned, 0);
  });

  test('fin() gives both peers a clean end', async (t) => {
    const env = await setup(t);
    const { client, peer } = await pair(t, env);
    assert.equal(env.proxy.fin(), 1);
    await waitFor(() => client.ended && peer.ended, { message: 'no FIN' });
    await waitFor(() => env.proxy.connections === 0);
    assert.equal(client.error, undefined);
    assert.equal(peer.error, undefined);
    assert.equal(env.proxy.stats().finned, 1);
    assert.equal(env.proxy.stats().reset, 0);
  });

  test('fin() does not wait forever on a peer that stopped reading', async (t) => {
    const env = await setup(t);
    const { client, peer } = await pair(t, env);
    client.socket.pause();
    // Fill the path to the client until the target's own writes back up: then the proxy
    // has paused reading and holds unflushed bytes for the client, so 'finish' cannot fire.
    const chunk = Buffer.alloc(256 * 1024);
    await waitFor(
      () => {
        if (peer.socket.writableLength > 0) return true;
        peer.socket.write(chunk);
        return false;
      },
      { timeout: 10_000, message: 'the path to the client never filled' },
    );
    assert.equal(env.proxy.fin(), 1);
    await waitFor(() => env.proxy.connections === 0, { timeout: 10_000 });
    assert.equal(env.proxy.stats().finned, 1);
  });

  test('an RST from one peer becomes an RST to the other; the proxy carries on', async (t) => {
    const env = await setup(t);
    const first = await pair(t, env);
    const peerError = onceEvent(first.peer.socket, 'error');
    first.client.socket.resetAndDestroy();
    const [err] = (await peerError) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNRESET');
    await waitFor(() => env.proxy.connections === 0);
    assert.equal(env.proxy.stats().reset, 1);
    const second = await pair(t, env);
    second.client.socket.write('still here');
    await waitFor(() => second.client.text() === 'still here');
  });

  test('a refused target resets the client', async (t) => {
    const proxy = await startProxy(t, await closedPort());
    const client = await dial(t, proxy);
    await waitFor(() => client.closed, { message: 'client not cut' });
    assert.equal(client.error?.code, 'ECONNRESET');
    assert.equal(proxy.stats().accepted, 1);
    assert.equal(proxy.stats().reset, 1);
    assert.equal(proxy.connections, 0);
  });

  test('refuseNew(true) resets new clients only, until turned off', async (t) => {
    const env = await setup(t);
    const existing = await pair(t, env);
    env.proxy.refuseNew(true);
    const refused = record(connect({ host: HOST, port: env.proxy.port }));
    t.after(() => {
      refused.socket.destroy();
    });
    await waitFor(() => refused.closed, { message: 'new client not refused' });
    assert.equal(refused.error?.code, 'ECONNRESET');
    assert.equal(env.target.peers.length, 1, 'a refused client reached the target');
    existing.client.socket.write('alive');
    await waitFor(() => existing.client.text() === 'alive');
    assert.equal(env.proxy.stats().refused, 1);
    env.proxy.refuseNew(false);
    const later = await pair(t, env);
    later.client.socket.write('ok');
    await waitFor(() => later.client.text() === 'ok');
  });
});

describe('chaos proxy: commands', () => {
  test('command() applies every verb and answers one line of JSON', async (t) => {
    const env = await setup(t);
    await pair(t, env);
    const run = (line: string): Record<string, unknown> => {
      const out = env.proxy.command(line);
      assert.ok(!out.includes('\n'), 'result is not one line');
      const result = JSON.parse(out) as Record<string, unknown>;
      assert.equal(result.ok, true);
      return result;
    };
    run('latency 200 50 both');
    assert.deepEqual(status(env.proxy).faults.up, { mode: 'flow', latencyMs: 200, jitterMs: 50 });
    run('  LATENCY 30 down ');
    assert.deepEqual(status(env.proxy).faults.down, { mode: 'flow', latencyMs: 30, jitterMs: 0 });
    run('latency 0');
    assert.equal(status(env.proxy).faults.up.latencyMs, 0);
    run('freeze up');
    assert.equal(status(env.proxy).faults.up.mode, 'frozen');
    assert.equal(status(env.proxy).faults.down.mode, 'flow');
    run('blackhole down');
    assert.equal(status(env.proxy).faults.down.mode, 'blackhole');
    run('heal');
    assert.equal(status(env.proxy).faults.up.mode, 'flow');
    assert.equal(status(env.proxy).faults.down.mode, 'flow');
    run('refuse on');
    assert.equal(status(env.proxy).faults.refuseNew, true);
    run('refuse off');
    run('freeze');
    run('clear');
    assert.deepEqual(status(env.proxy).faults, {
      up: { mode: 'flow', latencyMs: 0, jitterMs: 0 },
      down: { mode: 'flow', latencyMs: 0, jitterMs: 0 },
      refuseNew: false,
    });
    assert.ok(Array.isArray(run('help').commands));
    const full = run('status') as { stats: { accepted: number; connections: number } };
    assert.equal(full.stats.accepted, 1);
    assert.equal(full.stats.connections, 1);
    assert.equal(run('fin').pairs, 1);
    await waitFor(() => env.proxy.connections === 0);
    assert.equal(run('reset').pairs, 0);
  });

  test('bad commands and arguments throw HL_ERR_INVALID_ARGUMENT', async (t) => {
    const env = await setup(t);
    for (const line of [
      '',
      '   ',
      'bogus',
      'latency',
      'latency up',
      'latency -5',
      'latency abc',
      'latency 1e3',
      'latency 10 5 3',
      'latency 10 5 up down',
      'latency 99999999',
      'freeze sideways',
      'heal up down',
      'refuse',
      'refuse maybe',
      'reset now',
      'status please',
    ]) {
      assertInvalid(() => env.proxy.command(line));
    }
    assertInvalid(() => env.proxy.setLatency(-1));
    assertInvalid(() => env.proxy.setLatency(Number.NaN));
    assertInvalid(() => env.proxy.setLatency(10, Number.POSITIVE_INFINITY));
    assertInvalid(() => env.proxy.freeze('sideways' as 'up'));
    await assert.rejects(
      createChaosProxy({ target: { host: HOST, port: 0 } }),
      (err: unknown) => err instanceof HeartlineError && err.code === 'HL_ERR_INVALID_ARGUMENT',
    );
    await assert.rejects(
      createChaosProxy({ target: { host: HOST, port: 1 }, listenPort: 70_000 }),
      (err: unknown) => err instanceof HeartlineError && err.code === 'HL_ERR_INVALID_ARGUMENT',
    );
    // A rejected command changes nothing.
    assert.equal(status(env.proxy).faults.up.latencyMs, 0);
  });
});

/** One HTTP request without keep-alive; resolves with status and parsed JSON. */
function http(
  port: number,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = request({ host: HOST, port, method, path, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          try {
            const json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            resolve({ status: res.statusCode ?? 0, json });
          } catch (err) {
            reject(err);
          }
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    }),
    { message: `${method} ${path} timed out` },
  );
}

describe('chaos proxy: HTTP control', () => {
  test('POST /command and GET /status forward to the text commands', async (t) => {
    const env = await setup(t);
    const control = await startControlServer(env.proxy);
    t.after(() => control.close());

    const frozen = await http(control.port, 'POST', '/command', 'freeze up');
    assert.equal(frozen.status, 200);
    assert.equal(frozen.json.ok, true);
    assert.equal(status(env.proxy).faults.up.mode, 'frozen');

    const state = await http(control.port, 'GET', '/status');
    assert.equal(state.status, 200);
    assert.deepEqual(state.json, JSON.parse(env.proxy.command('status')));

    const bad = await http(control.port, 'POST', '/command', 'explode');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.ok, false);
    assert.equal(bad.json.code, 'HL_ERR_INVALID_ARGUMENT');

    const tooLong = await http(control.port, 'POST', '/command', 'x'.repeat(10_000));
    assert.equal(tooLong.status, 413);
    assert.equal((await http(control.port, 'GET', '/command')).status, 405);
    assert.equal((await http(control.port, 'GET', '/nope')).status, 404);

    await http(control.port, 'POST', '/command', 'heal');
    assert.equal(status(env.proxy).faults.up.mode, 'flow');
  });
});

describe('chaos proxy: soak', () => {
  test('5,000 messages each way survive random latency, freezes and heals in order', async (t) => {
    const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
    t.diagnostic(`seed ${seed} (rerun with CHAOS_SEED=${seed})`);
    const random = mulberry32(seed);
    const env = await setup(t, false);
    const { client, peer } = await pair(t, env);
    const dirs = ['both', 'up', 'down'] as const;
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    let up = '';
    let down = '';
    for (let i = 0; i < 5000; i++) {
      const u = `u${i};`;
      const d = `d${i};`;
      up += u;
      down += d;
      client.socket.write(u);
      peer.socket.write(d);
      if (i % 50 === 49) {
        const roll = random();
        if (roll < 0.3) env.proxy.freeze(pick(dirs));
        else if (roll < 0.6) env.proxy.heal(pick(dirs));
        else if (roll < 0.9) env.proxy.setLatency(random() * 20, random() * 20, pick(dirs));
        else env.proxy.setLatency(0);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    env.proxy.heal();
    env.proxy.setLatency(0);
    await waitFor(() => peer.bytes >= up.length && client.bytes >= down.length, {
      timeout: 20_000,
      message: `stream incomplete (seed ${seed})`,
    });
    assert.equal(peer.text(), up, `up stream corrupted (seed ${seed})`);
    assert.equal(client.text(), down, `down stream corrupted (seed ${seed})`);
    assert.equal(env.proxy.stats().reset, 0);
  });
});

describe('chaos proxy: close()', () => {
  test('destroys every pair and leaves no handle or timer behind', async (t) => {
    const proxyUrl = pathToFileURL(new URL('../../src/chaos/proxy.ts', import.meta.url).pathname);
    const controlUrl = pathToFileURL(
      new URL('../../src/chaos/control.ts', import.meta.url).pathname,
    );
    // In a child process, so that "no handle left" is simply "the process exits by itself".
    // Unref'd timers would not hold it open, so an async hook tracks those explicitly.
    const script = `
      import { createHook } from 'node:async_hooks';
      import { connect, createServer } from 'node:net';
      import { createChaosProxy } from ${JSON.stringify(proxyUrl.href)};
      import { startControlServer } from ${JSON.stringify(controlUrl.href)};
      const timers = new Set();
      let tracking = false;
      createHook({
        init(id, type) { if (tracking && type === 'Timeout') timers.add(id); },
        destroy(id) { timers.delete(id); },
      }).enable();
      const target = createServer((s) => { s.on('error', () => {}); s.pipe(s); });
      await new Promise((r) => target.listen(0, '127.0.0.1', r));
      tracking = true;
      const proxy = await createChaosProxy({ target: { host: '127.0.0.1', port: target.address().port } });
      const control = await startControlServer(proxy);
      proxy.setLatency(60000, 0, 'up');
      proxy.freeze('down');
      const clients = [];
      for (let i = 0; i < 3; i++) {
        const c = connect({ host: '127.0.0.1', port: proxy.port });
        c.on('error', () => {});
        await new Promise((r) => c.once('connect', r));
        c.write('queued behind a long latency');
        clients.push(c);
      }
      while (proxy.stats().queuedUp === 0 || proxy.connections < 3) await new Promise((r) => setTimeout(r, 5));
      await proxy.close();
      await control.close();
      const after = { connections: proxy.connections, queuedUp: proxy.stats().queuedUp };
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => target.close(r));
      tracking = false;
      await new Promise((r) => setImmediate(r));
      console.log(JSON.stringify({ ...after, timers: timers.size }));
    `;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '--eval', script],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = await onceEvent(child, 'exit', {
      timeout: 15_000,
      message: `the process did not exit after close(): a handle leaked\n${stdout}${stderr}`,
    });
    assert.equal(code, 0, stderr);
    const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}');
    assert.deepEqual(result, { connections: 0, queuedUp: 0, timers: 0 });
  });
});
