#!/usr/bin/env node
// Runs every test/**/*.test.ts file on Node's built-in runner through the tsx loader.
// Usage: node scripts/test.mjs [substring ...]  (only files whose path contains one of them)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = collect('test').filter(
  (f) => filters.length === 0 || filters.some((s) => f.includes(s)),
);
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.HEARTLINE_TEST_CONCURRENCY ?? '2';

function runFiles(list, parallel) {
  if (list.length === 0) return 0;
  const result = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      `--test-concurrency=${parallel}`,
      // A safety net, far above the slowest test (about 40 s): a test that hangs fails
      // and runs its cleanup instead of holding the whole run until CI gives up.
      '--test-timeout=240000',
      '--test-reporter=spec',
      ...list,
    ],
    { stdio: 'inherit' },
  );
  return result.status ?? 1;
}

// The kernel-fault suite measures detection times against bounds of a few hundred ms:
// it runs on its own after the rest, so that no other file's load (a build, a 30 MB
// stream) shifts what it measures.
const serial = files.filter((f) => f.includes(join('test', 'faults')));
const rest = files.filter((f) => !serial.includes(f));
const first = runFiles(rest, concurrency);
const second = runFiles(serial, '1');
process.exit(first || second);
