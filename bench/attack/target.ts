/**
 * The server under attack: the real CLI (`heartline serve --echo --json`) in a child
 * process, one fresh one per attack, and its resident memory sampled from /proc every
 * 100 ms (summed over its worker processes with --workers).
 *
 * Before the "before" and the "after" readings every process of the server runs two full
 * garbage collections (bench/lib/probe.mjs, loaded with NODE_OPTIONS and driven through
 * files), so that the two compare what is held, not what the collector has not looked at
 * yet: an idle process rarely collects by itself.
 *
 * Its stdout carries one JSON line per event, and an echo server under a flood prints one
 * per message: lines are scanned for their event name and only the few events a row
 * reports are parsed. stderr keeps its last lines, where a crash leaves its stack.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../lib/child.js';
import type { ProbeState } from '../lib/probe.mjs';
import { alive, processTree, rssBytes } from '../lib/procfs.js';
import { until } from '../lib/stats.js';

/** Lines of stderr kept for the notes of a crashed server. */
const STDERR_LINES = 60;
/** How often RSS is sampled (ms). */
export const SAMPLE_EVERY_MS = 100;
/** How long the server may take to print `listening` (ms). */
const LISTEN_TIMEOUT_MS = 30_000;
/** Events parsed from stdout; every other line is only counted. */
const PARSED = new Set(['listening', 'worker', 'rejected', 'close']);
/** The event name of a JSON line, read from its start (`{"ts":...,"event":"name"`). */
const EVENT_NAME = /"event":"([a-z-]+)"/;

/** How long the server's processes may take to collect garbage on request (ms). */
const COLLECT_TIMEOUT_MS = 10_000;

/** Options of {@link Target.start}. */
export interface TargetOptions {
  /** The CLI's main.js. */
  cli: string;
  /** `serve` flags after the fixed ones (--port 0 --echo --json). */
  args: string[];
}

/** A server child and what it reported. */
export class Target {
  /** The port the server listens on. */
  port = 0;
  /** The admin endpoint's URL when --admin was given. */
  adminUrl: string | null = null;
  /** How the server process ended, or null while it runs. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  /** True once the harness asked it to stop (an exit after that is not a crash). */
  private stopping = false;
  /** Counts of every event printed, by name. */
  readonly events = new Map<string, number>();
  /** Worker events (--workers): processes online (re-forks included), exits, failed slots. */
  workerOnline = 0;
  workerExits = 0;
  workerFailed = 0;
  /** `rejected` events by reason. */
  readonly rejected = new Map<string, number>();
  /** `close` events of connections by reason. */
  readonly closes = new Map<string, number>();
  private readonly stderr: string[] = [];
  private partial = '';
  private listening: (() => void) | null = null;

  private probeSeq = 0;

