/**
 * The client's server list: parsed once, tried in shuffled order so that a fleet of
 * clients spreads over the servers, with failover to the next address on failure.
 */

import { InvalidArgumentError } from '../errors.js';

/** One server address. */
export interface ServerAddress {
  host: string;
  port: number;
}

/** Parses "host:port", "[v6]:port" or an address object. */
export function parseAddress(value: string | ServerAddress): ServerAddress {
  if (typeof value !== 'string') {
    if (typeof value?.host !== 'string' || !validPort(value.port)) {
      throw new InvalidArgumentError(`invalid server address ${JSON.stringify(value)}`);
    }
    return { host: value.host, port: value.port };
  }
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || !validPort(port)) {
    throw new InvalidArgumentError(`invalid server address "${value}" (expected HOST:PORT)`);
  }
  return { host: (m[1] ?? m[2])!, port };
}

function validPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536;
}

/** Parses a comma-separated list or an array of addresses. */
export function parseServerList(
  value: string | ReadonlyArray<string | ServerAddress>,
): ServerAddress[] {
  const items = typeof value === 'string' ? value.split(',').filter((s) => s.trim() !== '') : value;
  const list = items.map(parseAddress);
  if (list.length === 0) throw new InvalidArgumentError('the server list is empty');
  return list;
}

/** Cycles through a shuffled copy of the list; reshuffles after each full pass. */
export class ServerRotation {
  private order: ServerAddress[] = [];
  private index = 0;

  constructor(
    private readonly servers: readonly ServerAddress[],
    private readonly random: () => number = Math.random,
  ) {
    this.shuffle();
  }

  /** The address to try now. */
  get current(): ServerAddress {
    return this.order[this.index]!;
  }

  /** Moves to the next address (failover). */
  advance(): ServerAddress {
    this.index++;
    if (this.index >= this.order.length) this.shuffle();
    return this.current;
  }

  private shuffle(): void {
    const a = [...this.servers];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    this.order = a;
    this.index = 0;
  }
}
