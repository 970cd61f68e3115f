/**
 * The progress display of a benchmark run, on stderr (stdout stays for results). Each
 * workload declares its steps up front with a weight, about the seconds the step takes,
 * so the bar moves with time and the remaining time can be guessed. On a terminal one
 * line is redrawn in place; elsewhere (CI logs, pipes) a plain line is printed when a step
 * starts and ends, and at most every 15 s while a step runs.
 */

/** One step of a workload. */
export interface Step {
  id: string;
  label: string;
  /** About how many seconds the step takes. */
  weight: number;
}

/** What a workload reports its progress to. */
export interface Progress {
  /** A step begins. */
  start(id: string, detail?: string): void;
  /** Progress within the current step, from 0 to 1. */
  update(id: string, fraction: number, detail?: string): void;
  /** A step ends (also when it is skipped). */
  finish(id: string, detail?: string): void;
  /** A line of text worth keeping (a finding, a warning). */
  log(text: string): void;
}

const BAR_WIDTH = 24;
const REDRAW_MS = 100;
const PLAIN_EVERY_MS = 15_000;

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

/** Draws the steps of one or more workloads as one bar. */
export class ProgressBar implements Progress {
  private readonly weights = new Map<string, number>();
  private readonly labels = new Map<string, string>();
  private readonly done = new Set<string>();
  private readonly total: number;
  private current: string | null = null;
  private fraction = 0;
  private detail = '';
  private lastDraw = 0;
  private lastPlain = 0;
  private readonly started = performance.now();
  private readonly tty: boolean;
  private drawn = false;

  constructor(
    steps: readonly Step[],
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    for (const s of steps) {
      this.weights.set(s.id, Math.max(0.1, s.weight));
      this.labels.set(s.id, s.label);
    }
    this.total = [...this.weights.values()].reduce((a, b) => a + b, 0);
    this.tty = Boolean(out.isTTY) && process.env.TERM !== 'dumb';
  }

  start(id: string, detail = ''): void {
    this.current = id;
    this.fraction = 0;
    this.detail = detail;
    if (this.tty) this.draw(true);
    else this.plain(`start ${this.labels.get(id) ?? id}${detail ? `: ${detail}` : ''}`);
  }

  update(id: string, fraction: number, detail?: string): void {
    if (id !== this.current) return;
    this.fraction = Math.min(1, Math.max(0, fraction));
    if (detail !== undefined) this.detail = detail;
    if (this.tty) this.draw(false);
    else if (performance.now() - this.lastPlain >= PLAIN_EVERY_MS) {
      this.plain(
        `  ${this.labels.get(id) ?? id}: ${Math.round(this.fraction * 100)}% ${this.detail}`,
      );
    }
  }

  finish(id: string, detail = ''): void {
    this.done.add(id);
    if (this.current === id) {
      this.current = null;
      this.fraction = 0;
      this.detail = '';
    }
    if (this.tty) {
      if (detail) this.log(`${this.labels.get(id) ?? id}: ${detail}`);
      else this.draw(true);
    } else this.plain(`done  ${this.labels.get(id) ?? id}${detail ? `: ${detail}` : ''}`);
  }

  log(text: string): void {
    if (this.tty) {
      this.clear();
      this.out.write(`${text}\n`);
      this.draw(true);
    } else this.plain(text);
  }

  /** Removes the bar (call before printing results). */
  end(): void {
    if (this.tty) this.clear();
  }

  private completed(): number {
    let w = 0;
    for (const id of this.done) w += this.weights.get(id) ?? 0;
    if (this.current && !this.done.has(this.current)) {
      w += (this.weights.get(this.current) ?? 0) * this.fraction;
    }
    return this.total > 0 ? Math.min(1, w / this.total) : 1;
  }

  private line(): string {
    const ratio = this.completed();
    const filled = Math.round(ratio * BAR_WIDTH);
    const elapsed = (performance.now() - this.started) / 1000;
    const eta = ratio > 0.02 ? elapsed / ratio - elapsed : Number.NaN;
    const label = this.current ? (this.labels.get(this.current) ?? this.current) : '';
    return (
      `[${'#'.repeat(filled)}${' '.repeat(BAR_WIDTH - filled)}] ${String(Math.round(ratio * 100)).padStart(3)}%` +
      ` ${clock(elapsed)}${Number.isNaN(eta) ? '' : ` (~${clock(eta)} left)`} ${label}${this.detail ? `: ${this.detail}` : ''}`
    );
  }

  private draw(force: boolean): void {
    const now = performance.now();
    if (!force && now - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = now;
    const width = this.out.columns ?? 100;
    this.out.write(`\r${this.line().slice(0, width - 1)}\x1b[K`);
    this.drawn = true;
  }

  private clear(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }

  private plain(text: string): void {
    this.lastPlain = performance.now();
    this.out.write(`[bench ${clock((this.lastPlain - this.started) / 1000)}] ${text}\n`);
  }
}

/** A progress sink that shows nothing (used by tests). */
export const silentProgress: Progress = {
  start() {},
  update() {},
  finish() {},
  log() {},
};
