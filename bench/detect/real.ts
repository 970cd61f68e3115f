/**
 * The real-socket halves of the detection benchmark.
 *
 * {@link detectUnderJitter}: heartline servers and clients in separate processes, each
 * stalling its event loop now and then, talk through the chaos proxy (src/chaos) with
 * latency and jitter in both directions; after a warm-up the proxy blackholes every pair
 * (bytes dropped, sockets open: no FIN, no RST) and each side's detection time is
 * measured from that moment. One run per detector configuration, all at once.
 *
 * {@link kernelComparison}: two network namespaces (test/support/netns.ts); raw TCP
 * sockets with only the kernel's keepalive and TCP_USER_TIMEOUT, and heartline links,
 * side by side; nftables then drops everything both ways and each side's detection time
 * is measured, with data in flight and on idle connections.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createChaosProxy } from '../../src/chaos/proxy.js';
import type { TcpSocketSettings } from '../../src/net/sockopts.js';
import {
  addRule,
  clearRules,
  createHosts,
  type HostEnd,
  removeStaleHosts,
} from '../../test/support/netns.js';
import type { DetectorSpec, PauseSpec, PeerArgs } from './peer.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PEER = join(ROOT, 'bench', 'detect', 'peer.ts');

/** One event a peer printed. */
interface PeerEvent {
  ts: number;
  event: string;
  [k: string]: unknown;
}

