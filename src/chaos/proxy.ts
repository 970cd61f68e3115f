/**
 * A fault-injecting TCP proxy for tests and for `heartline chaos`: every accepted client
 * gets its own connection to the target, and the bytes between them pass through two
 * {@link Pipe}s (up = client to target, down = target to client) that apply the current
 * fault. Faults are proxy-wide per direction, so pairs opened later inherit them.
 *
 * Close semantics mirror the real network: a FIN from one side becomes an end() on the
 * other after the bytes in front of it, and an RST or socket error becomes an RST.
 */

import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { intOption, requiredOption, stringOption } from '../options.js';
import { type Clock, systemClock } from '../time/clock.js';
import {
  type ChaosCommand,
  COMMAND_HELP,
  checkDirection,
  checkMs,
  type Direction,
  parseCommand,
} from './command.js';
import { Pair, type PairEnding, type PairHost } from './pair.js';
import type { PipeContext, PipeFaults, PipeMode } from './pipe.js';

export type { Direction } from './command.js';

/** Proxy defaults, declared once. */
export const CHAOS_DEFAULTS = Object.freeze({
  /** Loopback only unless asked: a chaos proxy should never be reachable by accident. */
  listenHost: '127.0.0.1',
  /** An ephemeral port, so parallel tests never collide. */
  listenPort: 0,
});

/** Options of {@link createChaosProxy}. */
export interface ChaosProxyOptions {
  /** Where every accepted connection is forwarded. */
  target: { host: string; port: number };
  /** Address to listen on. @default '127.0.0.1' */
  listenHost?: string;
  /** Port to listen on; 0 picks a free one. @default 0 */
  listenPort?: number;
}

/** Counters since the proxy started. */
export interface ChaosStats {
  /** Client connections accepted and proxied (refused ones are not counted). */
  accepted: number;
  /** Client connections refused with RST while `refuseNew` was on. */
  refused: number;
  /** Pairs that ended with an RST or socket error (reset(), a peer's RST, target refused). */
  reset: number;
  /** Pairs that ended with FIN (fin(), or both peers closing normally). Pairs destroyed by close() count in neither. */
  finned: number;
  /** Bytes written to the target. */
  bytesUp: number;
  /** Bytes written to clients. */
  bytesDown: number;
  /** Bytes from clients dropped by a blackhole. */
  droppedUp: number;
  /** Bytes from the target dropped by a blackhole. */
  droppedDown: number;
  /** Bytes from clients now held in the proxy (latency or freeze). */
  queuedUp: number;
  /** Bytes from the target now held in the proxy (latency or freeze). */
  queuedDown: number;
  /** Live proxied pairs. */
  connections: number;
  /** Times accepting a connection failed (EMFILE and the like); the proxy kept listening. */
  acceptErrors: number;
}

/** The fault state of one direction. */
export interface DirectionFaults {
  mode: PipeMode;
  latencyMs: number;
  jitterMs: number;
}

/** The proxy's whole fault state, as `status` reports it. */
export interface ChaosFaults {
  up: DirectionFaults;
  down: DirectionFaults;
  refuseNew: boolean;
}

/** A running chaos proxy. */
export interface ChaosProxy {
  /** The port it listens on. */
  readonly port: number;
  /** The address it listens on. */
  readonly host: string;
  /** Live proxied pairs. */
  readonly connections: number;
  /** Totals since start: accepted, reset, finned, bytesUp, bytesDown and more. */
  stats(): ChaosStats;
  /**
   * Adds `ms` (+ uniform random 0..jitterMs) of one-way delay to each chunk in
   * `direction`, preserving byte order. 0 removes it (chunks already delayed keep theirs).
   */
  setLatency(ms: number, jitterMs?: number, direction?: Direction): void;
  /**
   * Stops forwarding in `direction` and holds the bytes: nothing is lost, the sockets stay
   * open, the receivers see silence, and reading is paused so the sender's kernel buffers
   * fill.
   */
  freeze(direction?: Direction): void;
  /**
   * Drops every byte in `direction` silently (one-way blackhole: sockets open, no FIN, no
   * RST). Bytes held by a freeze or latency are dropped too; a FIN waits for heal().
   */
  blackhole(direction?: Direction): void;
  /** Ends freeze/blackhole in `direction` and flushes held bytes (latency stays). */
  heal(direction?: Direction): void;
  /** Cuts every current pair with TCP RST on both sides; returns how many. */
  reset(): number;
  /** Cuts every current pair with FIN on both sides, dropping held bytes; returns how many. */
  fin(): number;
  /** Refuse (RST) new connections while true. */
  refuseNew(on: boolean): void;
  /**
   * Applies a text command (grammar in ./command.ts), e.g. 'latency 200 50 both',
   * 'freeze up', 'heal', 'refuse on', 'status'; returns a one-line JSON result.
   * @throws InvalidArgumentError (HL_ERR_INVALID_ARGUMENT) for a bad command.
   */
  command(line: string): string;
  /** Stops listening, destroys every pair and cancels every timer. */
  close(): Promise<void>;
}

