/**
 * heartline as users run it: compiled by tsc, the way the package's dist/ is built, into
 * a private directory for this run (under .tmp/, ignored by git), so that a benchmark
 * never depends on a stale or half-written dist/ and never writes it.
 *
 * Why not the TypeScript sources through the tsx loader, like the rest of the harness:
 * tsx compiles with esbuild's keepNames, which wraps every named closure in a
 * `__name(fn, "name")` call that redefines the function's `name`, and a function with a
 * redefined property keeps a property dictionary of about 250 bytes. heartline creates a
 * handful of such closures per connection, so under tsx a server holds about 2 KiB more
 * per connection than the same code compiled by tsc (measured with heap snapshots).
 *
 * The path of the build's index.js travels to child processes in HEARTLINE_BENCH_LIB.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT } from './child.js';

/** Environment variable naming the compiled index.js. */
export const LIB_ENV = 'HEARTLINE_BENCH_LIB';

/** What the build printed when tsc reported errors but still emitted JavaScript. */
export let buildWarnings = '';

/**
 * Compiles src/ once per process (children inherit the result) and returns the path of
 * its index.js. tsc emits even when it finds type errors (someone may be editing src/):
 * those are kept in {@link buildWarnings}; only a missing output is an error.
 */
export function buildHeartline(): string {
  const existing = process.env[LIB_ENV];
  if (existing) return existing;
  const base = join(ROOT, '.tmp');
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'bench-build-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const result = spawnSync(
    process.execPath,
    [
      tsc,
      '-p',
      'tsconfig.build.json',
      '--outDir',
      dir,
      '--declaration',
      'false',
      '--declarationMap',
      'false',
      '--sourceMap',
      'false',
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  const index = join(dir, 'index.js');
  if (!existsSync(index)) {
    throw new Error(
      `building heartline failed (tsc exit ${result.status}):\n${result.stdout}${result.stderr}`,
    );
  }
  if (result.status !== 0) buildWarnings = `${result.stdout}${result.stderr}`.trim();
  // The sources are ES modules; without this the build would load as CommonJS.
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  process.env[LIB_ENV] = index;
  return index;
}

/** The compiled library's path in a child process (set by the parent's build). */
export function heartlineLibPath(): string {
  const path = process.env[LIB_ENV];
  if (!path)
    throw new Error(
      `${LIB_ENV} is not set: start this through a benchmark workload, which builds heartline first`,
    );
  return path;
}
