/**
 * The built CLI (dist/cli/main.js) as child processes for the tests: each child
 * runs in its own process group, its `--json` events are parsed as they arrive, and it is
 * killed with its group when the test ends, pass or fail (and at process exit as a last
 * resort).
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor, withTimeout } from './wait.js';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The built CLI's entry point. */
export const MAIN = join(ROOT, 'dist', 'cli', 'main.js');

/** Throws with the remedy when the CLI has not been built. */
export function requireBuiltCli(): void {
  if (!existsSync(MAIN)) {
    throw new Error(`${MAIN} is missing: run "npm run build" first (npm test builds).`);
  }
}

/** One `--json` line of the CLI. */
export interface CliEvent {
  ts: number;
  event: string;
  [field: string]: unknown;
}

/** A CLI child with its JSON events parsed as they arrive. */
export class Child {
  readonly events: CliEvent[] = [];
  stderr = '';
  exit: { code: number | null; signal: string | null } | null = null;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  #partial = '';

  constructor(
    readonly proc: ChildProcess,
    readonly label: string,
  ) {
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop()!;
      for (const line of parts) {
        try {
          this.events.push(JSON.parse(line) as CliEvent);
        } catch {
          this.events.push({ ts: 0, event: 'not-json', line });
        }
      }
    });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    proc.stdin?.on('error', () => {});
    this.exited = new Promise((resolve) => {
      proc.once('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  /** The last events and stderr, for failure messages. */
  dump(): string {
    const tail = this.events.slice(-30).map((e) => JSON.stringify(e));
    return `--- ${this.label} (last events):\n${tail.join('\n')}\n--- stderr:\n${this.stderr}`;
  }

  /** The first event `match` accepts, waiting for it up to `timeout` ms. */
  async event(what: string, match: (e: CliEvent) => boolean, timeout = 10_000): Promise<CliEvent> {
    let found: CliEvent | undefined;
    await waitFor(
      () => {
        found = this.events.find(match);
        return found !== undefined;
      },
      { timeout, message: `${this.label}: no ${what} within ${timeout} ms\n${this.dump()}` },
    );
    return found!;
  }

  /** The first `name` event (that `match` accepts), waiting up to `timeout` ms. */
  named(
    name: string,
    match: (e: CliEvent) => boolean = () => true,
    timeout = 20_000,
  ): Promise<CliEvent> {
    return this.event(`"${name}" event`, (e) => e.event === name && match(e), timeout);
  }

  /** SIGKILL to the child's whole process group; resolves once it is gone. */
  async kill(): Promise<void> {
    if (this.exit === null) {
      try {
        process.kill(-this.proc.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await withTimeout(this.exited, { timeout: 5000, message: `${this.label} did not die` });
  }
}

/** Every child still running, killed with its group if this process exits first. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

/**
 * Starts `heartline ARGS...`; it is killed when the test ends. `stdin`, when given, is
 * written to its standard input, which is then closed; `env` adds environment variables.
 */
export function run(
  t: TestContext,
  args: string[],
  label: string,
  stdin?: string,
  env: NodeJS.ProcessEnv = {},
): Child {
  const proc = spawn(process.execPath, [MAIN, ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  const child = new Child(proc, label);
  if (stdin !== undefined) proc.stdin!.end(stdin);
  children.add(proc);
  proc.once('close', () => children.delete(proc));
  t.after(() => child.kill());
  return child;
}
