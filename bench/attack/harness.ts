/**
 * One row of the adversarial run: a fresh server under attack, its RSS sampled before,
 * during and after, a bystander streaming through the echo the whole time, the attack,
 * a settle period (plus the session TTL, so that abandoned sessions are gone), and the
 * verdict. An attack is a small object ({@link Attack}); the families live in
 * bench/attack/*.ts and bench/attack.ts runs them all.
 */

import { sleep } from '../lib/stats.js';
import { Bystander, type BystanderResult, describeBystander } from './bystander.js';
import { SocketPool } from './raw.js';
import { RssSampler, Target } from './target.js';
import { serverCertificate } from './tls.js';

const MiB = 1024 * 1024;

/**
 * Memory an attack may add at its peak (MiB) before the row fails: the server's bounds
 * (replay buffer 16 MiB per session, 1 MiB frames, a few hundred sockets) keep one
 * attacker's cost in the tens of MiB; a few hundred means something is unbounded.
 */
export const DEFAULT_PEAK_BUDGET_MIB = 200;
/**
 * Memory still held after the attack, the settle period and the session TTL (MiB): V8
 * heap used plus buffers, after full garbage collections, against the same figure before.
 * (Not RSS: the allocator keeps freed pages mapped, so RSS after a burst stays up for
 * reasons that are not a leak; the table shows it all the same.)
 */
export const DEFAULT_RETAINED_BUDGET_MIB = 64;
/**
 * Server memory growth (MiB) at which an attack is stopped early: the row has failed by
 * then, and the machine is shared.
 */
const RSS_CEILING_MIB = 2048;
/** How long the bystander streams before the attack (ms): the "before" RSS is taken then. */
const WARMUP_MS = 500;
/** How long the bystander waits for its outstanding echoes once the attack stops (ms). */
const ECHO_WAIT_MS = 10_000;
/** Beyond an attack's own duration, how long it may run before it is cut off (ms). */
const HARD_SLACK_MS = 20_000;

/** What an attack can use while it runs. */
export interface AttackContext {
  /** The server's port on 127.0.0.1. */
  readonly port: number;
  /** The admin endpoint's URL when the attack's server has --admin. */
  readonly adminUrl: string | null;
  readonly quick: boolean;
  /** The server's process and what it printed. */
  readonly target: Target;
  /** Opens the attacker's sockets; all are reset when the attack ends. */
  readonly pool: SocketPool;
  /** When (performance.now()) the attack should stop sending (0 once it is stopped early). */
  readonly deadline: number;
  /** Aborted when the attack overruns its time by far (the harness moves on). */
  readonly signal: AbortSignal;
  /** The session TTL the server runs with (ms). */
  readonly sessionTtlMs: number;
  /** A fact worth a line in the table (the close code the attacker got...). */
  note(text: string): void;
  /** A promise of the issue the server broke (a refused newcomer, a replayed token...). */
  violation(text: string): void;
}

/** One attack of the run. */
export interface Attack {
  /** Stable id (`flood-ping`), used by --only. */
  readonly id: string;
  /** Its family (the module it lives in). */
  readonly family: string;
  /** The table's first column. */
  readonly label: string;
  /** `serve` flags of its server beyond the common ones (a later flag wins). */
  readonly serverArgs?: readonly string[];
  /** Worker processes of its server (`serve --workers N`). @default 0: one process */
  readonly workers?: number;
  /** Its server speaks TLS (a certificate made for the run); the bystander too. */
  readonly tls?: boolean;
  /** Its own session TTL (ms), when the attack needs sessions to stay. */
  readonly sessionTtlMs?: number;
  /** Peak memory it may add (MiB). @default DEFAULT_PEAK_BUDGET_MIB */
  readonly peakBudgetMiB?: number;
  /** About how long the attack itself runs (s). */
  seconds(quick: boolean): number;
  run(ctx: AttackContext): Promise<void>;
}

/** Options of a run. */
export interface RunOptions {
  /** The CLI's main.js. */
  cli: string;
  quick: boolean;
  /** The session TTL of the servers (ms) unless an attack sets its own. */
  sessionTtlMs: number;
  /** Pause after the attack, before the "after" RSS, on top of the session TTL (ms). */
  settleMs: number;
  retainedBudgetMiB: number;
  /** Overrides every attack's peak budget when set. */
  peakBudgetMiB?: number;
  /** Called with a short description of what the row is doing. */
  onPhase?: (phase: string) => void;
}

