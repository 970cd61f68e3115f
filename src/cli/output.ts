/**
 * CLI output. With --json every event is one JSON object per line on stdout:
 * `{"ts": <epoch ms>, "event": <name>, ...fields}` — a public contract documented in
 * docs/cli.md. Without it, readable lines, coloured only when the stream is a TTY.
 *
 * Message texts, client and trace ids and close reasons come from peers: a control
 * character in them must not reach the terminal (an ESC sequence repaints it, a newline
 * forges a whole event line). Readable lines show every one as a visible escape; JSON
 * lines escape the few that JSON.stringify leaves raw (both in src/text.ts).
 */

import type { Writable } from 'node:stream';
import type { Connection } from '../connection.js';
import type { CloseInfo } from '../link.js';
import { escapeControl, escapeJson } from '../text.js';

/** Fields of one event; undefined fields are left out. */
export type EventFields = Record<string, string | number | boolean | null | undefined | unknown[]>;

const COLOURS: Record<string, string> = {
  healthy: '\x1b[32m',
  suspect: '\x1b[33m',
  dead: '\x1b[31m',
  disconnected: '\x1b[35m',
  connecting: '\x1b[36m',
  closed: '\x1b[90m',
};
const RESET = '\x1b[0m';

/**
 * Bytes of output a slow reader may leave queued in this process before events are
 * dropped. Writes to a pipe are asynchronous in Node: without a bound, a peer that floods
 * messages while whoever reads `serve` falls behind grows the server's memory with
 * their printed copies, whatever the library's own caps.
 */
export const OUTPUT_BACKLOG_LIMIT = 4 * 1024 * 1024;

/** Writes events as JSON lines or readable text. */
export class EventOutput {
  private readonly colour: boolean;
  /** Events not written because the reader was too far behind, since the last report. */
  private dropped = 0;

  constructor(
    private readonly json: boolean,
    private readonly out: Writable & { isTTY?: boolean } = process.stdout,
    private readonly now: () => number = Date.now,
  ) {
    this.colour = !json && out.isTTY === true && process.env.NO_COLOR === undefined;
  }

  /**
   * Emits one event. While the reader leaves more than {@link OUTPUT_BACKLOG_LIMIT}
   * bytes queued, `message` events (the ones a peer can flood) are counted instead of
   * written, and a `dropped` event with their count follows once it has caught up. Every
   * other event is written: their number is bounded by connections, not by messages.
   */
  event(name: string, fields: EventFields = {}): void {
    if (name === 'message' && this.out.writableLength > OUTPUT_BACKLOG_LIMIT) {
      if (this.dropped++ === 0) this.out.once('drain', () => this.reportDropped());
      return;
    }
    this.write(name, fields);
  }

  private reportDropped(): void {
    const count = this.dropped;
    this.dropped = 0;
    this.write('dropped', { count });
  }

  private write(name: string, fields: EventFields): void {
    const ts = this.now();
    if (this.json) {
      const record: Record<string, unknown> = { ts, event: name };
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) record[k] = v;
      this.out.write(`${escapeJson(JSON.stringify(record))}\n`);
      return;
    }
    this.out.write(`${this.readable(ts, name, fields)}\n`);
  }

  private paint(text: string, state: string | undefined): string {
    if (!this.colour || !state) return text;
    const c = COLOURS[state];
    return c ? `${c}${text}${RESET}` : text;
  }

  private readable(ts: number, name: string, f: EventFields): string {
    const time = new Date(ts).toISOString().slice(11, 23);
    // Every value is escaped, wherever it came from; only paint() adds escapes, after.
    const str = (v: unknown) => escapeControl(String(v));
    const who = f.conn !== undefined ? ` ${str(f.conn)}` : '';
    switch (name) {
      case 'state':
        return `${time}${who} ${str(f.from)} -> ${this.paint(str(f.to), String(f.to))} (${str(f.reason)})`;
      case 'rtt':
        return `${time}${who} rtt ${Number(f.ms).toFixed(2)} ms`;
      case 'message':
        return `${time}${who} message ${str(f.data)}`;
      default: {
        const rest = Object.entries(f)
          .filter(([k, v]) => k !== 'conn' && v !== undefined)
          .map(([k, v]) => `${str(k)}=${Array.isArray(v) ? `[${v.length}]` : str(v)}`)
          .join(' ');
        return `${time}${who} ${str(name)}${rest ? ` ${rest}` : ''}`;
      }
    }
  }
}

