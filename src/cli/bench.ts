/**
 * `heartline bench`: runs the benchmark suite (bench/run.ts in the source repository)
 * with its progress output. Benchmarks are never part of the test suite.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ExitCode } from './args.js';

export const benchHelp = `Usage: heartline bench [--quick] [suite options]

Runs the benchmark suite of the source repository (bench/run.ts): idle connections with
heartbeats against raw net, timers, ws, Socket.IO and MQTT, and message throughput. It
shows its progress on stderr, writes JSON to bench/results/ and the tables to
docs/benchmarks.md. A full run takes several minutes; --quick runs a small version.
Every other option is passed to bench/run.ts (see its --help).

Examples:
  heartline bench --quick
  npm run bench`;

export async function bench(argv: string[]): Promise<number> {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const entry = `${root}bench/run.ts`;
  if (!existsSync(entry)) {
    process.stderr.write(
      'heartline bench: the benchmarks ship with the source repository (bench/run.ts not found)\n',
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
