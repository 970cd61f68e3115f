/**
 * The import directions of ARCHITECTURE.md, held: every `import`/`export ... from`,
 * `import('...')` and `require('...')` specifier in src/**\/*.ts is read with a regex over
 * the source text, resolved to a unit (a folder of src/, or a file at the top of src/) or a
 * package, and checked against the layer table below. Today's known breaks are listed by
 * file in {@link EXCEPTIONS} with the reason; a new break fails, and so does an exception
 * that no longer happens (delete its line, and its "to fix" line in ARCHITECTURE.md).
 */

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { posix } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/**
 * The layers, lowest first. A unit may import its own files and units of a lower layer,
 * never a unit of its own layer or above. Keep in step with ARCHITECTURE.md.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts'],
  ['protocol', 'time', 'optional-deps.ts', 'text.ts'],
  ['health', 'net', 'transport'],
  ['options.ts'],
  ['session'],
  ['heartbeat.ts'],
  ['link.ts'],
  ['connection.ts', 'tcp-link.ts'],
  ['client', 'server', 'chaos', 'conformance'],
  ['cluster', 'observe'],
  ['cli', 'index.ts', 'entries', 'testing.ts'],
];

/** The core: what a plain TCP user runs. It never loads an optional part or its library. */
const CORE = [
  'errors.ts',
  'protocol',
  'time',
  'health',
  'net',
  'transport',
  'options.ts',
  'session',
  'heartbeat.ts',
  'link.ts',
  'connection.ts',
  'tcp-link.ts',
];

/** Which units may load each package (static, dynamic or through createRequire). */
const PACKAGE_HOMES: Readonly<Record<string, readonly string[]>> = {
  ioredis: ['cluster'],
  pino: ['observe'],
  'pino-pretty': ['observe'],
  'prom-client': ['observe'],
  koffi: ['net'],
};

/** A known break of the rules: `file` (relative to src/) imports unit or package `to`. */
interface Exception {
  readonly file: string;
  readonly to: string;
  readonly why: string;
}

/**
 * Today's breaks, each a "to fix" in ARCHITECTURE.md. Listed by importing file, so that a
 * second file making the same break fails.
 */
const EXCEPTIONS: readonly Exception[] = [];

/** One import found in a source file. */
interface Edge {
  /** The importing file, relative to src/ ('server/server.ts'). */
  readonly file: string;
  /** The specifier as written. */
  readonly spec: string;
  /** The imported file relative to src/, or null for a package or built-in. */
  readonly target: string | null;
  /** The unit of `target`, the package name, or 'node:<name>' for a built-in. */
  readonly to: string;
  /** Only types cross this edge: gone at run time. */
  readonly typeOnly: boolean;
}

function sourceFiles(dir = SRC): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = posix.join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith('.ts')) out.push(posix.relative(SRC, path));
  }
  return out;
}

/** The unit of a file relative to src/: its first folder, or the file itself at the top. */
function unitOf(file: string): string {
  const slash = file.indexOf('/');
  return slash === -1 ? file : file.slice(0, slash);
}

/** The package a bare specifier names ('@scope/pkg/sub' -> '@scope/pkg'). */
function packageOf(spec: string): string {
  if (spec.startsWith('node:')) return spec;
  if (builtinModules.includes(spec.split('/')[0]!)) return `node:${spec}`;
  const parts = spec.split('/');
  return spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

// `import x, { y } from '...'`, `export * as z from '...'`, `import type { T } from '...'`
// at the start of a statement (not in comments or strings: those start with `*` or `//`).
const STATIC =
  /(?:^|[\n;])[ \t]*(?:import|export)\s+(type\s+)?(\*(?:\s+as\s+[\w$]+)?|\{[^}]*\}|[\w$]+(?:\s*,\s*(?:\{[^}]*\}|\*\s+as\s+[\w$]+))?)\s+from\s+['"]([^'"]+)['"]/g;
