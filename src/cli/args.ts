/**
 * Argument helpers shared by the commands: node:util parseArgs plus typed number parsing
 * and a usage error that main.ts turns into exit code 2.
 */

/** A mistake in the command line: printed with the command's help, exit code 2. */
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
    throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got "${value}"`);
  }
  return n;
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
