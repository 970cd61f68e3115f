/**
 * TLS handshake flood: how many TLS handshakes per second a flood of concurrent clients can
 * force a heartline TLS server to complete, and the server CPU it costs, with admission
 * limits off and on. Since admission runs at the TCP accept (before TLS), a socket the
 * limits refuse costs an accept and a close instead of a key exchange.
 *
 *   npm run bench:tls-flood -- [--seconds 5] [--clients 200] [--baseline DIR]
 *
 * The server runs in a child process (its CPU time is read with process.cpuUsage); the
 * flood runs here, the way a cheap attacker floods: `--clients` loops, each opening a TCP
 * connection, sending a recorded ClientHello (no client-side crypto at all) and, once the
 * server's first flight arrives (its key share, certificate and signature: the expensive
 * half of the handshake), hanging up and starting over. A connection closed before any
 * byte came back counts as refused.
 * `--baseline DIR` adds the same runs against the heartline checkout in DIR (for example
 * the code before this change, where admission ran after the TLS handshake). Results go to
 * bench/results/tls-flood.json and a table on stdout. Not part of `npm run bench`: it needs
 * openssl and keeps a core busy for the whole run.
 */

import { execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import {
  type AddressInfo,
  connect as netConnect,
  createServer as netServer,
  type Socket,
} from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** Server options of each configuration (Infinity travels as the string "Infinity"). */
const CONFIGS: ReadonlyArray<{ name: string; limits: Record<string, number | string> }> = [
  {
    name: 'limits off',
    limits: {
      maxConnections: 'Infinity',
      maxConnectionsPerAddress: 'Infinity',
      acceptRate: 'Infinity',
    },
  },
  {
    name: 'limits on (acceptRate 100/s, 50 per address)',
    limits: { acceptRate: 100, acceptBurst: 100, maxConnectionsPerAddress: 50 },
  },
];

interface ServerReport {
  port: number;
}
interface CpuReport {
  cpuMs: number;
  refused: number;
}

/** Child side: a heartline TLS server from `source`, reporting its port and CPU time. */
async function serve(): Promise<void> {
  const { source, limits, key, cert } = JSON.parse(process.env.TLS_FLOOD_SERVER!) as {
    source: string;
    limits: Record<string, number | string>;
    key: string;
    cert: string;
  };
  const mod = (await import(pathToFileURL(join(source, 'src/index.ts')).href)) as {
    createServer: (o: Record<string, unknown>) => {
      listen(port: number, host: string): Promise<{ port: number }>;
      on(event: 'rejected', fn: () => void): void;
    };
  };
  const options: Record<string, unknown> = {
    tls: { key: readFileSync(key), cert: readFileSync(cert) },
  };
  for (const [k, v] of Object.entries(limits)) options[k] = v === 'Infinity' ? Infinity : v;
  const server = mod.createServer(options);
  let refused = 0;
  server.on('rejected', () => refused++);
  const { port } = await server.listen(0, '127.0.0.1');
  process.send!({ port } satisfies ServerReport);
  process.on('message', () => {
    const u = process.cpuUsage();
    process.send!({ cpuMs: (u.user + u.system) / 1000, refused } satisfies CpuReport);
  });
  process.on('disconnect', () => process.exit(0));
}

/** Asks the server child for its CPU time so far. */
async function cpuOf(child: ReturnType<typeof fork>): Promise<CpuReport> {
  const answer = once(child, 'message');
  child.send('cpu');
  return (await answer)[0] as CpuReport;
}

/** A real ClientHello, recorded by a plain TCP listener from node:tls's client. */
async function recordClientHello(): Promise<Buffer> {
  const recorder = netServer();
  await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
  const { port } = recorder.address() as AddressInfo;
  const connected = once(recorder, 'connection') as Promise<[Socket]>;
  const client = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  client.on('error', () => {});
  const [socket] = await connected;
  const [hello] = (await once(socket, 'data')) as [Buffer];
  socket.destroy();
  client.destroy();
  recorder.close();
  return hello;
}

/**
 * Floods `port` with `clients` loops for `seconds`: each sends `hello`, counts the
 * server's first flight as a forced handshake (or a close without it as refused), and
 * reconnects.
 */
async function flood(
  port: number,
  hello: Buffer,
  clients: number,
  seconds: number,
): Promise<{ handshakes: number; refused: number }> {
  let handshakes = 0;
  let refused = 0;
  let running = true;
  const loop = (): void => {
    if (!running) return;
    let answered = false;
    const s = netConnect({ host: '127.0.0.1', port });
    s.once('connect', () => s.write(hello));
    s.once('data', () => {
      answered = true;
      handshakes++;
      s.destroy();
    });
    s.on('error', () => {});
    s.once('close', () => {
      if (!answered) refused++;
      setImmediate(loop);
    });
  };
  for (let i = 0; i < clients; i++) loop();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  running = false;
  return { handshakes, refused };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      clients: { type: 'string', default: '200' },
      baseline: { type: 'string' },
      out: { type: 'string', default: join(ROOT, 'bench', 'results') },
    },
  });
  const seconds = Number(values.seconds);
  const clients = Number(values.clients);
  const dir = mkdtempSync(join(tmpdir(), 'heartline-tls-flood-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
      ].concat(['-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost']),
      { stdio: 'ignore' },
    );
    const hello = await recordClientHello();
    const sources: Array<[string, string]> = [['this checkout', ROOT]];
    if (values.baseline) sources.push(['baseline', values.baseline]);
    const rows: Array<Record<string, unknown>> = [];
    for (const [label, source] of sources) {
      for (const config of CONFIGS) {
        const child = fork(fileURLToPath(import.meta.url), ['--serve'], {
          cwd: ROOT,
          execArgv: ['--import', 'tsx'],
          env: {
            ...process.env,
            TLS_FLOOD_SERVER: JSON.stringify({ source, limits: config.limits, key, cert }),
          },
          stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        });
        try {
          const { port } = (await once(child, 'message'))[0] as ServerReport;
          const before = await cpuOf(child);
          const counts = await flood(port, hello, clients, seconds);
          const after = await cpuOf(child);
          const row = {
            server: label,
            config: config.name,
            clients,
            seconds,
            handshakesPerSecond: Math.round(counts.handshakes / seconds),
            refusedPerSecond: Math.round(counts.refused / seconds),
            serverCpuPercent: Math.round(((after.cpuMs - before.cpuMs) / (seconds * 1000)) * 100),
            serverRejectedEvents: after.refused - before.refused,
          };
          rows.push(row);
          process.stdout.write(
            `${label.padEnd(14)} ${config.name.padEnd(46)} ${String(row.handshakesPerSecond).padStart(6)} handshakes/s ${String(row.refusedPerSecond).padStart(6)} refused/s  server CPU ${row.serverCpuPercent}%\n`,
          );
        } finally {
          child.kill();
          await once(child, 'exit');
        }
        // Let the flood's sockets close before the next run.
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    mkdirSync(values.out, { recursive: true });
    const path = join(values.out, 'tls-flood.json');
    writeFileSync(
      path,
      `${JSON.stringify(
        {
          name: 'tls-flood',
          startedAt: new Date().toISOString(),
          machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
          rows,
        },
        null,
        2,
      )}\n`,
    );
    process.stdout.write(`results: ${path}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--serve')) void serve();
else
  main().catch((err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exitCode = 1;
  });
