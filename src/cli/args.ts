/**
 * Argument helpers shared by the commands: node:util parseArgs behind a front that words
 * its errors for people (one line, a did-you-mean), typed number parsing, and a usage
 * error that main.ts turns into exit code 2.
 */

import { type ParseArgsConfig, parseArgs } from 'node:util';
import { didYouMean } from './suggest.js';

/**
 * A mistake in the command line, a config file or the environment: main.ts prints
 * `heartline <command>: <message>` and `run 'heartline <command> --help'`, exit code 2.
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Parses an integer flag value in [min, max]; undefined stays undefined. */
export function intFlag(
  name: string,
  value: string | undefined,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new UsageError(`--${name} must be an integer ${range}, got "${value}"`);
  }
  return n;
}

/**
 * Parses a duration flag in ms (a positive integer); `range` says what the other end
 * accepts, e.g. "the server grants 1000-120000 ms by default".
 */
export function msFlag(name: string, value: string | undefined, range: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(
      `--${name} must be a positive number of milliseconds, got "${value}" (${range})`,
    );
  }
  return n;
}

/** The flags a command declares, as parseArgs takes them. */
export type FlagTable = NonNullable<ParseArgsConfig['options']>;

/**
 * parseArgs (strict) with the errors a person can act on: `unknown option --bogus (did
 * you mean --port?)`, `--port needs a value`, `--echo takes no value`. A value that looks
 * like a negative number is taken as the flag's value (`--port -1` reads as `--port=-1`,
 * so that the flag's own range check speaks, not the parser's "ambiguous").
 */
export function parseFlags<T extends FlagTable>(
  args: string[],
  options: T,
  allowPositionals = false,
): ReturnType<
  typeof parseArgs<{ args: string[]; options: T; allowPositionals: boolean; strict: true }>
> {
  const names = Object.keys(options);
  const normal: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      normal.push(...args.slice(i));
      break;
    }
    if (!arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) {
      if (!allowPositionals) throw new UsageError(`unexpected argument "${arg}"`);
      normal.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') ? arg.slice(2, eq < 0 ? undefined : eq) : arg.slice(1);
    const flag = arg.startsWith('--') ? options[name] : undefined;
    if (!flag) {
      const shown = arg.startsWith('--') ? `--${name}` : arg;
      throw new UsageError(`unknown option ${shown}${didYouMean(name, names, (n) => `--${n}`)}`);
    }
    if (flag.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value, got "${arg}"`);
      normal.push(arg);
    } else if (eq >= 0) {
      normal.push(arg);
    } else {
      const value = args[i + 1];
      if (value === undefined || (value.startsWith('--') && value !== '--')) {
        throw new UsageError(`--${name} needs a value`);
      }
      normal.push(`--${name}=${value}`);
      i++;
    }
  }
  try {
    return parseArgs({ args: normal, options, allowPositionals, strict: true });
  } catch (err) {
    // What the loop above lets through (positionals after `--`): still a usage error.
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      throw new UsageError((err as Error).message);
    }
    throw err;
  }
}

/**
 * Checks the port of a "HOST:PORT" server address (1-65535) with a message that says so,
 * and returns the address unchanged; anything else is left to the address parser.
 */
export function addressFlag(value: string): string {
  const m = /:(-?\d+)$/.exec(value.trim());
  const port = m ? Number(m[1]) : 1;
  if (!Number.isSafeInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`port ${m![1]} in "${value}" must be 1-65535`);
  }
  return value;
}

/** Parses "[HOST:]PORT" (PORT may be 0); the host defaults to loopback. */
export function listenFlag(name: string, value: string): { host: string; port: number } {
  const m = /^(?:(.+):)?(\d+)$/.exec(value);
  const port = m ? intFlag(name, m[2], 0, 65535) : undefined;
  if (!m || port === undefined)
    throw new UsageError(`--${name} must be [HOST:]PORT, got "${value}"`);
  return { host: m[1] ?? '127.0.0.1', port };
}

/** Exit codes, documented in docs/cli.md. */
export const ExitCode = {
  /** Finished normally. */
  OK: 0,
  /** The connection or server failed (final close, gave up, listen error). */
  FAILURE: 1,
  /** Bad command line. */
  USAGE: 2,
} as const;