/** One row of the table. */
export interface AttackRow {
  id: string;
  family: string;
  label: string;
  serverUp: boolean;
  /** How the server ended ("exit 1", "SIGABRT") when it died. */
  serverExit: string | null;
  /** The line of the server's stderr that names the crash. */
  crash: string | null;
  /** Before and after: RSS once every server process ran full garbage collections. */
  rssMiB: { before: number | null; peak: number | null; after: number | null };
  /** V8 heap used plus external memory after full garbage collections, before and after. */
  heldMiB: { before: number | null; after: number | null };
  /** The server's event-loop delay p99 during the attack (ms; the worst process). */
  serverLoopP99Ms: number | null;
  bystander: BystanderResult;
  notes: string[];
  violations: string[];
  /** Everything that failed the row (empty: pass). */
  failures: string[];
  verdict: 'pass' | 'FAIL';
  seconds: number;
}

/** The common flags of every server: short timers so that a row's after-values mean something. */
export function commonServerArgs(sessionTtlMs: number): string[] {
  return [
    '--session-ttl',
    String(sessionTtlMs),
    '--drain-timeout',
    '0',
    '--interval',
    '1000',
    '--timeout',
    '3000',
    '--handshake-timeout',
    '3000',
  ];
}

/** Handshake deadline of every server (ms), as set by {@link commonServerArgs}. */
export const HANDSHAKE_TIMEOUT_MS = 3000;
/** Heartbeat timeout granted by every server (ms), as set by {@link commonServerArgs}. */
export const HEARTBEAT_TIMEOUT_MS = 3000;

const toMiB = (bytes: number | null): number | null =>
  bytes === null || bytes <= 0 ? null : Math.round((bytes / MiB) * 10) / 10;

/** The verdict of a row from what was measured: what failed it, if anything. */
export function judge(
  row: Pick<
    AttackRow,
    'serverUp' | 'serverExit' | 'crash' | 'rssMiB' | 'heldMiB' | 'bystander' | 'violations'
  >,
  budgets: { peakMiB: number; retainedMiB: number },
): string[] {
  const failures: string[] = [];
  if (!row.serverUp) {
    failures.push(
      `server died (${row.serverExit ?? 'gone'})${row.crash ? `: ${row.crash.slice(0, 160)}` : ''}`,
    );
  }
  const b = row.bystander;
  if (b.result !== 'ok') {
    failures.push(`bystander ${b.result}${b.result === 'lost' ? ` ${b.lost}/${b.sent}` : ''}`);
  }
  failures.push(...row.violations);
  const { before, peak } = row.rssMiB;
  if (before !== null && peak !== null && peak - before > budgets.peakMiB) {
    failures.push(`peak RSS +${Math.round(peak - before)} MiB (budget ${budgets.peakMiB})`);
  }
  const held = row.heldMiB;
  if (
    held.before !== null &&
    held.after !== null &&
    held.after - held.before > budgets.retainedMiB
  ) {
    failures.push(
      `still held after GC +${Math.round(held.after - held.before)} MiB (budget ${budgets.retainedMiB})`,
    );
  }
  return failures;
}

