/**
 * pino, pino-pretty and prom-client are loaded on first use, not when heartline is
 * imported: together they take about 130 ms to load, which an application that never
 * observes anything should not pay. All three are CommonJS, so a synchronous require
 * keeps the API synchronous. They are optional peer dependencies: a missing one throws
 * HL_ERR_MISSING_PACKAGE naming the `npm install` that adds it.
 */

import type pinoFn from 'pino';
import type prettyFn from 'pino-pretty';
import type * as promClient from 'prom-client';
import { requirePeer } from '../optional-deps.js';

let pinoModule: typeof pinoFn | undefined;
let prettyModule: typeof prettyFn | undefined;
let promModule: typeof promClient | undefined;

/** The pino factory. */
export function loadPino(): typeof pinoFn {
  pinoModule ??= requirePeer<typeof pinoFn>('pino', 'Logging (createLogger)');
  return pinoModule;
}

/** The pino-pretty stream factory. */
export function loadPretty(): typeof prettyFn {
  prettyModule ??= requirePeer<typeof prettyFn>('pino-pretty', 'Pretty log output');
  return prettyModule;
}

/** The prom-client module. */
export function loadProm(): typeof promClient {
  promModule ??= requirePeer<typeof promClient>('prom-client', 'Metrics (prom-client)');
  return promModule;
}
