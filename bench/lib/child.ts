/**
 * Child processes of the benchmarks: every server under test and every group of clients
 * runs in its own process, driven over Node's IPC channel with request/response
 * messages. The parent side is {@link Child}; the child side is {@link serveParent}.
 *
 * Every child is killed when its parent exits, however it exits (a child also exits by
 * itself when the IPC channel closes), so a crashed or interrupted run leaves nothing
 * behind. Children's stdout and stderr are kept (the last lines) for error messages and
 * never reach the terminal, where they would break the progress bar.
 */

import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';

/** The repository root (children run there so that `--import tsx` resolves). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Node flags of every child: the TypeScript loader. */
const LOADER = ['--import', 'tsx'];

/** Lines of output kept per child for error messages. */
const TAIL_LINES = 40;

interface Request {
  kind: 'request';
  id: number;
  cmd: string;
  arg: unknown;
}

interface Response {
  kind: 'response';
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

interface Event {
  kind: 'event';
  name: string;
  data: unknown;
}

type Message = Request | Response | Event;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const proc of live) proc.kill('SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const proc of live) proc.kill('SIGKILL');
      process.exit(130);
    });
  }
}

/** Options of {@link Child.start}. */
export interface ChildOptions {
  /** A short name for messages ("server", "clients-2"). */
  name: string;
  /** Arguments after the script. */
  args?: string[];
  /** Node flags besides the TypeScript loader (say --expose-gc). */
  nodeFlags?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** How long the child may take to say it is ready (ms). @default 60000 */
  readyTimeout?: number;
  /**
   * Scheduling priority (nice value, 0 to 19): load generators run below the server under
   * test so that, on a machine they share, the server gets a core when it needs one.
   * @default 0
   */
  nice?: number;
}

/** A child process driven over IPC. */
export class Child<Ready = unknown> {
  private nextId = 0;
  private readonly waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  private readonly tail: string[] = [];
  private readonly listeners = new Set<(name: string, data: unknown) => void>();
  private exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  /** What the child sent with its ready event. */
  ready!: Ready;

  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    for (const stream of [proc.stdout, proc.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (text: string) => {
        for (const line of text.split('\n')) {
          if (line.trim() === '') continue;
          this.tail.push(line);
          if (this.tail.length > TAIL_LINES) this.tail.shift();
        }
      });
    }
    proc.on('message', (msg: Message) => this.onMessage(msg));
    proc.on('exit', (code, signal) => {
      this.exited = { code, signal };
      live.delete(proc);
      const err = new Error(`${this.name} exited (${signal ?? code}) ${this.output()}`);
      for (const w of this.waiting.values()) {
        clearTimeout(w.timer);
        w.reject(err);
      }
      this.waiting.clear();
    });
  }

  /** Starts `script` (a path relative to the repository root) and waits for its ready event. */
  static async start<R = unknown>(script: string, options: ChildOptions): Promise<Child<R>> {
    installExitHook();
    const proc = fork(script, options.args ?? [], {
      cwd: ROOT,
      execArgv: [...LOADER, ...(options.nodeFlags ?? [])],
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    live.add(proc);
    if (options.nice && proc.pid !== undefined) setPriority(proc.pid, options.nice);
    const child = new Child<R>(options.name, proc);
    try {
      child.ready = (await child.waitEvent('ready', options.readyTimeout ?? 60_000)) as R;
    } catch (err) {
      await child.stop();
      throw err;
    }
    return child;
  }

  /** The process id. */
  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /** The last lines the child printed, for error messages. */
  output(): string {
    return this.tail.length > 0 ? `\n  ${this.name}> ${this.tail.join(`\n  ${this.name}> `)}` : '';
  }

  /** Sends a command and resolves with the child's answer. */
  request<T = unknown>(cmd: string, arg: unknown = null, timeoutMs = 60_000): Promise<T> {
    if (this.exited) {
      return Promise.reject(new Error(`${this.name} has exited ${this.output()}`));
    }
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(
          new Error(`${this.name}: no answer to "${cmd}" within ${timeoutMs} ms ${this.output()}`),
        );
      }, timeoutMs);
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      const msg: Request = { kind: 'request', id, cmd, arg };
      this.proc.send(msg);
    });
  }

  /** Calls `fn` for every event the child emits. */
  onEvent(fn: (name: string, data: unknown) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves with the data of the next event called `name`. */
  waitEvent(name: string, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const onExit = () => {
        done();
        reject(new Error(`${this.name} exited before "${name}" ${this.output()}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: no "${name}" within ${timeoutMs} ms ${this.output()}`));
      }, timeoutMs);
      const off = this.onEvent((n, data) => {
        if (n !== name) return;
        done();
        resolve(data);
      });
      const done = () => {
        clearTimeout(timer);
        off();
        this.proc.off('exit', onExit);
      };
      this.proc.once('exit', onExit);
    });
  }

  /** Asks the child to exit, then kills it if it has not within `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.exited) return;
    const exited = once(this.proc, 'exit');
    if (this.proc.connected) this.proc.disconnect();
    else this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  private onMessage(msg: Message): void {
    if (msg.kind === 'response') {
      const w = this.waiting.get(msg.id);
      if (!w) return;
      this.waiting.delete(msg.id);
      clearTimeout(w.timer);
      if (msg.ok) w.resolve(msg.result);
      else w.reject(new Error(`${this.name}: ${msg.error} ${this.output()}`));
    } else if (msg.kind === 'event') {
      for (const fn of this.listeners) fn(msg.name, msg.data);
    }
  }
}

// ---- the child side ---------------------------------------------------------------------

/** A command handler of a child. */
export type Handler = (arg: never) => unknown;

/**
 * Answers the parent's requests with `handlers` and exits when the parent goes away.
 * Call {@link emit}('ready', data) once the child is ready.
 */
export function serveParent(handlers: Record<string, Handler>): void {
  if (!process.send) throw new Error('this script runs as a child of a benchmark');
  process.on('message', (msg: Message) => {
    if (msg.kind !== 'request') return;
    const handler = handlers[msg.cmd];
    const reply = (r: Omit<Response, 'kind' | 'id'>) => {
      if (process.connected) process.send!({ kind: 'response', id: msg.id, ...r });
    };
    if (!handler) {
      reply({ ok: false, error: `unknown command "${msg.cmd}"` });
      return;
    }
    Promise.resolve()
      .then(() => handler(msg.arg as never))
      .then(
        (result) => reply({ ok: true, result: result ?? null }),
        (err: unknown) =>
          reply({ ok: false, error: err instanceof Error ? err.stack : String(err) }),
      );
  });
  // The parent is gone (done, crashed or interrupted): nothing left to measure.
  process.on('disconnect', () => process.exit(0));
}

/** Sends an event to the parent. */
export function emit(name: string, data: unknown = null): void {
  if (process.connected) process.send!({ kind: 'event', name, data } satisfies Event);
}

/** Parses `--name value` pairs of a child's argv into a record. */
export function childArgs(argv = process.argv.slice(2)): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i]!;
    if (!key.startsWith('--')) throw new Error(`unexpected argument "${key}"`);
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) out[key.slice(2)] = 'true';
    else {
      out[key.slice(2)] = value;
      i++;
    }
  }
  return out;
}

/** A required numeric argument. */
export function numArg(args: Record<string, string>, name: string, fallback?: number): number {
  const raw = args[name];
  if (raw === undefined) {
    if (fallback !== undefined) return fallback;
    throw new Error(`missing --${name}`);
  }
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${raw}"`);
  return n;
}
