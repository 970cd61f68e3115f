/**
 * Socket.IO with its own heartbeat: the server pings every `pingInterval` and drops a
 * client whose pong is not back within `pingTimeout`; both are set to the interval under
 * test. Clients are socket.io-client over the WebSocket transport (no long-polling
 * phase), one Manager each (`forceNew`), since by default clients to one URL would share
 * a single connection.
 */

import { createServer as createHttpServer } from 'node:http';
import { Server } from 'socket.io';
import { io, type ManagerOptions, type SocketOptions } from 'socket.io-client';
import type {
  ClientHandle,
  IdleClientOptions,
  IdleServer,
  IdleServerOptions,
  ReplyServer,
  ReplyServerOptions,
  Requester,
  RequesterOptions,
  System,
} from './types.js';

async function startIdleServer(o: IdleServerOptions): Promise<IdleServer> {
  const http = createHttpServer();
  const server = new Server(http, { pingInterval: o.interval, pingTimeout: o.interval });
  server.on('connection', () => {});
  const port = await new Promise<number>((resolve, reject) => {
    http.once('error', reject);
    http.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
      const a = http.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
  return {
    port,
    deadAfterMs: 2 * o.interval,
    heartbeat: `pingInterval ${o.interval} ms, pingTimeout ${o.interval} ms (engine.io: one timer per connection)`,
    connections: () => server.engine.clientsCount,
    heartbeats: () => null,
    detections: () => [],
    close: async () => {
      http.closeAllConnections();
      await server.close();
    },
  };
}

async function openIdleClient(o: IdleClientOptions): Promise<ClientHandle> {
  // localAddress is passed through to the ws transport (engine.io-client picks it).
  const options: Partial<ManagerOptions & SocketOptions> & { localAddress: string } = {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    localAddress: o.localAddress,
  };
  const socket = io(`http://${o.host}:${o.port}`, options);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (err) => reject(err));
  });
  socket.once('disconnect', (reason) => o.onLost(reason));
  return { close: () => socket.disconnect() };
}

/** Socket.IO's acknowledgement callback: the responder's side of `emitWithAck`. */
type Ack = (data: unknown) => void;

/**
 * Requests are `emitWithAck('req', payload)` answered by the handler's callback, as the
 * Socket.IO docs show; no timeout (`socket.timeout(ms)` would add one timer per request).
 * The 'flush' event is answered even while the server holds requests.
 */
async function startReplyServer(o: ReplyServerOptions): Promise<ReplyServer> {
  const http = createHttpServer();
  const server = new Server(http);
  let holding = false;
  let held: Array<{ data: unknown; ack: Ack }> = [];
  server.on('connection', (socket) => {
    socket.on('req', (data: unknown, ack: Ack) => {
      if (holding) held.push({ data, ack });
      else ack(data);
    });
    socket.on('flush', (ack: Ack) => ack(null));
  });
  const port = await new Promise<number>((resolve, reject) => {
    http.once('error', reject);
    http.listen({ port: 0, host: o.host }, () => {
      const a = http.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
  return {
    port,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      const n = held.length;
      for (const { data, ack } of held) ack(data);
      held = [];
      return n;
    },
    held: () => held.length,
    close: async () => {
      http.closeAllConnections();
      await server.close();
    },
  };
}

async function openRequester(o: RequesterOptions): Promise<Requester> {
  const options: Partial<ManagerOptions & SocketOptions> & { localAddress: string } = {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    localAddress: o.localAddress,
  };
  const socket = io(`http://${o.host}:${o.port}`, options);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (err) => reject(err));
  });
  socket.once('disconnect', (reason) => o.onLost(reason));
  return {
    payload: 'text',
    request: (payload) => socket.emitWithAck('req', payload) as Promise<string>,
    flushed: async () => {
      await socket.emitWithAck('flush');
    },
    close: () => socket.disconnect(),
  };
}

export const socketio: System = {
  name: 'socketio',
  label: 'Socket.IO',
  startIdleServer,
  openIdleClient,
  startReplyServer,
  openRequester,
};
