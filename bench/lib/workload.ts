/**
 * A workload is one benchmark file in bench/. Each one exports a {@link Workload} and
 * runs by itself when executed (`node --import tsx bench/<file>.ts [--quick]`); bench/run.ts
 * runs them all with one progress bar. Both write the same result document.
 */

import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machineInfo } from './machine.js';
import { type Progress, ProgressBar, type Step } from './progress.js';
import {
  QUICK_RESULTS_DIR,
  RESULTS_DIR,
  type ResultDoc,
  SCHEMA,
  type Target,
  writeResult,
} from './results.js';
import { round } from './stats.js';

/** Options every workload takes. */
export interface CommonOptions {
  /** A reduced run for a smoke check. */
  quick: boolean;
  /** Directory the result file goes to. */
  out: string;
  /** The workload's own flags, as given. */
  values: Record<string, string | undefined>;
}

/** What a workload's run produces. */
export interface Outcome<Row> {
  rows: Row[];
  targets: Target[];
  notes: string[];
}

/** One benchmark file. */
export interface Workload<
  P extends Record<string, unknown> = Record<string, unknown>,
  Row = unknown,
> {
  /** Name of the result file (bench/results/<name>.json). */
  readonly name: string;
  readonly title: string;
  /** The workload's own flags (each takes a value) with their help text. */
  readonly flags: Readonly<Record<string, string>>;
  /** Resolves the parameters from the options (defaults, --quick reductions). */
  parameters(options: CommonOptions): P;
  /** The steps the progress bar shows, ids unique across workloads. */
  steps(parameters: P): Step[];
  run(parameters: P, progress: Progress): Promise<Outcome<Row>>;
  /** A few lines for the terminal once the run is over. */
  summary(rows: Row[], targets: Target[]): string;
}

/** A workload with its parameter and row types erased, for lists of workloads. */
// biome-ignore lint/suspicious/noExplicitAny: each workload has its own parameter and row types
export type AnyWorkload = Workload<any, any>;

/**
 * A workload flag that must be a positive integer: `fallback` when not given.
 * @throws Error naming the flag.
 */
export function positiveInt(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined) return fallback;
  const x = Number(raw);
  if (!Number.isInteger(x) || x < 1) {
    throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  }
  return x;
}

/** Parses the command line of `workloads` (their flags merged) plus the common flags. */
export function parseCommon(
  argv: string[],
  workloads: readonly AnyWorkload[],
  extra: Record<string, string> = {},
): CommonOptions & { help: boolean } {
  const flags: Record<string, { type: 'string' }> = {};
  for (const w of workloads) for (const f of Object.keys(w.flags)) flags[f] = { type: 'string' };
  for (const f of Object.keys(extra)) flags[f] = { type: 'string' };
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
      ...flags,
    },
    strict: true,
    allowPositionals: false,
  });
  const quick = values.quick === true;
  const out =
    typeof values.out === 'string' ? resolve(values.out) : quick ? QUICK_RESULTS_DIR : RESULTS_DIR;
  const rest: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(values)) if (typeof v === 'string') rest[k] = v;
  return { quick, out, values: rest, help: values.help === true };
}

/** Help text of `workloads`. */
export function usage(
  command: string,
  workloads: readonly AnyWorkload[],
  extra: Record<string, string> = {},
): string {
  const lines = [`Usage: ${command} [--quick] [--out DIR] [flags]`, '', 'Common flags:'];
  lines.push(
    '  --quick                a reduced run (smoke check); results go to bench/results/quick/',
  );
  lines.push('  --out DIR              write the result files to DIR');
  for (const [f, help] of Object.entries(extra)) lines.push(`  --${f.padEnd(20)} ${help}`);
  if (workloads.length > 1) {
    lines.push('', 'A flag applies to every workload below that has it.');
  }
  for (const w of workloads) {
    if (Object.keys(w.flags).length === 0) continue;
    lines.push('', `${w.name} (${w.title}):`);
    for (const [f, help] of Object.entries(w.flags)) lines.push(`  --${f.padEnd(20)} ${help}`);
  }
  return lines.join('\n');
}

/** Runs one workload and writes its result document; returns the document and its path. */
export async function runWorkload<P extends Record<string, unknown>, Row>(
  workload: Workload<P, Row>,
  parameters: P,
  options: CommonOptions,
  progress: Progress,
): Promise<{ doc: ResultDoc<Row>; path: string }> {
  const started = new Date();
  const t0 = performance.now();
  const outcome = await workload.run(parameters, progress);
  const doc: ResultDoc<Row> = {
    schema: SCHEMA,
    name: workload.name,
    title: workload.title,
    quick: options.quick,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    durationS: round((performance.now() - t0) / 1000, 1),
    machine: machineInfo(),
    parameters,
    rows: outcome.rows,
    targets: outcome.targets,
    notes: outcome.notes,
  };
  const path = writeResult(doc as ResultDoc<unknown>, options.out);
  return { doc, path };
}

/** Formats targets for the terminal. */
export function targetLines(targets: readonly Target[]): string {
  return targets
    .map(
      (t) =>
        `  ${t.met === true ? 'met    ' : t.met === false ? 'MISSED ' : 'not run'}  ${t.goal}: ${t.measured}`,
    )
    .join('\n');
}

/** True when the module at `url` is the script node was started with. */
export function isMain(url: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(url));
  } catch {
    return false;
  }
}

/** Runs `workload` as a command: parses argv, shows progress, writes and prints the result. */
export async function main<P extends Record<string, unknown>, Row>(
  workload: Workload<P, Row>,
): Promise<void> {
  let options: CommonOptions & { help: boolean };
  try {
    options = parseCommon(process.argv.slice(2), [workload]);
  } catch (err) {
    process.stderr.write(
      `${(err as Error).message}\n\n${usage(`bench/${workload.name}.ts`, [workload])}\n`,
    );
    process.exit(2);
  }
  if (options.help) {
    process.stdout.write(`${usage(`node --import tsx bench/${workload.name}.ts`, [workload])}\n`);
    return;
  }
  const parameters = workload.parameters(options);
  const bar = new ProgressBar(workload.steps(parameters));
  try {
    const { doc, path } = await runWorkload(workload, parameters, options, bar);
    bar.end();
    process.stdout.write(`${workload.title}\n${workload.summary(doc.rows, doc.targets)}\n`);
    if (doc.targets.length > 0) process.stdout.write(`targets:\n${targetLines(doc.targets)}\n`);
    process.stdout.write(`results: ${path}\n`);
  } catch (err) {
    bar.end();
    process.stderr.write(
      `${workload.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  }
}
