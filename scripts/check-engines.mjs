#!/usr/bin/env node
// Runs the built package on the oldest Node that package.json `engines` allows, so that CI,
// which runs on a newer Node, tests what `engines` promises (require(esm) is unflagged from
// 20.19 on). That Node is the official binary the npm registry carries as the package
// node-linux-<arch>@<version>, fetched with `npm pack` (npm's cache keeps it for the next
// run). On it: a server and a client of dist/ exchange a message, then the packed package is
// installed and `require('heartline')` and `import` run (test/integration/package.test.ts,
// both consumers, with and without the optional peers, with HEARTLINE_CONSUMER_NODE set).
// Usage: npm run build && node scripts/check-engines.mjs   (.ci/run runs it after npm test)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const started = Date.now();

function fail(message) {
  console.error(`check-engines: ${message}`);
  process.exit(1);
}

function step(message) {
  console.log(`check-engines [${((Date.now() - started) / 1000).toFixed(1)} s] ${message}`);
}

const range = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).engines?.node ?? '';
const m = /^>=\s*(\d+)\.(\d+)(?:\.(\d+))?$/.exec(range);
if (!m) fail(`engines.node is "${range}": expected ">=MAJOR.MINOR[.PATCH]"`);
const version = `${m[1]}.${m[2]}.${m[3] ?? '0'}`;
if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) {
  fail(
    `the registry's Node binaries used here are for linux x64 and arm64, not ${process.platform} ${process.arch}`,
  );
}
if (!existsSync(join(ROOT, 'dist', 'index.js')))
  fail('dist/ is missing: run "npm run build" first');

const spec = `node-${process.platform}-${process.arch}@${version}`;
const dir = mkdtempSync(join(tmpdir(), 'heartline-engines-'));
try {
  // 1. The oldest Node that engines allows.
  step(`fetching ${spec} from the npm registry`);
  // One quick retry: an unreachable registry fails in seconds, not after npm's minute of them.
  const pack = spawnSync(
    'npm',
    [
      'pack',
      spec,
      '--json',
      '--pack-destination',
      dir,
      '--fetch-retries=1',
      '--fetch-retry-mintimeout=1000',
      '--fetch-retry-maxtimeout=5000',
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (pack.error || pack.status !== 0) {
    fail(
      `could not fetch ${spec} with npm pack (${pack.error?.message ?? `exit ${pack.status}`}): ` +
        'the registry is unreachable or has no such package\n' +
        (pack.stderr ?? ''),
    );
  }
  const [info] = JSON.parse(pack.stdout);
  const untar = spawnSync('tar', ['xzf', join(dir, info.filename), '-C', dir, 'package/bin/node'], {
    encoding: 'utf8',
  });
  if (untar.status !== 0) fail(`could not extract bin/node from ${info.filename}: ${untar.stderr}`);
  const node = join(dir, 'package', 'bin', 'node');
  const got = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout?.trim();
  if (got !== `v${version}`) fail(`${node} --version says ${got}, expected v${version}`);

  // 2. A server and a client of dist/ exchange a message, on that Node.
  step(`smoke: a server and a client of dist/ on Node ${got}`);
  const dist = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
  const smoke = `import { connect, createServer } from ${JSON.stringify(dist)};
const watchdog = setTimeout(() => { console.error('smoke: timed out'); process.exit(1); }, 20000);
const server = createServer();
server.on('connection', (conn) => conn.on('message', (data) => conn.send(Buffer.concat([Buffer.from('echo: '), data]))));
const { port } = await server.listen(0, '127.0.0.1');
const client = connect({ servers: '127.0.0.1:' + port, maxAttempts: 3 });
await client.ready();
const reply = new Promise((resolve) => client.once('message', resolve));
client.send('hello');
const text = (await reply).toString('utf8');
if (text !== 'echo: hello') throw new Error('unexpected reply: ' + text);
client.close();
await server.close();
clearTimeout(watchdog);
console.log('smoke ok');
`;
  const ran = spawnSync(node, ['--input-type=module', '-e', smoke], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (ran.status !== 0 || ran.stdout !== 'smoke ok\n') {
    fail(`the smoke failed on Node ${got} (exit ${ran.status}):\n${ran.stdout}${ran.stderr}`);
  }

  // 3. The packed package, installed, through require() and import, on that Node.
  step(`the packed package through require() and import on Node ${got}`);
  const test = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=spec', 'test/integration/package.test.ts'],
    { cwd: ROOT, stdio: 'inherit', env: { ...process.env, HEARTLINE_CONSUMER_NODE: node } },
  );
  if (test.status !== 0) fail(`the package test failed on Node ${got}`);
  step(`ok on Node ${got}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
