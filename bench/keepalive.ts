/**
 * Keepalive probes the kernel sends on idle heartline connections (issue 13): 1,000
 * connections at a 1 s heartbeat held for 20 s, once with the keepalive settings heartline
 * derived before (idle = the interval: 1 s, 1 s x 2) and once with today's derived
 * defaults (idle past timeout + interval). The heartbeat already covers every link, so
 * every probe is a packet both ways that tells nothing new.
 *
 *   node --import tsx bench/keepalive.ts [--quick] [--connections 1000] [--window 20]
 *
 * Server and clients run in two network namespaces joined by a veth pair (as the kernel
 * fault suite builds them), so each namespace's TcpExt TCPKeepAlive counter
 * (/proc/net/netstat: keepalive probes sent) counts this benchmark's sockets and nothing
 * else on the machine. Needs root, iproute2 and nftables; reported as not run without.
 */

import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  createHosts,
  type HostEnd,
  hostsUnavailable,
  run,
  spawnIn,
} from '../test/support/netns.js';
import type { Progress, Step } from './lib/progress.js';
import { round, sleep } from './lib/stats.js';
import {
  type CommonOptions,
  isMain,
  main,
  type Outcome,
  positiveInt,
  type Workload,
} from './lib/workload.js';

/** Parameters of the workload. */
export interface KeepaliveParams extends Record<string, unknown> {
  connections: number;
  interval: number;
  timeout: number;
  /** Seconds after every connection opened before counting. */
  settleS: number;
  windowS: number;
}

/** One configuration. */
export interface KeepaliveRow extends Record<string, unknown> {
  id: string;
  label: string;
  /** The `tcp` option both ends were given ({} = derived defaults). */
  tcp: Record<string, number>;
  connections: number;
  windowS: number;
  /** Keepalive probes sent during the window, by the server's and the clients' kernels. */
  serverProbes: number;
  clientProbes: number;
  /** Both sides per second. */
  probesPerSecond: number;
  /** Both sides per connection per second. */
  probesPerConnectionSecond: number;
}

const CHILD = new URL('./keepalive/child.ts', import.meta.url).pathname;
const PORT = 7100;

/** TcpExt TCPKeepAlive of a namespace: keepalive probes its kernel sent so far. */
function keepaliveProbes(end: HostEnd): number {
  const text = run('ip', ['netns', 'exec', end.ns, 'cat', '/proc/net/netstat']);
  const lines = text.split('\n').filter((l) => l.startsWith('TcpExt:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const i = names.indexOf('TCPKeepAlive');
  if (i < 0) throw new Error('this kernel has no TcpExt TCPKeepAlive counter');
  return Number(values[i]);
}

/** Starts a child inside `end`; resolves once it printed "ready". */
async function start(end: HostEnd, args: string[], what: string): Promise<ChildProcess> {
  const child = spawnIn(end, process.execPath, ['--import', 'tsx', CHILD, ...args]);
  let output = '';
  child.stderr?.on('data', (d) => {
    output += d;
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what} not ready in 60 s: ${output}`)),
      60_000,
    );
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}): ${output}`));
    });
  });
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function measure(
  p: KeepaliveParams,
  id: string,
  label: string,
  tcp: Record<string, number>,
  progress: Progress,
): Promise<KeepaliveRow> {
  const hosts = createHosts();
  const children: ChildProcess[] = [];
  try {
    const hb = [String(p.interval), String(p.timeout), JSON.stringify(tcp)];
    children.push(
      await start(hosts.server, ['server', hosts.server.address, String(PORT), ...hb], 'server'),
    );
    children.push(
      await start(
        hosts.client,
        ['client', hosts.server.address, String(PORT), String(p.connections), ...hb],
        'clients',
      ),
    );
    await sleep(p.settleS * 1000);
    const s0 = keepaliveProbes(hosts.server);
    const c0 = keepaliveProbes(hosts.client);
    const t0 = performance.now();
    while (performance.now() - t0 < p.windowS * 1000) {
      await sleep(500);
      progress.update(
        `keepalive:${id}`,
        Math.min(1, (performance.now() - t0) / (p.windowS * 1000)),
      );
    }
    const seconds = (performance.now() - t0) / 1000;
    const serverProbes = keepaliveProbes(hosts.server) - s0;
    const clientProbes = keepaliveProbes(hosts.client) - c0;
    const perSecond = (serverProbes + clientProbes) / seconds;
    return {
      id,
      label,
      tcp,
      connections: p.connections,
      windowS: round(seconds, 1),
      serverProbes,
      clientProbes,
      probesPerSecond: round(perSecond, 1),
      probesPerConnectionSecond: round(perSecond / p.connections, 3),
    };
  } finally {
    for (const c of children.reverse()) await stop(c);
    hosts.destroy();
  }
}

