/**
 * Raw `net` with no heartbeat: the floor. Idle, a socket costs what Node and the kernel
 * need to keep it open and nothing finds a dead peer. For messages it speaks the same
 * length-prefixed framing as heartline (without heartline's type byte, sequence numbers
 * and acknowledgements), one write per message like heartline.
 */

import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { FrameDecoder, frame } from '../lib/framing.js';
import type {
  ClientHandle,
  EchoClientHandle,
  EchoClientOptions,
  EchoServer,
  EchoServerOptions,
  IdleClientOptions,
  IdleServer,
  System,
} from './types.js';

/** Closes a net server, also destroying every open socket. */
export function closeNetServer(server: Server, sockets: Set<Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  });
}

/** Listens on 127.0.0.1 and a free port. */
export function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host, backlog: 4096 }, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
}

/** Opens a socket from `localAddress`; resolves once connected. */
export function dial(host: string, port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port, localAddress, noDelay: true });
    const onError = (err: Error) => reject(err);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** Calls onLost once when an opened socket closes. */
export function watchLost(socket: Socket, onLost: (reason: string) => void): void {
  let error = '';
  socket.on('error', (err) => {
    error = (err as NodeJS.ErrnoException).code ?? err.message;
  });
  socket.once('close', () => onLost(error || 'closed'));
}

async function startIdleServer(): Promise<IdleServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
  });
  const port = await listen(server);
  return {
    port,
    heartbeat: 'none: a dead peer is never noticed',
    deadAfterMs: null,
    connections: () => sockets.size,
    heartbeats: () => 0,
    detections: () => [],
    close: () => closeNetServer(server, sockets),
  };
}

async function openIdleClient(o: IdleClientOptions): Promise<ClientHandle> {
  const socket = await dial(o.host, o.port, o.localAddress);
  watchLost(socket, o.onLost);
  return { close: () => socket.destroy() };
}

async function startEchoServer(o: EchoServerOptions): Promise<EchoServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    const decoder = new FrameDecoder((body) => socket.write(frame(body)));
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
  });
  const port = await listen(server, o.host);
  return { port, close: () => closeNetServer(server, sockets) };
}

async function openEchoClient(o: EchoClientOptions): Promise<EchoClientHandle> {
  const socket = await dial(o.host, o.port, o.localAddress);
  const decoder = new FrameDecoder(o.onMessage);
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  watchLost(socket, o.onLost);
  return {
    send: (payload) => {
      socket.write(frame(payload));
    },
    close: () => socket.destroy(),
  };
}

export const net: System = {
  name: 'net',
  label: 'raw net (no heartbeat)',
  startIdleServer,
  openIdleClient,
  startEchoServer,
  openEchoClient,
};