/** A peer process and what it printed. */
class PeerProcess {
  readonly events: PeerEvent[] = [];
  stderr = '';
  exited = false;

  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) this.events.push(JSON.parse(line) as PeerEvent);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      this.stderr += c;
    });
    child.once('exit', () => {
      this.exited = true;
    });
  }

  static start(args: PeerArgs, ns?: HostEnd): PeerProcess {
    const node = [process.execPath, '--import', 'tsx', PEER, JSON.stringify(args)];
    const child = ns
      ? spawn('ip', ['netns', 'exec', ns.ns, ...node], { cwd: ROOT })
      : spawn(node[0]!, node.slice(1), { cwd: ROOT });
    return new PeerProcess(child);
  }

  async ready(timeoutMs = 30_000): Promise<PeerEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.find((x) => x.event === 'ready');
      if (e) return e;
      if (this.exited || Date.now() > deadline) {
        throw new Error(`peer not ready: ${this.stderr.slice(-2000)}`);
      }
      await sleep(50);
    }
  }

  downs(): PeerEvent[] {
    return this.events.filter((e) => e.event === 'down');
  }

  stop(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

// ---------------------------------------------------------------------------------------

/** A detector configuration under test. */
export interface DetectorConfig {
  name: string;
  interval: number;
  timeout: number;
  detector: DetectorSpec;
}

/** What one configuration showed on real sockets. */
export interface JitterResult {
  name: string;
  /** Detection times (ms from the blackhole), server side and client side. */
  server: number[];
  client: number[];
  /** Links that did not detect within the window. */
  missed: number;
  /** DEADs of live links during the warm-ups. */
  falseDeads: number;
  connectionMinutes: number;
}

/** Options of {@link detectUnderJitter}. */
export interface JitterOptions {
  conns: number;
  rounds: number;
  warmupMs: number;
  latencyMs: number;
  jitterMs: number;
  pauses: Omit<PauseSpec, 'seed'>;
}

/** Fixed versus adaptive detectors on loopback through the chaos proxy. */
export async function detectUnderJitter(
  configs: DetectorConfig[],
  o: JitterOptions,
  progress: (line: string) => void,
): Promise<JitterResult[]> {
  const results = new Map<string, JitterResult>(
    configs.map((c) => [
      c.name,
      { name: c.name, server: [], client: [], missed: 0, falseDeads: 0, connectionMinutes: 0 },
    ]),
  );
  for (let round = 0; round < o.rounds; round++) {
    const peers: PeerProcess[] = [];
    const proxies: Awaited<ReturnType<typeof createChaosProxy>>[] = [];
    try {
      const runs = await Promise.all(
        configs.map(async (c, k) => {
          const common = {
            host: '127.0.0.1',
            interval: c.interval,
            timeout: c.timeout,
            detector: c.detector,
            tcp: false as const,
          };
          const server = PeerProcess.start({
            mode: 'hl-server',
            ...common,
            port: 0,
            pauses: { ...o.pauses, seed: round * 1000 + k * 2 + 1 },
          });
          peers.push(server);
          const { port } = (await server.ready()) as unknown as { port: number };
          const proxy = await createChaosProxy({ target: { host: '127.0.0.1', port } });
          proxies.push(proxy);
          proxy.setLatency(o.latencyMs, o.jitterMs, 'both');
          const client = PeerProcess.start({
            mode: 'hl-client',
            ...common,
            port: proxy.port,
            conns: o.conns,
            sendEvery: 0,
            pauses: { ...o.pauses, seed: round * 1000 + k * 2 + 2 },
          });
          peers.push(client);
          await client.ready(60_000);
          return { c, server, client, proxy };
        }),
      );
      progress(
        `round ${round + 1}/${o.rounds}: ${configs.length} x ${o.conns} links warming up for ${o.warmupMs / 1000} s`,
      );
      const started = Date.now();
      await sleep(o.warmupMs);
      const t0 = Date.now();
      for (const r of runs) r.proxy.blackhole('both');
      const window = Math.max(...configs.map((c) => c.timeout)) * 3 + 2000;
      await until(
        () =>
          runs.every(
            (r) =>
              downsAfter(r.server, t0).length >= o.conns &&
              downsAfter(r.client, t0).length >= o.conns,
          ),
        window,
      );
      for (const r of runs) {
        const res = results.get(r.c.name)!;
        const before = [...r.server.downs(), ...r.client.downs()].filter((e) => e.ts < t0);
        res.falseDeads += before.length;
        res.connectionMinutes += (o.conns * (t0 - started)) / 60_000;
        const s = firstPerLink(downsAfter(r.server, t0)).map((e) => e.ts - t0);
        const cl = firstPerLink(downsAfter(r.client, t0)).map((e) => e.ts - t0);
        res.server.push(...s);
        res.client.push(...cl);
        res.missed += 2 * o.conns - s.length - cl.length;
      }
    } finally {
      for (const p of peers) p.stop();
      await Promise.all(proxies.map((p) => p.close()));
    }
  }
  return [...results.values()];
}

function downsAfter(p: PeerProcess, t0: number): PeerEvent[] {
  return p.downs().filter((e) => e.ts >= t0);
}

/** The first down of each link (a client that reconnects may report more). */
function firstPerLink(events: PeerEvent[]): PeerEvent[] {
  const seen = new Set<string>();
  return events.filter((e) => {
    const id = String(e.id);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

// ---------------------------------------------------------------------------------------

/** One row of the kernel comparison. */
export interface KernelResult {
  name: string;
  traffic: 'data in flight' | 'idle';
  /** The options the client's socket had, read back with getsockopt. */
  socket: unknown;
  server: number[];
  client: number[];
  /** Links (of both sides) that had not noticed when the window closed. */
  undetected: number;
  reasons: string[];
}

/** Options of {@link kernelComparison}. */
export interface KernelOptions {
  conns: number;
  windowMs: number;
  interval: number;
  timeout: number;
}

/**
 * Raw sockets with the kernel's defaults, with tuned keepalive, with tuned keepalive and
 * TCP_USER_TIMEOUT, and heartline links (heartbeat alone, and heartbeat with the derived
 * TCP options), all between the same two namespaces when every packet starts being dropped.
 */
export async function kernelComparison(
  o: KernelOptions,
  progress: (line: string) => void,
): Promise<KernelResult[]> {
  removeStaleHosts();
  const hosts = createHosts();
  const peers: PeerProcess[] = [];
  try {
    const tuned: TcpSocketSettings = {
      keepAlive: true,
      keepAliveIdle: 1000,
      keepAliveInterval: 1000,
      keepAliveCount: 2,
    };
    const raw: { name: string; tcp: TcpSocketSettings; traffic: KernelResult['traffic'] }[] = [];
    for (const traffic of ['data in flight', 'idle'] as const) {
      raw.push({
        name: 'OS keepalive defaults (setKeepAlive(true))',
        tcp: { keepAlive: true },
        traffic,
      });
      raw.push({ name: 'tuned keepalive 1 s / 1 s x 2', tcp: tuned, traffic });
      raw.push({
        name: `tuned keepalive + TCP_USER_TIMEOUT ${o.timeout} ms`,
        tcp: { ...tuned, userTimeout: o.timeout },
        traffic,
      });
    }
    const rawPorts = raw.map((r, i) => ({ ...r, port: 8001 + i }));
    const hl = [
      { name: 'heartline heartbeat alone (tcp: false)', tcp: false as const, port: 7001 },
      { name: 'heartline heartbeat + derived TCP options (default)', tcp: {}, port: 7002 },
    ];
    const rawServer = PeerProcess.start(
      {
        mode: 'raw-server',
        host: hosts.server.address,
        ports: rawPorts.map((r) => ({ port: r.port, tcp: r.tcp })),
      },
      hosts.server,
    );
    peers.push(rawServer);
    const hlServers = hl.map((h) =>
      PeerProcess.start(
        {
          mode: 'hl-server',
          host: hosts.server.address,
          port: h.port,
          interval: o.interval,
          timeout: o.timeout,
          detector: { kind: 'fixed' },
          tcp: h.tcp,
        },
        hosts.server,
      ),
    );
    peers.push(...hlServers);
    await Promise.all([rawServer.ready(), ...hlServers.map((s) => s.ready())]);
    const rawClient = PeerProcess.start(
      {
        mode: 'raw-client',
        host: hosts.server.address,
        targets: rawPorts.map((r) => ({
          port: r.port,
          tcp: r.tcp,
          sendEvery: r.traffic === 'idle' ? 0 : 100,
          conns: o.conns,
        })),
      },
      hosts.client,
    );
    peers.push(rawClient);
    const hlClients = hl.map((h) =>
      PeerProcess.start(
        {
          mode: 'hl-client',
          host: hosts.server.address,
          port: h.port,
          conns: o.conns,
          interval: o.interval,
          timeout: o.timeout,
          detector: { kind: 'fixed' },
          tcp: h.tcp,
          sendEvery: 100,
        },
        hosts.client,
      ),
    );
    peers.push(...hlClients);
    const rawReady = await rawClient.ready(60_000);
    const hlReady = await Promise.all(hlClients.map((c) => c.ready(60_000)));
    await sleep(2000);
    progress(`kernel comparison: dropping every packet both ways for ${o.windowMs / 1000} s`);
    addRule(hosts.client, 'in', 'meta l4proto tcp drop');
    addRule(hosts.client, 'out', 'meta l4proto tcp drop');
    const t0 = Date.now();
    await sleep(o.windowMs);
    clearRules(hosts.client);

    const results: KernelResult[] = [];
    const collect = (
      name: string,
      traffic: KernelResult['traffic'],
      socket: unknown,
      server: PeerEvent[],
      client: PeerEvent[],
    ) => {
      const s = firstPerLink(server.filter((e) => e.ts >= t0 && e.ts <= t0 + o.windowMs));
      const c = firstPerLink(client.filter((e) => e.ts >= t0 && e.ts <= t0 + o.windowMs));
      results.push({
        name,
        traffic,
        socket,
        server: s.map((e) => e.ts - t0),
        client: c.map((e) => e.ts - t0),
        undetected: 2 * o.conns - s.length - c.length,
        reasons: [...new Set([...s, ...c].map((e) => String(e.reason)))],
      });
    };
    const rawTcp = rawReady.tcp as Record<string, unknown>;
    for (const r of rawPorts) {
      // Raw links are told apart by port: the server's id is its port, the client's too.
      const byPort = (e: PeerEvent) => e.id === String(r.port);
      const serverDowns = rawServer
        .downs()
        .filter(byPort)
        .map((e, i) => ({ ...e, id: String(i) }));
      const clientDowns = rawClient
        .downs()
        .filter(byPort)
        .map((e, i) => ({ ...e, id: String(i) }));
      collect(r.name, r.traffic, rawTcp[String(r.port)], serverDowns, clientDowns);
    }
    hl.forEach((h, i) => {
      collect(
        h.name,
        'data in flight',
        hlReady[i]!.tcp,
        hlServers[i]!.downs(),
        hlClients[i]!.downs(),
      );
    });
    return results;
  } finally {
    for (const p of peers) p.stop();
    await sleep(200);
    hosts.destroy();
  }
}
