/**
 * The adversarial run (`npm run attack`; not part of the test suite): every attack of
 * bench/attack/*.ts against a fresh `heartline serve --echo` child, one row per attack with
 * the server's survival, its RSS before, at the peak and after, and what a bystander
 * client streaming through the echo saw. Prints a markdown table (for SECURITY.md),
 * writes bench/results/attack.json, and exits 1 when any row failed (the server died, the
 * bystander lost or duplicated a message, memory passed its budget, or the attack broke a
 * promise of the server), so that it can gate a release.
 *
 *   node --import tsx bench/attack.ts [--quick] [--only id,id] [--list] [--cli PATH]
 *     [--out DIR] [--peak-budget MIB] [--retained-budget MIB]
 *
 * Traffic goes to 127.0.0.1 only. A full run takes about 5 minutes, --quick about 2 (both with the build).
 */

import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { floodAttacks } from './attack/floods.js';
import { fuzzAttacks } from './attack/fuzz.js';
import {
  type Attack,
  type AttackRow,
  DEFAULT_PEAK_BUDGET_MIB,
  DEFAULT_RETAINED_BUDGET_MIB,
  markdownTable,
  type RunOptions,
  runAttack,
} from './attack/harness.js';
import { oversizeAttacks } from './attack/oversize.js';
import { sessionAttacks } from './attack/sessions.js';
import { slowAttacks } from './attack/slow.js';
import { tlsAttacks } from './attack/tls.js';
import { workerAttacks } from './attack/workers.js';
import { buildHeartline, buildWarnings } from './lib/build.js';
import { machineInfo } from './lib/machine.js';
import { ProgressBar } from './lib/progress.js';
import {
  QUICK_RESULTS_DIR,
  RESULTS_DIR,
  type ResultDoc,
  SCHEMA,
  type Target,
  writeResult,
} from './lib/results.js';
import { round } from './lib/stats.js';
import { isMain } from './lib/workload.js';

/** Every attack, in the order a run takes them. */
export const ATTACKS: readonly Attack[] = [
  ...fuzzAttacks,
  ...floodAttacks,
  ...oversizeAttacks,
  ...slowAttacks,
  ...sessionAttacks,
  ...tlsAttacks,
  ...workerAttacks,
];

/** Seconds a row takes besides its attack: server start, warm-up, echo wait, settle, stop. */
const ROW_OVERHEAD_S = { quick: 3, full: 6 };

const HELP = `Usage: npm run attack -- [options]   (node --import tsx bench/attack.ts)

Runs every attack against a fresh heartline echo server and prints one row per attack.
Exits 1 when a row failed (the row says why).

  --quick               a reduced run (about 2 min); results go to bench/results/quick/
  --only ID,ID          only these attacks (see --list)
  --list                list the attacks and exit
  --cli PATH            the heartline CLI to attack (default: src/ compiled afresh by tsc)
  --out DIR             where attack.json goes (default bench/results)
  --peak-budget MIB     memory an attack may add at its peak (default ${DEFAULT_PEAK_BUDGET_MIB})
  --retained-budget MIB memory still held (heap + buffers, after GC) once it settled
                        (default ${DEFAULT_RETAINED_BUDGET_MIB})
  -h, --help            this help`;

/** Runs `attacks` in turn; a row that could not run at all is a failed row, not an abort. */
export async function runAttacks(
  attacks: readonly Attack[],
  options: RunOptions,
  onRow: (row: AttackRow, index: number) => void = () => {},
): Promise<AttackRow[]> {
  const rows: AttackRow[] = [];
  for (const [i, attack] of attacks.entries()) {
    let row: AttackRow;
    try {
      row = await runAttack(attack, options);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      row = {
        id: attack.id,
        family: attack.family,
        label: attack.label,
        serverUp: false,
        serverExit: null,
        crash: null,
        rssMiB: { before: null, peak: null, after: null },
        heldMiB: { before: null, after: null },
        serverLoopP99Ms: null,
        bystander: {
          result: 'not-connected',
          sent: 0,
          echoed: 0,
          lost: 0,
          duplicates: 0,
          reordered: 0,
          disconnects: 0,
          resumes: 0,
          sessionsLost: 0,
          p50Ms: null,
          p99Ms: null,
          maxMs: null,
        },
        notes: [],
        violations: [],
        failures: [`the row could not run: ${message}`],
        verdict: 'FAIL',
        seconds: 0,
      };
    }
    rows.push(row);
    onRow(row, i);
  }
  return rows;
}

/** Targets of the run (issue 12), judged from the rows. */
function targets(rows: readonly AttackRow[]): Target[] {
  const died = rows.filter((r) => !r.serverUp);
  const harmed = rows.filter((r) => r.bystander.result !== 'ok');
  const failed = rows.filter((r) => r.verdict === 'FAIL');
  return [
    {
      id: 'server-survives',
      goal: 'the server survives every attack',
      measured: died.length === 0 ? 'up after all' : `died: ${died.map((r) => r.id).join(', ')}`,
      met: died.length === 0,
    },
    {
      id: 'bystander-exactly-once',
      goal: 'a bystander gets every echo exactly once, in order, during every attack',
      measured:
        harmed.length === 0
          ? 'ok in all'
          : harmed.map((r) => `${r.id}: ${r.bystander.result}`).join(', '),
      met: harmed.length === 0,
    },
    {
      id: 'every-row-passes',
      goal: 'every row passes (memory budgets and the attacks’ own checks included)',
      measured: failed.length === 0 ? 'all pass' : `failed: ${failed.map((r) => r.id).join(', ')}`,
      met: failed.length === 0,
    },
  ];
}

