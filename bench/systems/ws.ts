/**
 * `ws` with the heartbeat its README recommends ("How to detect and close broken
 * connections?"): one setInterval over all clients pings each one and terminates those
 * that did not answer the previous ping. Clients are ws WebSockets, which answer pings by
 * themselves. For messages, binary frames echoed as they come.
 */

import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
import type {
  ClientHandle,
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

type Tracked = WebSocket & { isAlive?: boolean };

function listenHttp(server: HttpServer, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host, backlog: 4096 }, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
}

function closeWss(wss: WebSocketServer, http: HttpServer): Promise<void> {
  for (const ws of wss.clients) ws.terminate();
  return new Promise((resolve) => {
    wss.close(() => http.close(() => resolve()));
    http.closeAllConnections();
  });
}

async function startIdleServer(o: IdleServerOptions): Promise<IdleServer> {
  const http = createHttpServer();
  const wss = new WebSocketServer({ server: http });
  let pongs = 0;
  // The README's recipe, with the interval under test instead of 30 s.
  function heartbeat(this: Tracked): void {
    this.isAlive = true;
    pongs++;
  }
  wss.on('connection', (ws: Tracked) => {
    ws.isAlive = true;
    ws.on('error', () => {});
    ws.on('pong', heartbeat);
  });
  const interval = setInterval(() => {
    for (const ws of wss.clients as Set<Tracked>) {
      if (ws.isAlive === false) {
        ws.terminate();
        continue;
      }
      ws.isAlive = false;
      ws.ping();
    }
  }, o.interval);
  wss.on('close', () => clearInterval(interval));
  const port = await listenHttp(http, '127.0.0.1');
  return {
    port,
    // A peer that stops answering right after a round is terminated two rounds later.
    deadAfterMs: 2 * o.interval,
    heartbeat: `one setInterval(${o.interval} ms) pings every client; no pong by the next round: terminate`,
    connections: () => wss.clients.size,
    heartbeats: () => pongs,
    detections: () => [],
    close: () => closeWss(wss, http),
  };
}

function dial(
  host: string,
  port: number,
  localAddress: string,
  onLost: (r: string) => void,
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${host}:${port}/`, { localAddress });
    let opened = false;
    ws.once('open', () => {
      opened = true;
      resolve(ws);
    });
    ws.on('error', (err) => {
      if (!opened) reject(err);
    });
    ws.once('close', (code) => {
      if (opened) onLost(`close ${code}`);
      else reject(new Error(`ws closed before opening (${code})`));
    });
  });
}

async function openIdleClient(o: IdleClientOptions): Promise<ClientHandle> {
  const ws = await dial(o.host, o.port, o.localAddress, o.onLost);
  return { close: () => ws.terminate() };
}

async function startEchoServer(o: EchoServerOptions): Promise<EchoServer> {
  const http = createHttpServer();
  const wss = new WebSocketServer({ server: http });
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  const port = await listenHttp(http, o.host);
  return { port, close: () => closeWss(wss, http) };
}

async function openEchoClient(o: EchoClientOptions): Promise<EchoClientHandle> {
  const ws = await dial(o.host, o.port, o.localAddress, o.onLost);
  ws.on('message', (data) => o.onMessage(data as Buffer));
  return {
    send: (payload) => ws.send(payload, { binary: true }),
    close: () => ws.terminate(),
  };
}

/**
 * A hand-rolled request/reply over ws, as an application would write it: JSON text
 * frames `{"id":n,"data":"..."}`, the responder parses, answers `{"id":n,"data":"..."}`,
 * the requester finds its promise by id. No timeout, no retry, nothing survives a lost
 * link. `flush` asks for an answer the server gives even while it holds requests.
 */
interface WireRequest {
  id: number;
  data?: string;
  flush?: true;
}

async function startReplyServer(o: ReplyServerOptions): Promise<ReplyServer> {
  const http = createHttpServer();
  const wss = new WebSocketServer({ server: http });
  let holding = false;
  let held: Array<{ ws: WebSocket; req: WireRequest }> = [];
  const answer = (ws: WebSocket, req: WireRequest) =>
    ws.send(JSON.stringify({ id: req.id, data: req.data }));
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('message', (raw) => {
      const req = JSON.parse(String(raw)) as WireRequest;
      if (holding && !req.flush) held.push({ ws, req });
      else answer(ws, req);
    });
  });
  const port = await listenHttp(http, o.host);
  return {
    port,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      const n = held.length;
      for (const { ws, req } of held) answer(ws, req);
      held = [];
      return n;
    },
    held: () => held.length,
    close: () => closeWss(wss, http),
  };
}

async function openRequester(o: RequesterOptions): Promise<Requester> {
  const ws = await dial(o.host, o.port, o.localAddress, o.onLost);
  const waiting = new Map<number, (data: string) => void>();
  let nextId = 0;
  ws.on('message', (raw) => {
    const reply = JSON.parse(String(raw)) as { id: number; data?: string };
    const resolve = waiting.get(reply.id);
    if (!resolve) return;
    waiting.delete(reply.id);
    resolve(reply.data ?? '');
  });
  const ask = (req: Omit<WireRequest, 'id'>) =>
    new Promise<string>((resolve) => {
      const id = ++nextId;
      waiting.set(id, resolve);
      ws.send(JSON.stringify({ id, ...req }));
    });
  return {
    payload: 'text',
    request: (payload) => ask({ data: String(payload) }),
    flushed: async () => {
      await ask({ flush: true });
    },
    close: () => ws.terminate(),
  };
}

export const ws: System = {
  name: 'ws',
  label: 'ws (README heartbeat)',
  startIdleServer,
  openIdleClient,
  startEchoServer,
  openEchoClient,
  startReplyServer,
  openRequester,
};
