/**
 * A frame-level peer for the conformance kit: one TCP socket, the codec's decoder, and
 * waits with deadlines on what arrives. It plays either end (a client for the server
 * checks, the scripted server for the client checks) and decides nothing on its own: no
 * heartbeat, no ACK, no answer to anything, unless a check asks for it.
 */

import { isIP, connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { CloseCode } from '../protocol/close-codes.js';
import { Decoder, encodeHello, encodePong } from '../protocol/codec.js';
import {
  type CloseFrame,
  DEFAULT_MAX_FRAME,
  type Frame,
  FrameType,
  type HelloFrame,
  type WelcomeFrame,
} from '../protocol/frames.js';

/** A check's expectation was not met: the message says what was seen and what was expected. */
export class CheckFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckFailure';
  }
}

/** Throws a {@link CheckFailure} with `message` unless `condition` holds. */
export function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw new CheckFailure(message);
}

/** One frame as it arrived, with its arrival time (performance.now(), ms). */
export interface Arrival {
  frame: Frame;
  at: number;
}

/** Names of the frame types, for messages. */
const TYPE_NAMES = new Map<number, string>(Object.entries(FrameType).map(([k, v]) => [v, k]));

/** A frame type's name (HELLO, DATA...) or its hex value. */
export function typeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

/** A short description of a frame for failure messages: `CLOSE(1002 "reason")`, `ACK(3)`. */
export function describe(frame: Frame): string {
  switch (frame.type) {
    case FrameType.CLOSE:
      return `CLOSE(${frame.code}${frame.reason ? ` "${frame.reason.slice(0, 80)}"` : ''})`;
    case FrameType.DATA:
      return `DATA(seq ${frame.seq}, ${frame.payload.length} B)`;
    case FrameType.ACK:
      return `ACK(${frame.seq})`;
    case FrameType.PING:
    case FrameType.PONG:
      return `${typeName(frame.type)}(seq ${frame.seq}, ts ${frame.timestamp})`;
    default:
      return typeName(frame.type);
  }
}

/** The name of a close code (`1002 PROTOCOL_ERROR`), for messages. */
export function codeName(code: number): string {
  const name = Object.entries(CloseCode).find(([, v]) => v === code)?.[0];
  return name ? `${code} ${name}` : String(code);
}

/**
 * A HELLO for a new session, with fields a check overrides: version 1 unless a check asks
 * for another (in version 2 it announces `maxFrame`, the default unless overridden).
 */
export function hello(fields: Partial<Omit<HelloFrame, 'type'>> = {}): Buffer {
  return encodeHello({
    version: 1,
    maxFrame: DEFAULT_MAX_FRAME,
    interval: 0,
    timeout: 0,
    auth: new Uint8Array(0),
    resume: null,
    clientId: 'heartline-conformance',
    traceId: '',
    ...fields,
  });
}

/**
 * One connection seen frame by frame. Every frame received is kept in `arrivals`; a
 * decoding failure is kept in `decodeError` (the stream is abandoned then, as section 4
 * says); `ended` and `closedAt` record the end of the stream.
 */
export class WirePeer {
  readonly arrivals: Arrival[] = [];
  readonly decoder: Decoder;
  decodeError: Error | null = null;
  /** When the peer's FIN or the socket's close was seen (performance.now()), else null. */
  closedAt: number | null = null;
  /** The socket error, if any (a reset). */
  error: Error | null = null;
  /** Answer every PING with a PONG (a well-behaved end), unless a check turns it off. */
  autoPong = false;
  private waiters = new Set<() => void>();

