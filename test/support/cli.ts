/**
 * The command line as a child process for tests: `heartline ...args` run from source
 * (tsx) with its JSON events parsed as they arrive, killed when the test ends.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** How long {@link event} waits for an event by default (ms). */
export const CLI_DEADLINE = 20_000;

/** A running command. */
export interface Run {
  child: ChildProcess;
  /** Every JSON line printed on stdout so far, parsed. */
  events: Array<Record<string, unknown>>;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
}

/** Runs `heartline ...args` from source; killed when the test ends. */
export function cli(t: TestContext, args: string[], stdin?: string): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const events: Array<Record<string, unknown>> = [];
  let parsed = 0;
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    out += chunk;
    // Parse each complete line once.
    for (let nl = out.indexOf('\n', parsed); nl >= 0; nl = out.indexOf('\n', parsed)) {
      const line = out.slice(parsed, nl);
      parsed = nl + 1;
      if (!line.startsWith('{')) continue;
      try {
        events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not an event line
      }
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    err += chunk;
  });
  child.stdin!.on('error', () => {});
  if (stdin !== undefined) child.stdin!.end(stdin);
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => resolve(code)),
  );
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, events, stdout: () => out, stderr: () => err, exited };
}

/** Resolves with the first event `name` (matching `match`) the command printed. */
export async function event(
  run: Run,
  name: string,
  match: (e: Record<string, unknown>) => boolean = () => true,
  timeout = CLI_DEADLINE,
): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | undefined;
  await waitFor(
    () => {
      found = run.events.find((e) => e.event === name && match(e));
      return found !== undefined;
    },
    { timeout, message: `no "${name}" event:\n${run.stdout()}\n${run.stderr()}` },
  );
  return found!;
}
