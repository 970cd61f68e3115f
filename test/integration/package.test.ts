/**
 * The package as a user gets it: `npm pack` of this checkout, installed into an empty
 * project, used from a strict TypeScript consumer (NodeNext, `strict`, `skipLibCheck:
 * false`, so every declaration heartline ships, and those it pulls in, must compile) that
 * runs a server and a client and exchanges a message; and the installed `heartline` bin.
 *
 * The tarball is packed from the built dist/ (scripts off: no rebuild under tests that
 * run dist/ concurrently). The install takes the dependencies from npm's cache, filled by
 * `npm ci`: `--offline` first; when the cache lacks the registry's package documents
 * (`npm ci` caches tarballs only), `--prefer-offline`, which fetches just those.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, requireBuiltCli } from '../support/cli.js';

/** Generous: npm and tsc on a loaded 2-core machine. */
const STEP_TIMEOUT = 180_000;

/** The environment for nested npm runs, without what `npm test` sets for its own script. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // npm_config_local_prefix and friends would point a nested npm at this checkout.
    if (/^npm_/i.test(k) && !/^npm_config_(cache|registry|userconfig)$/i.test(k)) continue;
    env[k] = v;
  }
  return env;
}

/** Runs a command to its end; throws with its output unless it exits 0. */
function run(command: string, args: string[], cwd: string): { stdout: string; stderr: string } {
  const r = spawnSync(command, args, {
    cwd,
    env: npmEnv(),
    encoding: 'utf8',
    timeout: STEP_TIMEOUT,
  });
  if (r.error || r.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} (in ${cwd}) failed: ${r.error?.message ?? `exit ${r.status}`}\n` +
        `--- stdout:\n${r.stdout}\n--- stderr:\n${r.stderr}`,
    );
  }
  return { stdout: r.stdout, stderr: r.stderr };
}

/** The consumer: a server and a client of the installed package, one message each way. */
const CONSUMER = `import { connect, createServer, type OpenEvent } from 'heartline';

const watchdog = setTimeout(() => {
  console.error('consumer: timed out');
  process.exit(1);
}, 30_000);

const server = createServer();
server.on('connection', (conn) => {
  conn.on('message', (data) => conn.send(Buffer.concat([Buffer.from('echo: '), data])));
});
const { port } = await server.listen(0, '127.0.0.1');
const client = connect({ servers: \`127.0.0.1:\${port}\`, maxAttempts: 3 });
const open: OpenEvent = await client.ready();
const reply = new Promise<Buffer>((resolve) => client.once('message', resolve));
client.send('hello');
const text = (await reply).toString('utf8');
if (text !== 'echo: hello') throw new Error(\`unexpected reply: \${text}\`);
client.close();
await server.close();
clearTimeout(watchdog);
console.log(\`consumer ok \${open.sessionId.length > 0}\`);
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    skipLibCheck: false,
    noEmit: false,
    outDir: 'out',
    types: ['node'],
  },
  files: ['main.ts'],
};

test('npm pack installs into an empty project; a strict TypeScript consumer compiles and runs', async (t) => {
  requireBuiltCli();
  const dir = mkdtempSync(join(tmpdir(), 'heartline-package-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const packDir = join(dir, 'pack');
  const app = join(dir, 'app');
  for (const d of [packDir, app]) mkdirSync(d);

  const packed = run(
    'npm',
    ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir],
    ROOT,
  );
  const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: unknown[] }>;
  assert.ok(info, packed.stdout);
  const tarball = join(packDir, info.filename);

  // @types/node as this checkout has it: heartline's declarations use Node's types, as
  // any Node library's do, so the consumer brings them.
  const typesNode = JSON.parse(
    readFileSync(join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8'),
  ) as { version: string };
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' })}\n`,
  );
  const install = (mode: string) =>
    spawnSync(
      'npm',
      ['install', mode, '--no-audit', '--no-fund', tarball, `@types/node@${typesNode.version}`],
      { cwd: app, env: npmEnv(), encoding: 'utf8', timeout: STEP_TIMEOUT },
    );
  let installed = install('--offline');
  if (installed.status !== 0 && /ENOTCACHED/.test(installed.stderr)) {
    t.diagnostic('npm install --offline: the cache lacks package documents; --prefer-offline');
    installed = install('--prefer-offline');
  }
  assert.equal(
    installed.status,
    0,
    `npm install failed:\n${installed.stdout}\n${installed.stderr}`,
  );

  writeFileSync(join(app, 'tsconfig.json'), `${JSON.stringify(TSCONFIG, null, 2)}\n`);
  writeFileSync(join(app, 'main.ts'), CONSUMER);
  const tsc = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'],
    { cwd: app, encoding: 'utf8', timeout: STEP_TIMEOUT },
  );
  assert.equal(tsc.status, 0, `the strict consumer does not compile:\n${tsc.stdout}${tsc.stderr}`);

  const ran = spawnSync(process.execPath, [join(app, 'out', 'main.js')], {
    cwd: app,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(ran.status, 0, `the consumer failed:\n${ran.stdout}\n${ran.stderr}`);
  assert.equal(ran.stdout, 'consumer ok true\n', ran.stderr);

  // The installed bin: benchmarks are not in the package, and it says where they are.
  const bin = join(app, 'node_modules', '.bin', 'heartline');
  const bench = spawnSync(bin, ['bench'], { cwd: app, encoding: 'utf8', timeout: 60_000 });
  assert.equal(bench.status, 1, `${bench.stdout}\n${bench.stderr}`);
  assert.equal(bench.stdout, '');
  const repository = (
    JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      repository: { url: string };
    }
  ).repository.url.replace(/^git\+/, '');
  assert.equal(
    bench.stderr,
    `heartline bench: benchmarks run from a clone of the repository: git clone ${repository} && cd heartline && npm ci && npm run bench\n`,
  );

  // What a plain user installs (reported, not asserted: it follows the dependencies).
  const du = spawnSync('du', ['-sh', join(app, 'node_modules')], { encoding: 'utf8' });
  const ls = spawnSync('npm', ['ls', '--all', '--parseable'], {
    cwd: app,
    env: npmEnv(),
    encoding: 'utf8',
  });
  t.diagnostic(
    `installed: ${du.stdout.split('\t')[0]} in node_modules (with @types/node), ` +
      `${ls.stdout.split('\n').filter((l) => l !== '').length} lines of npm ls --all --parseable`,
  );
});
