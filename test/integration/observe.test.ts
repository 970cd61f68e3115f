/**
 * Observability over real loopback sockets: the metrics /metrics serves after real
 * traffic, a frozen peer, a forced close and a refused handshake; the JSON API; the
 * health and readiness probes; the live event stream; and the log lines, captured from
 * a pino destination stream.
 */

import assert from 'node:assert/strict';
import { get, type IncomingMessage } from 'node:http';
import { connect as netConnect } from 'node:net';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  type ConnectionInfo,
  createLogger,
  createRegistry,
  observeClient,
  observeServer,
  startAdmin,
} from '../../src/observe/index.js';
import type { Server } from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { resetLink } from '../../src/testing.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { type Exposition, parseExposition, sampleValue } from '../support/prom.js';
import { onceEvent, waitFor } from '../support/wait.js';

const INTERVAL = 200;
const TIMEOUT = 600;
/** Generous: other suites run at the same time on two cores. */
const SLOW = 10_000;
/**
 * What the clients that must stay healthy ask for: suspect only after 1.5 s of silence,
 * so that a loaded machine stalling the event loop cannot make them suspect.
 */
const STEADY = { interval: 1000, timeout: 10_000 } as const;

async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

function value(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  const v = sampleValue(e, name, labels);
  assert.notEqual(v, undefined, `no sample ${name} ${JSON.stringify(labels)}`);
  return v as number;
}

/** Resolves with the next connection the server accepts. */
function nextConnection(server: Server): Promise<ServerConnection> {
  return new Promise((resolve) => server.once('connection', resolve));
}

async function startAdminFor(
  t: import('node:test').TestContext,
  server: Server,
  options: Parameters<typeof startAdmin>[1] = {},
) {
  const admin = await startAdmin(server, options);
  t.after(() => admin.close());
  return admin;
}

