/**
 * Child process: frozen peers. Opens raw heartline connections (HELLO by hand, client ids
 * starting with bench-frozen-), answers every PING with a PONG like a live client, and on
 * 'freeze' stops reading and writing on all of them with the sockets left open: the
 * half-open case (the kernel still ACKs), which only a heartbeat can detect.
 *
 *   --port P --count N --addresses A,B,...
 *
 * Commands: connect, freeze (returns the epoch ms of the freeze), status.
 */

import { connect as netConnect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Codec from '../../src/entries/codec.js';
import { heartlineLibPath } from '../lib/build.js';
import { childArgs, emit, numArg, serveParent } from '../lib/child.js';
import { FROZEN_PREFIX } from '../systems/heartline.js';

/** The compiled library's `heartline/codec` entry, beside the main one. */
const codec = (await import(
  pathToFileURL(join(dirname(heartlineLibPath()), 'entries', 'codec.js')).href
)) as typeof Codec;
const { DEFAULT_MAX_FRAME, FrameType, PROTOCOL_VERSION, Decoder, encodeHello, encodePong } = codec;

const args = childArgs();
const port = numArg(args, 'port');
const count = numArg(args, 'count');
const addresses = (args.addresses ?? '').split(',').filter(Boolean);
if (addresses.length === 0) throw new Error('missing --addresses');

interface Peer {
  socket: Socket;
  welcomed: boolean;
}

const peers: Peer[] = [];
let frozen = false;

function open(i: number): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({
      host: '127.0.0.1',
      port,
      localAddress: addresses[i % addresses.length]!,
      noDelay: true,
    });
    const peer: Peer = { socket, welcomed: false };
    const decoder = new Decoder();
    socket.on('error', (err) => {
      if (!peer.welcomed) reject(err);
    });
    socket.once('connect', () => {
      socket.write(
        encodeHello({
          version: PROTOCOL_VERSION,
          interval: 0,
          timeout: 0,
          auth: new Uint8Array(0),
          resume: null,
          clientId: `${FROZEN_PREFIX}${i}`,
          traceId: '',
          maxFrame: DEFAULT_MAX_FRAME,
        }),
      );
    });
    socket.on('data', (chunk: Buffer) => {
      if (frozen) return;
      for (const frame of decoder.push(chunk)) {
        if (frame.type === FrameType.WELCOME && !peer.welcomed) {
          peer.welcomed = true;
          resolve(peer);
        } else if (frame.type === FrameType.PING) {
          socket.write(encodePong(frame.seq, frame.timestamp));
        } else if (frame.type === FrameType.CLOSE && !peer.welcomed) {
          reject(new Error(`refused with CLOSE ${frame.code}: ${frame.reason}`));
        }
      }
    });
  });
}

serveParent({
  connect: async () => {
    for (let i = 0; i < count; i++) peers.push(await open(i));
    return { open: peers.length };
  },
  freeze: () => {
    frozen = true;
    for (const p of peers) p.socket.pause();
    return { frozenAt: performance.timeOrigin + performance.now() };
  },
  status: () => ({ open: peers.filter((p) => !p.socket.destroyed).length, frozen }),
});
emit('ready', { pid: process.pid });