/**
 * Starts a chaos proxy; resolves once it is listening.
 * @throws InvalidArgumentError for a bad target or listen address.
 */
export async function createChaosProxy(options: ChaosProxyOptions): Promise<ChaosProxy> {
  const target = options?.target;
  if (typeof target !== 'object' || target === null) {
    throw new InvalidArgumentError('option "target" must be { host, port }');
  }
  const host = stringOption('target.host', requiredOption('target.host', target.host), '');
  const port = intOption('target.port', requiredOption('target.port', target.port), 0, 1, 65_535);
  const listenHost = stringOption('listenHost', options.listenHost, CHAOS_DEFAULTS.listenHost);
  const listenPort = intOption(
    'listenPort',
    options.listenPort,
    CHAOS_DEFAULTS.listenPort,
    0,
    65_535,
  );
  const proxy = new ChaosProxyImpl({ host, port }, systemClock);
  await proxy.listen(listenHost, listenPort);
  return proxy;
}

function directions(direction: Direction): readonly ('up' | 'down')[] {
  return direction === 'both' ? ['up', 'down'] : [direction];
}

class ChaosProxyImpl implements ChaosProxy, PairHost {
  private readonly server: Server;
  private readonly pairs = new Set<Pair>();
  private readonly faults: { up: DirectionFaults; down: DirectionFaults } = {
    up: { mode: 'flow', latencyMs: 0, jitterMs: 0 },
    down: { mode: 'flow', latencyMs: 0, jitterMs: 0 },
  };
  private refusing = false;
  private closing: Promise<void> | undefined;
  /** Set by close(): called once the last pair has gone. */
  private pairsGone: (() => void) | undefined;
  private address: AddressInfo | undefined;
  private readonly counts = {
    accepted: 0,
    refused: 0,
    reset: 0,
    finned: 0,
    bytesUp: 0,
    bytesDown: 0,
    droppedUp: 0,
    droppedDown: 0,
    acceptErrors: 0,
  };