test('metrics after real traffic, a frozen peer, a forced close and a refused handshake', async (t) => {
  const { server, port } = await startServer(t, {
    interval: INTERVAL,
    timeout: TIMEOUT,
    sessionTtl: 300,
  });
  const registry = createRegistry();
  // observeServer and startAdmin on the same registry count each event once.
  const observer = observeServer(server, { registry });
  t.after(() => observer.stop());
  const admin = await startAdminFor(t, server, { registry });
  assert.equal(admin.registry, registry);

  // 1. Real traffic: 10 messages each way, then idle heartbeats.
  const accepted = nextConnection(server);
  const client = startClient(t, { port, ...STEADY });
  await opened(client);
  const echo = await accepted;
  echo.on('message', (m) => echo.send(m));
  let echoed = 0;
  client.on('message', () => echoed++);
  for (let i = 0; i < 10; i++) client.send(`m${i}`);
  await waitFor(() => echoed === 10, { timeout: SLOW });
  await waitFor(() => echo.heartbeatStats.pongsReceived >= 2, { timeout: SLOW });

  // 2. A frozen peer: suspect, probes, dead (heartbeat-timeout), then its session expires.
  const frozenAccepted = nextConnection(server);
  const frozen = await RawPeer.connect(t, port);
  await frozen.handshake();
  const frozenConn = await frozenAccepted;
  frozen.freeze();
  const [closeInfo] = (await onceEvent(frozenConn, 'close', { timeout: SLOW })) as [
    { reason: string },
  ];
  assert.equal(closeInfo.reason, 'session-expired');

  // 3. A forced close by the server of a second client.
  const forcedAccepted = nextConnection(server);
  const forcedClient = startClient(t, { port, reconnect: false, ...STEADY });
  await opened(forcedClient);
  const forced = await forcedAccepted;
  forced.close();

  // 4. Garbage instead of HELLO: refused during the handshake.
  const rejected = onceEvent(server, 'rejected', { timeout: SLOW });
  const garbage = netConnect({ host: '127.0.0.1', port });
  t.after(() => garbage.destroy());
  garbage.on('error', () => {});
  garbage.write(Buffer.from('00000005ff00000000', 'hex'));
  await rejected;
  await onceEvent(forcedClient, 'close', { timeout: SLOW });

  const m = await scrape(admin.url);
  const pongsAtScrape = echo.heartbeatStats.pongsReceived;
  // Names: a heartline_ prefix, HELP and TYPE for each family, counters end in _total.
  for (const [name, type] of m.type) {
    assert.ok(name.startsWith('heartline_'), name);
    assert.ok(m.help.get(name), `no HELP for ${name}`);
    if (type === 'counter') assert.ok(name.endsWith('_total'), `${name} is a counter`);
    if (type === 'histogram') assert.ok(name.endsWith('_seconds'), `${name} has its unit`);
  }
  assert.equal(value(m, 'heartline_connections', { state: 'healthy' }), 1);
  for (const state of ['connecting', 'suspect', 'dead', 'disconnected']) {
    assert.equal(value(m, 'heartline_connections', { state }), 0, state);
  }
  assert.equal(value(m, 'heartline_messages_received_total'), 10);
  assert.equal(value(m, 'heartline_messages_sent_total'), 10);
  assert.ok(value(m, 'heartline_received_bytes_total') > 10 * 'm0'.length);
  assert.ok(value(m, 'heartline_sent_bytes_total') > 10 * 'm0'.length);
  assert.ok(value(m, 'heartline_heartbeats_sent_total', { frame: 'ping' }) >= 2);
  assert.ok(value(m, 'heartline_heartbeats_received_total', { frame: 'pong' }) >= 2);
  assert.equal(
    value(m, 'heartline_heartbeats_sent_total', { frame: 'pong' }),
    value(m, 'heartline_heartbeats_received_total', { frame: 'ping' }),
  );
  assert.equal(value(m, 'heartline_heartbeats_missed_total'), 1);
  assert.ok(value(m, 'heartline_heartbeat_probes_total') >= 1);
  assert.ok(value(m, 'heartline_rtt_seconds_count') >= 2);
  assert.ok(value(m, 'heartline_rtt_seconds_sum') < value(m, 'heartline_rtt_seconds_count'));
  // The frozen peer: declared dead within [timeout, timeout + interval + 250 ms] (core bound).
  assert.equal(value(m, 'heartline_detection_latency_seconds_count'), 1);
  const detection = value(m, 'heartline_detection_latency_seconds_sum');
  assert.ok(
    detection >= TIMEOUT / 1000 && detection <= (TIMEOUT + INTERVAL + 250) / 1000,
    `${detection}`,
  );
  assert.equal(value(m, 'heartline_detection_latency_seconds_bucket', { le: '0.5' }), 0);
  assert.equal(value(m, 'heartline_detection_latency_seconds_bucket', { le: '2' }), 1);
  assert.equal(value(m, 'heartline_disconnects_total', { reason: 'heartbeat-timeout' }), 1);
  assert.equal(value(m, 'heartline_closes_total', { reason: 'session-expired' }), 1);
  assert.equal(value(m, 'heartline_closes_total', { reason: 'local' }), 1);
  assert.equal(value(m, 'heartline_sessions_lost_total'), 1);
  assert.equal(value(m, 'heartline_sessions_started_total'), 3);
  assert.equal(value(m, 'heartline_handshake_rejections_total', { reason: 'protocol-error' }), 1);
  assert.equal(value(m, 'heartline_resumes_total'), 0);
  assert.equal(value(m, 'heartline_replay_buffer_bytes'), 0);
  assert.equal(value(m, 'heartline_replay_buffer_messages'), 0);
  assert.equal(value(m, 'heartline_load_level'), 0);
  for (const q of ['p50', 'p99', 'max']) {
    const delay = value(m, `heartline_event_loop_delay_${q}_seconds`);
    assert.ok(delay >= 0 && delay < 5, `${q} ${delay}`);
  }

  // Counters never go down, also across connections that have since closed.
  await waitFor(() => echo.heartbeatStats.pongsReceived > pongsAtScrape, { timeout: SLOW });
  const later = await scrape(admin.url);
  for (const s of m.samples) {
    if (m.type.get(s.name) !== 'counter') continue;
    const now = sampleValue(later, s.name, s.labels) ?? 0;
    assert.ok(
      now >= s.value,
      `${s.name} ${JSON.stringify(s.labels)} fell from ${s.value} to ${now}`,
    );
  }
  assert.ok(
    value(later, 'heartline_heartbeats_received_total', { frame: 'pong' }) >
      value(m, 'heartline_heartbeats_received_total', { frame: 'pong' }),
  );

  // After stop() the counters keep their values and stop counting this server.
  observer.stop();
  await admin.close();
  const frozenAfter = await scrape((await startAdminFor(t, server, { registry })).url);
  assert.equal(value(frozenAfter, 'heartline_closes_total', { reason: 'local' }), 1);
  assert.equal(value(frozenAfter, 'heartline_messages_received_total'), 10);
});