/** Runs one attack against a fresh server and returns its row. */
export async function runAttack(attack: Attack, options: RunOptions): Promise<AttackRow> {
  const t0 = performance.now();
  const phase = options.onPhase ?? (() => {});
  const sessionTtlMs = attack.sessionTtlMs ?? options.sessionTtlMs;
  const cert = attack.tls ? serverCertificate() : null;
  phase('starting the server');
  const target = await Target.start({
    cli: options.cli,
    args: [
      ...commonServerArgs(sessionTtlMs),
      ...(attack.workers ? ['--workers', String(attack.workers)] : []),
      ...(cert ? ['--tls-cert', cert.certFile, '--tls-key', cert.keyFile] : []),
      ...(attack.serverArgs ?? []),
    ],
  });
  const sampler = new RssSampler(target);
  const notes: string[] = [];
  const violations: string[] = [];
  let bystander: Bystander | null = null;
  const pool = new SocketPool(target.port);
  let before: number | null = null;
  let after: number | null = null;
  let loopP99: number | null = null;
  let heldBefore: number | null = null;
  let heldAfter: number | null = null;
  let result: BystanderResult;
  try {
    phase('connecting the bystander');
    bystander = await Bystander.start({
      port: target.port,
      ...(cert ? { tls: { ca: cert.cert } } : {}),
    });
    bystander.stream();
    await sleep(WARMUP_MS);
    heldBefore = (await target.mark(true))?.heldBytes ?? null;
    sampler.mark();
    before = sampler.last;
    phase('attacking');
    const seconds = attack.seconds(options.quick);
    const controller = new AbortController();
    const deadline = performance.now() + seconds * 1000;
    const ctx: AttackContext = {
      port: target.port,
      adminUrl: target.adminUrl,
      quick: options.quick,
      target,
      pool,
      get deadline() {
        return controller.signal.aborted ? 0 : deadline;
      },
      signal: controller.signal,
      sessionTtlMs,
      note: (text) => notes.push(text),
      violation: (text) => violations.push(text),
    };
    let hardTimer: NodeJS.Timeout | undefined;
    const overrun = new Promise<void>((resolve) => {
      hardTimer = setTimeout(
        () => {
          controller.abort();
          violations.push(`the attack was still running ${HARD_SLACK_MS / 1000} s past its time`);
          resolve();
        },
        seconds * 1000 + HARD_SLACK_MS,
      );
    });
    const ceiling = setInterval(() => {
      if (controller.signal.aborted || sampler.peak - (before ?? 0) < RSS_CEILING_MIB * MiB) return;
      notes.push(`stopped early: the server grew by more than ${RSS_CEILING_MIB} MiB`);
      controller.abort();
    }, 100);
    try {
      await Promise.race([attack.run(ctx), overrun]);
    } catch (err) {
      violations.push(`harness error: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      clearTimeout(hardTimer);
      clearInterval(ceiling);
      pool.destroyAll();
    }
    loopP99 = target.up ? ((await target.mark(false))?.loopP99Ms ?? null) : null;
    phase('waiting for the bystander');
    result = await bystander.finish(ECHO_WAIT_MS, () => target.up);
    bystander = null;
    if (target.up) {
      phase('settling');
      await sleep(options.settleMs + sessionTtlMs);
    }
    const settled = target.up ? await target.mark(true) : null;
    if (settled) {
      after = sampler.sample();
      heldAfter = settled.heldBytes;
    }
  } catch (err) {
    await target.stop(); // never leave a server behind
    throw err;
  } finally {
    sampler.stop();
    bystander?.abort();
    pool.destroyAll();
  }
  if (!target.up) await target.waitExit(2000);
  const serverUp = target.up;
  const serverExit = target.exitText;
  const crash = serverUp ? null : target.crashLine();
  if (target.workerOnline > 0) {
    // Re-forks show as more `online` events than workers (a crash's `exit` may go unreported).
    notes.push(
      `worker re-forks ${Math.max(0, target.workerOnline - (attack.workers ?? 0))}, exits reported ${target.workerExits}, slots given up ${target.workerFailed}`,
    );
  }
  await target.stop();
  const rssMiB = { before: toMiB(before), peak: toMiB(sampler.peak), after: toMiB(after) };
  const heldMiB = { before: toMiB(heldBefore), after: toMiB(heldAfter) };
  const partial = {
    serverUp,
    serverExit,
    crash,
    rssMiB,
    heldMiB,
    serverLoopP99Ms: loopP99 === null ? null : Math.round(loopP99 * 10) / 10,
    bystander: result,
    violations,
  };
  const failures = judge(partial, {
    peakMiB: options.peakBudgetMiB ?? attack.peakBudgetMiB ?? DEFAULT_PEAK_BUDGET_MIB,
    retainedMiB: options.retainedBudgetMiB,
  });
  return {
    id: attack.id,
    family: attack.family,
    label: attack.label,
    ...partial,
    notes,
    failures,
    verdict: failures.length === 0 ? 'pass' : 'FAIL',
    seconds: Math.round((performance.now() - t0) / 100) / 10,
  };
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const mib = (x: number | null): string => (x === null ? '-' : x.toFixed(1));

/** The markdown table of a run, ready for SECURITY.md. */
export function markdownTable(rows: readonly AttackRow[]): string {
  const lines = [
    '| attack | server | RSS before | peak | after (MiB) | server loop p99 | bystander | verdict | notes |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |',
  ];
  for (const r of rows) {
    const server = r.serverUp ? 'up' : `**DIED** (${r.serverExit ?? 'gone'})`;
    const verdict = r.verdict === 'pass' ? 'pass' : `**FAIL**: ${r.failures.join('; ')}`;
    lines.push(
      `| ${cell(r.label)} | ${server} | ${mib(r.rssMiB.before)} | ${mib(r.rssMiB.peak)} | ${mib(r.rssMiB.after)} | ${r.serverLoopP99Ms === null ? '-' : `${r.serverLoopP99Ms} ms`} | ${cell(describeBystander(r.bystander))} | ${cell(verdict)} | ${cell(r.notes.join('; '))} |`,
    );
  }
  return lines.join('\n');
}
