/** The machine a run measured, recorded in every result file. */

import { readFileSync } from 'node:fs';
import os from 'node:os';

/** What a result file says about the machine. */
export interface Machine {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  node: string;
  v8: string;
  platform: string;
  kernel: string;
  /** The per-process open-files limit (soft/hard), which caps connections per process. */
  openFiles: string;
  /** The ephemeral port range a source address can use. */
  ephemeralPorts: string;
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}

function openFilesLimit(): string {
  const limits = readOr('/proc/self/limits', '');
  const line = limits.split('\n').find((l) => l.startsWith('Max open files'));
  if (!line) return 'unknown';
  const [soft, hard] = line.replace('Max open files', '').trim().split(/\s+/);
  return `${soft}/${hard}`;
}

export function machineInfo(): Machine {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    memoryBytes: os.totalmem(),
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    openFiles: openFilesLimit(),
    ephemeralPorts: readOr('/proc/sys/net/ipv4/ip_local_port_range', 'unknown').replace(/\s+/, '-'),
  };
}

/** One line for tables: "AMD EPYC, 2 cores, 23.5 GiB, Node v20.20.2, Linux 6.1". */
export function describeMachine(m: Machine): string {
  const gib = (m.memoryBytes / 2 ** 30).toFixed(1);
  return `${m.cpuModel}, ${m.cores} cores, ${gib} GiB RAM, Node ${m.node}, ${m.platform} (kernel ${m.kernel}), open-files limit ${m.openFiles}`;
}
