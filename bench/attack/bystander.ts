/**
 * The bystander: an ordinary heartline client (the library's own reconnecting client,
 * from src/) connected before the attack, which sends numbered messages through the echo
 * server during the whole attack and checks that every one comes back exactly once and
 * in order, and how long the round trips take. It is what an attack must not harm.
 */

import type { ConnectionOptions } from 'node:tls';
import { type ClientConnection, connect } from '../../src/index.js';
import { percentile, round, sleep, until } from '../lib/stats.js';
import { HOST } from './raw.js';

/** Bytes of a bystander message: its number and its send time. */
const MESSAGE_BYTES = 16;

/** What the bystander saw, and the one-word result of a row. */
export interface BystanderResult {
  /**
   * ok: every message echoed exactly once, in order; dup: an echo arrived twice; lost: a
   * message never came back (or an echo was skipped); disconnected: the client was not
   * connected at the end (nothing outstanding, but it could not talk to the server);
   * not-connected: it never connected at all.
   */
  result: 'ok' | 'dup' | 'lost' | 'disconnected' | 'not-connected';
  sent: number;
  echoed: number;
  lost: number;
  duplicates: number;
  /** Echoes that arrived ahead of one still missing (a gap). */
  reordered: number;
  disconnects: number;
  resumes: number;
  sessionsLost: number;
  /** Round trip percentiles (ms), null when nothing came back. */
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

/** Options of {@link Bystander.start}. */
export interface BystanderOptions {
  port: number;
  /** One message every this many ms. @default 10 */
  everyMs?: number;
  /** How long to wait for the first connection (ms). @default 10000 */
  openTimeoutMs?: number;
  /** TLS options (the server's certificate as `ca`) when the server speaks TLS. */
  tls?: ConnectionOptions;
}

/** A client streaming numbered messages through the echo. */
export class Bystander {
  private readonly conn: ClientConnection;
  private readonly sentAt: number[] = [];
  private readonly seen: Uint8Array[] = [];
  private readonly rtts: number[] = [];
  private timer: NodeJS.Timeout | null = null;
  private next = 1;
  private highest = 0;
  private echoed = 0;
  private duplicates = 0;
  private reordered = 0;
  private disconnects = 0;
  private resumes = 0;
  private sessionsLost = 0;
  private lostInSession = 0;
  private opened = false;

  private constructor(private readonly options: BystanderOptions) {
    this.conn = connect({
      host: HOST,
      port: options.port,
      clientId: 'attack-bystander',
      ...(options.tls ? { tls: options.tls } : {}),
    });
    this.conn.on('message', (data) => this.onEcho(data));
    this.conn.on('open', (e) => {
      this.opened = true;
      if (e.resumed) this.resumes++;
    });
    this.conn.on('disconnect', () => {
      this.disconnects++;
    });
    this.conn.on('session-lost', (e) => {
      this.sessionsLost++;
      this.lostInSession += e.unacked.length;
    });
  }

  /** Connects and waits for the first handshake; the result says not-connected if none. */
  static async start(options: BystanderOptions): Promise<Bystander> {
    const b = new Bystander(options);
    await until(() => b.opened || b.conn.closed, options.openTimeoutMs ?? 10_000, 10);
    return b;
  }

  /** True once the first handshake completed. */
  get connected(): boolean {
    return this.opened;
  }

  /** Starts sending one message per `everyMs`. */
  stream(): void {
    if (this.timer || !this.opened) return;
    this.timer = setInterval(() => this.sendOne(), this.options.everyMs ?? 10);
  }

  private sendOne(): void {
    if (this.conn.closed) return;
    const n = this.next;
    const payload = Buffer.allocUnsafe(MESSAGE_BYTES);
    payload.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 0);
    payload.writeUInt32BE(n >>> 0, 4);
    const now = performance.now();
    payload.writeDoubleBE(now, 8);
    try {
      this.conn.send(payload);
    } catch {
      return; // closed or buffer full: the message was not sent, so it cannot be lost
    }
    this.sentAt[n] = now;
    this.next++;
  }

  private onEcho(data: Buffer): void {
    if (data.length !== MESSAGE_BYTES) return;
    const n = data.readUInt32BE(0) * 0x1_0000_0000 + data.readUInt32BE(4);
    const at = this.sentAt[n];
    if (at === undefined) return;
    const page = this.seenPage(n);
    const bit = 1 << (n & 7);
    const index = (n >>> 3) & 1023;
    if ((page[index]! & bit) !== 0) {
      this.duplicates++;
      return;
    }
    page[index]! |= bit;
    this.echoed++;
    if (n < this.highest) this.reordered++;
    else this.highest = n;
    this.rtts.push(performance.now() - at);
  }

  /** One bit per message, in pages of 8192 messages. */
  private seenPage(n: number): Uint8Array {
    const p = Math.floor(n / 8192);
    let page = this.seen[p];
    if (!page) {
      page = new Uint8Array(1024);
      this.seen[p] = page;
    }
    return page;
  }

  /** Stops sending, waits up to `waitMs` for the outstanding echoes, closes, and judges. */
  async finish(waitMs: number, serverUp: () => boolean): Promise<BystanderResult> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const sent = this.next - 1;
    // A dead server answers nothing: no point waiting for it.
    await until(() => this.echoed + this.duplicates >= sent || !serverUp(), waitMs, 20);
    if (serverUp()) await sleep(50); // a late duplicate has a moment to show up
    const healthy = this.conn.state === 'healthy' || this.conn.state === 'suspect';
    this.conn.close();
    const lost = Math.max(0, sent - this.echoed);
    const ms = (x: number) => (Number.isFinite(x) ? round(x, 1) : null);
    let result: BystanderResult['result'] = 'ok';
    if (!this.opened) result = 'not-connected';
    else if (this.duplicates > 0) result = 'dup';
    else if (lost > 0 || this.reordered > 0 || this.lostInSession > 0) result = 'lost';
    else if (!healthy) result = 'disconnected';
    return {
      result,
      sent,
      echoed: this.echoed,
      lost,
      duplicates: this.duplicates,
      reordered: this.reordered,
      disconnects: this.disconnects,
      resumes: this.resumes,
      sessionsLost: this.sessionsLost,
      p50Ms: ms(percentile(this.rtts, 50)),
      p99Ms: ms(percentile(this.rtts, 99)),
      maxMs: ms(this.rtts.reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY)),
    };
  }

  /** Closes without judging (a harness failure). */
  abort(): void {
    if (this.timer) clearInterval(this.timer);
    this.conn.close();
  }
}

/** "ok, p99 2.1 ms", "lost 12 (1 disconnect), p99 ...": the bystander column. */
export function describeBystander(b: BystanderResult): string {
  const parts: string[] = [];
  if (b.result === 'ok') parts.push(`ok ${b.echoed}/${b.sent}`);
  else if (b.result === 'dup') parts.push(`DUP ${b.duplicates}`);
  else if (b.result === 'lost') parts.push(`LOST ${b.lost}/${b.sent}`);
  else parts.push(b.result.toUpperCase());
  if (b.reordered > 0) parts.push(`${b.reordered} out of order`);
  if (b.sessionsLost > 0) parts.push(`session lost`);
  if (b.disconnects > 0) parts.push(`${b.disconnects} disconnect(s), ${b.resumes} resumed`);
  if (b.p99Ms !== null) parts.push(`p99 ${b.p99Ms} ms`);
  return parts.join(', ');
}
