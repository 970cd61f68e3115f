/**
 * The benchmark suite (`npm run bench`): runs every workload in turn with one progress
 * bar on stderr, writes each result to bench/results/<name>.json, then (for a full run into
 * bench/results) regenerates docs/benchmarks.md and the README table from them.
 *
 *   node --import tsx bench/run.ts [--quick] [--only peers,idle] [--out DIR] [workload flags]
 *
 * A workload that fails is reported and the others still run; the exit code is then 1.
 */

import { clusterBench } from './cluster.js';
import { idle } from './idle.js';
import { ProgressBar } from './lib/progress.js';
import { RESULTS_DIR } from './lib/results.js';
import { type AnyWorkload, parseCommon, runWorkload, targetLines, usage } from './lib/workload.js';
import { messages } from './messages.js';
import { peers } from './peers.js';
import { writeReport } from './report.js';
import { requestsBench } from './requests.js';
import { wheelBench } from './wheel.js';

/** Every workload, in the order a run takes them. */
export const WORKLOADS: readonly AnyWorkload[] = [
  peers,
  idle,
  messages,
  clusterBench,
  wheelBench,
  requestsBench,
];

const EXTRA = {
  only: `comma-separated workloads to run (default all: ${WORKLOADS.map((w) => w.name).join(',')})`,
};

async function run(): Promise<number> {
  let options: ReturnType<typeof parseCommon>;
  try {
    options = parseCommon(process.argv.slice(2), WORKLOADS, EXTRA);
  } catch (err) {
    process.stderr.write(
      `${(err as Error).message}\n\n${usage('npm run bench --', WORKLOADS, EXTRA)}\n`,
    );
    return 2;
  }
  if (options.help) {
    process.stdout.write(`${usage('npm run bench --', WORKLOADS, EXTRA)}\n`);
    return 0;
  }
  const only = options.values.only?.split(',').map((s) => s.trim());
  const unknown = only?.filter((n) => !WORKLOADS.some((w) => w.name === n)) ?? [];
  if (unknown.length > 0) {
    process.stderr.write(`unknown workload(s): ${unknown.join(', ')}\n`);
    return 2;
  }
  const selected = WORKLOADS.filter((w) => !only || only.includes(w.name));
  const planned = selected.map((w) => ({ w, parameters: w.parameters(options) }));
  const bar = new ProgressBar(planned.flatMap(({ w, parameters }) => w.steps(parameters)));
  const lines: string[] = [];
  let failed = 0;
  for (const { w, parameters } of planned) {
    try {
      const { doc, path } = await runWorkload(w, parameters, options, bar);
      lines.push(`${w.title}\n${w.summary(doc.rows, doc.targets)}`);
      if (doc.targets.length > 0) lines.push(`targets:\n${targetLines(doc.targets)}`);
      lines.push(`results: ${path}\n`);
    } catch (err) {
      failed++;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      bar.log(`${w.name} failed: ${message}`);
      lines.push(`${w.title}\n  FAILED: ${message}\n`);
    }
  }
  bar.end();
  process.stdout.write(`${lines.join('\n')}\n`);
  if (!options.quick && options.out === RESULTS_DIR) {
    const written = writeReport(RESULTS_DIR);
    process.stdout.write(`report: ${written.join(', ')}\n`);
  }
  return failed > 0 ? 1 : 0;
}

process.exitCode = await run();
