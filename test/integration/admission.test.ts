/**
 * Admission control and load levels over real loopback sockets: each limit refuses with
 * CLOSE(overloaded) and a retry hint, reports 'rejected' with the limit, and leaves the
 * connections already admitted alone. Load levels are driven by an injected sampler, so
 * nothing here depends on how loaded the machine really is.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { connect as netConnect, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ReconnectingEvent } from '../../src/connection.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { Decoder } from '../../src/protocol/codec.js';
import {
  type CloseFrame,
  type Frame,
  FrameType,
  type HelloFrame,
  type WelcomeFrame,
} from '../../src/protocol/frames.js';
import type { LoadEvent, ProcessSample } from '../../src/server/load.js';
import type { RejectEvent, Server } from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { helloBytes, opened, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor } from '../support/wait.js';

const INTERVAL = 500;
const TIMEOUT = 1500;

/** A socket that speaks frames by hand, optionally from another loopback address. */
class Raw {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly decoder = new Decoder();

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => this.frames.push(...this.decoder.push(chunk)));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
    });
  }

  static async open(t: TestContext, port: number, localAddress?: string): Promise<Raw> {
    const socket = netConnect({
      host: '127.0.0.1',
      port,
      ...(localAddress ? { localAddress } : {}),
    });
    t.after(() => {
      socket.destroy();
    });
    await onceEvent(socket, 'connect');
    return new Raw(socket);
  }

  hello(fields: Partial<Omit<HelloFrame, 'type'>> = {}): void {
    this.socket.write(helloBytes(fields));
  }

  /** The first frame the server sent (WELCOME or CLOSE). */
  async answer(): Promise<Frame> {
    await waitFor(() => this.frames.length > 0, { message: 'no answer from the server' });
    return this.frames[0]!;
  }

  async welcome(fields: Partial<Omit<HelloFrame, 'type'>> = {}): Promise<WelcomeFrame> {
    this.hello(fields);
    const f = await this.answer();
    assert.equal(f.type, FrameType.WELCOME, `expected WELCOME, got ${JSON.stringify(f)}`);
    return f as WelcomeFrame;
  }

  /** Expects CLOSE(overloaded) and the socket closed by the server. */
  async refused(): Promise<CloseFrame> {
    const f = await this.answer();
    assert.equal(f.type, FrameType.CLOSE, `expected CLOSE, got ${JSON.stringify(f)}`);
    const close = f as CloseFrame;
    assert.equal(close.code, CloseCode.OVERLOADED);
    await waitFor(() => this.closed, { message: 'the server did not close the refused socket' });
    return close;
  }
}

/** Collects the server's 'rejected' events. */
function rejections(server: Server): RejectEvent[] {
  const out: RejectEvent[] = [];
  server.on('rejected', (e) => out.push(e));
  return out;
}

/** Echoes on every server connection; resolves each new one. */
function echo(server: Server): ServerConnection[] {
  const conns: ServerConnection[] = [];
  server.on('connection', (c) => {
    conns.push(c);
    c.on('message', (m) => c.send(m));
  });
  return conns;
}

/** Asserts that a client still works: healthy, and a message comes back. */
async function stillServed(client: ReturnType<typeof startClient>, text: string): Promise<void> {
  assert.equal(client.state, 'healthy');
  const back = onceEvent(client, 'message');
  client.send(text);
  const [m] = (await back) as [Buffer];
  assert.equal(m.toString(), text);
}

const base = { interval: INTERVAL, timeout: TIMEOUT, acceptRate: Number.POSITIVE_INFINITY };

test('maxConnections: the next socket gets CLOSE(overloaded) with a hint; the others are kept', async (t) => {
  const { server, port } = await startServer(t, { ...base, maxConnections: 3, retryAfter: 2000 });
  echo(server);
  const rejected = rejections(server);
  const clients = [1, 2, 3].map(() => startClient(t, { port }));
  await Promise.all(clients.map((c) => opened(c)));
  assert.equal(server.admissionStats.connections, 3);

  const raw = await Raw.open(t, port);
  raw.hello();
  const close = await raw.refused();
  assert.ok(close.retryAfter >= 2000 && close.retryAfter <= 3000, `hint ${close.retryAfter}`);
  assert.equal(close.reason, 'connection limit reached');
  await waitFor(() => rejected.length === 1);
  const e = rejected[0]!;
  assert.equal(e.limit, 'max-connections');
  assert.equal(e.info.reason, 'overloaded');
  assert.equal(e.info.code, CloseCode.OVERLOADED);
  assert.equal(e.info.retryAfter, close.retryAfter);
  assert.equal(e.info.error?.code, 'HL_ERR_OVERLOADED');
  assert.match(e.remote, /^127\.0\.0\.1:\d+$/);

  for (const [i, c] of clients.entries()) await stillServed(c, `still ${i}`);

  // A reconnecting client that is refused waits at least the hint.
  const late = startClient(t, { port, backoff: { initialDelay: 1, maxDelay: 1 } });
  const [retry] = (await onceEvent(late, 'reconnecting')) as [ReconnectingEvent];
  assert.equal(retry.reason, 'overloaded');
  assert.ok(retry.delayMs >= 2000, `waited ${retry.delayMs} ms`);

  // Room again once one leaves.
  clients[0]!.close();
  await waitFor(() => server.admissionStats.connections === 2);
  const next = await Raw.open(t, port);
  await next.welcome();
  assert.equal(server.admissionStats.refused['max-connections'] >= 2, true);
});