test('a resumed session counts as a reconnect and a resume on both ends', async (t) => {
  const { server, port } = await startServer(t, { interval: INTERVAL, timeout: TIMEOUT });
  const serverRegistry = createRegistry();
  const clientRegistry = createRegistry();
  const so = observeServer(server, { registry: serverRegistry });
  t.after(() => so.stop());
  const client = startClient(t, { port, backoff: { initialDelay: 10, maxDelay: 50 }, ...STEADY });
  const co = observeClient(client, { registry: clientRegistry });
  t.after(() => co.stop());
  await opened(client);
  client.send('before');
  await waitFor(() => client.unackedCount === 0);

  // Reset the client's TCP connection under it: it must reconnect and resume.
  const resumed = onceEvent(client, 'resumed', { timeout: SLOW });
  const lost = onceEvent(client, 'disconnect', { timeout: SLOW });
  resetLink(client);
  const [{ reason }] = (await lost) as [{ reason: string }];
  await resumed;

  const s = parseExposition(await serverRegistry.metrics());
  const c = parseExposition(await clientRegistry.metrics());
  assert.equal(value(s, 'heartline_resumes_total'), 1);
  assert.equal(value(s, 'heartline_reconnects_total'), 1);
  assert.equal(value(s, 'heartline_sessions_started_total'), 1);
  assert.equal(value(c, 'heartline_resumes_total'), 1);
  assert.equal(value(c, 'heartline_reconnects_total'), 1);
  assert.equal(value(c, 'heartline_connections', { state: 'healthy' }), 1);
  assert.equal(value(c, 'heartline_disconnects_total', { reason }), 1);
  assert.equal(value(s, 'heartline_sessions_lost_total'), 0);
  assert.equal(value(c, 'heartline_messages_sent_total'), 1);
});

