/**
 * The primary of the multi-process mode: binds the port, forks the workers (the same
 * script, the same arguments, HEARTLINE_WORKER=<slot> in the environment), accepts every
 * socket, enforces the accept rate, reads up to the first complete frame and hands the
 * socket with those bytes to a worker: a resume to the slot its session id names, anything
 * else to the least-loaded worker. It re-forks a worker that dies and stops them all on
 * close() / drain(). The workers' stdout and stderr reach its own whole lines at a time.
 *
 * child_process.fork rather than node:cluster: the application may use node:cluster
 * itself, and cluster's shared listening would bypass the HELLO routing anyway.
 */

import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer, type Server as NetServer, type Socket } from 'node:net';
import { HeartlineError, type ProtocolError } from '../../errors.js';
import type { CloseInfo } from '../../link.js';
import { refuseSocket } from '../../net/refuse.js';
import { CloseCode } from '../../protocol/close-codes.js';
import { ID_BYTES } from '../../protocol/frames.js';
import type { Clock } from '../../time/clock.js';
import { TimingWheel } from '../../time/wheel.js';
import {
  Admission,
  type AdmissionOptions,
  acceptFailure,
  addressKey,
  type RefusalReport,
  refusalReport,
  refuseIfOverLimit,
  refuseOverloaded,
  resolveAdmission,
  socketRemote,
} from '../admission.js';
import type { ServerMode } from '../server-mode.js';
import { forwardLines } from './lines.js';
import {
  IPC_TAG,
  isWorkerMessage,
  WORKER_ENV,
  WORKERS_DEFAULTS,
  type WorkerMessage,
} from './mode.js';
import { HelloPeek } from './peek.js';

/** A worker's lifecycle event (the server's 'worker' event). */
export interface WorkerEvent {
  slot: number;
  pid: number;
  /**
   * online: registered (its listen() ran) and served from now on; exit: it exited (code,
   * signal); crash-loop: after an exit, its slot has crashed `crashes` times in a row
   * (from WORKERS_DEFAULTS.crashLoopAfter on, once per crash) and is re-forked in
   * `retryIn` ms all the same; recovered: a slot that was in a crash loop has stayed online
   * for WORKERS_DEFAULTS.stableAfter ms.
   */
  event: 'online' | 'exit' | 'crash-loop' | 'recovered';
  code?: number | null;
  signal?: NodeJS.Signals | null;
  /** exit and crash-loop: crashes of the slot in a row (0 for an exit asked by close()). */
  crashes?: number;
  /** exit and crash-loop: ms until the slot is forked again (absent when not re-forked). */
  retryIn?: number;
}

/** One worker as the primary sees it (`server.workerStats`). */
export interface WorkerStats {
  slot: number;
  /** 0 while no process runs in the slot. */
  pid: number;
  state: 'starting' | 'online' | 'closing' | 'stopped';
  /** Open sockets the worker reported, plus those handed to it since. */
  connections: number;
  /** Sessions the worker reported. */
  sessions: number;
  /** Sockets handed to this slot's workers in total. */
  handoffs: number;
  /** Times the slot's worker was re-forked. */
  restarts: number;
  /** Crashes in a row (reset once a worker stays online WORKERS_DEFAULTS.stableAfter ms). */
  crashes: number;
}

/** What the worker pool needs of its server. */
export interface PrimaryHost {
  readonly config: {
    readonly clock: Clock;
    readonly maxFrame: number;
    readonly handshakeTimeout: number;
    /** The application's admission options (the primary applies some of them). */
    readonly admission: AdmissionOptions;
  };
  emitWorker(event: WorkerEvent): void;
  emitRejected(report: { remote: string; info: CloseInfo; limit?: RefusalReport['limit'] }): void;
}

