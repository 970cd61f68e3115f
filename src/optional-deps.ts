/**
 * Optional peer dependencies (ioredis, pino, pino-pretty, prom-client): a plain TCP user
 * does not install them, so heartline never loads them when it is imported, only when a
 * feature that needs one is set up, and then says which package to install.
 */

import { createRequire } from 'node:module';
import { HeartlineError } from './errors.js';

const require = createRequire(import.meta.url);

/** The error for a feature asked for without its package installed. */
export function missingPackage(name: string, feature: string, cause?: unknown): HeartlineError {
  return new HeartlineError(
    'HL_ERR_MISSING_PACKAGE',
    `${feature} needs the optional package "${name}", which is not installed: npm install ${name}`,
    { cause },
  );
}

/** Whether `err` says that `name` itself (not one of its own imports) cannot be found. */
export function isMissingPackage(err: unknown, name: string): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_MODULE_NOT_FOUND') return false;
  const message = String((err as { message?: unknown }).message);
  return message.includes(`'${name}'`) || message.includes(`"${name}"`);
}

/**
 * Loads a CommonJS peer dependency synchronously; throws HL_ERR_MISSING_PACKAGE naming
 * `npm install <name>` when it is not installed (any other failure as it is).
 */
export function requirePeer<T>(name: string, feature: string): T {
  try {
    return require(name) as T;
  } catch (err) {
    if (isMissingPackage(err, name)) throw missingPackage(name, feature, err);
    throw err;
  }
}

/** Checks that a peer dependency can be found, without loading it. */
export function checkPeer(name: string, feature: string): void {
  try {
    require.resolve(name);
  } catch (err) {
    if (isMissingPackage(err, name)) throw missingPackage(name, feature, err);
    throw err;
  }
}