test('/api/connections describes each connection; bad queries, paths and methods are refused', async (t) => {
  const { server, port } = await startServer(t, { interval: INTERVAL, timeout: TIMEOUT });
  const admin = await startAdminFor(t, server);
  const accepted = nextConnection(server);
  const client = startClient(t, { port, clientId: 'sensor-7', traceId: 'trace-42', ...STEADY });
  await opened(client);
  const conn = await accepted;
  conn.on('message', (m) => conn.send(m));
  let echoed = 0;
  client.on('message', () => echoed++);
  for (let i = 0; i < 3; i++) client.send('hello');
  await waitFor(() => echoed === 3 && conn.rtt !== undefined, { timeout: SLOW });

  const res = await fetch(`${admin.url}/api/connections`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = (await res.json()) as {
    at: number;
    total: number;
    server: { address: string; ready: boolean; states: Record<string, number> };
    connections: ConnectionInfo[];
  };
  assert.ok(Math.abs(body.at - Date.now()) < SLOW);
  assert.equal(body.total, 1);
  assert.equal(body.server.address, `127.0.0.1:${port}`);
  assert.equal(body.server.ready, true);
  assert.equal(body.server.states.healthy, 1);
  const [info] = body.connections;
  assert.ok(info);
  assert.equal(info.id, conn.id);
  assert.equal(info.session, client.sessionId);
  assert.equal(info.client, 'sensor-7');
  assert.equal(info.trace, 'trace-42');
  assert.equal(info.remote, conn.remote);
  assert.equal(info.state, 'healthy');
  assert.ok(typeof info.rtt === 'number' && info.rtt >= 0 && info.rtt < 1000);
  assert.ok(info.lastHeardMsAgo !== null && info.lastHeardMsAgo >= 0 && info.lastHeardMsAgo < SLOW);
  assert.equal(info.messagesIn, 3);
  assert.equal(info.messagesOut, 3);
  assert.ok(info.bytesIn > 0 && info.bytesOut > 0, 'bytes of the live link count');
  assert.equal(info.links, 1);
  assert.equal(info.interval, STEADY.interval);
  assert.equal(info.timeout, STEADY.timeout);
  assert.ok(info.heartbeat.pongsReceived >= 1);
  assert.deepEqual(Object.keys(info.heartbeat).sort(), [
    'pingsReceived',
    'pingsSent',
    'pongsReceived',
    'probes',
  ]);

  const suspects = (await (
    await fetch(`${admin.url}/api/connections?state=suspect,dead`)
  ).json()) as {
    total: number;
    connections: unknown[];
  };
  assert.equal(suspects.total, 0);
  assert.deepEqual(suspects.connections, []);
  const limited = (await (await fetch(`${admin.url}/api/connections?limit=0`)).json()) as {
    total: number;
    connections: unknown[];
  };
  assert.equal(limited.total, 1);
  assert.equal(limited.connections.length, 0);

  const bad = await fetch(`${admin.url}/api/connections?state=sleepy`);
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /state/);
  assert.equal((await fetch(`${admin.url}/api/connections?limit=-1`)).status, 400);
  assert.equal((await fetch(`${admin.url}/nope`)).status, 404);
  const post = await fetch(`${admin.url}/metrics`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  const head = await fetch(`${admin.url}/healthz`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
});

test('/healthz answers while the process lives; /readyz follows listening and draining', async (t) => {
  const { server } = await startServer(t);
  const admin = await startAdminFor(t, server);

  const health = await fetch(`${admin.url}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { status: string }).status, 'ok');
  const ready = await fetch(`${admin.url}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { status: 'ready' });

  // A server that exposes `draining` (the drain feature) is not ready while it drains.
  const hasOwnDraining = 'draining' in server;
  if (!hasOwnDraining) {
    Object.defineProperty(server, 'draining', { value: true, configurable: true });
    const draining = await fetch(`${admin.url}/readyz`);
    assert.equal(draining.status, 503);
    assert.deepEqual(await draining.json(), { status: 'not ready', reason: 'draining' });
    delete (server as { draining?: boolean }).draining;
  }

  await server.close();
  const closed = await fetch(`${admin.url}/readyz`);
  assert.equal(closed.status, 503);
  assert.deepEqual(await closed.json(), { status: 'not ready', reason: 'not listening' });
  assert.equal((await fetch(`${admin.url}/healthz`)).status, 200);
});

/** Reads server-sent events from a response until `until` returns true. */
function readEvents(
  res: IncomingMessage,
  until: (events: Array<{ event: string; data: unknown }>) => boolean,
): Promise<Array<{ event: string; data: unknown }>> {
  return new Promise((resolve, reject) => {
    const events: Array<{ event: string; data: unknown }> = [];
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      let end = buffer.indexOf('\n\n');
      while (end !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) });
        end = buffer.indexOf('\n\n');
      }
      if (until(events)) resolve(events);
    });
    res.on('error', reject);
    res.on('close', () => reject(new Error('the event stream closed early')));
  });
}