const SIDE_EFFECT = /(?:^|[\n;])[ \t]*import\s+['"]([^'"]+)['"]/g;
// import('x'), require('x') (createRequire), and loaders of optional packages that take the
// package name first (`requirePeer<T>('x', ...)`, `checkPeer('x', ...)`).
const DYNAMIC = /\b(?:import|require|requirePeer|checkPeer)(?:<[^>(]*>)?\(\s*['"]([^'"]+)['"]/g;

/** True when every name of a `{ type A, type B }` clause is a type. */
function allTypes(clause: string): boolean {
  if (!clause.startsWith('{')) return false;
  const names = clause
    .slice(1, -1)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return names.length > 0 && names.every((s) => s.startsWith('type '));
}

/** The specifiers a source text imports, each with whether only types cross. */
function specifiersOf(text: string): Array<{ spec: string; typeOnly: boolean }> {
  const found: Array<{ spec: string; typeOnly: boolean }> = [];
  for (const m of text.matchAll(STATIC)) {
    found.push({ spec: m[3]!, typeOnly: m[1] !== undefined || allTypes(m[2]!) });
  }
  for (const m of text.matchAll(SIDE_EFFECT)) found.push({ spec: m[1]!, typeOnly: false });
  for (const m of text.matchAll(DYNAMIC)) found.push({ spec: m[1]!, typeOnly: false });
  return found;
}

function edgesOf(file: string): Edge[] {
  const text = readFileSync(posix.join(SRC, file), 'utf8');
  return specifiersOf(text).map(({ spec, typeOnly }) => {
    if (!spec.startsWith('.')) return { file, spec, target: null, to: packageOf(spec), typeOnly };
    const target = posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, '.ts');
    return { file, spec, target, to: unitOf(target), typeOnly };
  });
}

const FILES = sourceFiles();
const EDGES = FILES.flatMap(edgesOf);
const RANK = new Map(LAYERS.flatMap((units, rank) => units.map((u) => [u, rank] as const)));

function isException(e: Edge): boolean {
  return EXCEPTIONS.some((x) => x.file === e.file && x.to === e.to);
}

function show(edges: readonly Edge[]): string {
  return edges.map((e) => `  src/${e.file} imports '${e.spec}' (${e.to})`).join('\n');
}

/** The cycles of a directed graph, as its strongly connected components of two or more. */
function cycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

describe('architecture: import directions (ARCHITECTURE.md)', () => {
  test('the scan finds the imports, and every relative one names a file', () => {
    assert.ok(FILES.length > 50, `only ${FILES.length} source files under src/`);
    assert.ok(EDGES.length > 300, `only ${EDGES.length} imports found: is the regex broken?`);
    const unresolved = EDGES.filter(
      (e) => e.target !== null && !existsSync(posix.join(SRC, e.target)),
    );
    assert.deepEqual(unresolved, [], `imports that name no file:\n${show(unresolved)}`);
  });

  test('the scanner reads every form of import, and none in comments or strings', () => {
    const text = [
      "import a from './a.js';",
      "import b, { c } from './b.js';",
      "import * as d from './d.js';",
      "import type { E } from './e.js';",
      "import { type F, type G } from './f.js';",
      "import { type H, i } from './h.js';",
      'import {',
      '  j,',
      '  k,',
      "} from './j.js';",
      "export * from './k.js';",
      "export * as l from './l.js';",
      "export { m } from './m.js';",
      "export type { N } from './n.js';",
      "import './o.js';",
      "const p = await import('p-package');",
      "const q = require('q-package');",
      "const r = requirePeer<typeof R>('r-package', 'feature');",
      "checkPeer('s-package', 'feature');",
      " * import { x } from './in-a-docblock.js';",
      "// import y from './in-a-comment.js';",
      "const z = 'import z from ./in-a-string';",
    ].join('\n');
    assert.deepEqual(specifiersOf(text), [
      { spec: './a.js', typeOnly: false },
      { spec: './b.js', typeOnly: false },
      { spec: './d.js', typeOnly: false },
      { spec: './e.js', typeOnly: true },
      { spec: './f.js', typeOnly: true },
      { spec: './h.js', typeOnly: false },
      { spec: './j.js', typeOnly: false },
      { spec: './k.js', typeOnly: false },
      { spec: './l.js', typeOnly: false },
      { spec: './m.js', typeOnly: false },
      { spec: './n.js', typeOnly: true },
      { spec: './o.js', typeOnly: false },
      { spec: 'p-package', typeOnly: false },
      { spec: 'q-package', typeOnly: false },
      { spec: 'r-package', typeOnly: false },
      { spec: 's-package', typeOnly: false },
    ]);
  });

  test('every unit of src/ has a layer in the table', () => {
    const units = [...new Set(FILES.map(unitOf))].sort();
    const missing = units.filter((u) => !RANK.has(u));
    assert.deepEqual(missing, [], 'place these in LAYERS here and in ARCHITECTURE.md');
    const gone = [...RANK.keys()].filter((u) => !units.includes(u));
    assert.deepEqual(gone, [], 'these units no longer exist: drop them from LAYERS');
  });

  test('src/protocol imports nothing outside itself but src/errors.ts (no node:, no packages)', () => {
    const bad = EDGES.filter(
      (e) => unitOf(e.file) === 'protocol' && e.to !== 'protocol' && e.to !== 'errors.ts',
    );
    assert.deepEqual(bad, [], `the codec is pure:\n${show(bad)}`);
  });

  test('a unit imports only units of a lower layer, except the listed exceptions', () => {
    const bad = EDGES.filter((e) => {
      const from = unitOf(e.file);
      if (e.target === null || e.to === from || isException(e)) return false;
      return RANK.get(e.to)! >= RANK.get(from)!;
    });
    assert.deepEqual(bad, [], `imports that point up or sideways:\n${show(bad)}`);
  });

  test('nothing outside src/cli imports src/cli (but the listed exceptions), and nothing imports an entry point', () => {
    const bad = EDGES.filter(
      (e) =>
        (e.to === 'cli' && unitOf(e.file) !== 'cli' && !isException(e)) ||
        e.to === 'index.ts' ||
        e.to === 'entries',
    );
    assert.deepEqual(bad, [], show(bad));
  });

  test('src/session imports neither the server, the client, the connection nor the link', () => {
    const above = ['server', 'client', 'connection.ts', 'link.ts', 'heartbeat.ts'];
    const bad = EDGES.filter((e) => unitOf(e.file) === 'session' && above.includes(e.to));
    assert.deepEqual(bad, [], show(bad));
  });

  test('the core never imports the server, client or an optional part, nor their libraries', () => {
    const above = ['server', 'client', 'cluster', 'observe', 'chaos', 'cli', 'index.ts', 'entries'];
    const heavy = ['ioredis', 'pino', 'pino-pretty', 'prom-client'];
    const bad = EDGES.filter(
      (e) => CORE.includes(unitOf(e.file)) && (above.includes(e.to) || heavy.includes(e.to)),
    );
    assert.deepEqual(bad, [], show(bad));
  });

  test('each package is loaded only from its home unit (ioredis: cluster; pino, prom-client: observe)', () => {
    const bad = EDGES.filter((e) => {
      if (e.target !== null || e.to.startsWith('node:') || isException(e)) return false;
      const homes = PACKAGE_HOMES[e.to];
      return homes === undefined || !homes.includes(unitOf(e.file));
    });
    assert.deepEqual(
      bad,
      [],
      `place a new package in PACKAGE_HOMES (and ARCHITECTURE.md):\n${show(bad)}`,
    );
  });

  test('no cycles among units once the listed exceptions are taken out', () => {
    const graph = new Map<string, Set<string>>();
    for (const e of EDGES) {
      const from = unitOf(e.file);
      if (e.target === null || e.to === from || isException(e)) continue;
      if (!graph.has(from)) graph.set(from, new Set());
      graph.get(from)!.add(e.to);
    }
    assert.deepEqual(cycles(graph), []);
  });

  test('no run-time import cycles among files', () => {
    const graph = new Map<string, Set<string>>();
    for (const e of EDGES) {
      if (e.target === null || e.typeOnly) continue;
      if (!graph.has(e.file)) graph.set(e.file, new Set());
      graph.get(e.file)!.add(e.target);
    }
    assert.deepEqual(cycles(graph), []);
  });

  test('every listed exception still happens (delete the ones that were fixed)', () => {
    const stale = EXCEPTIONS.filter((x) => !EDGES.some((e) => e.file === x.file && e.to === x.to));
    assert.deepEqual(stale, [], 'fixed: remove from EXCEPTIONS and from ARCHITECTURE.md');
  });

  test('ARCHITECTURE.md lists every exception and every layer unit', () => {
    const doc = readFileSync(new URL('../../ARCHITECTURE.md', import.meta.url), 'utf8');
    for (const x of EXCEPTIONS) {
      assert.ok(doc.includes(`src/${x.file}`), `ARCHITECTURE.md does not name src/${x.file}`);
    }
    for (const unit of RANK.keys()) {
      const name = unit.endsWith('.ts') ? `src/${unit}` : `src/${unit}/`;
      assert.ok(doc.includes(name), `ARCHITECTURE.md does not name ${name}`);
    }
  });
});

describe('architecture: test folders are named for what they run (CONTRIBUTING.md)', () => {
  test('no test in test/unit opens a socket: those belong in test/loopback', () => {
    const dir = fileURLToPath(new URL('./', import.meta.url));
    const sockets =
      /from ['"](?:node:(?:net|tls|http|https|dgram)|\.\.\/support\/peers\.js)['"]|\.listen\(/;
    const bad = readdirSync(dir)
      .filter((name) => name.endsWith('.test.ts'))
      .filter((name) => sockets.test(readFileSync(posix.join(dir, name), 'utf8')));
    assert.deepEqual(bad, []);
  });
});