test('maxConnectionsPerAddress: one address is capped, another still gets in', async (t) => {
  const { server, port } = await startServer(t, { ...base, maxConnectionsPerAddress: 2 });
  const rejected = rejections(server);
  const a1 = await Raw.open(t, port, '127.0.0.1');
  const a2 = await Raw.open(t, port, '127.0.0.1');
  await a1.welcome();
  await a2.welcome();
  const a3 = await Raw.open(t, port, '127.0.0.1');
  a3.hello();
  await a3.refused();
  const b1 = await Raw.open(t, port, '127.0.0.2');
  await b1.welcome();
  await waitFor(() => rejected.length === 1);
  assert.equal(rejected[0]!.limit, 'max-connections-per-address');
  assert.equal(a1.closed || a2.closed || b1.closed, false);
  // The count follows closes: the first address has room again.
  a1.socket.destroy();
  await waitFor(() => server.admissionStats.connections === 2);
  const a4 = await Raw.open(t, port, '127.0.0.1');
  await a4.welcome();
});

test('maxSessions: a new session is refused at the HELLO while every session is live, a resume of a waiting one is not', async (t) => {
  const { server, port } = await startServer(t, { ...base, maxSessions: 2, sessionTtl: 30_000 });
  const rejected = rejections(server);
  const one = await Raw.open(t, port);
  const w1 = await one.welcome();
  const two = await Raw.open(t, port);
  await two.welcome();

  const three = await Raw.open(t, port);
  three.hello();
  const close = await three.refused();
  assert.equal(close.reason, 'session limit reached');
  await waitFor(() => rejected.length === 1);
  assert.equal(rejected[0]!.limit, 'max-sessions');

  // The first link drops: its session waits for a resume and still counts.
  one.socket.destroy();
  await waitFor(() => server.admissionStats.connections === 1);
  assert.equal(server.admissionStats.sessions, 2);
  const back = await Raw.open(t, port);
  const resumed = await back.welcome({
    resume: { sessionId: w1.sessionId, token: w1.token, lastReceived: 0 },
  });
  assert.equal(resumed.resumed, true);
  assert.deepEqual(Buffer.from(resumed.sessionId), Buffer.from(w1.sessionId));
  // A forged resume (right id, wrong token) is a new session, so it is refused too.
  const forged = await Raw.open(t, port);
  forged.hello({ resume: { sessionId: w1.sessionId, token: new Uint8Array(16), lastReceived: 0 } });
  await forged.refused();
  assert.equal(server.admissionStats.sessions, 2);
});

/** Authenticates HELLO auth text as the identity; '' as anonymous, 'bad' refused. */
function authByText(hello: { auth: Buffer }): string | boolean {
  const text = hello.auth.toString();
  if (text === 'bad') return false;
  return text === '' ? true : text;
}

/** Records each session's 'session-lost' and 'close' by client id, in order. */
function lifecycle(server: Server): Map<string, string[]> {
  const out = new Map<string, string[]>();
  server.on('connection', (c) => {
    const log: string[] = [];
    out.set(c.clientId, log);
    c.on('session-lost', (e) => log.push(`lost:${e.unacked.map((m) => m.toString()).join(',')}`));
    c.on('close', (info) => log.push(`close:${info.reason}:${info.message}`));
  });
  return out;
}

/** Waits until the server's session of `clientId` lost its link. */
async function abandoned(server: Server, peer: Raw, clientId: string): Promise<void> {
  peer.socket.destroy();
  await waitFor(
    () =>
      [...server.connections.values()].some(
        (c) => c.clientId === clientId && c.state === 'disconnected',
      ),
    { message: `${clientId} not disconnected` },
  );
}

