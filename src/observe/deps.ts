/**
 * pino, pino-pretty and prom-client are loaded on first use, not when heartline is
 * imported: together they take about 130 ms to load, which an application that never
 * observes anything should not pay. All three are CommonJS, so a synchronous require
 * keeps the API synchronous.
 */

import { createRequire } from 'node:module';
import type pinoFn from 'pino';
import type prettyFn from 'pino-pretty';
import type * as promClient from 'prom-client';

const require = createRequire(import.meta.url);

let pinoModule: typeof pinoFn | undefined;
let prettyModule: typeof prettyFn | undefined;
let promModule: typeof promClient | undefined;

/** The pino factory. */
export function loadPino(): typeof pinoFn {
  pinoModule ??= require('pino') as typeof pinoFn;
  return pinoModule;
}

/** The pino-pretty stream factory. */
export function loadPretty(): typeof prettyFn {
  prettyModule ??= require('pino-pretty') as typeof prettyFn;
  return prettyModule;
}

/** The prom-client module. */
export function loadProm(): typeof promClient {
  promModule ??= require('prom-client') as typeof promClient;
  return promModule;
}