  private constructor(
    readonly proc: ChildProcess,
    private readonly probeDir: string,
  ) {
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (text: string) => this.onStdout(text));
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (text: string) => {
      for (const line of text.split('\n')) {
        if (line.trim() === '') continue;
        this.stderr.push(line);
        if (this.stderr.length > STDERR_LINES) this.stderr.shift();
      }
    });
    proc.on('exit', (code, signal) => {
      this.exit = { code, signal };
    });
  }

  /** Starts `heartline serve` and waits for its `listening` event. */
  static async start(options: TargetOptions): Promise<Target> {
    const probeDir = mkdtempSync(join(tmpdir(), 'heartline-attack-probe-'));
    const probe = pathToFileURL(join(ROOT, 'bench', 'lib', 'probe.mjs')).href;
    const inherited = process.env.NODE_OPTIONS ? `${process.env.NODE_OPTIONS} ` : '';
    const proc = spawn(
      process.execPath,
      [options.cli, 'serve', '--port', '0', '--echo', '--json', ...options.args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          NO_COLOR: '1',
          // Every process of the tree (workers too) loads the probe.
          NODE_OPTIONS: `${inherited}--import=${probe}`,
          BENCH_PROBE_DIR: probeDir,
        },
      },
    );
    const target = new Target(proc, probeDir);
    const listening = new Promise<void>((resolve) => {
      target.listening = resolve;
    });
    const exited = once(proc, 'exit').then(() => {
      throw new Error(`the server exited before listening: ${target.stderrTail(10)}`);
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the server did not listen within ${LISTEN_TIMEOUT_MS} ms`)),
        LISTEN_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([listening, exited, timeout]);
    } catch (err) {
      await target.stop();
      throw err;
    } finally {
      clearTimeout(timer);
      exited.catch(() => {});
    }
    return target;
  }

  /** The server's process id. */
  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /** True while the server process runs. */
  get up(): boolean {
    return this.exit === null && alive(this.pid);
  }

  /** "exit 1", "SIGABRT", or null while it runs. */
  get exitText(): string | null {
    if (!this.exit) return null;
    return this.exit.signal ?? `exit ${this.exit.code}`;
  }

  /** RSS (bytes) of the server and its workers right now. */
  rss(): number {
    let sum = 0;
    for (const pid of processTree(this.pid)) sum += rssBytes(pid);
    return sum;
  }

  /**
   * Marks a window in every process of the server, after full garbage collections when
   * `gc`, waits for them all, and returns the event-loop delay p99 (ms, the worst process)
   * of the window the mark closed and the memory held by JavaScript (V8 heap used plus
   * buffers and other external memory, summed over the processes), or null when the
   * processes did not all answer in time (a server too busy, or dead).
   */
  async mark(gc: boolean): Promise<{ loopP99Ms: number; heldBytes: number } | null> {
    const seq = ++this.probeSeq;
    writeFileSync(join(this.probeDir, 'control.json'), JSON.stringify({ seq, gc }));
    let states: ProbeState[] = [];
    const answered = await until(
      () => {
        const pids = processTree(this.pid).filter(alive);
        states = this.probeStates().filter((st) => pids.includes(st.pid));
        return (
          pids.length > 0 && states.length >= pids.length && states.every((st) => st.seq >= seq)
        );
      },
      COLLECT_TIMEOUT_MS,
      50,
    );
    if (!answered) return null;
    let loopP99Ms = 0;
    let heldBytes = 0;
    for (const st of states) {
      loopP99Ms = Math.max(loopP99Ms, st.previous?.eld.p99 ?? 0);
      heldBytes += st.mem.heapUsed + st.mem.external;
    }
    return { loopP99Ms, heldBytes };
  }

  private probeStates(): ProbeState[] {
    const out: ProbeState[] = [];
    let files: string[];
    try {
      files = readdirSync(this.probeDir);
    } catch {
      return out;
    }
    for (const f of files) {
      if (!f.startsWith('probe-') || !f.endsWith('.json')) continue;
      try {
        out.push(JSON.parse(readFileSync(join(this.probeDir, f), 'utf8')) as ProbeState);
      } catch {
        // being replaced right now: read on the next poll
      }
    }
    return out;
  }

  /** The last `n` lines of stderr, joined with " | " (empty when none). */
  stderrTail(n = 5): string {
    return this.stderr.slice(-n).join(' | ');
  }

  /** The line of stderr that names the error a crash threw ("HeartlineError [HL_ERR_...]: ..."), or null. */
  crashLine(): string | null {
    // The last one: with workers, a worker's crash comes first and the primary's after it.
    const errors = this.stderr.filter((l) => /^\w*(Error|Exception)\b( \[\w+\])?:/.test(l));
    return errors.at(-1)?.trim() ?? null;
  }

  /** Waits up to `ms` for the process to have exited (its exit status is then known). */
  async waitExit(ms: number): Promise<void> {
    if (this.exit !== null) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      once(this.proc, 'exit'),
      new Promise((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Stops the server (SIGTERM, then SIGKILL after `graceMs`) and every worker it left. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    const tree = processTree(this.pid);
    if (this.exit === null) {
      const exited = once(this.proc, 'exit');
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
    // Workers exit with their primary (their IPC channel closes); one that did not is
    // ended here by the pid recorded while the primary ran.
    for (const pid of tree.slice(1)) {
      if (alive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    rmSync(this.probeDir, { recursive: true, force: true });
  }

  /** True when the process ended without being asked to. */
  get crashed(): boolean {
    return this.exit !== null && !this.stopping;
  }

  private onStdout(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const name = EVENT_NAME.exec(line.slice(0, 64))?.[1];
      if (!name) continue;
      this.events.set(name, (this.events.get(name) ?? 0) + 1);
      if (PARSED.has(name)) this.onEvent(name, line);
    }
  }

  private onEvent(name: string, line: string): void {
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (name === 'listening') {
      this.port = Number(e.port);
      if (typeof e.admin === 'string') this.adminUrl = e.admin;
      this.listening?.();
    } else if (name === 'worker') {
      if (e.state === 'online') this.workerOnline++;
      if (e.state === 'exit') this.workerExits++;
      if (e.state === 'failed') this.workerFailed++;
    } else if (name === 'rejected') {
      const reason = String(e.reason);
      this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
    } else if (name === 'close') {
      const reason = String(e.reason);
      this.closes.set(reason, (this.closes.get(reason) ?? 0) + 1);
    }
  }
}

/** Samples a target's RSS every {@link SAMPLE_EVERY_MS}; keeps the peak since the last mark. */
export class RssSampler {
  private timer: NodeJS.Timeout;
  private peakBytes = 0;
  /** The latest sample (bytes). */
  last = 0;

  constructor(private readonly target: Target) {
    this.last = target.rss();
    this.timer = setInterval(() => this.sample(), SAMPLE_EVERY_MS);
  }

  /** Takes a sample now and returns it (bytes). */
  sample(): number {
    const rss = this.target.rss();
    if (rss > 0) this.last = rss;
    if (rss > this.peakBytes) this.peakBytes = rss;
    return this.last;
  }

  /** Starts a new peak from the current value. */
  mark(): void {
    this.peakBytes = this.sample();
  }

  /** The highest sample since the last mark (bytes). */
  get peak(): number {
    return this.peakBytes;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
