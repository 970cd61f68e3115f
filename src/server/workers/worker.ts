/**
 * The worker side of the multi-process mode: the server of a forked process does not bind
 * a port; it registers with the primary over IPC and serves the sockets the primary hands
 * it, reading first the bytes the primary already read. It reports its counts so that the
 * primary can route new sessions to the least-loaded worker, and it names its slot in the
 * first byte of the session ids it creates so that a resume finds its way back.
 */

import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { HeartlineError } from '../../errors.js';
import { ID_BYTES } from '../../protocol/frames.js';
import type { ServerMode } from '../server-mode.js';
import { IPC_TAG, isWorkerMessage, WORKERS_DEFAULTS, type WorkerMessage } from './mode.js';
import type { WorkerStats } from './primary.js';

/** What the worker channel needs of its server. */
export interface WorkerHost {
  /** Serves a socket the primary accepted; `head` is what the primary read of it. */
  adopt(socket: Socket, head: Buffer, handshakeMs: number): void;
  counts(): { connections: number; sessions: number };
  /** Calls `done` once every socket handed to the server is closed. */
  whenIdle(done: () => void): void;
  close(): Promise<void>;
  drain(options: { timeout?: number }): Promise<void>;
}

/**
 * A worker's channel to its primary: the server's mode in a worker process. The server
 * binds nothing; its listen() registers here, its close() waits for the sockets the
 * primary handed it, and its answerPrimary() handlers answer the primary's queries.
 */
export class WorkerChannel implements ServerMode {
  private address_: AddressInfo | null = null;
  private handoffs = 0;
  private reported = '';
  private reportTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private readonly onMessage = (msg: unknown, handle: unknown) => this.message(msg, handle);
  private readonly onDisconnect = () => this.primaryGone();
  private readonly answers = new Map<string, () => unknown>();

  constructor(
    private readonly host: WorkerHost,
    readonly slot: number,
  ) {}

  /** Registers with the primary; resolves with the address the primary listens on. */
  listen(): Promise<AddressInfo> {
    if (!process.connected) {
      return Promise.reject(
        new HeartlineError('HL_ERR_INTERNAL', 'the primary process is gone (no IPC channel)'),
      );
    }
    return new Promise((resolve) => {
      const got = (msg: unknown) => {
        if (!isWorkerMessage(msg) || msg.type !== 'address') return;
        process.off('message', got);
        this.address_ = { address: msg.address, family: msg.family, port: msg.port };
        resolve(this.address_);
      };
      // stdout and stderr are pipes to the primary (lines.ts): once it is gone a write
      // fails with EPIPE, which must not turn the worker's orderly close into a crash.
      for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
      process.on('message', got);
      process.on('message', this.onMessage);
      process.on('disconnect', this.onDisconnect);
      this.send({ tag: IPC_TAG, type: 'ready' });
      this.reportTimer = setInterval(() => this.report(), WORKERS_DEFAULTS.reportEvery);
      this.reportTimer.unref();
    });
  }

  address(): AddressInfo | null {
    return this.address_;
  }

  /** No port to close: from now on the server turns away what the primary still hands it. */
  drain(): Promise<void> {
    return Promise.resolve();
  }

  /** Resolves once every socket the primary handed over is closed (no port to close). */
  close(): Promise<void> {
    return new Promise((resolve) => this.host.whenIdle(resolve));
  }

  /** The primary holds the port and decides when this process stops: nothing to let go. */
  setRef(): void {}

  /** Only the primary sees the workers. */
  get workerStats(): WorkerStats[] {
    return [];
  }

  /** Only the primary asks the workers. */
  queryWorkers(): Promise<unknown[]> {
    return Promise.resolve([]);
  }

  /** A new session id: random, its first byte this worker's slot. */
  sessionId(): Buffer {
    const id = randomBytes(ID_BYTES);
    id[0] = this.slot;
    return id;
  }

  /** The server closed: tell the primary, and let go of the channel so the process can exit. */
  closed(): Promise<void> {
    this.closing = true;
    if (this.reportTimer) clearInterval(this.reportTimer);
    process.off('message', this.onMessage);
    process.off('disconnect', this.onDisconnect);
    if (!process.connected) return Promise.resolve();
    return new Promise((resolve) => {
      process.send!({ tag: IPC_TAG, type: 'closed' } satisfies WorkerMessage, () => {
        if (process.connected) process.disconnect();
        resolve();
      });
    });
  }

  /** Answers the primary's queries about `topic` (server.answerPrimary). */
  answerPrimary(topic: string, handler: () => unknown): void {
    this.answers.set(topic, handler);
  }

  private async query(id: number, topic: string): Promise<void> {
    const handler = this.answers.get(topic);
    let reply: WorkerMessage = { tag: IPC_TAG, type: 'answer', id, ok: false };
    if (handler) {
      try {
        reply = { ...reply, ok: true, value: await handler() };
      } catch {
        // a failing handler is a worker that does not answer
      }
    }
    this.send(reply);
  }

  private message(msg: unknown, handle: unknown): void {
    if (!isWorkerMessage(msg)) return;
    if (msg.type === 'socket') {
      this.handoffs++;
      const socket = handle as Socket | undefined;
      // The peer may have gone while the handle travelled.
      if (!socket) return;
      this.host.adopt(socket, Buffer.from(msg.head, 'base64'), msg.handshakeMs);
      this.report();
    } else if (msg.type === 'query') {
      void this.query(msg.id, msg.topic);
    } else if (msg.type === 'close') {
      this.closing = true;
      void (msg.drain === null ? this.host.close() : this.host.drain({ timeout: msg.drain }));
    }
  }

  /** Sends the counts when they changed (right after a handoff, else on the timer). */
  private report(): void {
    const { connections, sessions } = this.host.counts();
    const key = `${connections}/${sessions}/${this.handoffs}`;
    if (key === this.reported) return;
    this.reported = key;
    this.send({ tag: IPC_TAG, type: 'load', connections, sessions, handoffs: this.handoffs });
  }

  private send(msg: WorkerMessage): void {
    if (process.connected) process.send!(msg);
  }

  /** The primary died (or closed the channel): close like cluster workers do, and exit. */
  private primaryGone(): void {
    if (this.closing) return;
    this.closing = true;
    void this.host.close().finally(() => process.exit(0));
  }
}
