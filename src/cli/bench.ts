/**
 * `heartline bench`: runs the benchmark suite (bench/run.ts in the source repository)
 * with its progress output. Benchmarks are never part of the test suite. The published
 * package does not carry them (nor tsx, nor the peers they compare with): there it says
 * how to run them from a clone.
 */

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ExitCode } from './args.js';

/**
 * How to run the benchmarks from a clone of package.json's `repository` (one source for
 * the address): `git clone URL && cd heartline && npm ci && npm run bench`.
 */
export function benchFromClone(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    repository?: { url?: string };
  };
  const url = pkg.repository?.url?.replace(/^git\+/, '') ?? 'the heartline repository';
  return `git clone ${url} && cd heartline && npm ci && npm run bench`;
}

export const benchHelp = `Usage: heartline bench [--quick] [suite options]

Runs the benchmark suite of the source repository (bench/run.ts; from a clone, not from
an installed package): idle connections with heartbeats against raw net, timers, ws,
Socket.IO and MQTT, and message throughput. It shows its progress on stderr, writes
JSON to bench/results/ and the tables to docs/benchmarks.md. A full run takes several
minutes; --quick runs a small version. Every other option is passed to bench/run.ts
(see its --help).

Examples:
  heartline bench --quick
  npm run bench`;

export async function bench(argv: string[]): Promise<number> {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const entry = `${root}bench/run.ts`;
  if (!existsSync(entry)) {
    // An installed package: one line with the way to run them, no stack, exit 1.
    process.stderr.write(
      `heartline bench: benchmarks run from a clone of the repository: ${benchFromClone()}\n`,
    );
    return ExitCode.FAILURE;
  }
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...argv], {
    cwd: root,
    stdio: 'inherit',
  });
  return new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? (signal ? ExitCode.FAILURE : ExitCode.OK)));
    child.on('error', (err) => {
      process.stderr.write(`heartline bench: ${err.message}\n`);
      resolve(ExitCode.FAILURE);
    });
  });
}
