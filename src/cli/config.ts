/**
 * Configuration from a JSON file, environment variables and flags, in that order of
 * increasing precedence. Both sources are turned into flags placed before the command
 * line's own, so one parser (each command's strict parseArgs) validates everything and
 * a later flag wins:
 *
 *   defaults < --config FILE (or HEARTLINE_CONFIG) < HEARTLINE_<COMMAND>_<FLAG> < flags
 *
 * The file holds one object per command, keyed by flag name without dashes:
 * `{ "serve": { "port": 7000, "echo": true }, "connect": { "interval": 1000 } }`.
 * Environment variables name the command and the flag in upper case with underscores:
 * HEARTLINE_SERVE_PORT=7000, HEARTLINE_SERVE_SESSION_TTL=60000, HEARTLINE_SERVE_ECHO=1.
 * A boolean is switched on by true (file) or 1/true/yes (environment); false leaves it off.
 * Every section, key, variable and boolean value is checked against the command's flags
 * and refused in its own words (exit 2), so that a typo never passes in silence.
 */

import { readFileSync } from 'node:fs';
import { type FlagTable, UsageError } from './args.js';
import { didYouMean } from './suggest.js';

/** What the checks need to know of the command being run. */
export interface ConfigTarget {
  /** The command's name, also its section in a file and its part of a variable's name. */
  command: string;
  /** Its flags; undefined for a command that passes its arguments on unread (bench). */
  flags?: FlagTable | undefined;
  /** Every command's name: the sections a file may hold. */
  commands: readonly string[];
}

/**
 * One setting as flags, checked against the command's flags so that a mistake is told
 * in the words of its source (`typo.json: serve.ecko`, `HEARTLINE_SERVE_PROT`), never as
 * a flag the user did not type. `where(key)` names the setting; `nameOf(flag)` shows a
 * suggestion in the same words.
 */
function toFlags(
  key: string,
  value: unknown,
  target: ConfigTarget,
  where: string,
  nameOf: (flag: string) => string,
): string[] {
  const flag = target.flags?.[key];
  if (target.flags && !flag) {
    const names = Object.keys(target.flags);
    throw new UsageError(`${where} is not an option${didYouMean(key, names, nameOf)}`);
  }
  if (!target.flags && !/^[a-z][a-z0-9-]*$/.test(key)) {
    throw new UsageError(`${where} is not a flag name of "${target.command}"`);
  }
  if (flag?.type === 'boolean') {
    if (typeof value !== 'boolean') throw new UsageError(`${where} must be true or false`);
    return value ? [`--${key}`] : [];
  }
  if (value === true && !flag) return [`--${key}`];
  if (value === false && !flag) return [];
  if (typeof value === 'string' || typeof value === 'number') return [`--${key}=${value}`];
  throw new UsageError(`${where} must be a string or a number`);
}

/** Reads the command's section of a JSON config file as flags; refuses unknown sections and keys. */
export function fileFlags(path: string, target: ConfigTarget): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`config file ${path} must hold a JSON object`);
  }
  // A misspelt section would otherwise be skipped in silence, its settings never applied.
  for (const name of Object.keys(parsed)) {
    if (!target.commands.includes(name)) {
      throw new UsageError(
        `${path}: unknown section "${name}"${didYouMean(name, target.commands)}; sections are command names`,
      );
    }
  }
  const { command } = target;
  const section = (parsed as Record<string, unknown>)[command];
  if (section === undefined) return [];
  if (typeof section !== 'object' || section === null || Array.isArray(section)) {
    throw new UsageError(`${path}: "${command}" must be an object of flags`);
  }
  return Object.entries(section).flatMap(([key, value]) =>
    toFlags(key, value, target, `${path}: ${command}.${key}`, (f) => f),
  );
}

const TRUE = ['1', 'true', 'yes'];
const FALSE = ['0', 'false', 'no'];

/** Reads HEARTLINE_<COMMAND>_<FLAG> variables as flags; refuses one that names no flag. */
export function envFlags(env: NodeJS.ProcessEnv, target: ConfigTarget): string[] {
  const prefix = `HEARTLINE_${target.command.toUpperCase()}_`;
  const variable = (flag: string) => `${prefix}${flag.toUpperCase().replaceAll('-', '_')}`;
  const out: string[] = [];
  const names = Object.keys(env)
    .filter((n) => n.startsWith(prefix) && env[n] !== undefined)
    .sort();
  for (const name of names) {
    const raw = env[name]!;
    const key = name.slice(prefix.length).toLowerCase().replaceAll('_', '-');
    const flag = target.flags?.[key];
    let value: string | boolean = raw;
    // Only a boolean flag reads 1/yes as "on": HEARTLINE_SERVE_PORT=1 is port 1.
    if (flag?.type === 'boolean' || !target.flags) {
      const lower = raw.toLowerCase();
      if (TRUE.includes(lower)) value = true;
      else if (FALSE.includes(lower)) value = false;
      else if (flag) {
        throw new UsageError(
          `${name} must be one of ${[...TRUE, ...FALSE].join(', ')}, got "${raw}"`,
        );
      }
    }
    if (!flag && target.flags) {
      const names = Object.keys(target.flags);
      throw new UsageError(
        `${name} names no option of "${target.command}"${didYouMean(key, names, variable)}`,
      );
    }
    out.push(...toFlags(key, value, target, name, variable));
  }
  return out;
}

/**
 * Returns the command line with the file's and the environment's settings in front of
 * it. `--config FILE` is taken out of argv; HEARTLINE_CONFIG names a file too.
 */
export function withConfig(
  target: ConfigTarget,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const rest: string[] = [];
  let configPath = env.HEARTLINE_CONFIG;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--config') {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError('--config needs a FILE');
      configPath = next;
      i++;
    } else if (arg.startsWith('--config=')) {
      configPath = arg.slice('--config='.length);
    } else {
      rest.push(arg);
    }
  }
  const fromFile = configPath ? fileFlags(configPath, target) : [];
  return [...fromFile, ...envFlags(env, target), ...rest];
}
