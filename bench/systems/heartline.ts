/**
 * heartline itself, compiled by tsc as users get it (bench/lib/build.ts): the server with
 * its default settings except the interval under test, and the library's reconnecting
 * client (reconnects off, so a lost connection shows up as lost instead of being quietly
 * replaced).
 */

import { connect as netConnect } from 'node:net';
import { pathToFileURL } from 'node:url';
import type * as Heartline from '../../src/index.js';
import type {
  ClientConnection,
  MessageInfo,
  ServerConnection,
  ServerOptions,
} from '../../src/index.js';
import { heartlineLibPath } from '../lib/build.js';
import type {
  AckedSender,
  ClientHandle,
  Detection,
  EchoClientHandle,
  EchoClientOptions,
  EchoServer,
  EchoServerOptions,
  IdleClientOptions,
  IdleServer,
  IdleServerOptions,
  ReplyServer,
  ReplyServerOptions,
  Requester,
  RequesterOptions,
  System,
} from './types.js';

/** The compiled library (loaded from the build the parent process made). */
export const lib = (await import(pathToFileURL(heartlineLibPath()).href)) as typeof Heartline;
const { connect, createServer } = lib;

/** Client ids of the frozen peers the freezer opens; the server watches only those. */
export const FROZEN_PREFIX = 'bench-frozen-';

const epoch = (monotonic: number): number => performance.timeOrigin + monotonic;

function watchFrozen(conn: ServerConnection, detections: Detection[]): void {
  let suspectAt: number | null = null;
  let detection: Detection | null = null;
  conn.on('state', ({ to }) => {
    const now = performance.now();
    if (to === 'suspect') suspectAt = epoch(now);
    if (to === 'dead' && detection === null) {
      // The link is still attached here, so lastHeardAt is the server's own last reading.
      detection = {
        clientId: conn.clientId,
        sinceLastHeardMs: now - conn.lastHeardAt,
        deadAt: epoch(now),
        lastHeardAt: epoch(conn.lastHeardAt),
        suspectAt,
        reason: 'dead',
      };
      detections.push(detection);
    }
  });
  conn.on('disconnect', (info) => {
    if (detection) detection.reason = info.reason;
  });
}

