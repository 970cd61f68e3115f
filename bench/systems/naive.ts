/**
 * The naive design: what a team writes first. Per connection, a setInterval sends a PING
 * every interval and a setTimeout, refreshed by every frame received, destroys the
 * socket after `timeout` of silence (3 intervals, heartline's default ratio). The frames
 * use the raw-net length-prefixed framing: PING and PONG carry a sequence number and a
 * timestamp like heartline's.
 */

import { createServer, type Socket } from 'node:net';
import { FrameDecoder, frame } from '../lib/framing.js';
import { closeNetServer, dial, listen, watchLost } from './net.js';
import type {
  ClientHandle,
  IdleClientOptions,
  IdleServer,
  IdleServerOptions,
  System,
} from './types.js';

const PING = 1;
const PONG = 2;
/** Type byte, u32 sequence number, f64 timestamp. */
const BODY_BYTES = 13;

function heartbeatFrame(type: number, seq: number, timestamp: number): Buffer {
  const body = Buffer.allocUnsafe(BODY_BYTES);
  body[0] = type;
  body.writeUInt32BE(seq >>> 0, 1);
  body.writeDoubleBE(timestamp, 5);
  return frame(body);
}

async function startIdleServer(o: IdleServerOptions): Promise<IdleServer> {
  const timeout = 3 * o.interval;
  const sockets = new Set<Socket>();
  let pongs = 0;
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    let seq = 0;
    const ping = setInterval(() => {
      socket.write(heartbeatFrame(PING, ++seq, performance.now()));
    }, o.interval);
    const dead = setTimeout(() => socket.destroy(), timeout);
    const decoder = new FrameDecoder((body) => {
      dead.refresh();
      if (body[0] === PONG) pongs++;
      else if (body[0] === PING)
        socket.write(heartbeatFrame(PONG, body.readUInt32BE(1), body.readDoubleBE(5)));
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    socket.on('error', () => {});
    socket.once('close', () => {
      clearInterval(ping);
      clearTimeout(dead);
      sockets.delete(socket);
    });
  });
  const port = await listen(server);
  return {
    port,
    deadAfterMs: timeout,
    heartbeat: `setInterval(${o.interval} ms) PING and a setTimeout(${timeout} ms) refreshed on every frame, per connection`,
    connections: () => sockets.size,
    heartbeats: () => pongs,
    detections: () => [],
    close: () => closeNetServer(server, sockets),
  };
}

async function openIdleClient(o: IdleClientOptions): Promise<ClientHandle> {
  const socket = await dial(o.host, o.port, o.localAddress);
  const decoder = new FrameDecoder((body) => {
    if (body[0] === PING)
      socket.write(heartbeatFrame(PONG, body.readUInt32BE(1), body.readDoubleBE(5)));
  });
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  watchLost(socket, o.onLost);
  return { close: () => socket.destroy() };
}

export const naive: System = {
  name: 'naive',
  label: 'naive (timers per connection)',
  startIdleServer,
  openIdleClient,
};
