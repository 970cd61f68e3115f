/**
 * Keeps the adversarial harness (`npm run attack`, bench/attack.ts) from rotting: two of
 * its attacks, cut to a fraction of a second, run in-process against the built CLI
 * (dist/cli/main.js, as the CLI tests use it), and the harness must judge a healthy
 * server healthy: up, RSS sampled, the bystander's echoes all back exactly once. The
 * verdict logic is also checked on made-up rows, so that a dead server or a lost
 * message can never read as a pass.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BystanderResult } from '../../bench/attack/bystander.js';
import { type Attack, judge, markdownTable } from '../../bench/attack/harness.js';
import { ATTACKS, runAttacks } from '../../bench/attack.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** An attack of the run, shortened for the smoke test. */
function short(id: string, seconds: number): Attack {
  const attack = ATTACKS.find((a) => a.id === id);
  assert.ok(attack, `no attack "${id}"`);
  return { ...attack, seconds: () => seconds };
}

const okBystander: BystanderResult = {
  result: 'ok',
  sent: 10,
  echoed: 10,
  lost: 0,
  duplicates: 0,
  reordered: 0,
  disconnects: 0,
  resumes: 0,
  sessionsLost: 0,
  p50Ms: 1,
  p99Ms: 2,
  maxMs: 2,
};

test('the verdict fails a dead server, a harmed bystander, a broken promise and memory over budget', () => {
  const healthy = {
    serverUp: true,
    serverExit: null,
    crash: null,
    rssMiB: { before: 50, peak: 80, after: 60 },
    heldMiB: { before: 10, after: 12 },
    bystander: okBystander,
    violations: [],
  };
  const budgets = { peakMiB: 100, retainedMiB: 20 };
  assert.deepEqual(judge(healthy, budgets), []);
  const died = judge(
    { ...healthy, serverUp: false, serverExit: 'exit 1', crash: 'Error: boom' },
    budgets,
  );
  assert.match(died.join(), /server died \(exit 1\): Error: boom/);
  assert.match(
    judge({ ...healthy, bystander: { ...okBystander, result: 'lost', lost: 3 } }, budgets).join(),
    /bystander lost 3\/10/,
  );
  assert.match(
    judge(
      { ...healthy, bystander: { ...okBystander, result: 'dup', duplicates: 1 } },
      budgets,
    ).join(),
    /bystander dup/,
  );
  assert.deepEqual(judge({ ...healthy, violations: ['token replayed'] }, budgets), [
    'token replayed',
  ]);
  assert.match(
    judge({ ...healthy, rssMiB: { before: 50, peak: 151, after: 60 } }, budgets).join(),
    /peak RSS \+101 MiB/,
  );
  // RSS after a burst may stay up (the allocator keeps pages): what is still held counts.
  assert.deepEqual(judge({ ...healthy, rssMiB: { before: 50, peak: 80, after: 79 } }, budgets), []);
  assert.match(
    judge({ ...healthy, heldMiB: { before: 10, after: 31 } }, budgets).join(),
    /still held after GC \+21 MiB/,
  );
});

test('two short attacks against a healthy server: up, measured, bystander ok', {
  timeout: 60_000,
}, async () => {
  const rows = await runAttacks([short('fuzz', 0.5), short('churn', 0.5)], {
    cli: CLI,
    quick: true,
    sessionTtlMs: 300,
    settleMs: 200,
    retainedBudgetMiB: 64,
  });
  assert.equal(rows.length, 2);
  for (const row of rows) {
    const why = `${row.id}: ${row.failures.join('; ')} / ${row.notes.join('; ')}`;
    assert.equal(row.serverUp, true, why);
    assert.equal(row.serverExit, null, why);
    assert.equal(row.bystander.result, 'ok', why);
    assert.ok(row.bystander.sent > 0 && row.bystander.echoed === row.bystander.sent, why);
    assert.ok(row.bystander.p99Ms !== null && row.bystander.p99Ms >= 0, why);
    for (const key of ['before', 'peak', 'after'] as const) {
      const v = row.rssMiB[key];
      assert.ok(v !== null && v > 10 && v < 4096, `${row.id}: RSS ${key} is ${v}`);
    }
    assert.ok(row.rssMiB.peak! >= row.rssMiB.before!, why);
    assert.ok(row.heldMiB.before !== null && row.heldMiB.after !== null, why);
    assert.ok(row.serverLoopP99Ms !== null, why);
    assert.ok(
      row.notes.some((n) => /attacker got/.test(n)),
      why,
    );
    assert.equal(row.verdict, 'pass', why);
  }
  const table = markdownTable(rows);
  assert.match(table, /^\| attack \| server \|/);
  assert.equal(table.split('\n').length, 4);
});
