/**
 * Options are declared once (src/options.ts, or the module's own `*_DEFAULTS` object) and
 * validated one way. Two things are held here:
 *
 * - every default the docs print in a table (a "Default" column beside an option, a bound
 *   or a flag) is the value of the one declaration of that option: the tables are read
 *   from the Markdown, each default parsed ("10 s", "1 MiB", "1,000", "unlimited",
 *   "'info'") and compared; a row whose default is derived ("2 x maxConnections",
 *   "timeout + interval") is left to its prose. A documented default with no declaration
 *   fails, so a default written inline in a resolve function is found too;
 * - every `@default` of an options interface (CommonOptions, ServerOptions, ClientOptions,
 *   AdmissionOptions...) that states a value is that same declaration, read from the
 *   source with the TypeScript parser; again one with no declaration fails;
 * - the validators of src/options.ts name the option and the value in every refusal.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import ts from 'typescript';
import { CONTROL_DEFAULTS } from '../../src/chaos/control.js';
import { CHAOS_DEFAULTS } from '../../src/chaos/proxy.js';
import { BACKOFF_DEFAULTS } from '../../src/client/backoff.js';
import { CLIENT_DEFAULTS } from '../../src/client/client.js';
import { CLUSTER_DEFAULTS } from '../../src/cluster/defaults.js';
import { REDIS_IDEMPOTENCY_DEFAULTS } from '../../src/cluster/redis-idempotency.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { PHI_ACCRUAL_DEFAULTS } from '../../src/health/phi.js';
import { RTT_ESTIMATOR_DEFAULTS } from '../../src/health/rtt.js';
import { ADMIN_DEFAULTS } from '../../src/observe/admin.js';
import { LOGGER_DEFAULTS } from '../../src/observe/logger.js';
import {
  boolOption,
  CONNECTION_DEFAULTS,
  choiceOption,
  functionOption,
  HEARTBEAT_DEFAULTS,
  intOption,
  limitOption,
  numberOption,
  PING_POLICY_DEFAULTS,
  positiveOption,
  requiredOption,
  stringOption,
  TCP_DEFAULTS,
} from '../../src/options.js';
import { ADAPTIVE_DEFAULTS } from '../../src/server/adaptive.js';
import { ADMISSION_DEFAULTS } from '../../src/server/admission.js';
import { DEFAULT_MAX_TIMEOUT } from '../../src/server/grant.js';
import { LOAD_DEFAULTS } from '../../src/server/load.js';
import { SERVER_DEFAULTS } from '../../src/server/server.js';
import { WORKERS_DEFAULTS } from '../../src/server/workers/mode.js';
import { IDEMPOTENCY_DEFAULTS } from '../../src/session/idempotency.js';

type Declared = number | string | boolean;
/** Option name -> its declared default (a pair for a warning / danger threshold). */
type Source = Readonly<Record<string, Declared | readonly [Declared, Declared]>>;

/** Every declaration object by its name, for a doc that cites `X_DEFAULTS.field`. */
const BY_NAME: Readonly<Record<string, Source>> = {
  HEARTBEAT_DEFAULTS,
  CONNECTION_DEFAULTS,
  PING_POLICY_DEFAULTS,
  TCP_DEFAULTS,
  SERVER_DEFAULTS,
  CLIENT_DEFAULTS,
  BACKOFF_DEFAULTS,
  ADMISSION_DEFAULTS,
  ADAPTIVE_DEFAULTS,
  LOAD_DEFAULTS,
  WORKERS_DEFAULTS,
  IDEMPOTENCY_DEFAULTS,
  CLUSTER_DEFAULTS,
  ADMIN_DEFAULTS,
  LOGGER_DEFAULTS,
};

/** `tcp.keepAliveCount`: the `tcp` option's fields are documented by their path. */
const TCP: Source = Object.fromEntries(
  Object.entries(TCP_DEFAULTS).map(([k, v]) => [`tcp.${k}`, v]),
);
/** grant.ts declares the maxTimeout floor beside the factors it is checked against. */
const GRANT: Source = { maxTimeout: DEFAULT_MAX_TIMEOUT };
/** A default given as another option's (acceptBurst is acceptRate's). */
const DERIVED: Source = { acceptBurst: ADMISSION_DEFAULTS.acceptRate };
/** The load table prints a warning / danger pair per metric. */
const LOAD_THRESHOLDS: Source = {
  eventLoopDelay: [LOAD_DEFAULTS.warningEventLoopDelay, LOAD_DEFAULTS.dangerEventLoopDelay],
  heapUsed: [LOAD_DEFAULTS.warningHeapFraction, LOAD_DEFAULTS.dangerHeapFraction],
  // danger is maxConnections itself: 100% of it.
  connections: [LOAD_DEFAULTS.warningConnectionsFraction, 1],
};
const PER_CONNECTION = [
  HEARTBEAT_DEFAULTS,
  CONNECTION_DEFAULTS,
  PING_POLICY_DEFAULTS,
  SERVER_DEFAULTS,
  GRANT,
  CLIENT_DEFAULTS,
];
const PER_SERVER = [ADMISSION_DEFAULTS, DERIVED, ADAPTIVE_DEFAULTS];

