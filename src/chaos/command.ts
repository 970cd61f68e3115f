/**
 * The chaos proxy's text command language, parsed into a typed command. It is the one
 * control surface: the API method `command()`, the CLI's stdin and the HTTP control port
 * all hand their text to {@link parseCommand}, so the three can never drift apart.
 *
 * Grammar (words separated by whitespace, case-insensitive, DIR = both | up | down,
 * default both; numbers are non-negative decimal milliseconds):
 *
 *   latency MS [JITTER] [DIR]   one-way delay of MS + uniform 0..JITTER per chunk; 0 removes
 *   freeze [DIR]                hold bytes, stop reading (a frozen peer)
 *   blackhole [DIR]             drop bytes silently (no FIN, no RST)
 *   heal [DIR]                  end freeze/blackhole and flush held bytes
 *   reset                       cut every current pair with RST
 *   fin                         cut every current pair with FIN
 *   refuse on|off               RST new connections while on
 *   clear                       heal both, latency 0 both, refuse off
 *   status                      fault state and stats
 *   help                        this list
 */

import { InvalidArgumentError } from '../errors.js';

/** Which way bytes travel: up = client to target, down = target to client. */
export type Direction = 'both' | 'up' | 'down';

/** A parsed chaos command. */
export type ChaosCommand =
  | {
      readonly verb: 'latency';
      readonly ms: number;
      readonly jitterMs: number;
      readonly direction: Direction;
    }
  | { readonly verb: 'freeze' | 'blackhole' | 'heal'; readonly direction: Direction }
  | { readonly verb: 'refuse'; readonly on: boolean }
  | { readonly verb: 'reset' | 'fin' | 'clear' | 'status' | 'help' };

/** One line per command, for `help` and error messages. */
export const COMMAND_HELP: readonly string[] = Object.freeze([
  'latency MS [JITTER] [both|up|down]',
  'freeze [both|up|down]',
  'blackhole [both|up|down]',
  'heal [both|up|down]',
  'reset',
  'fin',
  'refuse on|off',
  'clear',
  'status',
  'help',
]);

/**
 * Longest latency or jitter accepted (ms). Node timers overflow past 2^31-1 ms and fire
 * at once, and a delay beyond an hour is a typo rather than a fault worth simulating.
 */
export const MAX_LATENCY_MS = 3_600_000;

const DECIMAL = /^\d+(\.\d+)?$/;

/** True for 'both', 'up' and 'down'. */
export function isDirection(value: unknown): value is Direction {
  return value === 'both' || value === 'up' || value === 'down';
}

/**
 * Parses one command line.
 * @throws InvalidArgumentError (HL_ERR_INVALID_ARGUMENT) for an unknown verb, a bad or
 *   missing argument, or extra words.
 */
export function parseCommand(line: string): ChaosCommand {
  const words = line.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const [verb, ...args] = words;
  switch (verb) {
    case undefined:
      throw invalid('empty command');
    case 'latency': {
      const numbers: string[] = [];
      while (numbers.length < 2 && args[0] !== undefined && !isDirection(args[0])) {
        numbers.push(args.shift()!);
      }
      if (numbers.length === 0) throw invalid(`'latency' needs MS (${usage('latency')})`);
      const ms = parseMs('latency MS', numbers[0]!);
      const jitterMs = numbers[1] === undefined ? 0 : parseMs('latency JITTER', numbers[1]);
      return { verb, ms, jitterMs, direction: parseDirection(verb, args) };
    }
    case 'freeze':
    case 'blackhole':
    case 'heal':
      return { verb, direction: parseDirection(verb, args) };
    case 'refuse': {
      const [value, ...rest] = args;
      if ((value !== 'on' && value !== 'off') || rest.length > 0) {
        throw invalid(`'refuse' takes on or off (${usage('refuse')})`);
      }
      return { verb, on: value === 'on' };
    }
    case 'reset':
    case 'fin':
    case 'clear':
    case 'status':
    case 'help':
      if (args.length > 0) throw invalid(`'${verb}' takes no arguments`);
      return { verb };
    default:
      throw invalid(`unknown command '${verb}'; commands: ${COMMAND_HELP.join(', ')}`);
  }
}

/**
 * Checks a delay in milliseconds given through the API.
 * @throws InvalidArgumentError naming `name` unless 0 <= value <= MAX_LATENCY_MS.
 */
export function checkMs(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_LATENCY_MS) {
    throw invalid(
      `${name} must be a number of ms from 0 to ${MAX_LATENCY_MS}, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Checks a direction given through the API.
 * @throws InvalidArgumentError unless it is 'both', 'up' or 'down'.
 */
export function checkDirection(name: string, value: unknown): Direction {
  if (!isDirection(value)) throw invalid(`${name} must be both, up or down, got ${String(value)}`);
  return value;
}

function parseMs(name: string, word: string): number {
  if (!DECIMAL.test(word)) throw invalid(`${name} must be a non-negative number, got '${word}'`);
  return checkMs(name, Number(word));
}

function parseDirection(verb: string, args: string[]): Direction {
  if (args.length > 1) throw invalid(`too many arguments for '${verb}' (${usage(verb)})`);
  const word = args[0] ?? 'both';
  if (!isDirection(word)) {
    throw invalid(`'${verb}' direction must be both, up or down, got '${word}'`);
  }
  return word;
}

function usage(verb: string): string {
  return COMMAND_HELP.find((line) => line.startsWith(`${verb} `)) ?? verb;
}

function invalid(message: string): InvalidArgumentError {
  return new InvalidArgumentError(`chaos: ${message}`);
}
