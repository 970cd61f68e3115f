/**
 * The attacker's sockets: raw TCP to the server under attack, speaking frames built by
 * hand with the library's own encoder (or plain bytes), reading what the server answers
 * with the library's decoder so that a row can say which CLOSE code the attacker got.
 * Every socket is opened through a {@link SocketPool}, which destroys them all when the
 * attack ends, whatever happened.
 */

import { connect as netConnect, type Socket } from 'node:net';
import { Decoder, encodeHello } from '../../src/protocol/codec.js';
import {
  DEFAULT_MAX_FRAME,
  type Frame,
  FrameType,
  type HelloFrame,
  PROTOCOL_VERSION,
  type WelcomeFrame,
} from '../../src/protocol/frames.js';
import { sleep } from '../lib/stats.js';

/** The only host attacked: traffic never leaves the machine. */
export const HOST = '127.0.0.1';

/** How long a connect or a handshake may take before the attacker gives up (ms). */
const OPEN_TIMEOUT_MS = 10_000;

/** A HELLO for a new session with the given fields (the defaults of a plain client). */
export function helloBytes(fields: Partial<Omit<HelloFrame, 'type'>> = {}): Buffer {
  return encodeHello({
    version: PROTOCOL_VERSION,
    interval: 0,
    timeout: 0,
    auth: new Uint8Array(0),
    resume: null,
    clientId: '',
    traceId: '',
    maxFrame: DEFAULT_MAX_FRAME,
    ...fields,
  });
}

/** Options of {@link SocketPool.open}. */
export interface OpenOptions {
  /** Source address (another 127.x.y.z stands for another client address). */
  localAddress?: string;
  /** Decode what the server sends (off for sockets that only count bytes). @default true */
  decode?: boolean;
}

/** One attacker socket and what the server sent on it. */
export class RawPeer {
  /** The first CLOSE code the server sent, or null. */
  closeCode: number | null = null;
  /** The first WELCOME, or null. */
  welcome: WelcomeFrame | null = null;
  /** Highest DATA sequence the server sent on this socket. */
  lastData = 0;
  /** PONGs the server sent (answers to our PINGs). */
  pongs = 0;
  /** Bytes the server sent. */
  bytesIn = 0;
  /** True once the socket closed (either side). */
  closed = false;
  /** When the socket closed (performance.now()), or null. */
  closedAt: number | null = null;
  /** True when the attacker itself ended or reset the socket (not the server's doing). */
  closedByUs = false;
  private readonly decoder: Decoder | null;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly socket: Socket,
    decode: boolean,
  ) {
    this.decoder = decode ? new Decoder() : null;
    socket.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      if (!this.decoder) return;
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch {
        return; // the server never sends a bad frame; if it did, the notes would show no code
      }
      for (const f of frames) this.onFrame(f);
    });
    socket.on('error', () => {
      // ECONNRESET and friends: the close event below records the end
    });
    socket.on('close', () => {
      this.closed = true;
      this.closedAt = performance.now();
      this.wake();
    });
  }

  private onFrame(f: Frame): void {
    if (f.type === FrameType.WELCOME && !this.welcome) this.welcome = f;
    else if (f.type === FrameType.CLOSE && this.closeCode === null) this.closeCode = f.code;
    else if (f.type === FrameType.DATA && f.seq > this.lastData) this.lastData = f.seq;
    else if (f.type === FrameType.PONG) this.pongs++;
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves once `predicate` holds (checked on every frame and on close) or after `ms`. */
  waitUntil(predicate: () => boolean, ms: number): Promise<boolean> {
    if (predicate()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!predicate()) return;
        done(true);
      };
      const timer = setTimeout(() => done(false), ms);
      const done = (v: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      this.waiters.add(check);
    });
  }

  /**
   * Writes `bytes`, waiting for the socket to drain when the kernel buffer is full (an
   * attacker as fast as TCP lets it be, never one that queues without bound in its own
   * memory). False once the socket has closed.
   */
  async write(bytes: Uint8Array): Promise<boolean> {
    if (this.closed || this.socket.destroyed) return false;
    if (this.socket.write(bytes)) return true;
    await this.waitDrain();
    return !this.closed;
  }

  private waitDrain(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** Sends a HELLO and waits for the WELCOME (null when the server closed or did not answer). */
  async handshake(fields: Partial<Omit<HelloFrame, 'type'>> = {}): Promise<WelcomeFrame | null> {
    if (!(await this.write(helloBytes(fields)))) return null;
    await this.waitUntil(() => this.welcome !== null || this.closed, OPEN_TIMEOUT_MS);
    return this.welcome;
  }

  /** Resolves true once the socket has closed, false after `ms`. */
  waitClosed(ms: number): Promise<boolean> {
    return this.waitUntil(() => this.closed, ms);
  }

  /** Half-closes the connection (FIN). */
  end(): void {
    if (!this.closed) this.closedByUs = true;
    this.socket.end();
  }

  /** Resets the connection (RST), or just closes it once it was half-closed. */
  destroy(): void {
    if (!this.closed) this.closedByUs = true;
    // A reset after end() fails with EINVAL and leaves the handle behind, spinning.
    if (this.socket.writableEnded || this.socket.destroyed) this.socket.destroy();
    else this.socket.resetAndDestroy();
  }
}