test('maxSessions full of abandoned sessions: a new one evicts the oldest without identity, handing back its messages; live and authenticated ones stay', async (t) => {
  const { server, port } = await startServer(t, {
    ...base,
    maxSessions: 4,
    sessionTtl: 60_000,
    authenticate: authByText,
  });
  const rejected = rejections(server);
  const log = lifecycle(server);
  server.on('connection', (c) => {
    c.on('message', (m) => c.send(m));
    // Never acknowledged by the raw peer: it must come back to the application.
    if (c.clientId === 'a1') c.send('for-a1');
  });
  const bystander = startClient(t, { port, clientId: 'bystander' });
  await opened(bystander);

  const alice = await Raw.open(t, port);
  await alice.welcome({ clientId: 'alice', auth: Buffer.from('alice') });
  await abandoned(server, alice, 'alice');
  const a1 = await Raw.open(t, port);
  await a1.welcome({ clientId: 'a1' });
  await waitFor(() => a1.frames.some((f) => f.type === FrameType.DATA));
  await abandoned(server, a1, 'a1');
  const a2 = await Raw.open(t, port);
  await a2.welcome({ clientId: 'a2' });
  await abandoned(server, a2, 'a2');
  assert.equal(server.admissionStats.sessions, 4);

  // A HELLO that fails authenticate evicts nothing.
  const bad = await Raw.open(t, port);
  bad.hello({ clientId: 'bad', auth: Buffer.from('bad') });
  const refusal = await bad.answer();
  assert.ok(refusal.type === FrameType.CLOSE && refusal.code === CloseCode.AUTH_FAILED);
  assert.equal(server.admissionStats.evicted, 0);

  // New clients get in, evicting the abandoned anonymous sessions, oldest first, as if
  // they expired: 'session-lost' (with what was never acknowledged), then 'close'.
  const n1 = await Raw.open(t, port);
  await n1.welcome({ clientId: 'n1' });
  assert.deepEqual(log.get('a1'), [
    'lost:for-a1',
    'close:session-expired:evicted to make room for a new session (max-sessions)',
  ]);
  assert.deepEqual(log.get('a2'), []);
  const n2 = await Raw.open(t, port);
  await n2.welcome({ clientId: 'n2' });
  assert.deepEqual(log.get('a2'), [
    'lost:',
    'close:session-expired:evicted to make room for a new session (max-sessions)',
  ]);
  assert.equal(server.admissionStats.evicted, 2);

  // Left: the bystander, n1, n2 (live) and alice's (authenticated): nothing to evict.
  const n3 = await Raw.open(t, port);
  n3.hello({ clientId: 'n3' });
  await n3.refused();
  await waitFor(() => rejected.some((r) => r.limit === 'max-sessions'));
  assert.deepEqual(log.get('alice'), []);
  assert.deepEqual(log.get('bystander'), []);
  await stillServed(bystander, 'still here');
  assert.equal(server.admissionStats.sessions, 4);
});

test('maxSessionsPerAddress: one address is capped (its abandoned sessions make room), another still gets in', async (t) => {
  const { server, port } = await startServer(t, {
    ...base,
    maxSessionsPerAddress: 2,
    sessionTtl: 60_000,
  });
  const rejected = rejections(server);
  const log = lifecycle(server);
  echo(server);
  const bystander = startClient(t, { port, clientId: 'bystander' });
  await opened(bystander);

  const p1 = await Raw.open(t, port, '127.0.0.2');
  await p1.welcome({ clientId: 'p1' });
  const p2 = await Raw.open(t, port, '127.0.0.2');
  await p2.welcome({ clientId: 'p2' });
  const p3 = await Raw.open(t, port, '127.0.0.2');
  p3.hello({ clientId: 'p3' });
  const close = await p3.refused();
  assert.equal(close.reason, 'session limit for this address reached');
  await waitFor(() => rejected.length === 1);
  assert.equal(rejected[0]!.limit, 'max-sessions-per-address');
  assert.equal(server.admissionStats.refused['max-sessions-per-address'], 1);

  // Another address is not affected.
  const late = startClient(t, { port, clientId: 'late' });
  await opened(late);
  await stillServed(late, 'late');

  // p1 abandons its session: the address's next one evicts it instead of being refused.
  await abandoned(server, p1, 'p1');
  const p4 = await Raw.open(t, port, '127.0.0.2');
  await p4.welcome({ clientId: 'p4' });
  assert.deepEqual(log.get('p1'), [
    'lost:',
    'close:session-expired:evicted to make room for a new session (max-sessions-per-address)',
  ]);
  assert.deepEqual(log.get('p2'), []);
  await stillServed(bystander, 'bystander');
});