  constructor(
    readonly socket: Socket,
    maxFrame = DEFAULT_MAX_FRAME,
  ) {
    this.decoder = new Decoder({ maxFrame });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.decodeError) return;
      try {
        const at = performance.now();
        for (const frame of this.decoder.push(chunk)) {
          this.arrivals.push({ frame, at });
          if (this.autoPong && frame.type === FrameType.PING) {
            this.send(encodePong(frame.seq, frame.timestamp));
          }
        }
      } catch (err) {
        this.decodeError = err as Error;
      }
      this.wake();
    });
    const ended = (): void => {
      this.closedAt ??= performance.now();
      this.wake();
    };
    socket.on('end', ended);
    socket.on('close', ended);
    socket.on('error', (err) => {
      this.error = err;
      ended();
    });
  }

  /**
   * Connects to `host:port`, over TLS when `tls` is given (the peer is ready once the TLS
   * handshake is done); rejects after `timeout` ms.
   */
  static connect(
    host: string,
    port: number,
    timeout: number,
    maxFrame = DEFAULT_MAX_FRAME,
    tls?: ConnectionOptions,
  ): Promise<WirePeer> {
    return new Promise((resolve, reject) => {
      const socket = tls
        ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...tls })
        : netConnect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new CheckFailure(`could not connect to ${host}:${port} within ${timeout} ms`));
      }, timeout);
      socket.once(tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        resolve(new WirePeer(socket, maxFrame));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new CheckFailure(`could not connect to ${host}:${port}: ${err.message}`));
      });
    });
  }

  /** Writes bytes unless the socket is gone. */
  send(bytes: Uint8Array): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  /** Destroys the socket (no CLOSE): a lost link. */
  cut(): void {
    this.socket.destroy();
  }

  /** The frames received so far. */
  get frames(): Frame[] {
    return this.arrivals.map((a) => a.frame);
  }

  /** The frames received so far of one type. */
  ofType<T extends Frame['type']>(type: T): Extract<Frame, { type: T }>[] {
    return this.frames.filter((f): f is Extract<Frame, { type: T }> => f.type === type);
  }

  /** The first CLOSE received, if any. */
  get closeFrame(): CloseFrame | undefined {
    return this.ofType(FrameType.CLOSE)[0];
  }

  /**
   * Resolves once `predicate` holds, re-evaluated on every arrival and at the end of the
   * stream; resolves false after `timeout` ms (or at once if the stream ended without it).
   */
  until(predicate: () => boolean, timeout: number, orEnd = true): Promise<boolean> {
    if (predicate()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (predicate()) done(true);
        else if (orEnd && this.closedAt !== null) done(false);
      };
      const timer = setTimeout(() => done(false), timeout);
      const done = (value: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(value);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Waits `ms` ms while frames keep arriving. */
  idle(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /**
   * Waits for the `index`-th frame (0-based) and returns it; throws a CheckFailure naming
   * `what` if none comes within `timeout` ms.
   */
  async frameAt(index: number, timeout: number, what: string): Promise<Frame> {
    await this.until(() => this.arrivals.length > index, timeout);
    const f = this.arrivals[index]?.frame;
    if (f) return f;
    throw new CheckFailure(`no ${what} within ${timeout} ms (${this.endState()})`);
  }

  /** Waits for a frame `match` accepts; throws a CheckFailure naming `what` otherwise. */
  async waitFrame<F extends Frame>(
    match: (f: Frame) => f is F,
    timeout: number,
    what: string,
  ): Promise<F> {
    let found: F | undefined;
    await this.until(() => {
      found = this.frames.find(match);
      return found !== undefined;
    }, timeout);
    if (found) return found;
    throw new CheckFailure(`no ${what} within ${timeout} ms (${this.endState()})`);
  }

  /**
   * Sends HELLO and returns the first frame, which must be a WELCOME; a CheckFailure
   * otherwise.
   */
  async handshake(
    fields: Partial<Omit<HelloFrame, 'type'>> = {},
    timeout = 5000,
  ): Promise<WelcomeFrame> {
    this.send(hello(fields));
    const first = await this.frameAt(0, timeout, 'WELCOME');
    expect(
      first.type === FrameType.WELCOME,
      `the first frame after HELLO was ${describe(first)}, expected WELCOME`,
    );
    return first;
  }

  /**
   * Waits for the server to end the connection after an error and returns its CLOSE;
   * throws unless a CLOSE with `code` came (and, with `mustEnd`, the socket ended) within
   * `timeout` ms.
   */
  async expectClose(code: number, timeout: number, mustEnd = true): Promise<CloseFrame> {
    await this.until(
      () => this.closeFrame !== undefined && (!mustEnd || this.closedAt !== null),
      timeout,
    );
    const close = this.closeFrame;
    if (!close) {
      throw new CheckFailure(
        `expected CLOSE(${codeName(code)}), got no CLOSE within ${timeout} ms (${this.endState()})`,
      );
    }
    expect(close.code === code, `expected CLOSE(${codeName(code)}), got ${describe(close)}`);
    expect(
      !mustEnd || this.closedAt !== null,
      `CLOSE(${codeName(code)}) came but the connection stayed open for ${timeout} ms`,
    );
    return close;
  }

  /** What the stream looked like, for failure messages. */
  endState(): string {
    const frames = this.frames;
    const seen =
      frames.length === 0
        ? 'nothing received'
        : `received ${frames
            .slice(0, 6)
            .map(describe)
            .join(', ')}${frames.length > 6 ? ` and ${frames.length - 6} more` : ''}`;
    const end = this.decodeError
      ? `; undecodable bytes: ${this.decodeError.message}`
      : this.closedAt !== null
        ? `; connection closed${this.error ? ` (${(this.error as NodeJS.ErrnoException).code ?? this.error.message})` : ''}`
        : '; connection still open';
    return seen + end;
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
