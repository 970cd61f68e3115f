/**
 * Structured logs with pino: one JSON object per line by default, readable lines
 * (pino-pretty) when the destination is a terminal.
 */

import type { Logger } from 'pino';
import { InvalidArgumentError } from '../errors.js';
import { choiceOption } from '../options.js';
import { loadPino, loadPretty } from './deps.js';

/** Log levels, most severe first; 'silent' writes nothing. */
export const LOG_LEVELS = Object.freeze([
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
] as const);

/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The pino logger {@link createLogger} returns. */
export type { Logger };

/**
 * What heartline needs of a logger: a few of pino's methods. A pino logger (or
 * fastify's, which is one) fits, so an application can pass the logger it already has.
 */
export interface ObserveLogger {
  isLevelEnabled(level: string): boolean;
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** Logger defaults. */
export const LOGGER_DEFAULTS = Object.freeze({
  /** Connection events and failures, not per-message lines. */
  level: 'info' as LogLevel,
  /** stdout. */
  destination: 1,
});

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. @default 'info' */
  level?: LogLevel;
  /**
   * Readable coloured lines instead of JSON. @default true when the destination is a
   * TTY (process.stdout unless `destination` says otherwise)
   */
  pretty?: boolean;
  /** Where lines go: a writable stream or a file descriptor. @default 1 (stdout) */
  destination?: NodeJS.WritableStream | number;
  /** Fields on every line, replacing pino's default pid and hostname. */
  base?: Record<string, unknown>;
}

/** True when `value` is one of {@link LOG_LEVELS}. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

function isTty(destination: NodeJS.WritableStream | number): boolean {
  if (destination === 1) return process.stdout.isTTY === true;
  if (destination === 2) return process.stderr.isTTY === true;
  return typeof destination === 'object' && (destination as { isTTY?: boolean }).isTTY === true;
}

/**
 * Creates a pino logger. JSON lines by default; with `pretty` (the default on a TTY) the
 * lines go through pino-pretty in-process (no worker thread), coloured on a TTY.
 * @throws InvalidArgumentError for an unknown level.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = choiceOption('level', options.level, LOGGER_DEFAULTS.level, LOG_LEVELS);
  const destination = options.destination ?? LOGGER_DEFAULTS.destination;
  if (
    typeof destination === 'number'
      ? !Number.isInteger(destination) || destination < 0
      : typeof destination?.write !== 'function'
  ) {
    throw new InvalidArgumentError(
      'option "destination" must be a file descriptor or a writable stream',
    );
  }
  const tty = isTty(destination);
  const pretty = options.pretty ?? tty;
  const pino = loadPino();
  const config = { level, ...(options.base !== undefined ? { base: options.base } : {}) };
  if (pretty) {
    const stream = loadPretty()({
      destination: destination as number,
      colorize: tty,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      sync: true,
    });
    return pino(config, stream);
  }
  const stream =
    typeof destination === 'number'
      ? pino.destination({ dest: destination, sync: true })
      : destination;
  return pino(config, stream);
}