async function startIdleServer(options: IdleServerOptions): Promise<IdleServer> {
  // The heartbeat budget is off so that heartline does the same work as every other
  // system: one exchange per interval per connection at the interval under test. With the
  // default budget (10,000 a second) a server at 19k connections and 1 s would stretch the
  // interval to about 2.4 s (the adaptive heartbeat at work, but not the same workload).
  const serverOptions: ServerOptions & { workers?: number } = {
    interval: options.interval,
    maxHeartbeatsPerSecond: Number.POSITIVE_INFINITY,
  };
  // The multi-process mode (issue 8) is asked for by this option name; a library without
  // it ignores the field, and the harness notices that no worker process appeared.
  if (options.workers > 1) serverOptions.workers = options.workers;
  const server = createServer(serverOptions);
  const detections: Detection[] = [];
  server.on('connection', (conn) => {
    if (conn.clientId.startsWith(FROZEN_PREFIX)) watchFrozen(conn, detections);
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const timeout = server.policy.timeout;
  return {
    port,
    deadAfterMs: timeout,
    heartbeat: `heartline heartbeat: the client PINGs after ${options.interval} ms without sending and the server answers (it pings itself only after 1.25 intervals, plus one PING on a PONG every 8 intervals for its RTT), dead after ${timeout} ms without hearing (one timing wheel)`,
    connections() {
      let n = 0;
      for (const conn of server.connections.values()) {
        if (conn.state === 'healthy' || conn.state === 'suspect') n++;
      }
      return n;
    },
    heartbeats() {
      let n = 0;
      for (const conn of server.connections.values()) {
        const s = conn.heartbeatStats;
        // Each PING this server sent and each one it answered is one exchange (its RTT
        // refresh PINGs, about one in 8 intervals, count too).
        n += s.pingsSent + s.pingsReceived;
      }
      return n;
    },
    detections: () => detections,
    close: () => server.close(),
  };
}

/** Longest a client keeps retrying while the server refuses it as overloaded (ms). */
const ADMISSION_PATIENCE_MS = 120_000;

function openOnce(
  host: string,
  port: number,
  localAddress: string,
  onLost: (reason: string) => void,
): Promise<ClientConnection | { retryAfter: number }> {
  return new Promise((resolve, reject) => {
    const conn = connect({
      host,
      port,
      reconnect: false,
      createSocket: (a) => netConnect({ host: a.host, port: a.port, localAddress, noDelay: true }),
    });
    let opened = false;
    conn.once('open', () => {
      opened = true;
      resolve(conn);
    });
    conn.once('close', (info) => {
      if (opened) onLost(info.reason);
      else if (info.reason === 'overloaded') resolve({ retryAfter: info.retryAfter ?? 1000 });
      else
        reject(new Error(`heartline client closed before opening: ${info.reason} ${info.message}`));
    });
  });
}

/**
 * Opens a client, coming back after the server's retry hint while its admission control
 * turns it away (the accept rate, 1,000 a second by default, refuses most of a burst of
 * thousands): what the library's reconnecting client does, without hiding later losses.
 */
async function open(
  host: string,
  port: number,
  localAddress: string,
  onLost: (reason: string) => void,
): Promise<ClientConnection> {
  const deadline = performance.now() + ADMISSION_PATIENCE_MS;
  for (;;) {
    const r = await openOnce(host, port, localAddress, onLost);
    if (!('retryAfter' in r)) return r;
    if (performance.now() + r.retryAfter > deadline) {
      throw new Error(`refused as overloaded for more than ${ADMISSION_PATIENCE_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, r.retryAfter));
  }
}

async function openIdleClient(o: IdleClientOptions): Promise<ClientHandle> {
  const conn = await open(o.host, o.port, o.localAddress, o.onLost);
  return { close: () => conn.close() };
}

async function startEchoServer(o: EchoServerOptions): Promise<EchoServer> {
  const server = createServer();
  server.on('connection', (conn) => {
    conn.on('message', (data) => conn.send(data));
  });
  const { port } = await server.listen(0, o.host);
  return { port, close: () => server.close() };
}

async function openEchoClient(o: EchoClientOptions): Promise<EchoClientHandle> {
  const conn = await open(o.host, o.port, o.localAddress, o.onLost);
  conn.on('message', (data) => o.onMessage(data));
  return {
    send: (payload) => {
      conn.send(payload);
    },
    close: () => conn.close(),
  };
}

async function startReplyServer(o: ReplyServerOptions): Promise<ReplyServer> {
  const server = createServer();
  let holding = false;
  let held: Array<{ data: Buffer; info: MessageInfo }> = [];
  server.on('connection', (conn) => {
    conn.on('message', (data, info) => {
      // Plain messages (the sendAcked rows) need no answer: their ACK is the library's.
      if (!info.isRequest) return;
      if (holding) held.push({ data, info });
      else info.reply(data);
    });
  });
  const { port } = await server.listen(0, o.host);
  return {
    port,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      const n = held.length;
      for (const { data, info } of held) info.reply(data);
      held = [];
      return n;
    },
    held: () => held.length,
    close: () => server.close(),
  };
}

async function openRequester(o: RequesterOptions): Promise<Requester & AckedSender> {
  const conn = await open(o.host, o.port, o.localAddress, o.onLost);
  return {
    payload: 'binary',
    // The library's defaults: a 30 s timeout per request, sequenced, held until acknowledged.
    request: (payload) => conn.request(payload),
    flushed: () => conn.whenAcked(),
    send: (payload) => {
      conn.send(payload);
    },
    sendAcked: (payload) => conn.sendAcked(payload),
    whenAcked: () => conn.whenAcked(),
    close: () => conn.close(),
  };
}

export const heartline: System = {
  name: 'heartline',
  label: 'heartline',
  startIdleServer,
  openIdleClient,
  startEchoServer,
  openEchoClient,
  startReplyServer,
  openRequester,
};
