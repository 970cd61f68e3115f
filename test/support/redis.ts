/**
 * A real redis-server (Debian's package, /usr/bin/redis-server) for the cluster suites: on
 * a free loopback port, with its own temporary directory, no persistence unless asked
 * (`appendonly`: an AOF in that directory, so a restart finds its data again). The suites skip
 * themselves with the reason when redis-server is missing (failing instead under
 * HEARTLINE_REQUIRE_ALL=1, see require.ts). The server is stopped by its PID and its
 * directory removed when the test ends, pass or fail, and at process exit as a last resort.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { missingTool } from './require.js';

const REDIS = process.env.HEARTLINE_REDIS_SERVER ?? 'redis-server';

/** A skip reason when redis-server is not installed (throws under HEARTLINE_REQUIRE_ALL=1). */
export function redisSkip(): string | undefined {
  return missingTool(REDIS);
}

/** Every server still running, killed at exit if a test could not stop it. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A free loopback TCP port (the kernel's pick, released at once). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves true once the server answers PING with PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.once('connect', () => socket.write('PING\r\n'));
  });
}

/** Options of {@link RedisServer.start}. */
export interface RedisServerOptions {
  /** Keep an append-only file (fsync every second) so that a restart loads the data. */
  appendonly?: boolean;
}

/** A running (or stopped, restartable) redis-server. */
export class RedisServer {
  #child: ChildProcess | null = null;
  #stderr = '';

  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly options: RedisServerOptions,
  ) {}

  /** redis://127.0.0.1:PORT */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** PID of the running server, or null. */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /**
   * Starts a server for the test; it is stopped and its directory removed in t.after.
   * Retries on another port if the one picked was taken meanwhile.
   */
  static async start(t: TestContext, options: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), 'heartline-redis-'));
    let server: RedisServer | null = null;
    t.after(async () => {
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      server = new RedisServer(await freePort(), dir, options);
      try {
        await server.resume();
        return server;
      } catch (err) {
        lastError = err;
        await server.stop();
      }
    }
    throw lastError;
  }

  /** Starts (again) on the same port and directory; resolves once it answers PING. */
  async resume(): Promise<void> {
    if (this.#child) return;
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', ''];
    args.push('--appendonly', this.options.appendonly ? 'yes' : 'no');
    args.push('--dir', this.dir, '--protected-mode', 'no');
    const child = spawn(REDIS, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    running.add(child);
    child.stderr!.on('data', (chunk: Buffer) => {
      this.#stderr += chunk.toString();
    });
    let exited = false;
    child.once('exit', () => {
      exited = true;
      running.delete(child);
      if (this.#child === child) this.#child = null;
    });
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline) {
      if (exited) break;
      if (await ping(this.port)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`redis-server did not answer PING on port ${this.port}: ${this.#stderr}`);
  }

  /** Freezes (SIGSTOP) or thaws (SIGCONT) the running server: its sockets stay open. */
  signal(signal: 'SIGSTOP' | 'SIGCONT'): void {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server on port ${this.port} is not running`);
    }
    child.kill(signal);
  }

  /** Stops the server by its PID (SIGTERM, then SIGKILL after 3 s); resolves once it exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.#child = null;
      return;
    }
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    // A frozen server would never act on SIGTERM.
    if (signal !== 'SIGKILL') child.kill('SIGCONT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
    this.#child = null;
  }
}