function numberFlag(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
}

async function main(): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        list: { type: 'boolean', default: false },
        cli: { type: 'string' },
        out: { type: 'string' },
        'peak-budget': { type: 'string' },
        'retained-budget': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (values.list) {
    for (const a of ATTACKS) process.stdout.write(`${a.id.padEnd(22)} ${a.label}\n`);
    return 0;
  }
  const quick = values.quick === true;
  const only = typeof values.only === 'string' ? values.only.split(',').map((s) => s.trim()) : null;
  const unknown = only?.filter((id) => !ATTACKS.some((a) => a.id === id)) ?? [];
  if (unknown.length > 0) {
    process.stderr.write(`unknown attack(s): ${unknown.join(', ')} (see --list)\n`);
    return 2;
  }
  const selected = ATTACKS.filter((a) => !only || only.includes(a.id));
  let options: RunOptions;
  try {
    options = {
      cli:
        typeof values.cli === 'string'
          ? resolve(values.cli)
          : join(dirname(buildHeartline()), 'cli', 'main.js'),
      quick,
      sessionTtlMs: quick ? 1000 : 2000,
      settleMs: quick ? 300 : 2000,
      retainedBudgetMiB: numberFlag(
        'retained-budget',
        values['retained-budget'] as string | undefined,
        DEFAULT_RETAINED_BUDGET_MIB,
      ),
      ...(values['peak-budget'] !== undefined
        ? { peakBudgetMiB: numberFlag('peak-budget', values['peak-budget'] as string, 1) }
        : {}),
    };
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  if (buildWarnings)
    process.stderr.write(`tsc reported errors (built anyway):\n${buildWarnings}\n`);
  const overhead = quick ? ROW_OVERHEAD_S.quick : ROW_OVERHEAD_S.full;
  const bar = new ProgressBar(
    selected.map((a) => ({ id: a.id, label: a.label, weight: a.seconds(quick) + overhead })),
  );
  const started = new Date();
  const t0 = performance.now();
  let current = selected[0]?.id ?? '';
  if (current) bar.start(current);
  const rows = await runAttacks(
    selected,
    { ...options, onPhase: (phase) => bar.update(current, 0.5, phase) },
    (row, i) => {
      bar.finish(row.id, row.verdict === 'pass' ? 'pass' : `FAIL: ${row.failures.join('; ')}`);
      const next = selected[i + 1];
      if (next) {
        current = next.id;
        bar.start(current);
      }
    },
  );
  bar.end();
  const doc: ResultDoc<AttackRow> = {
    schema: SCHEMA,
    name: 'attack',
    title: 'Adversarial run: the echo server under attack, with a bystander',
    quick,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    durationS: round((performance.now() - t0) / 1000, 1),
    machine: machineInfo(),
    parameters: {
      attacks: selected.map((a) => a.id),
      sessionTtlMs: options.sessionTtlMs,
      settleMs: options.settleMs,
      peakBudgetMiB: options.peakBudgetMiB ?? 'per attack',
      retainedBudgetMiB: options.retainedBudgetMiB,
      cli: typeof values.cli === 'string' ? options.cli : 'src/ compiled by tsc',
    },
    rows,
    targets: targets(rows),
    notes: [
      'Each row: a fresh `heartline serve --echo --json --interval 1000 --timeout 3000 --handshake-timeout 3000 --drain-timeout 0` with a short --session-ttl; RSS from /proc (VmRSS, summed over worker processes), sampled every 100 ms; before = once the bystander warmed up, after = once the attack stopped and the settle period and the session TTL passed, both after full garbage collections in every server process (heldMiB: V8 heap used + external memory then).',
      'Bystander: the library client, one 16-byte numbered message every 10 ms through the echo during the whole attack; it must get each back exactly once, in order.',
    ],
  };
  const out =
    typeof values.out === 'string' ? resolve(values.out) : quick ? QUICK_RESULTS_DIR : RESULTS_DIR;
  const path = writeResult(doc as ResultDoc<unknown>, out);
  const failed = rows.filter((r) => r.verdict === 'FAIL');
  process.stdout.write(`${doc.title} (${doc.durationS} s${quick ? ', quick' : ''})\n\n`);
  process.stdout.write(`${markdownTable(rows)}\n\n`);
  if (failed.length > 0) {
    process.stdout.write(`${failed.length} of ${rows.length} rows FAILED:\n`);
    for (const r of failed) process.stdout.write(`  ${r.id}: ${r.failures.join('; ')}\n`);
  } else process.stdout.write(`all ${rows.length} rows passed\n`);
  process.stdout.write(`results: ${path}\n`);
  return failed.length > 0 ? 1 : 0;
}

if (isMain(import.meta.url)) process.exitCode = await main();
