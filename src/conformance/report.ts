/**
 * The conformance kit's results and their output, shared by both sides: one line per
 * check (`PASS id  description (section)` / `FAIL id  description: seen vs expected` /
 * `SKIP id  description: why`) and a summary line, or with --json one object per check
 * and a summary object, in the CLI's event format (`{"ts", "event", ...}`).
 */

import type { Writable } from 'node:stream';
import { escapeControl } from '../text.js';
import { CheckFailure } from './wire.js';

/** What a check is about: a stable id, the PROTOCOL.md section it checks, one line. */
export interface CheckInfo {
  /** Stable id, `area.what` (docs/conformance.md lists them). */
  id: string;
  /** The PROTOCOL.md section(s) checked, e.g. "6.1". */
  section: string;
  /** What a conforming implementation does, in one line. */
  description: string;
}

/** The outcome of one check. */
export interface CheckResult extends CheckInfo {
  status: 'pass' | 'fail' | 'skip';
  /** Failure: what was seen against what was expected; skip: why; pass: measured facts. */
  detail: string;
  /** How long the check took (ms). */
  ms: number;
}

/** Counts of a run. */
export interface Summary {
  passed: number;
  failed: number;
  skipped: number;
}

/** Prints results as they come, readable or as JSON lines. */
export class Reporter {
  readonly results: CheckResult[] = [];

  constructor(
    private readonly json: boolean,
    private readonly out: Writable = process.stdout,
  ) {}

  /** Records and prints one result. */
  add(result: CheckResult): void {
    this.results.push(result);
    if (this.json) {
      this.line(JSON.stringify({ ts: Date.now(), event: 'check', ...result }));
      return;
    }
    const head = `${result.status.toUpperCase()} ${result.id}  ${result.description}`;
    const detail = escapeControl(result.detail);
    if (result.status === 'pass') {
      this.line(`${head} (${result.section})${detail ? ` [${detail}]` : ''}`);
    } else {
      this.line(`${head}: ${detail} (${result.section})`);
    }
  }

  /** Prints the summary and returns the counts. */
  summary(): Summary {
    const count = (s: CheckResult['status']) => this.results.filter((r) => r.status === s).length;
    const summary = { passed: count('pass'), failed: count('fail'), skipped: count('skip') };
    if (this.json) {
      this.line(JSON.stringify({ ts: Date.now(), event: 'summary', ...summary }));
    } else {
      const skipped = summary.skipped > 0 ? `, ${summary.skipped} skipped` : '';
      this.line(`${summary.passed} passed, ${summary.failed} failed${skipped}`);
    }
    return summary;
  }

  private line(text: string): void {
    this.out.write(`${text}\n`);
  }
}

/** The message of a check's failure: a CheckFailure's own, or the unexpected error's. */
export function failureText(err: unknown): string {
  if (err instanceof CheckFailure) return err.message;
  return `unexpected error: ${err instanceof Error ? err.message : String(err)}`;
}

/**
 * Runs `body` with a deadline: a check that hangs fails with "no result within N ms"
 * instead of stalling the run. `cleanup` runs either way (it closes the check's sockets).
 */
export async function runWithDeadline(
  info: CheckInfo,
  deadline: number,
  body: () => Promise<string | undefined>,
  cleanup: () => void,
): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new CheckFailure(`no result within the check's deadline of ${deadline} ms`)),
      deadline,
    );
  });
  let status: CheckResult['status'] = 'pass';
  let detail = '';
  try {
    detail = (await Promise.race([body(), timedOut])) ?? '';
  } catch (err) {
    status = 'fail';
    detail = failureText(err);
  } finally {
    clearTimeout(timer);
    cleanup();
  }
  return { ...info, status, detail, ms: Math.round(performance.now() - started) };
}