test('maxSessionsPerIdentity: one identity is capped and only ever evicts its own abandoned sessions', async (t) => {
  const { server, port } = await startServer(t, {
    ...base,
    maxSessionsPerIdentity: 2,
    sessionTtl: 60_000,
    authenticate: authByText,
  });
  const rejected = rejections(server);
  const log = lifecycle(server);
  echo(server);
  const bystander = startClient(t, { port, clientId: 'bystander', auth: 'alice' });
  await opened(bystander);
  // An anonymous abandoned session is never a victim of an identity's limit.
  const anon = await Raw.open(t, port);
  await anon.welcome({ clientId: 'anon' });
  await abandoned(server, anon, 'anon');

  const m1 = await Raw.open(t, port);
  await m1.welcome({ clientId: 'm1', auth: Buffer.from('mallory') });
  const m2 = await Raw.open(t, port);
  await m2.welcome({ clientId: 'm2', auth: Buffer.from('mallory') });
  const m3 = await Raw.open(t, port);
  m3.hello({ clientId: 'm3', auth: Buffer.from('mallory') });
  const close = await m3.refused();
  assert.equal(close.reason, 'session limit for this identity reached');
  await waitFor(() => rejected.length === 1);
  assert.equal(rejected[0]!.limit, 'max-sessions-per-identity');

  // alice has one session (the bystander) and gets a second one.
  const alice = await Raw.open(t, port);
  await alice.welcome({ clientId: 'alice2', auth: Buffer.from('alice') });

  await abandoned(server, m1, 'm1');
  const m4 = await Raw.open(t, port);
  await m4.welcome({ clientId: 'm4', auth: Buffer.from('mallory') });
  assert.deepEqual(log.get('m1'), [
    'lost:',
    'close:session-expired:evicted to make room for a new session (max-sessions-per-identity)',
  ]);
  assert.deepEqual(log.get('anon'), []);
  assert.deepEqual(log.get('m2'), []);
  assert.equal(server.admissionStats.evicted, 1);
  await stillServed(bystander, 'bystander');
});

test('acceptRate: past the burst, refused sockets are given slots one token apart', async (t) => {
  // 0.1 a second: one token per 10 s, so no token comes back while the test runs.
  const { server, port } = await startServer(t, {
    ...base,
    acceptRate: 0.1,
    acceptBurst: 2,
  });
  const rejected = rejections(server);
  const first = await Raw.open(t, port);
  const second = await Raw.open(t, port);
  const third = await Raw.open(t, port);
  const fourth = await Raw.open(t, port);
  const [c3, c4] = [await third.refused(), await fourth.refused()];
  assert.ok(c3.retryAfter > 0 && c3.retryAfter <= 10_000, `third ${c3.retryAfter}`);
  assert.ok(c4.retryAfter > 10_000 && c4.retryAfter <= 20_000, `fourth ${c4.retryAfter}`);
  await first.welcome();
  await second.welcome();
  await waitFor(() => rejected.length === 2);
  assert.deepEqual(
    rejected.map((e) => e.limit),
    ['accept-rate', 'accept-rate'],
  );
  assert.equal(server.admissionStats.refused['accept-rate'], 2);
});