interface Slot {
  readonly slot: number;
  proc: ChildProcess | null;
  state: WorkerStats['state'];
  reported: { connections: number; sessions: number; handoffs: number };
  /** Handed to the current process (compared with what it reported). */
  sent: number;
  handoffs: number;
  restarts: number;
  crashes: number;
  onlineAt: number;
  /** When the pending re-fork happens (clock ms), 0 when none is pending. */
  restartAt: number;
  restartTimer: NodeJS.Timeout | null;
  /** Resets `crashes` once the worker has stayed online long enough. */
  stableTimer: NodeJS.Timeout | null;
  exited: Promise<void>;
}

/**
 * The worker pool: the server's mode in the primary process. The primary holds no
 * connection of its own; the server's listen(), drain(), close(), ref()/unref(),
 * workerStats and queryWorkers() come here.
 */
export class WorkerPool implements ServerMode {
  private readonly net: NetServer;
  private readonly slots: Slot[] = [];
  private readonly admission: Admission;
  private readonly wheel: TimingWheel;
  /** Sockets whose first frame is being read, and how to turn each away on close(). */
  private readonly pending = new Map<Socket, () => void>();
  private address_: AddressInfo | null = null;
  private stopping: Promise<void> | null = null;
  private drainTimeout: number | null = null;
  private rotate = 0;
  private readyWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private nextQuery = 0;
  private readonly queries = new Map<number, (answer: { ok: boolean; value?: unknown }) => void>();
  /** False after the server's unref(): the port, the workers and their restarts hold nothing. */
  private refed = true;

  constructor(
    private readonly host: PrimaryHost,
    readonly workers: number,
  ) {
    const { clock, admission } = host.config;
    this.wheel = new TimingWheel(clock);
    // The accept rate is the primary's. The connection limits count only the sockets it
    // holds while it reads their first frame (a slowloris flood must not exhaust its
    // descriptors); once handed over, a socket counts in its worker's share.
    this.admission = new Admission(
      resolveAdmission({ ...admission, maxSessions: Number.POSITIVE_INFINITY }),
      clock.now(),
    );
    this.net = createServer({ noDelay: true, pauseOnConnect: true }, (s) => this.accept(s));
    // A failed accept once listening (out of descriptors) is reported, never thrown.
    this.net.on('error', (err) => {
      if (this.net.listening) this.host.emitRejected(acceptFailure(err));
    });
    for (let slot = 0; slot < workers; slot++) {
      this.slots.push({
        slot,
        proc: null,
        state: 'stopped',
        reported: { connections: 0, sessions: 0, handoffs: 0 },
        sent: 0,
        handoffs: 0,
        restarts: 0,
        crashes: 0,
        onlineAt: 0,
        restartAt: 0,
        restartTimer: null,
        stableTimer: null,
        exited: Promise.resolve(),
      });
    }
  }

  get workerStats(): WorkerStats[] {
    return this.slots.map((s) => ({
      slot: s.slot,
      pid: s.proc?.pid ?? 0,
      state: s.state,
      connections: this.load(s),
      sessions: s.reported.sessions,
      handoffs: s.handoffs,
      restarts: s.restarts,
      crashes: s.crashes,
    }));
  }

  address(): AddressInfo | null {
    return this.address_;
  }

  /** Binds the port, forks the workers; resolves once every worker is online. */
  async listen(port: number, host: string): Promise<AddressInfo> {
    if (!process.argv[1]) {
      throw new HeartlineError(
        'HL_ERR_INTERNAL',
        'workers need a script to fork (process.argv[1])',
      );
    }
    await new Promise<void>((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(port, host, () => {
        this.net.off('error', reject);
        resolve();
      });
    });
    this.address_ = this.net.address() as AddressInfo;
    const allOnline = new Promise<void>((resolve, reject) => {
      this.readyWaiters.push({ resolve, reject });
    });
    for (const s of this.slots) this.spawn(s);
    try {
      await allOnline;
    } catch (err) {
      await this.stop(null);
      throw err;
    }
    return this.address_;
  }

