/**
 * Raw `net` with no heartbeat: the floor. Idle, a socket costs what Node and the kernel
 * need to keep it open and nothing finds a dead peer. For messages it speaks the same
 * length-prefixed framing as heartline (without heartline's type byte, sequence numbers
 * and acknowledgements), one write per message like heartline.
 */

import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { FrameDecoder, frame, PREFIX_BYTES } from '../lib/framing.js';
import type {
  ClientHandle,
  EchoClientHandle,
  EchoClientOptions,
  EchoServer,
  EchoServerOptions,
  IdleClientOptions,
  IdleServer,
  ReplyServer,
  ReplyServerOptions,
  Requester,
  RequesterOptions,
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

/**
 * Request/reply on the same framing: the body is a u32 request id, then the payload; the
 * responder sends the body back as it came. Id 0 is a flush, answered even while the
 * server holds requests. The floor: no JSON, no timeout, no acknowledgement.
 */
const ID_BYTES = 4;

async function startReplyServer(o: ReplyServerOptions): Promise<ReplyServer> {
  const sockets = new Set<Socket>();
  let holding = false;
  let held: Array<{ socket: Socket; body: Buffer }> = [];
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    const decoder = new FrameDecoder((body) => {
      // The decoder hands out views into the chunk: a held body needs its own copy.
      if (holding && body.readUInt32BE(0) !== 0) held.push({ socket, body: Buffer.from(body) });
      else socket.write(frame(body));
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
  });
  const port = await listen(server, o.host);
  return {
    port,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      const n = held.length;
      for (const { socket, body } of held) socket.write(frame(body));
      held = [];
      return n;
    },
    held: () => held.length,
    close: () => closeNetServer(server, sockets),
  };
}

async function openRequester(o: RequesterOptions): Promise<Requester> {
  const socket = await dial(o.host, o.port, o.localAddress);
  watchLost(socket, o.onLost);
  const waiting = new Map<number, (reply: Buffer) => void>();
  let nextId = 0;
  const decoder = new FrameDecoder((body) => {
    const id = body.readUInt32BE(0);
    const resolve = waiting.get(id);
    if (!resolve) return;
    waiting.delete(id);
    resolve(body.subarray(ID_BYTES));
  });
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  const ask = (id: number, payload: Buffer) =>
    new Promise<Buffer>((resolve) => {
      waiting.set(id, resolve);
      // Prefix, id and payload in one buffer: one copy, one write.
      const out = Buffer.allocUnsafe(PREFIX_BYTES + ID_BYTES + payload.length);
      out.writeUInt32BE(ID_BYTES + payload.length, 0);
      out.writeUInt32BE(id, PREFIX_BYTES);
      out.set(payload, PREFIX_BYTES + ID_BYTES);
      socket.write(out);
    });
  return {
    payload: 'binary',
    request: (payload) => {
      // Ids run 1 to 2^32 - 1 and wrap; 0 is the flush.
      nextId = nextId === 0xffff_ffff ? 1 : nextId + 1;
      return ask(nextId, payload as Buffer);
    },
    flushed: async () => {
      await ask(0, Buffer.alloc(0));
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
  startReplyServer,
  openRequester,
};