/** Every socket of one attack; {@link SocketPool.destroyAll} ends them at the end. */
export class SocketPool {
  private readonly peers = new Set<RawPeer>();
  /** Sockets opened so far. */
  opened = 0;
  /** Connects that failed (refused, reset or timed out before connecting). */
  failed = 0;
  /** Closes by the server, by CLOSE code ("none" when it closed without one). */
  readonly codes = new Map<string, number>();

  constructor(private readonly port: number) {}

  /** Opens a socket to the server; rejects when it cannot connect within 10 s. */
  open(options: OpenOptions = {}): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({
        host: HOST,
        port: this.port,
        noDelay: true,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      });
      const peer = new RawPeer(socket, options.decode ?? true);
      this.peers.add(peer);
      const timer = setTimeout(() => fail(new Error('connect timed out')), OPEN_TIMEOUT_MS);
      const fail = (err: Error) => {
        clearTimeout(timer);
        this.failed++;
        socket.destroy();
        reject(err);
      };
      socket.once('error', fail);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        this.opened++;
        resolve(peer);
      });
      socket.once('close', () => {
        this.peers.delete(peer);
        // Only closes the server chose: with a CLOSE code, or without one (not ours).
        if (peer.closeCode !== null || !peer.closedByUs) {
          const key = peer.closeCode === null ? 'none' : String(peer.closeCode);
          this.codes.set(key, (this.codes.get(key) ?? 0) + 1);
        }
      });
    });
  }

  /** Sockets still open. */
  get size(): number {
    return this.peers.size;
  }

  /** The open sockets. */
  live(): RawPeer[] {
    return [...this.peers];
  }

  /** "1002 x40, 1009 x3": how the server closed the attacker's sockets so far. */
  describeCodes(): string {
    if (this.codes.size === 0) return 'no close by the server';
    return [...this.codes.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([code, n]) => `${code === 'none' ? 'close without CLOSE' : code} x${n}`)
      .join(', ');
  }

  /** Resets every socket still open. */
  destroyAll(): void {
    for (const p of this.peers) p.destroy();
    this.peers.clear();
  }
}

/**
 * Runs `lane` on `lanes` parallel lanes until `clock.deadline` (performance.now(), read
 * on every turn: the harness moves it to 0 to stop an attack early) or until a lane
 * returns false; a lane that throws is counted and restarted after a short pause (the
 * server refusing or resetting an attacker is an outcome, not a harness failure).
 */
export async function runLanes(
  lanes: number,
  clock: { readonly deadline: number },
  lane: (index: number) => Promise<boolean | undefined>,
): Promise<{ errors: number }> {
  let errors = 0;
  await Promise.all(
    Array.from({ length: lanes }, async (_, i) => {
      while (performance.now() < clock.deadline) {
        try {
          if ((await lane(i)) === false) return;
        } catch {
          errors++;
          await sleep(20);
        }
      }
    }),
  );
  return { errors };
}
