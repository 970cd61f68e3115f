/**
 * Result files: one JSON document per workload in bench/results/<name>.json (quick runs
 * in bench/results/quick/), with the machine, the parameters, one row per measurement
 * and the targets of issue 8 judged from those rows. bench/report.ts turns them into
 * docs/benchmarks.md and the README table.
 */

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './child.js';
import type { Machine } from './machine.js';

/** Version of the document layout. */
export const SCHEMA = 1;

/** Where full runs write. */
export const RESULTS_DIR = join(ROOT, 'bench', 'results');

/** Where --quick runs write (so a smoke run never replaces real figures). */
export const QUICK_RESULTS_DIR = join(RESULTS_DIR, 'quick');

/** A target of issue 8, judged from measured figures. */
export interface Target {
  /** Stable id ("rss-per-connection"). */
  id: string;
  /** What is measured and the goal ("RSS per connection <= 1.3 x raw net"). */
  goal: string;
  /** The measured figure(s), as text. */
  measured: string;
  /** true / false, or null when it could not be judged (not run). */
  met: boolean | null;
}

/** One result document. */
export interface ResultDoc<Row = Record<string, unknown>> {
  schema: number;
  name: string;
  title: string;
  quick: boolean;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  machine: Machine;
  parameters: Record<string, unknown>;
  rows: Row[];
  targets: Target[];
  notes: string[];
}

/** Writes `doc` to `<dir>/<name>.json` atomically; returns the path. */
export function writeResult(doc: ResultDoc<unknown>, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${doc.name}.json`);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
  return path;
}

/** Reads a result document, or null when there is none. */
export function readResult<Row = Record<string, unknown>>(
  dir: string,
  name: string,
): ResultDoc<Row> | null {
  try {
    return JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as ResultDoc<Row>;
  } catch {
    return null;
  }
}

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);

/** The problems of a document that does not have the layout above (empty when it does). */
export function checkResult(doc: unknown): string[] {
  const problems: string[] = [];
  if (!isObject(doc)) return ['not a JSON object'];
  if (doc.schema !== SCHEMA) problems.push(`schema is ${String(doc.schema)}, not ${SCHEMA}`);
  for (const key of ['name', 'title', 'startedAt', 'finishedAt'] as const) {
    if (typeof doc[key] !== 'string' || doc[key] === '') problems.push(`${key} is not a string`);
  }
  for (const key of ['startedAt', 'finishedAt'] as const) {
    if (typeof doc[key] === 'string' && Number.isNaN(Date.parse(doc[key] as string))) {
      problems.push(`${key} is not a date`);
    }
  }
  if (typeof doc.quick !== 'boolean') problems.push('quick is not a boolean');
  if (typeof doc.durationS !== 'number' || !(doc.durationS >= 0))
    problems.push('durationS is not a number');
  const m = doc.machine;
  if (!isObject(m)) problems.push('machine is missing');
  else {
    for (const key of ['cpuModel', 'node', 'platform', 'openFiles'] as const) {
      if (typeof m[key] !== 'string') problems.push(`machine.${key} is not a string`);
    }
    for (const key of ['cores', 'memoryBytes'] as const) {
      if (typeof m[key] !== 'number' || !((m[key] as number) > 0))
        problems.push(`machine.${key} is not a positive number`);
    }
  }
  if (!isObject(doc.parameters)) problems.push('parameters is not an object');
  if (!Array.isArray(doc.rows) || doc.rows.length === 0) problems.push('rows is empty');
  else if (!doc.rows.every(isObject)) problems.push('a row is not an object');
  if (!Array.isArray(doc.targets)) problems.push('targets is not a list');
  else {
    for (const t of doc.targets) {
      if (
        !isObject(t) ||
        typeof t.id !== 'string' ||
        typeof t.goal !== 'string' ||
        typeof t.measured !== 'string'
      ) {
        problems.push(`a target is malformed: ${JSON.stringify(t)}`);
      } else if (!(t.met === true || t.met === false || t.met === null)) {
        problems.push(`target ${t.id}: met is not true, false or null`);
      }
    }
  }
  if (!Array.isArray(doc.notes) || !doc.notes.every((n) => typeof n === 'string')) {
    problems.push('notes is not a list of strings');
  }
  return problems;
}