  /**
   * Asks every online worker's handler for `topic`; resolves with the answers of those that
   * answered within `timeout` ms (in slot order).
   */
  async queryWorkers(topic: string, timeout: number): Promise<unknown[]> {
    const asked = this.slots.filter((s) => s.state === 'online' && s.proc?.connected);
    const answers = await Promise.all(
      asked.map(
        (s) =>
          new Promise<{ ok: boolean; value?: unknown }>((resolve) => {
            const id = ++this.nextQuery;
            const timer = setTimeout(() => {
              this.queries.delete(id);
              resolve({ ok: false });
            }, timeout);
            this.queries.set(id, (answer) => {
              clearTimeout(timer);
              this.queries.delete(id);
              resolve(answer);
            });
            s.proc!.send({ tag: IPC_TAG, type: 'query', id, topic } satisfies WorkerMessage);
          }),
      ),
    );
    return answers.filter((a) => a.ok).map((a) => a.value);
  }

  /** The server's ref()/unref(): the listening socket, each worker and its IPC channel. */
  setRef(refed: boolean): void {
    this.refed = refed;
    if (refed) this.net.ref();
    else this.net.unref();
    for (const s of this.slots) {
      if (s.proc) this.refProc(s.proc);
      if (s.restartTimer) {
        if (refed) s.restartTimer.ref();
        else s.restartTimer.unref();
      }
    }
  }

  private refProc(proc: ChildProcess): void {
    if (this.refed) {
      proc.ref();
      proc.channel?.ref();
    } else {
      proc.unref();
      proc.channel?.unref();
    }
  }

  /** Every worker drains its own connections; resolves when all have exited. */
  drain(timeout: number): Promise<void> {
    return this.stop(timeout);
  }

  /** Every worker closes; resolves when all have exited (the primary holds no socket). */
  close(): Promise<void> {
    return this.stop(null);
  }

  closed(): Promise<void> {
    return Promise.resolve();
  }

  /** Queries are answered in the workers. */
  answerPrimary(): void {}

  /** Random: the primary makes no session (its workers name their slot in theirs). */
  sessionId(): Buffer {
    return randomBytes(ID_BYTES);
  }

  /** Asks every worker to close (or drain) and resolves when all have exited. */
  private stop(drain: number | null): Promise<void> {
    if (this.stopping) return this.stopping;
    this.drainTimeout = drain;
    if (this.net.listening) this.net.close();
    for (const abort of [...this.pending.values()]) abort();
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.reject(new HeartlineError('HL_ERR_INTERNAL', 'server closed'));
    // The wheel is not cleared: its (unref'd) grace timers still destroy sockets that were
    // sent a CLOSE above and whose peer never closes.
    this.stopping = Promise.all(this.slots.map((s) => this.stopSlot(s, drain))).then(() => {});
    return this.stopping;
  }

  private stopSlot(s: Slot, drain: number | null): Promise<void> {
    if (s.restartTimer) clearTimeout(s.restartTimer);
    s.restartTimer = null;
    s.restartAt = 0;
    this.clearStable(s);
    const proc = s.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return s.exited;
    s.state = 'closing';
    if (proc.connected && s.onlineAt > 0) {
      proc.send({ tag: IPC_TAG, type: 'close', drain } satisfies WorkerMessage);
    } else {
      // Not registered yet: it has no server to close.
      proc.kill('SIGTERM');
    }
    // A worker whose application keeps its event loop busy is killed after the grace.
    const grace = setTimeout(() => proc.kill('SIGKILL'), (drain ?? 0) + WORKERS_DEFAULTS.exitGrace);
    return s.exited.finally(() => clearTimeout(grace));
  }

