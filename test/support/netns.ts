/**
 * Test hosts made of Linux network namespaces: two namespaces joined by a veth pair,
 * with addresses from a private /30 that exists only inside them, and an nftables table
 * in each for injecting faults. Used by the kernel-fault suite (test/faults) and the
 * detection benchmark (bench/detect.ts). Needs root, iproute2 and nftables.
 *
 * Every name carries the creating process's pid (`hl-<pid>-<n>-s`, veth `hl<pid36>x<n>s`),
 * so {@link removeStaleHosts} removes only what a process that no longer runs left
 * behind, never the hosts of another run going on at the same time.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { missingTool, notRoot, REQUIRE_ALL } from './require.js';

/** One end: a namespace, its veth interface and its address. */
export interface HostEnd {
  readonly ns: string;
  readonly ifname: string;
  readonly address: string;
}

/** Two namespaces joined by a veth pair. */
export interface Hosts {
  readonly server: HostEnd;
  readonly client: HostEnd;
  /** Removes both namespaces (and with them the veth pair and every rule). Idempotent. */
  destroy(): void;
}

/** The /30 used inside every pair (private, and never seen outside the namespaces). */
const SERVER_ADDRESS = '10.213.0.1';
const CLIENT_ADDRESS = '10.213.0.2';
const PREFIX = 30;
/** The nftables table each namespace gets for faults. */
const TABLE = 'inet hlfault';

let counter = 0;

/** Runs a command; throws with its stderr when it fails. */
export function run(command: string, args: string[], input?: string): string {
  const r = spawnSync(command, args, { encoding: 'utf8', input, timeout: 10_000 });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes namespaces and veth interfaces named by this helper whose creating process
 * is gone (a run killed before its cleanup). Returns what it removed.
 */
export function removeStaleHosts(): string[] {
  const removed: string[] = [];
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = /^hl-(\d+)-\d+-[sc]$/.exec(name);
    if (m && !pidAlive(Number(m[1]))) {
      spawnSync('ip', ['netns', 'delete', name]);
      removed.push(name);
    }
  }
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of links.split('\n')) {
    const m = /^\d+: (hl([0-9a-z]+)x\d+[sc])[@:]/.exec(line);
    if (m && !pidAlive(Number.parseInt(m[2]!, 36))) {
      spawnSync('ip', ['link', 'delete', m[1]!]);
      removed.push(m[1]!);
    }
  }
  return removed;
}

/**
 * Why these hosts cannot be built here (not root, no ip, no nft, namespaces refused),
 * or undefined when they can. Under HEARTLINE_REQUIRE_ALL=1 a reason throws instead.
 */
export function hostsUnavailable(): string | undefined {
  const reason = notRoot() ?? missingTool('ip', ['-V']) ?? missingTool('nft', ['--version']);
  if (reason) return reason;
  try {
    const hosts = createHosts();
    hosts.destroy();
    return undefined;
  } catch (err) {
    const why = `network namespaces cannot be created here: ${(err as Error).message}`;
    if (REQUIRE_ALL) throw new Error(`HEARTLINE_REQUIRE_ALL=1 but ${why}`);
    return why;
  }
}

/** Creates two namespaces joined by a veth pair, each with an empty nftables table. */
export function createHosts(): Hosts {
  const n = counter++;
  const base = `hl-${process.pid}-${n}`;
  const veth = `hl${process.pid.toString(36)}x${n}`;
  const server: HostEnd = { ns: `${base}-s`, ifname: `${veth}s`, address: SERVER_ADDRESS };
  const client: HostEnd = { ns: `${base}-c`, ifname: `${veth}c`, address: CLIENT_ADDRESS };
  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    // Deleting a namespace deletes its interfaces; a veth left in the root namespace
    // (a failure half way) is deleted by name.
    for (const end of [server, client]) spawnSync('ip', ['netns', 'delete', end.ns]);
    spawnSync('ip', ['link', 'delete', server.ifname], { stdio: 'ignore' });
  };
  try {
    for (const end of [server, client]) run('ip', ['netns', 'add', end.ns]);
    run('ip', ['link', 'add', server.ifname, 'type', 'veth', 'peer', 'name', client.ifname]);
    for (const end of [server, client]) {
      run('ip', ['link', 'set', end.ifname, 'netns', end.ns]);
      run('ip', ['-n', end.ns, 'addr', 'add', `${end.address}/${PREFIX}`, 'dev', end.ifname]);
      run('ip', ['-n', end.ns, 'link', 'set', end.ifname, 'up']);
      run('ip', ['-n', end.ns, 'link', 'set', 'lo', 'up']);
      nft(
        end,
        `add table ${TABLE}
add chain ${TABLE} in { type filter hook input priority 0; policy accept; }
add chain ${TABLE} out { type filter hook output priority 0; policy accept; }`,
      );
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return { server, client, destroy };
}

/** Runs an nft script inside a namespace. */
export function nft(end: HostEnd, script: string): void {
  run('ip', ['netns', 'exec', end.ns, 'nft', '-f', '-'], `${script}\n`);
}

/** Adds a rule to the namespace's input ('in') or output ('out') chain. */
export function addRule(end: HostEnd, chain: 'in' | 'out', rule: string): void {
  nft(end, `add rule ${TABLE} ${chain} ${rule}`);
}

/** Removes every fault rule in the namespace. */
export function clearRules(end: HostEnd): void {
  nft(end, `flush chain ${TABLE} in\nflush chain ${TABLE} out`);
}

/** Sets the namespace's veth interface up or down. */
export function setLink(end: HostEnd, up: boolean): void {
  run('ip', ['-n', end.ns, 'link', 'set', end.ifname, up ? 'up' : 'down']);
}

/**
 * Starts a process inside a namespace. `ip netns exec` execs the command in place, so
 * the child's pid is the command's own (signals reach it directly).
 */
export function spawnIn(end: HostEnd, command: string, args: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', end.ns, command, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}