  constructor(
    private readonly target: { host: string; port: number },
    readonly clock: Clock,
  ) {
    // allowHalfOpen: a FIN from one side is forwarded as a half-close, and the other
    // direction keeps flowing until its own FIN, exactly as between the real peers.
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (client) =>
      this.accept(client),
    );
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        // Once listening, a server 'error' is a failed accept (EMFILE, ENFILE): transient,
        // and the listener keeps going. Unhandled it would crash the host process.
        this.server.on('error', () => {
          this.counts.acceptErrors++;
        });
        this.address = this.server.address() as AddressInfo;
        resolve();
      });
    });
  }

  get port(): number {
    return this.address?.port ?? 0;
  }

  get host(): string {
    return this.address?.address ?? '';
  }

  get connections(): number {
    return this.pairs.size;
  }

  stats(): ChaosStats {
    let queuedUp = 0;
    let queuedDown = 0;
    for (const pair of this.pairs) {
      queuedUp += pair.up.queued;
      queuedDown += pair.down.queued;
    }
    return { ...this.counts, queuedUp, queuedDown, connections: this.pairs.size };
  }

  setLatency(ms: number, jitterMs = 0, direction: Direction = 'both'): void {
    checkMs('latency', ms);
    checkMs('jitter', jitterMs);
    checkDirection('direction', direction);
    // Only chunks read from now on get the new delay; those queued keep their time, and
    // order holds because a chunk is never scheduled before the one in front of it.
    for (const dir of directions(direction)) {
      this.faults[dir].latencyMs = ms;
      this.faults[dir].jitterMs = jitterMs;
    }
  }

  freeze(direction: Direction = 'both'): void {
    this.setMode('frozen', direction);
  }

  blackhole(direction: Direction = 'both'): void {
    this.setMode('blackhole', direction);
  }

  heal(direction: Direction = 'both'): void {
    this.setMode('flow', direction);
  }

  reset(): number {
    const pairs = [...this.pairs].filter((pair) => pair.ending === undefined);
    for (const pair of pairs) pair.reset();
    return pairs.length;
  }

  fin(): number {
    const pairs = [...this.pairs].filter((pair) => pair.ending === undefined);
    for (const pair of pairs) pair.fin();
    return pairs.length;
  }

  refuseNew(on: boolean): void {
    if (typeof on !== 'boolean') throw new InvalidArgumentError('chaos: refuseNew takes a boolean');
    this.refusing = on;
  }

  command(line: string): string {
    if (typeof line !== 'string') throw new InvalidArgumentError('chaos: command must be a string');
    return JSON.stringify(this.apply(parseCommand(line)));
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      let pending = 2;
      const done = (): void => {
        if (--pending === 0) resolve();
      };
      // Upstream sockets are not the server's, so wait for the pairs as well as for the
      // listener: when this resolves, no socket or timer of the proxy is left.
      this.pairsGone = done;
      this.server.close(() => done());
      for (const pair of this.pairs) pair.destroy();
      if (this.pairs.size === 0) {
        this.pairsGone = undefined;
        done();
      }
    });
    return this.closing;
  }

  /** The context a pipe of `dir` reads its faults from and reports its counts to. */
  pipeContext(dir: 'up' | 'down'): PipeContext {
    const faults = this.faults[dir];
    const counts = this.counts;
    const [sent, dropped] =
      dir === 'up' ? (['bytesUp', 'droppedUp'] as const) : (['bytesDown', 'droppedDown'] as const);
    return {
      faults: (): PipeFaults => faults,
      clock: this.clock,
      random: Math.random,
      counters: {
        forwarded(n) {
          counts[sent] += n;
        },
        dropped(n) {
          counts[dropped] += n;
        },
      },
    };
  }

  removePair(pair: Pair, how: PairEnding): void {
    if (!this.pairs.delete(pair)) return;
    if (how === 'reset') this.counts.reset++;
    else if (how === 'fin') this.counts.finned++;
    if (this.pairs.size === 0 && this.pairsGone !== undefined) {
      const gone = this.pairsGone;
      this.pairsGone = undefined;
      gone();
    }
  }

  private accept(client: Socket): void {
    // A listener must exist before anything can fail, or an early ECONNRESET would be
    // an unhandled 'error' and crash the host process.
    client.on('error', () => {});
    if (this.closing !== undefined) {
      client.destroy();
      return;
    }
    if (this.refusing) {
      this.counts.refused++;
      client.resetAndDestroy();
      return;
    }
    this.counts.accepted++;
    const upstream = connect({
      host: this.target.host,
      port: this.target.port,
      allowHalfOpen: true,
      noDelay: true,
    });
    this.pairs.add(new Pair(client, upstream, this));
  }

  private setMode(mode: PipeMode, direction: Direction): void {
    checkDirection('direction', direction);
    for (const dir of directions(direction)) {
      this.faults[dir].mode = mode;
      for (const pair of this.pairs) (dir === 'up' ? pair.up : pair.down).refresh();
    }
  }

  private apply(cmd: ChaosCommand): Record<string, unknown> {
    switch (cmd.verb) {
      case 'latency':
        this.setLatency(cmd.ms, cmd.jitterMs, cmd.direction);
        return { ok: true, command: cmd.verb, faults: this.faultState() };
      case 'freeze':
      case 'blackhole':
      case 'heal':
        this[cmd.verb](cmd.direction);
        return { ok: true, command: cmd.verb, faults: this.faultState() };
      case 'refuse':
        this.refuseNew(cmd.on);
        return { ok: true, command: cmd.verb, faults: this.faultState() };
      case 'reset':
      case 'fin':
        return { ok: true, command: cmd.verb, pairs: this[cmd.verb]() };
      case 'clear':
        this.heal('both');
        this.setLatency(0, 0, 'both');
        this.refuseNew(false);
        return { ok: true, command: cmd.verb, faults: this.faultState() };
      case 'status':
        return { ok: true, command: cmd.verb, faults: this.faultState(), stats: this.stats() };
      case 'help':
        return { ok: true, command: cmd.verb, commands: COMMAND_HELP };
    }
  }

  private faultState(): ChaosFaults {
    return { up: { ...this.faults.up }, down: { ...this.faults.down }, refuseNew: this.refusing };
  }
}
