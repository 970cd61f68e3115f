/**
 * The package as a user gets it: `npm pack` of this checkout, installed into empty
 * projects, used from strict TypeScript consumers (NodeNext, `strict`, `skipLibCheck:
 * false`, so every declaration heartline ships, and those it pulls in, must compile):
 * a plain TCP consumer without the optional peer dependencies (ioredis, pino,
 * pino-pretty, prom-client), which runs a server and a client, is told what to install
 * when it asks for Redis or metrics, and also loads the package through `require()`; a
 * consumer of every entry point (`heartline/cluster`, `/observe`, `/chaos`, `/codec`)
 * with those peers installed; and the installed `heartline` bin.
 *
 * The consumers and the bin run on this Node, or on the binary HEARTLINE_CONSUMER_NODE
 * names: scripts/check-engines.mjs gives the oldest Node that `engines` allows, so that
 * require(esm) is tested on the first release where it works unflagged.
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
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, requireBuiltCli } from '../support/cli.js';

/** Generous: npm and tsc on a loaded 2-core machine. */
const STEP_TIMEOUT = 180_000;

/** The node that runs the consumers and the installed bin (see the note at the top). */
const CONSUMER_NODE = process.env.HEARTLINE_CONSUMER_NODE || process.execPath;
/** The installed bin's `#!/usr/bin/env node` finds that node first. */
const BIN_ENV = {
  ...process.env,
  PATH: `${dirname(CONSUMER_NODE)}${delimiter}${process.env.PATH}`,
};

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

/** The plain consumer: a server and a client of the installed package, one message each way. */
const CONSUMER = `import { connect, createServer, HeartlineError, type OpenEvent } from 'heartline';
import { joinCluster } from 'heartline/cluster';

const watchdog = setTimeout(() => {
  console.error('consumer: timed out');
  process.exit(1);
}, 30_000);

// The optional peers are not installed: asking for Redis says what to install.
try {
  createServer({ cluster: joinCluster({ redis: 'redis://127.0.0.1:6379' }) });
  throw new Error('the redis option was accepted without ioredis');
} catch (err) {
  if (!(err instanceof HeartlineError) || err.code !== 'HL_ERR_MISSING_PACKAGE') throw err;
  if (!err.message.includes('npm install ioredis')) throw err;
}

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
// Read-only to users, and the internals are not in the published types (compiled, never run).
const misuse = () => {
  // @ts-expect-error sessionId is read-only
  client.sessionId = 'forged';
  // @ts-expect-error server.connections is a ReadonlyMap
  server.connections.clear();
  // @ts-expect-error onFrame is internal (stripped from the declarations)
  client.onFrame;
};
void misuse;
client.close();
await server.close();
clearTimeout(watchdog);
console.log(\`consumer ok \${open.sessionId.length > 0} \${server.connections.size}\`);
`;

/**
 * CommonJS: `require()` of the ES module package (require(esm), unflagged from Node
 * 20.19, which `engines` asks for); the observe entry loads without pino and prom-client
 * and says what to install when they are used.
 */
const CJS_CONSUMER = `const heartline = require('heartline');
const observe = require('heartline/observe');
if (typeof heartline.createServer !== 'function' || typeof heartline.connect !== 'function') {
  throw new Error('require("heartline") lacks createServer or connect');
}
for (const use of [() => observe.createLogger(), () => observe.createRegistry()]) {
  try {
    use();
    throw new Error('used without its peer dependency');
  } catch (err) {
    if (!(err instanceof heartline.HeartlineError) || err.code !== 'HL_ERR_MISSING_PACKAGE') throw err;
    if (!/npm install (pino|prom-client)$/.test(err.message)) throw err;
  }
}
console.log('cjs ok');
`;

