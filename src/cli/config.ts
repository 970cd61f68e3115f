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
 */

import { readFileSync } from 'node:fs';
import { UsageError } from './args.js';

type ConfigValue = string | number | boolean;

function flagsFrom(
  source: string,
  entries: Iterable<[string, unknown]>,
  command: string,
): string[] {
  const out: string[] = [];
  for (const [key, value] of entries) {
    if (!/^[a-z][a-z0-9-]*$/.test(key)) {
      throw new UsageError(`${source}: "${key}" is not a flag name of "${command}"`);
    }
    if (value === true) out.push(`--${key}`);
    else if (value === false) continue;
    else if (typeof value === 'string' || typeof value === 'number')
      out.push(`--${key}`, String(value));
    else throw new UsageError(`${source}: "${key}" must be a string, number or boolean`);
  }
  return out;
}

/** Reads the command's section of a JSON config file as flags. */
export function fileFlags(path: string, command: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`config file ${path} must hold a JSON object`);
  }
  const section = (parsed as Record<string, unknown>)[command];
  if (section === undefined) return [];
  if (typeof section !== 'object' || section === null || Array.isArray(section)) {
    throw new UsageError(`config file ${path}: "${command}" must be an object of flags`);
  }
  return flagsFrom(
    `config file ${path}`,
    Object.entries(section as Record<string, ConfigValue>),
    command,
  );
}

/** Reads HEARTLINE_<COMMAND>_<FLAG> variables as flags. */
export function envFlags(env: NodeJS.ProcessEnv, command: string): string[] {
  const prefix = `HEARTLINE_${command.toUpperCase()}_`;
  const entries: Array<[string, unknown]> = [];
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(prefix) || raw === undefined) continue;
    const key = name.slice(prefix.length).toLowerCase().replaceAll('_', '-');
    const lower = raw.toLowerCase();
    const value = ['1', 'true', 'yes'].includes(lower)
      ? true
      : ['0', 'false', 'no'].includes(lower)
        ? false
        : raw;
    entries.push([key, value]);
  }
  entries.sort(([a], [b]) => a.localeCompare(b));
  return flagsFrom(`environment (${prefix}*)`, entries, command);
}

/**
 * Returns the command line with the file's and the environment's settings in front of
 * it. `--config FILE` is taken out of argv; HEARTLINE_CONFIG names a file too.
 */
export function withConfig(
  command: string,
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
  const fromFile = configPath ? fileFlags(configPath, command) : [];
  return [...fromFile, ...envFlags(env, command), ...rest];
}
