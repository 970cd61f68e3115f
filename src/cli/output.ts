/**
 * CLI output. With --json every event is one JSON object per line on stdout:
 * `{"ts": <epoch ms>, "event": <name>, ...fields}` — a public contract documented in
 * docs/cli.md. Without it, readable lines, coloured only when the stream is a TTY.
 */

import type { Writable } from 'node:stream';
import type { Connection } from '../connection.js';

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

/** Writes events as JSON lines or readable text. */
export class EventOutput {
  private readonly colour: boolean;

  constructor(
    private readonly json: boolean,
    private readonly out: Writable & { isTTY?: boolean } = process.stdout,
    private readonly now: () => number = Date.now,
  ) {
    this.colour = !json && out.isTTY === true && process.env.NO_COLOR === undefined;
  }

  /** Emits one event. */
  event(name: string, fields: EventFields = {}): void {
    const ts = this.now();
    if (this.json) {
      const record: Record<string, unknown> = { ts, event: name };
      for (const [k, v] of Object.entries(fields)) if (v !== undefined) record[k] = v;
      this.out.write(`${JSON.stringify(record)}\n`);
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
    const who = f.conn !== undefined ? ` ${f.conn}` : '';
    switch (name) {
      case 'state':
        return `${time}${who} ${String(f.from)} -> ${this.paint(String(f.to), String(f.to))} (${String(f.reason)})`;
      case 'rtt':
        return `${time}${who} rtt ${Number(f.ms).toFixed(2)} ms`;
      case 'message':
        return `${time}${who} message ${String(f.data)}`;
      default: {
        const rest = Object.entries(f)
          .filter(([k, v]) => k !== 'conn' && v !== undefined)
          .map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.length}]` : String(v)}`)
          .join(' ');
        return `${time}${who} ${name}${rest ? ` ${rest}` : ''}`;
      }
    }
  }
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
  conn.on('disconnect', (i) =>
    out.event('disconnect', { ...base(), reason: i.reason, code: i.code ?? null }),
  );
  conn.on('close', (i) =>
    out.event('close', { ...base(), reason: i.reason, code: i.code ?? null }),
  );
  conn.on('resumed', (e) =>
    out.event('resumed', { ...base(), session: e.sessionId, replayed: e.replayed }),
  );
  conn.on('session-lost', (e) =>
    out.event('session-lost', {
      conn: conn.id,
      session: e.sessionId,
      unacked: e.unacked.map((b) => b.toString('utf8')),
    }),
  );
  conn.on('reconnecting', (e) =>
    out.event('reconnecting', {
      ...base(),
      attempt: e.attempt,
      delayMs: Math.round(e.delayMs),
      reason: e.reason,
    }),
  );
  conn.on('give-up', (e) =>
    out.event('give-up', {
      ...base(),
      attempts: e.attempts,
      unacked: e.unacked.map((b) => b.toString('utf8')),
    }),
  );
}
