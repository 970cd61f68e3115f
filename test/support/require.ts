/**
 * Suites that need a system tool (nft, ip, redis-server, chromium) skip themselves with
 * the reason when it is missing, unless HEARTLINE_REQUIRE_ALL=1 (set by .ci/run), where a
 * skip would hide a broken install step and so fails instead.
 */

import { spawnSync } from 'node:child_process';

/** True when CI demands that every suite runs. */
export const REQUIRE_ALL = process.env.HEARTLINE_REQUIRE_ALL === '1';

/**
 * Returns a skip reason when `command --version`-style probe fails, or undefined when the
 * tool is there. Under HEARTLINE_REQUIRE_ALL=1 a missing tool throws instead.
 */
export function missingTool(command: string, args: string[] = ['--version']): string | undefined {
  const probe = spawnSync(command, args, { stdio: 'ignore' });
  if (probe.error === undefined && probe.status === 0) return undefined;
  const reason = `${command} is not available (${probe.error?.message ?? `exit ${probe.status}`})`;
  if (REQUIRE_ALL) throw new Error(`HEARTLINE_REQUIRE_ALL=1 but ${reason}`);
  return reason;
}

/** Returns a skip reason unless running as root (namespaces and nftables need it). */
export function notRoot(): string | undefined {
  if (process.getuid?.() === 0) return undefined;
  const reason = 'needs root for network namespaces and nftables';
  if (REQUIRE_ALL) throw new Error(`HEARTLINE_REQUIRE_ALL=1 but the suite ${reason}`);
  return reason;
}