/**
 * Most text of handed-back messages one `session-lost` or `give-up` line carries: a
 * session may hand back up to its replay-buffer cap (16 MiB), which as one printed line
 * would cost the process several times that; the rest is counted, not printed.
 */
export const UNACKED_PRINT_LIMIT = 64 * 1024;

/**
 * The handed-back messages as printed: their texts while they fit in
 * {@link UNACKED_PRINT_LIMIT}, how many there were, and whether the list was cut.
 */
export function unackedFields(unacked: readonly Buffer[]): {
  unacked: string[];
  count: number;
  truncated: boolean;
} {
  const texts: string[] = [];
  let bytes = 0;
  for (const b of unacked) {
    if (bytes + b.length > UNACKED_PRINT_LIMIT) break;
    bytes += b.length;
    texts.push(b.toString('utf8'));
  }
  return { unacked: texts, count: unacked.length, truncated: texts.length < unacked.length };
}

/**
 * The code of the OS or TLS error behind a close (ECONNREFUSED, ENOTFOUND,
 * ERR_TLS_CERT_ALTNAME_INVALID...), or null when the close had none.
 */
export function errnoOf(info: CloseInfo): string | null {
  if (info.errno !== undefined) return info.errno;
  const cause = info.error?.cause as { code?: unknown } | undefined;
  return typeof cause?.code === 'string' ? cause.code : null;
}

/** Wires a connection's events to the output, with `conn` and `session` on each. */
export function reportConnection(
  out: EventOutput,
  conn: Connection,
  options: { messages: boolean } = { messages: true },
): void {
  const base = () => ({ conn: conn.id, session: conn.sessionId ?? undefined });
  conn.on('state', (c) =>
    out.event('state', { ...base(), from: c.from, to: c.to, reason: c.reason }),
  );
  conn.on('rtt', (ms) => out.event('rtt', { ...base(), ms: Math.round(ms * 1000) / 1000 }));
  if (options.messages) {
    conn.on('message', (data) => out.event('message', { ...base(), data: data.toString('utf8') }));
  }
  // `code` is null (not left out) when the link ended without a CLOSE code (eof, reset,
  // refused...), so that every documented field is always present.
  // `errno` is the code of the OS or TLS error behind it, null when there was none.
  conn.on('disconnect', (i) =>
    out.event('disconnect', {
      ...base(),
      reason: i.reason,
      code: i.code ?? null,
      errno: errnoOf(i),
    }),
  );
  conn.on('close', (i) =>
    out.event('close', { ...base(), reason: i.reason, code: i.code ?? null, errno: errnoOf(i) }),
  );
  conn.on('resumed', (e) =>
    out.event('resumed', { ...base(), session: e.sessionId, replayed: e.replayed }),
  );
  conn.on('session-lost', (e) =>
    out.event('session-lost', { conn: conn.id, session: e.sessionId, ...unackedFields(e.unacked) }),
  );
  conn.on('reconnecting', (e) =>
    out.event('reconnecting', {
      ...base(),
      attempt: e.attempt,
      delayMs: Math.round(e.delayMs),
      reason: e.reason,
      errno: errnoOf(e.info),
    }),
  );
  conn.on('give-up', (e) =>
    out.event('give-up', {
      ...base(),
      attempts: e.attempts,
      ...unackedFields(e.unacked),
    }),
  );
}