/** The workload. */
export const keepaliveBench: Workload<KeepaliveParams, KeepaliveRow> = {
  name: 'keepalive',
  title: 'Kernel keepalive probes on idle heartline connections',
  flags: {
    connections: 'connections (default 1000; quick 200)',
    window: 'counting window in s (default 20; quick 5)',
  },
  parameters(o: CommonOptions): KeepaliveParams {
    return {
      connections: positiveInt(o.values.connections, o.quick ? 200 : 1000, 'connections'),
      interval: 1000,
      timeout: 3000,
      settleS: o.quick ? 2 : 5,
      windowS: positiveInt(o.values.window, o.quick ? 5 : 20, 'window'),
    };
  },
  steps(p): Step[] {
    return ['before', 'derived'].map((id) => ({
      id: `keepalive:${id}`,
      label: `keepalive ${id}`,
      weight: p.windowS + p.settleS + 5,
    }));
  },
  async run(p, progress: Progress): Promise<Outcome<KeepaliveRow>> {
    const why = hostsUnavailable();
    if (why) {
      return {
        rows: [],
        targets: [
          {
            id: 'keepalive-probes',
            goal: 'no keepalive probes on live links',
            measured: `not run: ${why}`,
            met: null,
          },
        ],
        notes: [],
      };
    }
    const rows: KeepaliveRow[] = [];
    const configs: [string, string, Record<string, number>][] = [
      [
        'before',
        'idle = the interval (what heartline derived before issue 13): 1 s, 1 s x 2',
        { keepAliveIdle: 1000, keepAliveInterval: 1000, keepAliveCount: 2 },
      ],
      ['derived', 'derived defaults: idle = timeout + interval (4 s), 1 s x 3', {}],
    ];
    for (const [id, label, tcp] of configs) {
      progress.start(`keepalive:${id}`);
      const row = await measure(p, id, label, tcp, progress);
      rows.push(row);
      progress.finish(`keepalive:${id}`, `${row.probesPerSecond} probes/s`);
    }
    const derived = rows.find((r) => r.id === 'derived');
    return {
      rows,
      targets: [
        {
          id: 'keepalive-probes',
          goal: `no keepalive probes on ${p.connections} live idle links at a 1 s heartbeat`,
          measured: rows.map((r) => `${r.id}: ${r.probesPerSecond}/s`).join('; '),
          met: derived !== undefined && derived.serverProbes + derived.clientProbes === 0,
        },
      ],
      notes: [
        `${p.connections} heartline connections, heartbeat ${p.interval} ms / ${p.timeout} ms, idle (no messages), counted for ${p.windowS} s after ${p.settleS} s of settling.`,
        'Server and clients in two network namespaces joined by a veth pair; probes are TcpExt TCPKeepAlive deltas of each namespace (probes sent by that kernel).',
      ],
    };
  },
  summary(rows): string {
    return rows
      .map(
        (r) =>
          `  ${r.label}: ${r.probesPerSecond} probes/s (server ${r.serverProbes}, clients ${r.clientProbes} in ${r.windowS} s; ${r.probesPerConnectionSecond} per connection-second)`,
      )
      .join('\n');
  },
};

if (isMain(import.meta.url)) await main(keepaliveBench);