test('load levels: at danger new sessions are refused, existing ones and resumes kept', async (t) => {
  const sample: ProcessSample = { heapUsed: 0, rss: 0, eventLoopDelay: 0 };
  const { server, port } = await startServer(t, {
    ...base,
    retryAfter: 200,
    load: {
      sampler: () => sample,
      sampleInterval: 20,
      recoverAfter: 100,
      warning: { eventLoopDelay: 100 },
      danger: { eventLoopDelay: 1000 },
    },
  });
  echo(server);
  const rejected = rejections(server);
  const levels: LoadEvent[] = [];
  server.on('load', (e) => levels.push(e));
  const kept = startClient(t, { port });
  await opened(kept);
  const waiting = await Raw.open(t, port);
  const w = await waiting.welcome();
  waiting.socket.destroy();
  assert.equal(server.loadLevel, 'normal');

  sample.eventLoopDelay = 5000;
  await waitFor(() => server.loadLevel === 'danger');
  assert.deepEqual(
    levels.map((e) => [e.from, e.to]),
    [['normal', 'danger']],
  );
  assert.deepEqual(levels[0]!.reasons, [
    { metric: 'eventLoopDelay', value: 5000, threshold: 1000 },
  ]);

  const fresh = await Raw.open(t, port);
  fresh.hello();
  const close = await fresh.refused();
  assert.equal(close.reason, 'server overloaded');
  assert.ok(close.retryAfter >= 200 && close.retryAfter <= 300, `hint ${close.retryAfter}`);
  await waitFor(() => rejected.some((e) => e.limit === 'load'));

  const resumer = await Raw.open(t, port);
  const again = await resumer.welcome({
    resume: { sessionId: w.sessionId, token: w.token, lastReceived: 0 },
  });
  assert.equal(again.resumed, true, 'a resume is admitted in danger');
  await stillServed(kept, 'kept in danger');

  // A client refused in danger gets in once the level drops.
  const later = startClient(t, { port, backoff: { initialDelay: 1, maxDelay: 50 } });
  const [retry] = (await onceEvent(later, 'reconnecting')) as [ReconnectingEvent];
  assert.equal(retry.reason, 'overloaded');
  sample.eventLoopDelay = 150;
  await waitFor(() => server.loadLevel === 'warning');
  await opened(later, 10_000);
  sample.eventLoopDelay = 0;
  await waitFor(() => server.loadLevel === 'normal');
  assert.deepEqual(
    levels.map((e) => [e.from, e.to]),
    [
      ['normal', 'danger'],
      ['danger', 'warning'],
      ['warning', 'normal'],
    ],
  );
  assert.deepEqual(levels[2]!.reasons, []);
});

test('load levels: the connection count drives them and close() stops the sampling', async (t) => {
  const { server, port } = await startServer(t, {
    ...base,
    maxConnections: 100,
    load: {
      sampler: () => ({ heapUsed: 0, rss: 0, eventLoopDelay: 0 }),
      sampleInterval: 20,
      recoverAfter: 0,
      warning: { connections: 2 },
      danger: { connections: 3 },
    },
  });
  const levels: LoadEvent[] = [];
  server.on('load', (e) => levels.push(e));
  const peers = [await Raw.open(t, port), await Raw.open(t, port)];
  await waitFor(() => server.loadLevel === 'warning');
  peers.push(await Raw.open(t, port));
  await waitFor(() => server.loadLevel === 'danger');
  assert.deepEqual(levels.at(-1)!.reasons, [{ metric: 'connections', value: 3, threshold: 3 }]);
  for (const p of peers) p.socket.destroy();
  await waitFor(() => server.loadLevel === 'normal');
  await server.close();
  const count = levels.length;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(levels.length, count, 'no samples after close');
});

test('heartline serve takes the limits as flags and reports refusals', async (t) => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'serve',
      '--port',
      '0',
      '--json',
      '--max-connections',
      '1',
      '--max-connections-per-address',
      'unlimited',
      '--max-sessions',
      '10',
      '--max-sessions-per-address',
      '4',
      '--max-sessions-per-identity',
      'unlimited',
      '--accept-rate',
      '1000',
      '--accept-burst',
      '50',
      '--max-heartbeats-per-second',
      '500',
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const events: Array<Record<string, unknown>> = [];
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) events.push(JSON.parse(line) as Record<string, unknown>);
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  await waitFor(() => events.some((e) => e.event === 'listening'), {
    timeout: 20_000,
    message: `serve did not start: ${stderr}`,
  });
  const port = events.find((e) => e.event === 'listening')!.port as number;
  const first = await Raw.open(t, port);
  await first.welcome();
  const second = await Raw.open(t, port);
  second.hello();
  const close = await second.refused();
  await waitFor(() => events.some((e) => e.event === 'rejected'));
  const e = events.find((x) => x.event === 'rejected')!;
  assert.equal(e.limit, 'max-connections');
  assert.equal(e.reason, 'overloaded');
  assert.equal(e.code, CloseCode.OVERLOADED);
  assert.equal(e.retryAfter, close.retryAfter);
  child.kill('SIGTERM');
  const [code] = (await onceEvent(child, 'exit', { timeout: 10_000 })) as [number];
  assert.equal(code, 0);
});

test('heartline serve refuses a bad limit with a usage error', async (t) => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  for (const args of [
    ['--max-connections', '0'],
    ['--accept-rate', 'fast'],
    ['--max-sessions', '-3'],
    ['--max-sessions-per-identity', '0'],
  ]) {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'serve', ...args],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const [code] = (await onceEvent(child, 'exit', { timeout: 20_000 })) as [number];
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    assert.match(stderr, new RegExp(args[0]!));
  }
});