  private spawn(s: Slot): void {
    const env = { ...process.env, [WORKER_ENV]: String(s.slot) };
    const proc = fork(process.argv[1]!, process.argv.slice(2), {
      execArgv: process.execArgv,
      env,
      // Output through the primary, whole lines at a time (lines.ts says why).
      stdio: ['inherit', 'pipe', 'pipe', 'ipc'],
    });
    forwardLines(proc.stdout!, process.stdout, WORKERS_DEFAULTS.maxLine);
    forwardLines(proc.stderr!, process.stderr, WORKERS_DEFAULTS.maxLine);
    s.proc = proc;
    if (!this.refed) this.refProc(proc);
    s.state = 'starting';
    s.sent = 0;
    s.onlineAt = 0;
    s.reported = { connections: 0, sessions: 0, handoffs: 0 };
    s.exited = new Promise<void>((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exited(s, proc, code, signal);
        // Resolved once its last output lines are forwarded too ('close': its pipes ended),
        // or soon after, should a process it started hold them open.
        setTimeout(resolve, WORKERS_DEFAULTS.outputGrace).unref();
      });
      proc.once('close', () => resolve());
    });
    proc.on('error', () => {
      // 'exit' follows (or the send failed): handled there
    });
    proc.on('message', (msg: unknown) => {
      if (!isWorkerMessage(msg)) return;
      this.message(s, proc, msg);
    });
  }

  private message(s: Slot, proc: ChildProcess, msg: WorkerMessage): void {
    if (s.proc !== proc) return;
    switch (msg.type) {
      case 'ready': {
        const a = this.address_!;
        proc.send({
          tag: IPC_TAG,
          type: 'address',
          address: a.address,
          family: a.family,
          port: a.port,
        } satisfies WorkerMessage);
        s.onlineAt = this.host.config.clock.now();
        if (this.stopping) {
          // Closing already: it listens for the close now (a signal might be ignored).
          void this.stopSlot(s, this.drainTimeout);
          return;
        }
        s.state = 'online';
        this.host.emitWorker({ slot: s.slot, pid: proc.pid ?? 0, event: 'online' });
        if (s.crashes > 0) this.armStable(s, proc);
        if (this.slots.every((x) => x.state === 'online')) {
          const waiters = this.readyWaiters;
          this.readyWaiters = [];
          for (const w of waiters) w.resolve();
        }
        return;
      }
      case 'load':
        s.reported = {
          connections: msg.connections,
          sessions: msg.sessions,
          handoffs: msg.handoffs,
        };
        return;
      case 'answer':
        this.queries.get(msg.id)?.(msg);
        return;
      case 'closed':
        // Its server closed (asked, or by the application): route nothing more to it.
        if (s.state === 'online') s.state = 'closing';
        return;
      default:
        return;
    }
  }

  private exited(
    s: Slot,
    proc: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
  ): void {
    if (s.proc !== proc) return;
    s.proc = null;
    this.clearStable(s);
    const pid = proc.pid ?? 0;
    if (this.stopping) {
      s.state = 'stopped';
      this.host.emitWorker({ slot: s.slot, pid, event: 'exit', code, signal, crashes: 0 });
      return;
    }
    s.state = 'stopped';
    s.crashes++;
    const { crashLoopAfter, restartDelay, maxRestartDelay } = WORKERS_DEFAULTS;
    if (this.readyWaiters.length > 0 && s.crashes >= crashLoopAfter) {
      // Still starting: a script that cannot start a worker fails listen() (which stops the
      // others) rather than retrying for ever unseen.
      this.host.emitWorker({ slot: s.slot, pid, event: 'exit', code, signal, crashes: s.crashes });
      const err = new HeartlineError(
        'HL_ERR_INTERNAL',
        `worker ${s.slot} exited ${s.crashes} times in a row while starting (last: ${signal ?? `code ${code}`})`,
      );
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of waiters) w.reject(err);
      return;
    }
    // Never given up once serving: one slot crashing must not take the service down.
    // Capped exponential backoff; the other workers take every new socket meanwhile.
    const retryIn = Math.min(restartDelay * 2 ** (s.crashes - 1), maxRestartDelay);
    const event = { slot: s.slot, pid, code, signal, crashes: s.crashes, retryIn };
    this.host.emitWorker({ ...event, event: 'exit' });
    if (s.crashes >= crashLoopAfter) this.host.emitWorker({ ...event, event: 'crash-loop' });
    s.restartAt = this.host.config.clock.now() + retryIn;
    s.restartTimer = setTimeout(() => {
      s.restartTimer = null;
      s.restartAt = 0;
      if (this.stopping) return;
      s.restarts++;
      this.spawn(s);
    }, retryIn);
    if (!this.refed) s.restartTimer.unref();
  }

  /** Once `proc` has stayed online stableAfter ms, its slot's crash count starts over. */
  private armStable(s: Slot, proc: ChildProcess): void {
    this.clearStable(s);
    s.stableTimer = setTimeout(() => {
      s.stableTimer = null;
      if (s.proc !== proc || s.state !== 'online') return;
      const looped = s.crashes >= WORKERS_DEFAULTS.crashLoopAfter;
      s.crashes = 0;
      if (looped) this.host.emitWorker({ slot: s.slot, pid: proc.pid ?? 0, event: 'recovered' });
    }, WORKERS_DEFAULTS.stableAfter);
    s.stableTimer.unref();
  }

  private clearStable(s: Slot): void {
    if (s.stableTimer) clearTimeout(s.stableTimer);
    s.stableTimer = null;
  }

  /** About when a worker should be online again (ms from now), for a retry hint. */
  private nextRestart(): number {
    const { restartDelay, maxRestartDelay } = WORKERS_DEFAULTS;
    const now = this.host.config.clock.now();
    let soonest: number = maxRestartDelay;
    for (const s of this.slots) {
      // A starting worker needs about a first re-fork delay to register.
      const at = s.state === 'starting' ? restartDelay : s.restartAt > 0 ? s.restartAt - now : 0;
      if (at > 0) soonest = Math.min(soonest, at + restartDelay);
    }
    return Math.ceil(soonest);
  }

  /** Connections of a worker: what it reported plus what was handed to it since. */
  private load(s: Slot): number {
    return s.reported.connections + Math.max(0, s.sent - s.reported.handoffs);
  }

  private accept(socket: Socket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    const { clock, maxFrame, handshakeTimeout } = this.host.config;
    const key = addressKey(socket.remoteAddress ?? '?');
    const refused = refuseIfOverLimit(this.admission, socket, key, this.wheel, clock.now());
    if (refused) {
      this.host.emitRejected(refused);
      return;
    }
    const started = clock.now();
    const remote = socketRemote(socket);
    const peek = new HelloPeek(maxFrame);
    this.admission.opened(key);
    let done = false;
    const settle = (): boolean => {
      if (done) return false;
      done = true;
      timer.cancel();
      socket.off('data', onData);
      socket.off('close', onClose);
      this.pending.delete(socket);
      this.admission.closed(key);
      return true;
    };
    const finish = (slot: number | null) => {
      if (!settle()) return;
      const remaining = Math.max(1, handshakeTimeout - (clock.now() - started));
      this.handOff(socket, peek, slot, remaining, remote);
    };
    // close() while reading: CLOSE(going away), as a single process does to a handshake.
    const abort = () => {
      if (!settle()) return;
      const message = 'server closing';
      refuseSocket(socket, this.wheel, { code: CloseCode.GOING_AWAY, reason: message });
      this.host.emitRejected({
        remote,
        info: { reason: 'going-away', code: CloseCode.GOING_AWAY, message },
      });
    };
    this.pending.set(socket, abort);
    const onData = (chunk: Buffer) => {
      const r = peek.push(chunk);
      if (r.kind === 'more') return;
      if (r.kind === 'oversized') {
        // No worker needs to see it: refused at once, with the close a worker would send
        // once the whole frame were in (PROTOCOL.md section 4).
        if (settle()) this.refuseOversized(socket, r.error, remote);
        return;
      }
      finish(r.kind === 'hello' && r.sessionId ? r.sessionId[0]! : null);
    };
    const onClose = () => {
      if (!settle()) return;
      this.host.emitRejected({
        remote,
        info: { reason: 'eof', message: 'the peer closed the connection during the handshake' },
      });
    };
    // Out of time: the worker gets it with 1 ms left and closes it with CLOSE(handshake timeout).
    const timer = this.wheel.timer(() => finish(null));
    timer.arm(handshakeTimeout);
    socket.on('error', () => {
      // 'close' follows and reports it
    });
    socket.on('data', onData);
    socket.once('close', onClose);
    // pauseOnConnect: the socket reads nothing until this.
    socket.resume();
  }

  /** Closes a socket whose HELLO is longer than any HELLO can be, as a worker would. */
  private refuseOversized(socket: Socket, error: ProtocolError, remote: string): void {
    const unsupported = error.code === 'HL_ERR_UNSUPPORTED_VERSION';
    const code = unsupported ? CloseCode.UNSUPPORTED_VERSION : CloseCode.PROTOCOL_ERROR;
    refuseSocket(socket, this.wheel, { code, reason: error.message });
    this.host.emitRejected({
      remote,
      info: {
        reason: unsupported ? 'unsupported-version' : 'protocol-error',
        code,
        message: error.message,
        error,
      },
    });
  }

  /** The worker for a socket: the slot its resume names when that worker is online. */
  private route(preferred: number | null): Slot | null {
    if (preferred !== null) {
      const s = this.slots[preferred];
      if (s && s.state === 'online' && s.proc?.connected) return s;
    }
    let best: Slot | null = null;
    const n = this.slots.length;
    // Ties go round-robin, so an idle pool fills evenly.
    for (let i = 0; i < n; i++) {
      const s = this.slots[(this.rotate + i) % n]!;
      if (s.state !== 'online' || !s.proc?.connected) continue;
      if (best === null || this.load(s) < this.load(best)) best = s;
    }
    this.rotate = (this.rotate + 1) % n;
    return best;
  }

  private handOff(
    socket: Socket,
    peek: HelloPeek,
    preferred: number | null,
    handshakeMs: number,
    remote: string,
  ): void {
    if (socket.destroyed) {
      this.host.emitRejected({
        remote,
        info: { reason: 'eof', message: 'the peer closed the connection during the handshake' },
      });
      return;
    }
    const target = this.route(preferred);
    if (!target) {
      // Every worker is down (being re-forked): come back once one is up again.
      const refusal = {
        limit: 'load' as const,
        retryAfter: this.nextRestart(),
        message: 'no worker is online',
      };
      refuseOverloaded(socket, this.wheel, refusal);
      this.host.emitRejected(refusalReport(refusal, remote));
      return;
    }
    // Stop reading, keep what was read: whatever arrives from now on waits in the kernel
    // for the worker. pause() alone would let the handle read on into this process.
    socket.pause();
    const chunks: Buffer[] = [];
    while (socket.readableLength > 0) {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) break;
      chunks.push(chunk);
    }
    const handle = (socket as unknown as { _handle?: { readStop?(): number; reading?: boolean } })
      ._handle;
    // `reading` stays true on purpose: Node's _read() restarts a handle it sees not
    // reading, and a read already scheduled for this tick would pull bytes in here.
    handle?.readStop?.();
    for (const c of chunks) peek.push(c);
    target.sent++;
    target.handoffs++;
    const msg: WorkerMessage = {
      tag: IPC_TAG,
      type: 'socket',
      head: peek.bytes.toString('base64'),
      handshakeMs,
    };
    target.proc!.send(msg, socket, { keepOpen: false }, (err) => {
      if (!err) return;
      target.sent--;
      socket.destroy();
      this.host.emitRejected({
        remote,
        info: {
          reason: 'internal-error',
          message: `handing the socket to worker ${target.slot} failed: ${err.message}`,
          error: new HeartlineError('HL_ERR_INTERNAL', err.message, { cause: err }),
        },
      });
    });
  }
}