test('/api/events streams a hello, snapshots and state changes as they happen', async (t) => {
  const { server, port } = await startServer(t, {
    interval: INTERVAL,
    timeout: TIMEOUT,
    sessionTtl: 60_000,
  });
  const admin = await startAdminFor(t, server, { snapshotInterval: 100 });
  const accepted = nextConnection(server);
  const peer = await RawPeer.connect(t, port);
  await peer.handshake();
  const conn = await accepted;

  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = get(`${admin.url}/api/events`, resolve);
    req.on('error', reject);
    t.after(() => req.destroy());
  });
  assert.equal(res.statusCode, 200);
  assert.match(res.headers['content-type'] ?? '', /^text\/event-stream/);
  peer.freeze();
  const events = await readEvents(res, (es) =>
    es.some((e) => e.event === 'close' && (e.data as { kind: string }).kind === 'disconnect'),
  );
  assert.equal(events[0]?.event, 'hello');
  assert.equal(events[1]?.event, 'snapshot');
  const snapshot = events[1]?.data as {
    connections: ConnectionInfo[];
    server: { connections: number };
  };
  assert.equal(snapshot.server.connections, 1);
  assert.equal(snapshot.connections[0]?.id, conn.id);
  const moves = events
    .filter((e) => e.event === 'state')
    .map((e) => e.data as { conn: string; from: string; to: string });
  assert.deepEqual(
    moves.map((s) => `${s.from}->${s.to}`),
    ['healthy->suspect', 'suspect->dead', 'dead->disconnected'],
  );
  assert.ok(moves.every((s) => s.conn === conn.id));
  const lost = events.find((e) => e.event === 'close')?.data as { reason: string; conn: string };
  assert.equal(lost.reason, 'heartbeat-timeout');
  assert.equal(lost.conn, conn.id);
  assert.ok(events.filter((e) => e.event === 'snapshot').length >= 2, 'snapshots keep coming');
  res.destroy();
});

test('log lines carry the documented fields at the documented levels', async (t) => {
  const out = new PassThrough();
  const lines: Array<Record<string, unknown>> = [];
  let pending = '';
  out.setEncoding('utf8');
  out.on('data', (chunk: string) => {
    pending += chunk;
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) if (line) lines.push(JSON.parse(line));
  });
  const logger = createLogger({ level: 'debug', pretty: false, destination: out });
  const { server, port } = await startServer(t, { interval: INTERVAL, timeout: TIMEOUT });
  const observer = observeServer(server, { logger });
  t.after(() => observer.stop());

  // An ordinary client: open, a few idle heartbeats, a clean close.
  const accepted = nextConnection(server);
  const client = startClient(t, { port, traceId: 'trace-1f', clientId: 'app', ...STEADY });
  const clientLines = createLogger({ level: 'info', pretty: false, destination: out });
  const co = observeClient(client, { logger: clientLines.child({ side: 'client' }) });
  t.after(() => co.stop());
  await opened(client);
  const conn = await accepted;
  // The client leads the idle exchange; the server samples RTT with the first PONG and
  // then every 8 intervals (PROTOCOL.md 7.2).
  await waitFor(
    () => conn.heartbeatStats.pingsReceived >= 3 && conn.heartbeatStats.pongsReceived >= 1,
    { timeout: SLOW },
  );
  const samples = conn.heartbeatStats.pongsReceived;
  assert.equal(conn.settings?.interval, STEADY.interval);
  client.close();
  await onceEvent(conn, 'close', { timeout: SLOW });

  // A frozen peer: suspect and dead are warnings.
  const frozenAccepted = nextConnection(server);
  const frozen = await RawPeer.connect(t, port);
  await frozen.handshake({ traceId: 'trace-frozen' });
  const frozenConn = await frozenAccepted;
  frozen.freeze();
  await onceEvent(frozenConn, 'disconnect', { timeout: SLOW });

  const about = (id: string) => lines.filter((l) => l.conn === id && l.side === undefined);
  const byMsg = (id: string, msg: string) => about(id).filter((l) => l.msg === msg);
  const [open] = byMsg(conn.id, 'connection open');
  assert.ok(open, 'connection open');
  assert.equal(open.level, 30);
  assert.equal(open.trace, 'trace-1f');
  assert.equal(open.client, 'app');
  assert.equal(open.session, conn.sessionId);
  assert.equal(open.remote, conn.remote);
  assert.equal(open.state, 'healthy');
  assert.equal(open.interval, STEADY.interval);

  // Heartbeats: RTT at debug, never one info line per heartbeat.
  const rtts = byMsg(conn.id, 'rtt');
  assert.ok(rtts.length >= samples && rtts.length >= 1, `${rtts.length} rtt lines`);
  assert.ok(rtts.every((l) => l.level === 20 && typeof l.rtt === 'number'));
  const info = about(conn.id).filter((l) => (l.level as number) >= 30);
  assert.deepEqual(
    info.map((l) => l.msg),
    ['connection open', 'connection closed'],
  );
  const [closed] = byMsg(conn.id, 'connection closed');
  assert.equal(closed?.reason, 'remote');
  assert.equal(closed?.state, 'closed');
  assert.equal(closed?.trace, 'trace-1f');

  const frozenLines = about(frozenConn.id);
  const warn = frozenLines.filter((l) => l.level === 40);
  assert.deepEqual(
    warn.map((l) => l.msg),
    ['peer suspect', 'peer dead', 'link lost'],
  );
  assert.ok(warn.every((l) => l.trace === 'trace-frozen' && l.remote === frozenConn.remote));
  assert.equal(warn[0]?.state, 'suspect');
  assert.equal(warn[1]?.state, 'dead');
  assert.ok((warn[1]?.silentMs as number) >= TIMEOUT);
  assert.equal(warn[2]?.reason, 'heartbeat-timeout');
  assert.equal(warn[2]?.state, 'disconnected');
  assert.equal(warn[2]?.error, 'HL_ERR_HEARTBEAT_TIMEOUT');

  // The client's own lines: info level only, so no rtt; the trace id is there too.
  const own = lines.filter((l) => l.side === 'client');
  assert.deepEqual(
    own.map((l) => l.msg),
    ['connection open', 'connection closed'],
  );
  assert.ok(own.every((l) => l.trace === 'trace-1f' && l.conn === client.id));
  assert.equal(own[1]?.reason, 'local');
  assert.equal(pending, '');
});