/**
 * The tables held, by file and the heading they sit under ('' for any). `strict`: a
 * documented default must have a declaration (off for the CLI, whose flags have defaults
 * of the command's own: host, port).
 */
const PAGES: ReadonlyArray<{
  file: string;
  heading: string;
  sources: readonly Source[];
  strict: boolean;
  /** How many defaults at least are compared: a parser that finds nothing fails. */
  least: number;
}> = [
  { file: 'docs/heartbeats.md', heading: '', sources: PER_CONNECTION, strict: true, least: 18 },
  {
    file: 'docs/operations.md',
    heading: '',
    sources: [...PER_SERVER, LOAD_THRESHOLDS],
    strict: true,
    least: 8,
  },
  {
    file: 'docs/requests.md',
    heading: '',
    sources: [IDEMPOTENCY_DEFAULTS],
    strict: true,
    least: 5,
  },
  {
    file: 'docs/observability.md',
    heading: '',
    sources: [ADMIN_DEFAULTS, LOGGER_DEFAULTS],
    strict: true,
    least: 8,
  },
  { file: 'docs/detection.md', heading: '', sources: [TCP], strict: true, least: 1 },
  {
    file: 'SECURITY.md',
    heading: '',
    sources: [...PER_CONNECTION, ...PER_SERVER],
    strict: true,
    least: 20,
  },
  {
    file: 'docs/cli.md',
    heading: '### `heartline serve`',
    sources: [...PER_CONNECTION, ...PER_SERVER, WORKERS_DEFAULTS, CLUSTER_DEFAULTS],
    strict: false,
    least: 20,
  },
];

const UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  min: 60_000,
  B: 1,
  bytes: 1,
  KiB: 1024,
  'KiB/s': 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  '%': 0.01,
};

/**
 * The value a default cell starts with, or undefined when it is derived or prose: "10 s",
 * "1 MiB", "1,000 a second", "`0`", "unlimited", "'info'". A number followed by "x",
 * "to" or "+" is a formula or a range, not a value.
 */
function parseDefault(cell: string): Declared | undefined {
  const text = cell.replaceAll('`', '').trim();
  if (/^(?:unlimited|Infinity)\b/.test(text)) return Number.POSITIVE_INFINITY;
  const bool = /^(true|false)$/.exec(text);
  if (bool) return bool[1] === 'true';
  const quoted = /^'([^']*)'/.exec(text);
  if (quoted) return quoted[1]!;
  const m = /^(\d[\d,_]*(?:\.\d+)?)(?:\s*(ms|s|min|B|bytes|KiB\/s|KiB|MiB|GiB|%)(?![\w/]))?/.exec(
    text,
  );
  if (!m) return undefined;
  const rest = text.slice(m[0].length);
  // 127.0.0.1 is an address, not 127.
  if (/^[.\w]/.test(rest)) return undefined;
  if (/^\s*(?:x|×|to|\+|-|–)(?:\s|\d|$)/.test(rest)) return undefined;
  const n = Number(m[1]!.replaceAll(/[,_]/g, '')) * (m[2] ? UNITS[m[2]]! : 1);
  // 70% is 0.7 exactly, not 0.7000000000000001.
  return Number(n.toPrecision(12));
}

/** One table of a Markdown text: its header cells and body rows. */
interface Table {
  readonly header: string[];
  readonly rows: string[][];
}

function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((c) => c.trim());
}

/** The tables of `text` (only those under `heading`, up to the next heading as deep). */
function tables(text: string, heading: string): Table[] {
  let lines = text.split('\n');
  if (heading !== '') {
    const start = lines.indexOf(heading);
    assert.ok(start >= 0, `no heading ${heading}`);
    const depth = /^#+/.exec(heading)![0].length;
    const end = lines.findIndex(
      (l, i) => i > start && /^#+ /.test(l) && /^#+/.exec(l)![0].length <= depth,
    );
    lines = lines.slice(start, end === -1 ? undefined : end);
  }
  const out: Table[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (!/^\|\s*:?-{3,}/.test(lines[i]!)) continue;
    const header = cells(lines[i - 1]!);
    const rows: string[][] = [];
    for (let j = i + 1; j < lines.length && lines[j]!.startsWith('|'); j++) {
      rows.push(cells(lines[j]!));
    }
    out.push({ header, rows });
  }
  return out;
}

