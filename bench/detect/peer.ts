/**
 * One side of the detection benchmark, run as its own process (inside a network
 * namespace where the run needs kernel faults): heartline servers and clients with a
 * chosen detector and TCP options, or raw TCP sockets with only the kernel's keepalive
 * and TCP_USER_TIMEOUT. Optional event-loop stalls model GC and SIGSTOP-like pauses.
 *
 * Usage: node --import tsx bench/detect/peer.ts '<PeerArgs as JSON>'
 * Prints one JSON object per line: {"event":"ready",...}, then {"event":"down",...} for
 * every link that ended, with `ts` (epoch ms) and the reason or errno.
 */

import { connect as netConnect, createServer as netServer, type Socket } from 'node:net';
import { connect } from '../../src/client/client.js';
import {
  type DetectorFactory,
  fixedDetector,
  type PhiAccrualOptions,
  phiDetector,
} from '../../src/health/index.js';
import { applyTcpOptions, readTcpOptions, type TcpSocketSettings } from '../../src/net/sockopts.js';
import type { TcpOptions } from '../../src/options.js';
import { createServer } from '../../src/server/server.js';
import { mulberry32 } from '../../test/support/prng.js';

/** A failure detector by name. */
export type DetectorSpec = { kind: 'fixed' } | { kind: 'phi'; options: PhiAccrualOptions };

/** Event-loop stalls: uniform(0, maxMs) long, minGapMs + exponential(everyMs) apart. */
export interface PauseSpec {
  everyMs: number;
  maxMs: number;
  minGapMs: number;
  seed: number;
}

interface HeartlineCommon {
  host: string;
  port: number;
  interval: number;
  timeout: number;
  detector: DetectorSpec;
  tcp: TcpOptions | false;
  pauses?: PauseSpec;
}

/** What a peer process runs. */
export type PeerArgs =
  | ({ mode: 'hl-server' } & HeartlineCommon)
  | ({ mode: 'hl-client'; conns: number; sendEvery: number } & HeartlineCommon)
  | { mode: 'raw-server'; host: string; ports: { port: number; tcp: TcpSocketSettings | null }[] }
  | {
      mode: 'raw-client';
      host: string;
      targets: { port: number; tcp: TcpSocketSettings | null; sendEvery: number; conns: number }[];
    };

function out(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ ts: Date.now(), event, ...fields })}\n`);
}

function detectorOf(spec: DetectorSpec): DetectorFactory {
  return spec.kind === 'fixed' ? fixedDetector() : phiDetector(spec.options);
}

/** Blocks the event loop now and then, as a long GC or a stopped process would. */
function stallNowAndThen(p: PauseSpec | undefined): void {
  if (!p) return;
  const random = mulberry32(p.seed);
  const next = (): void => {
    const gap = p.minGapMs + -Math.log(1 - random()) * p.everyMs;
    setTimeout(() => {
      const end = performance.now() + random() * p.maxMs;
      while (performance.now() < end) {
        // stalled: nothing else in this process runs
      }
      next();
    }, gap);
  };
  next();
}

function hlServer(a: Extract<PeerArgs, { mode: 'hl-server' }>): void {
  const server = createServer({
    interval: a.interval,
    timeout: a.timeout,
    detector: detectorOf(a.detector),
    tcp: a.tcp,
  });
  server.on('connection', (conn) => {
    conn.on('message', (m) => conn.send(m));
    conn.on('disconnect', (i) => out('down', { side: 'server', id: conn.id, reason: i.reason }));
  });
  void server.listen(a.port, a.host).then(({ port }) => {
    out('ready', { port });
    stallNowAndThen(a.pauses);
  });
}

function hlClient(a: Extract<PeerArgs, { mode: 'hl-client' }>): void {
  let open = 0;
  for (let i = 0; i < a.conns; i++) {
    const conn = connect({
      servers: `${a.host}:${a.port}`,
      interval: a.interval,
      timeout: a.timeout,
      detector: detectorOf(a.detector),
      tcp: a.tcp,
    });
    conn.once('open', () => {
      open++;
      if (open === a.conns) out('ready', { conns: open, tcp: conn.tcpOptions() });
    });
    conn.on('disconnect', (info) => out('down', { side: 'client', id: i, reason: info.reason }));
    if (a.sendEvery > 0) {
      setInterval(() => {
        if (conn.state === 'healthy' || conn.state === 'suspect') conn.send('x'.repeat(64));
      }, a.sendEvery).unref();
    }
  }
  stallNowAndThen(a.pauses);
}

function watch(socket: Socket, side: string, id: string): void {
  let reported = false;
  const down = (reason: string) => {
    if (reported) return;
    reported = true;
    out('down', { side, id, reason });
  };
  socket.on('error', (err) => down((err as NodeJS.ErrnoException).code ?? err.message));
  socket.on('close', () => down('close'));
  socket.on('end', () => down('eof'));
}

function rawServer(a: Extract<PeerArgs, { mode: 'raw-server' }>): void {
  let ready = 0;
  for (const { port, tcp } of a.ports) {
    const server = netServer((socket) => {
      if (tcp) applyTcpOptions(socket, tcp);
      socket.on('data', (d) => socket.write(d)); // echo: the server has data in flight too
      watch(socket, 'server', String(port));
    });
    server.listen(port, a.host, () => {
      ready++;
      if (ready === a.ports.length) out('ready', {});
    });
  }
}

function rawClient(a: Extract<PeerArgs, { mode: 'raw-client' }>): void {
  const total = a.targets.reduce((n, t) => n + t.conns, 0);
  let open = 0;
  const readBack: Record<string, unknown> = {};
  for (const { port, tcp, sendEvery, conns } of a.targets) {
    for (let i = 0; i < conns; i++) {
      const socket = netConnect(port, a.host);
      socket.on('connect', () => {
        if (tcp) applyTcpOptions(socket, tcp);
        readBack[port] = readTcpOptions(socket);
        if (sendEvery > 0) {
          const timer = setInterval(() => {
            if (!socket.destroyed) socket.write(Buffer.alloc(64));
          }, sendEvery);
          timer.unref();
          socket.once('close', () => clearInterval(timer));
        }
        open++;
        if (open === total) out('ready', { tcp: readBack });
      });
      watch(socket, 'client', String(port));
    }
  }
}

const args = JSON.parse(process.argv[2] ?? '{}') as PeerArgs;
switch (args.mode) {
  case 'hl-server':
    hlServer(args);
    break;
  case 'hl-client':
    hlClient(args);
    break;
  case 'raw-server':
    rawServer(args);
    break;
  case 'raw-client':
    rawClient(args);
    break;
  default:
    process.stderr.write(`unknown mode in ${process.argv[2]}\n`);
    process.exit(2);
}
