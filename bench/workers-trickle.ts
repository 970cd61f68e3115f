/**
 * The worker-pool primary under trickled HELLOs (SECURITY.md: "Trickle a huge HELLO"):
 * `--clients` raw sockets each write a HELLO `--chunk` bytes at a time, one chunk per
 * client every `--every` ms, for `--seconds` (with --reconnect, a client the server closed
 * starts over on a new socket at once).
 * Prints one JSON line: the CPU the server's first process (the primary, or the single
 * process with --workers 0) used, in seconds and as a share of one core.
 *
 *   node --import tsx bench/workers-trickle.ts [--hello 1mib|max] [--workers 2]
 *     [--clients 40] [--chunk 128] [--every 1] [--seconds 10] [--reconnect] [--root DIR]
 *
 * --hello 1mib announces a 1 MiB HELLO (more than any HELLO can be); max is the longest
 * valid HELLO (196,666 bytes). --root runs another checkout's server (say, the code before
 * a change) through its test/fixtures/workers-server.ts.
 */

import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeHello } from '../src/protocol/codec.js';
import { DEFAULT_MAX_FRAME, FrameType, PROTOCOL_VERSION } from '../src/protocol/frames.js';
import { cpuSeconds } from './lib/procfs.js';

const { values } = parseArgs({
  options: {
    hello: { type: 'string', default: '1mib' },
    workers: { type: 'string', default: '2' },
    clients: { type: 'string', default: '40' },
    chunk: { type: 'string', default: '128' },
    every: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '10' },
    reconnect: { type: 'boolean', default: false },
    root: { type: 'string', default: join(import.meta.dirname, '..') },
  },
});
const clients = Number(values.clients);
const chunk = Number(values.chunk);
const seconds = Number(values.seconds);

function helloBytes(kind: string): Buffer {
  if (kind === 'max') {
    return encodeHello({
      version: PROTOCOL_VERSION,
      interval: 0,
      timeout: 0,
      auth: Buffer.alloc(0xffff, 1),
      resume: null,
      clientId: 'c'.repeat(0xffff),
      traceId: 't'.repeat(0xffff),
      maxFrame: DEFAULT_MAX_FRAME,
    });
  }
  // A 1 MiB frame whose first bytes say HELLO, version 1; the rest never gets that far.
  const size = 1024 * 1024 - 8;
  const bytes = Buffer.alloc(4 + size);
  bytes.writeUInt32BE(size);
  bytes[4] = FrameType.HELLO;
  bytes[5] = PROTOCOL_VERSION;
  return bytes;
}

const hello = helloBytes(values.hello);
const server = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    join(values.root, 'test', 'fixtures', 'workers-server.ts'),
    '--workers',
    values.workers,
    '--handshake-timeout',
    String(seconds * 1000 * 2),
  ],
  { cwd: values.root, stdio: ['ignore', 'pipe', 'inherit'] },
);
const port = await new Promise<number>((resolve, reject) => {
  let text = '';
  server.stdout!.setEncoding('utf8').on('data', (c: string) => {
    text += c;
    const m = /"event":"listening"[^\n]*"port":(\d+)/.exec(text);
    if (m) resolve(Number(m[1]));
  });
  server.once('exit', () => reject(new Error('the server exited before listening')));
});
// Drain the server's output (its 'rejected' lines) so that it never blocks on the pipe.
server.stdout!.resume();

let sent = 0;
let connections = 0;
let stopped = false;
const sockets = new Set<Socket>();

/** One client: writes the HELLO a chunk at a time; with --reconnect, starts over when closed. */
function trickle(): void {
  if (stopped) return;
  connections++;
  const socket = connect({ host: '127.0.0.1', port });
  sockets.add(socket);
  let at = 0;
  let timer: NodeJS.Timeout | null = null;
  socket.on('error', () => {});
  socket.on('data', () => {}); // WELCOME or CLOSE: ignored
  socket.once('connect', () => {
    timer = setInterval(() => {
      if (at >= hello.length) return;
      socket.write(hello.subarray(at, at + chunk));
      sent += Math.min(chunk, hello.length - at);
      at += chunk;
      if (at >= hello.length) socket.end();
    }, Number(values.every));
  });
  socket.once('close', () => {
    if (timer) clearInterval(timer);
    sockets.delete(socket);
    if (values.reconnect) trickle();
  });
}

const pid = server.pid!;
const before = cpuSeconds(pid);
const started = performance.now();
for (let i = 0; i < clients; i++) trickle();
await new Promise((r) => setTimeout(r, seconds * 1000));
stopped = true;
const cpu = cpuSeconds(pid) - before;
const wall = (performance.now() - started) / 1000;
for (const s of sockets) s.destroy();
server.kill('SIGTERM');
process.stdout.write(
  `${JSON.stringify({
    root: values.root,
    hello: values.hello,
    helloBytes: hello.length,
    workers: Number(values.workers),
    reconnect: values.reconnect,
    clients,
    chunk,
    seconds: Math.round(wall * 10) / 10,
    connections,
    sentMiB: Math.round((sent / 2 ** 20) * 10) / 10,
    serverCpuSeconds: Math.round(cpu * 100) / 100,
    coreShare: `${Math.round((100 * cpu) / wall)}%`,
  })}\n`,
);