/** The consumer of every entry point, with the optional peers installed. */
const FULL_CONSUMER = `import { connect, createServer } from 'heartline';
import { type ChaosProxy, createChaosProxy } from 'heartline/chaos';
import { joinCluster, MemoryStore, RedisStore, type ClusterStore } from 'heartline/cluster';
import { Decoder, encodePing, type Frame, FrameType } from 'heartline/codec';
import { createLogger, createRegistry, type Observer, observeServer } from 'heartline/observe';

const watchdog = setTimeout(() => {
  console.error('consumer: timed out');
  process.exit(1);
}, 30_000);

const frames: Frame[] = new Decoder().push(encodePing(1, 2));
if (frames[0]?.type !== FrameType.PING) throw new Error('codec: no PING decoded');

const store: ClusterStore = new MemoryStore();
const server = createServer({ cluster: joinCluster({ store }) });
const registry = createRegistry();
const observer: Observer = observeServer(server, {
  registry,
  logger: createLogger({ level: 'silent' }),
});
const { port } = await server.listen(0, '127.0.0.1');
const proxy: ChaosProxy = await createChaosProxy({ target: { host: '127.0.0.1', port } });
const client = connect({ servers: \`127.0.0.1:\${proxy.port}\`, maxAttempts: 3 });
await client.ready();
client.close();
if (!(await registry.metrics()).includes('heartline_')) throw new Error('no heartline metrics');
// ioredis is installed: the store is made (it connects on first use, never here).
await new RedisStore('redis://127.0.0.1:6379').close();
observer.stop();
await server.close();
await proxy.close();
clearTimeout(watchdog);
console.log('full consumer ok');
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

/** The optional peer dependencies, at the versions this checkout tests with. */
const PEERS = ['ioredis', 'pino', 'pino-pretty', 'prom-client'];

/** `name@version` as installed in this checkout. */
function pinned(name: string): string {
  const { version } = JSON.parse(
    readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8'),
  ) as { version: string };
  return `${name}@${version}`;
}

/** Installs `specs` into `app` from npm's cache (see the note at the top). */
function install(app: string, specs: string[], diagnostic: (message: string) => void): void {
  const attempt = (mode: string) =>
    spawnSync('npm', ['install', mode, '--no-audit', '--no-fund', ...specs], {
      cwd: app,
      env: npmEnv(),
      encoding: 'utf8',
      timeout: STEP_TIMEOUT,
    });
  let installed = attempt('--offline');
  if (installed.status !== 0 && /ENOTCACHED/.test(installed.stderr)) {
    diagnostic('npm install --offline: the cache lacks package documents; --prefer-offline');
    installed = attempt('--prefer-offline');
  }
  assert.equal(
    installed.status,
    0,
    `npm install failed:\n${installed.stdout}\n${installed.stderr}`,
  );
}

/** Writes `source` as the consumer's main.ts and compiles it; throws with tsc's output. */
function compile(app: string, source: string): void {
  writeFileSync(join(app, 'tsconfig.json'), `${JSON.stringify(TSCONFIG, null, 2)}\n`);
  writeFileSync(join(app, 'main.ts'), source);
  const tsc = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'],
    { cwd: app, encoding: 'utf8', timeout: STEP_TIMEOUT },
  );
  assert.equal(tsc.status, 0, `the strict consumer does not compile:\n${tsc.stdout}${tsc.stderr}`);
}

/** Runs a consumer script with node; returns its stdout, throws unless it exits 0. */
function runNode(app: string, file: string): string {
  const ran = spawnSync(CONSUMER_NODE, [file], { cwd: app, encoding: 'utf8', timeout: 60_000 });
  assert.equal(ran.status, 0, `${file} failed:\n${ran.stdout}\n${ran.stderr}`);
  return ran.stdout;
}

/** An empty ES module project in `dir/name`. */
function emptyProject(dir: string, name: string): string {
  const app = join(dir, name);
  mkdirSync(app);
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' })}\n`,
  );
  return app;
}

describe('the packed package', () => {
  let dir = '';
  let tarball = '';
  // @types/node as this checkout has it: heartline's declarations use Node's types, as
  // any Node library's do, so the consumer brings them.
  const typesNode = pinned('@types/node');

  before(() => {
    requireBuiltCli();
    dir = mkdtempSync(join(tmpdir(), 'heartline-package-'));
    const packDir = join(dir, 'pack');
    mkdirSync(packDir);
    const packed = run(
      'npm',
      ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir],
      ROOT,
    );
    const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: unknown[] }>;
    assert.ok(info, packed.stdout);
    tarball = join(packDir, info.filename);
  });
  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('without the optional peers: a strict TypeScript consumer and a CommonJS one compile and run', (t) => {
    const version = spawnSync(CONSUMER_NODE, ['--version'], { encoding: 'utf8' });
    assert.equal(version.status, 0, `${CONSUMER_NODE} --version: ${version.stderr}`);
    t.diagnostic(`consumers run on Node ${version.stdout.trim()} (${CONSUMER_NODE})`);
    const app = emptyProject(dir, 'plain');
    install(app, [tarball, typesNode], (m) => t.diagnostic(m));
    // None of the optional peers came with it.
    const resolvable = spawnSync(
      process.execPath,
      [
        '-e',
        `console.log(${JSON.stringify(PEERS)}.filter((p) => { try { require.resolve(p); return true; } catch { return false; } }).join(','))`,
      ],
      { cwd: app, encoding: 'utf8' },
    );
    assert.equal(resolvable.stdout, '\n', `installed with heartline: ${resolvable.stdout}`);

    compile(app, CONSUMER);
    assert.equal(runNode(app, join(app, 'out', 'main.js')), 'consumer ok true 0\n');
    writeFileSync(join(app, 'main.cjs'), CJS_CONSUMER);
    assert.equal(runNode(app, join(app, 'main.cjs')), 'cjs ok\n');

    // The installed bin: benchmarks are not in the package, and it says where they are.
    const bin = join(app, 'node_modules', '.bin', 'heartline');
    const bench = spawnSync(bin, ['bench'], {
      cwd: app,
      env: BIN_ENV,
      encoding: 'utf8',
      timeout: 60_000,
    });
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

    // An option that needs a missing peer stops serve before it listens, naming the install.
    for (const [option, name] of [
      [['--log-level', 'info'], 'pino'],
      [['--admin', '0'], 'prom-client'],
      [['--redis', 'redis://127.0.0.1:6379'], 'ioredis'],
    ] as const) {
      const serve = spawnSync(bin, ['serve', '--port', '0', ...option], {
        cwd: app,
        env: BIN_ENV,
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(serve.status, 1, `serve ${option.join(' ')}:\n${serve.stdout}\n${serve.stderr}`);
      assert.equal(serve.stdout, '');
      assert.match(serve.stderr, new RegExp(`npm install ${name}\n`));
    }

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

  test('with the optional peers: a strict TypeScript consumer of every entry point compiles and runs', (t) => {
    const app = emptyProject(dir, 'full');
    install(app, [tarball, typesNode, ...PEERS.map(pinned)], (m) => t.diagnostic(m));
    compile(app, FULL_CONSUMER);
    assert.equal(runNode(app, join(app, 'out', 'main.js')), 'full consumer ok\n');
  });
});