test('createLogger: readable lines when pretty, a typed error for a bad level', () => {
  const out = new PassThrough();
  let text = '';
  out.setEncoding('utf8');
  out.on('data', (chunk: string) => {
    text += chunk;
  });
  const logger = createLogger({ pretty: true, destination: out });
  logger.warn({ conn: 'c1', reason: 'heartbeat-timeout' }, 'peer dead');
  assert.match(text, /WARN.*peer dead/);
  assert.match(text, /reason: "heartbeat-timeout"/);
  assert.throws(() => JSON.parse(text.split('\n')[0] ?? ''));
  assert.throws(
    () => createLogger({ level: 'loud' as never }),
    (err: unknown) => err instanceof InvalidArgumentError && /"level"/.test(err.message),
  );
});

test('startAdmin refuses bad options before listening', async (t) => {
  const { server } = await startServer(t);
  await assert.rejects(startAdmin(server, { port: 70_000 }), InvalidArgumentError);
  await assert.rejects(startAdmin(server, { host: '' }), InvalidArgumentError);
  await assert.rejects(startAdmin(server, { maxRows: 0 }), InvalidArgumentError);
});

test('stopping every observer removes every listener it added', async (t) => {
  const { server, port } = await startServer(t, { interval: INTERVAL, timeout: TIMEOUT });
  const accepted = nextConnection(server);
  const client = startClient(t, { port, ...STEADY });
  await opened(client);
  const conn = await accepted;
  const count = (emitter: {
    eventNames(): (string | symbol)[];
    listenerCount(e: string | symbol): number;
  }) => emitter.eventNames().reduce((n, e) => n + emitter.listenerCount(e), 0);
  const before = { server: count(server), conn: count(conn), client: count(client) };

  const logger = createLogger({ level: 'debug', pretty: false, destination: new PassThrough() });
  const registry = createRegistry();
  const observers = [
    observeServer(server, { logger, registry }),
    observeServer(server, { registry }),
    observeClient(client, { logger, registry }),
  ];
  const admin = await startAdmin(server, { registry });
  // A dashboard watching: the live feed is subscribed too.
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    get(`${admin.url}/api/events`, resolve).on('error', reject);
  });
  await readEvents(res, (es) => es.some((e) => e.event === 'snapshot'));
  assert.ok(count(server) > before.server && count(conn) > before.conn);

  for (const o of observers) o.stop();
  await admin.close();
  assert.deepEqual({ server: count(server), conn: count(conn), client: count(client) }, before);
});