/** The option a part of an option cell names: its first `code` span, as an option path. */
function optionOf(part: string): string | undefined {
  const code = /`([^`]+)`/.exec(part)?.[1];
  if (code === undefined) return undefined;
  // A CLI flag: `--max-frame BYTES` is maxFrame.
  const flag = /^--([a-z][a-z-]*)/.exec(code);
  if (flag) return flag[1]!.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  return /^[A-Za-z][\w.]*$/.test(code) ? code : undefined;
}

/** The declarations of `name` in `sources` (or by `X_DEFAULTS.field`). */
function declarationsOf(
  name: string,
  sources: readonly Source[],
): Array<Declared | readonly [Declared, Declared]> {
  const dot = name.indexOf('.');
  const owner = dot > 0 ? BY_NAME[name.slice(0, dot)] : undefined;
  if (owner !== undefined) {
    const field = name.slice(dot + 1);
    return Object.hasOwn(owner, field) ? [owner[field]!] : [];
  }
  return sources.filter((s) => Object.hasOwn(s, name)).map((s) => s[name]!);
}

interface Compared {
  readonly where: string;
  readonly option: string;
  readonly documented: Declared;
  readonly declared: Declared | undefined;
}

/** Every documented default of a page, beside its declaration. */
function compare(page: (typeof PAGES)[number]): { compared: Compared[]; problems: string[] } {
  const text = readFileSync(new URL(`../../${page.file}`, import.meta.url), 'utf8');
  const compared: Compared[] = [];
  const problems: string[] = [];
  for (const table of tables(text, page.heading)) {
    const valueAt = table.header.indexOf('Default');
    if (valueAt === -1) continue;
    const named = ['Option', 'Flag'].map((h) => table.header.indexOf(h)).find((i) => i >= 0);
    const optionAt = named ?? 0;
    for (const row of table.rows) {
      const options = (row[optionAt] ?? '').split(' / ').map(optionOf);
      const values = (row[valueAt] ?? '').split(' / ').map(parseDefault);
      const where = `${page.file}: | ${row[optionAt]} | ${row[valueAt]} |`;
      for (const [i, option] of options.entries()) {
        if (option === undefined || /^[A-Z_]+$/.test(option)) continue;
        const found = declarationsOf(option, page.sources);
        const distinct = [...new Set(found.map((d) => JSON.stringify(d)))];
        if (distinct.length > 1) {
          problems.push(`${where}: "${option}" has ${distinct.length} declarations: ${distinct}`);
          continue;
        }
        const declared = found[0];
        // A pair of thresholds in one option cell, or one value per option.
        const pairs: Array<[Declared | undefined, Declared | undefined]> =
          Array.isArray(declared) && options.length === 1 && values.length === 2
            ? [
                [values[0], declared[0]],
                [values[1], declared[1]],
              ]
            : options.length === values.length
              ? [[values[i], declared as Declared | undefined]]
              : [];
        for (const [documented, value] of pairs) {
          if (documented === undefined) continue;
          if (value === undefined) {
            if (page.strict) problems.push(`${where}: "${option}" has no declaration`);
            continue;
          }
          compared.push({ where, option, documented, declared: value });
        }
      }
    }
  }
  return { compared, problems };
}

describe('options: every default in the docs is the one declaration', () => {
  for (const page of PAGES) {
    test(`${page.file}${page.heading ? ` (${page.heading})` : ''}`, () => {
      const { compared, problems } = compare(page);
      assert.deepEqual(problems, []);
      const wrong = compared.filter((c) => c.documented !== c.declared);
      assert.deepEqual(
        wrong.map((c) => `${c.where}: documented ${c.documented}, declared ${c.declared}`),
        [],
      );
      assert.ok(
        compared.length >= page.least,
        `only ${compared.length} defaults read from ${page.file}: is the table parser broken?`,
      );
    });
  }

  test('the cell parser reads values and leaves formulas alone', () => {
    const cases: Array<[string, Declared | undefined]> = [
      ['10 s', 10_000],
      ['30 s (3 intervals)', 30_000],
      ['1 MiB', 1024 ** 2],
      ['1 KiB/s', 1024],
      ['5 min (or 2 x `maxInterval` when longer)', 300_000],
      ['100,000, or the open-file limit', 100_000],
      ['`0`', 0],
      ['70%', 0.7],
      ['unlimited', Number.POSITIVE_INFINITY],
      ["`'127.0.0.1'`", '127.0.0.1'],
      ['2 x `maxConnections`', undefined],
      ['2 × `maxConnectionsPerAddress`', undefined],
      ['1 s to 120 s', undefined],
      ['30 s + 1 s per 1,024 bytes', undefined],
      ['timeout + interval', undefined],
      ['off', undefined],
      ['127.0.0.1', undefined],
      ['120_000', 120_000],
      ['true', true],
    ];
    for (const [cell, want] of cases) assert.equal(parseDefault(cell), want, cell);
  });
});

/**
 * The option interfaces whose `@default` tags are held to the declarations, with where
 * each field's default is declared.
 */
const INTERFACES: ReadonlyArray<{ file: string; name: string; sources: readonly Source[] }> = [
  {
    file: 'src/options.ts',
    name: 'CommonOptions',
    sources: [HEARTBEAT_DEFAULTS, CONNECTION_DEFAULTS],
  },
  { file: 'src/options.ts', name: 'PingPolicyOptions', sources: [PING_POLICY_DEFAULTS] },
  { file: 'src/options.ts', name: 'TcpOptions', sources: [TCP_DEFAULTS] },
  {
    file: 'src/server/server.ts',
    name: 'ServerOptions',
    sources: [HEARTBEAT_DEFAULTS, SERVER_DEFAULTS, GRANT],
  },
  {
    file: 'src/server/admission.ts',
    name: 'AdmissionOptions',
    sources: [ADMISSION_DEFAULTS, DERIVED],
  },
  { file: 'src/server/adaptive.ts', name: 'AdaptiveOptions', sources: [ADAPTIVE_DEFAULTS] },
  { file: 'src/server/load.ts', name: 'LoadOptions', sources: [LOAD_DEFAULTS] },
  { file: 'src/server/workers/mode.ts', name: 'WorkersOptions', sources: [WORKERS_DEFAULTS] },
  { file: 'src/client/client.ts', name: 'ClientOptions', sources: [CLIENT_DEFAULTS] },
  { file: 'src/client/backoff.ts', name: 'BackoffOptions', sources: [BACKOFF_DEFAULTS] },
  { file: 'src/cluster/node.ts', name: 'ClusterOptions', sources: [CLUSTER_DEFAULTS] },
  {
    file: 'src/cluster/redis-idempotency.ts',
    name: 'RedisWindowOptions',
    sources: [REDIS_IDEMPOTENCY_DEFAULTS],
  },
  {
    file: 'src/session/idempotency.ts',
    name: 'MemoryWindowOptions',
    sources: [IDEMPOTENCY_DEFAULTS],
  },
  { file: 'src/health/phi.ts', name: 'PhiAccrualOptions', sources: [PHI_ACCRUAL_DEFAULTS] },
  { file: 'src/health/rtt.ts', name: 'RttEstimatorOptions', sources: [RTT_ESTIMATOR_DEFAULTS] },
  { file: 'src/observe/admin.ts', name: 'AdminOptions', sources: [ADMIN_DEFAULTS] },
  { file: 'src/observe/logger.ts', name: 'LoggerOptions', sources: [LOGGER_DEFAULTS] },
  { file: 'src/chaos/proxy.ts', name: 'ChaosProxyOptions', sources: [CHAOS_DEFAULTS] },
  { file: 'src/chaos/control.ts', name: 'ControlServerOptions', sources: [CONTROL_DEFAULTS] },
];

/** The `@default` text of every field of interface `name` in `file`. */
function defaultTags(file: string, name: string): Array<{ field: string; text: string }> {
  const path = new URL(`../../${file}`, import.meta.url);
  const source = ts.createSourceFile(
    file,
    readFileSync(path, 'utf8'),
    ts.ScriptTarget.Latest,
    true,
  );
  const found = source.statements.find(
    (s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === name,
  );
  assert.ok(found, `no interface ${name} in ${file}`);
  const out: Array<{ field: string; text: string }> = [];
  for (const member of found.members) {
    if (!ts.isPropertySignature(member) || !ts.isIdentifier(member.name)) continue;
    for (const tag of ts.getJSDocTags(member)) {
      if (tag.tagName.text !== 'default') continue;
      out.push({ field: member.name.text, text: ts.getTextOfJSDocComment(tag.comment) ?? '' });
    }
  }
  return out;
}

describe('options: every @default of an options interface is the one declaration', () => {
  for (const { file, name, sources } of INTERFACES) {
    test(`${name} (${file})`, () => {
      const problems: string[] = [];
      for (const { field, text } of defaultTags(file, name)) {
        const documented = parseDefault(text);
        if (documented === undefined) continue;
        const found = [...new Set(declarationsOf(field, sources).map((d) => JSON.stringify(d)))];
        if (found.length !== 1) {
          problems.push(`${name}.${field} @default ${text}: ${found.length} declarations`);
        } else if (JSON.stringify(documented) !== found[0]) {
          problems.push(`${name}.${field} @default ${text}: declared ${found[0]}`);
        }
      }
      assert.deepEqual(problems, []);
    });
  }
});

describe('options: the validators name the option and the value', () => {
  /** Asserts an InvalidArgumentError whose message is exactly `message`. */
  const refuses = (fn: () => unknown, message: string) =>
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.equal(err.code, 'HL_ERR_INVALID_ARGUMENT');
      assert.equal(err.message, message);
      return true;
    });

  test('undefined takes the default; a value in range is returned', () => {
    assert.equal(intOption('n', undefined, 7, 1, 10), 7);
    assert.equal(intOption('n', 10, 7, 1, 10), 10);
    assert.equal(numberOption('n', undefined, 0.5), 0.5);
    assert.equal(numberOption('n', Number.POSITIVE_INFINITY, 1, 1), Number.POSITIVE_INFINITY);
    assert.equal(positiveOption('n', 0.25, 1), 0.25);
    assert.equal(limitOption('n', Number.POSITIVE_INFINITY, 1), Number.POSITIVE_INFINITY);
    assert.equal(boolOption('b', false, true), false);
    assert.equal(stringOption('s', undefined, 'x'), 'x');
    assert.equal(choiceOption('c', undefined, 'a', ['a', 'b']), 'a');
    assert.equal(functionOption('f', undefined), null);
    assert.equal(requiredOption('r', 0), 0);
  });

  test('every refusal reads: option "<name>" must be ..., got <value>', () => {
    refuses(
      () => intOption('port', 70_000, 0, 0, 65_535),
      'option "port" must be an integer in [0, 65535], got 70000',
    );
    refuses(
      () => intOption('ackEvery', 0, 32, 1),
      'option "ackEvery" must be an integer >= 1, got 0',
    );
    refuses(
      () => intOption('ackEvery', 1.5, 32, 1),
      'option "ackEvery" must be an integer >= 1, got 1.5',
    );
    refuses(() => numberOption('rss', -1, 0), 'option "rss" must be a number >= 0, got -1');
    refuses(
      () => numberOption('x', Number.NaN, 0, 0, 1),
      'option "x" must be a number in [0, 1], got NaN',
    );
    refuses(
      () => numberOption('multiplier', Number.POSITIVE_INFINITY, 2, 1, Number.MAX_VALUE),
      'option "multiplier" must be a finite number >= 1, got Infinity',
    );
    refuses(
      () => positiveOption('acceptRate', 0, 1),
      'option "acceptRate" must be a positive number or Infinity, got 0',
    );
    refuses(
      () => positiveOption('delay', Number.POSITIVE_INFINITY, 1, 100),
      'option "delay" must be a number in (0, 100], got Infinity',
    );
    refuses(
      () => limitOption('maxSessions', 2.5, 1),
      'option "maxSessions" must be a positive integer or Infinity, got 2.5',
    );
    refuses(
      () => boolOption('failFast', 'yes' as never, false),
      'option "failFast" must be a boolean, got yes',
    );
    refuses(() => stringOption('host', '', 'h'), 'option "host" must be a non-empty string, got ');
    refuses(
      () => choiceOption('jitter', 'bogus' as 'a', 'a', ['a', 'b']),
      "option \"jitter\" must be one of 'a', 'b', got bogus",
    );
    refuses(() => functionOption('sampler', 1 as never), 'option "sampler" must be a function');
    refuses(() => requiredOption('target.port', undefined), 'option "target.port" is required');
  });

  test('null is refused, never taken for "not given"', () => {
    assert.throws(() => intOption('n', null as never, 1), InvalidArgumentError);
    assert.throws(() => stringOption('s', null as never, 'x'), InvalidArgumentError);
    assert.throws(() => boolOption('b', null as never, true), InvalidArgumentError);
  });
});
