/**
 * The entry points: observe a server or a client with a logger, a metrics registry or
 * both. Observing attaches listeners to events the library already emits; with neither
 * a logger nor a registry nothing is attached at all.
 */

import type { Registry } from 'prom-client';
import type { ClientConnection } from '../client/client.js';
import type { Server } from '../server/server.js';
import { type Clock, systemClock } from '../time/clock.js';
import { logClient, logServer } from './log.js';
import type { ObserveLogger } from './logger.js';
import { metricsFor } from './metrics.js';

/** Options of {@link observeServer} and {@link observeClient}. */
export interface ObserveOptions {
  /** Logs each connection event (pino or anything with pino's methods). @default none */
  logger?: ObserveLogger;
  /**
   * Registers the heartline metrics on this prom-client registry and feeds them.
   * Create one with `createRegistry()` or `new Registry()`; the global registry is never
   * used unless passed here. @default none
   */
  registry?: Registry;
  /**
   * The clock the server or client was created with, to measure silences and detection
   * latency on the same time base. @default systemClock
   */
  clock?: Clock;
}

/** A running observation; `stop()` removes every listener it added. */
export interface Observer {
  /** The registry the metrics go to, or null when only logging. */
  readonly registry: Registry | null;
  /** Stops observing. Counters keep their values; calling it twice does nothing. */
  stop(): void;
}

function observer(registry: Registry | null, parts: Array<() => void>): Observer {
  let stopped = false;
  return {
    registry,
    stop() {
      if (stopped) return;
      stopped = true;
      for (const stop of parts) stop();
    },
  };
}

/**
 * Observes a server and each of its connections: log lines through `logger`, metrics on
 * `registry`. Connections that already exist are observed from now on.
 */
export function observeServer(server: Server, options: ObserveOptions = {}): Observer {
  const clock = options.clock ?? systemClock;
  const parts: Array<() => void> = [];
  if (options.logger) parts.push(logServer(server, options.logger, clock));
  if (options.registry) parts.push(metricsFor(options.registry).bindServer(server, clock));
  return observer(options.registry ?? null, parts);
}

/** Observes a client connection (from `connect()`) until it closes. */
export function observeClient(conn: ClientConnection, options: ObserveOptions = {}): Observer {
  const clock = options.clock ?? systemClock;
  const parts: Array<() => void> = [];
  if (options.logger) parts.push(logClient(conn, options.logger, clock));
  if (options.registry) parts.push(metricsFor(options.registry).bindClient(conn, clock));
  return observer(options.registry ?? null, parts);
}
