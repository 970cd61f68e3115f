/**
 * How a server's process serves, chosen once when the server is made: alone, on a port of
 * its own ({@link StandaloneMode}); as the primary of a worker pool, which binds the port
 * and hands every socket to a worker (workers/primary.ts); or as a worker, which binds
 * nothing and serves what the primary hands it (workers/worker.ts). The server's public
 * methods that differ between them delegate to this object, so the server never asks
 * which one it is.
 */

import { randomBytes } from 'node:crypto';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { ID_BYTES } from '../protocol/frames.js';
import type { WorkerStats } from './workers/primary.js';

/** What differs between a standalone server, a worker pool's primary and a worker. */
export interface ServerMode {
  /** Binds the port (standalone, primary) or registers with the primary (worker). */
  listen(port: number, host: string): Promise<AddressInfo>;
  /** The address listen() resolved with, or null before it (and once closed, standalone). */
  address(): AddressInfo | null;
  /**
   * The server's drain() began: stops taking sockets. The primary drains every worker
   * with `timeout` and resolves once all have exited.
   */
  drain(timeout: number): Promise<void>;
  /**
   * The server's close() began: stops taking sockets; resolves once every socket this
   * mode gave the server is gone (the primary: once every worker has exited).
   */
  close(): Promise<void>;
  /** The server closed everything it held (a worker tells the primary, then lets go). */
  closed(): Promise<void>;
  /** The server's ref()/unref(). */
  setRef(refed: boolean): void;
  /** `server.workerStats`: each worker slot (the primary), else empty. */
  readonly workerStats: WorkerStats[];
  /** `server.queryWorkers()`: the workers' answers (the primary), else none. */
  queryWorkers(topic: string, timeout: number): Promise<unknown[]>;
  /** `server.answerPrimary()`: registers the handler (a worker), else does nothing. */
  answerPrimary(topic: string, handler: () => unknown): void;
  /** A new session's id (a worker names its slot in it, so that a resume finds it). */
  sessionId(): Buffer;
}

/** One process serving its own port: the net (or TLS) server the application's server made. */
export class StandaloneMode implements ServerMode {
  constructor(private readonly net: NetServer) {}

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.net.once('error', onError);
      this.net.listen(port, host, () => {
        this.net.off('error', onError);
        resolve(this.address() as AddressInfo);
      });
    });
  }

  address(): AddressInfo | null {
    const a = this.net.address();
    return a && typeof a === 'object' ? a : null;
  }

  drain(): Promise<void> {
    if (this.net.listening) this.net.close();
    return Promise.resolve();
  }

  close(): Promise<void> {
    // net.close() calls back once every socket it accepted is gone.
    return new Promise((resolve) => {
      if (!this.net.listening) resolve();
      else this.net.close(() => resolve());
    });
  }

  closed(): Promise<void> {
    return Promise.resolve();
  }

  setRef(refed: boolean): void {
    if (refed) this.net.ref();
    else this.net.unref();
  }

  get workerStats(): WorkerStats[] {
    return [];
  }

  queryWorkers(): Promise<unknown[]> {
    return Promise.resolve([]);
  }

  answerPrimary(): void {}

  sessionId(): Buffer {
    return randomBytes(ID_BYTES);
  }
}
