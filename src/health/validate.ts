/**
 * Argument checks shared by the health modules. Internal: not re-exported from the
 * package. Each check names the option in its error so a bad value is found from the
 * message alone (the undici `InvalidArgumentError` practice).
 */

import { InvalidArgumentError } from '../errors.js';

/** Bounds for {@link checkNumber}; every bound is inclusive unless marked otherwise. */
export interface NumberBounds {
  /** Smallest allowed value. */
  min?: number;
  /** When true, `min` itself is refused (the value must be strictly greater). */
  minExclusive?: boolean;
  /** Largest allowed value. */
  max?: number;
  /** Whether the value must be an integer. */
  integer?: boolean;
}

/**
 * Returns `value` if it is a finite number inside `bounds`, else throws an
 * {@link InvalidArgumentError} naming `name`.
 */
export function checkNumber(name: string, value: unknown, bounds: NumberBounds = {}): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidArgumentError(`${name} must be a finite number, got ${String(value)}`);
  }
  if (bounds.integer === true && !Number.isInteger(value)) {
    throw new InvalidArgumentError(`${name} must be an integer, got ${value}`);
  }
  const { min, max } = bounds;
  if (min !== undefined) {
    const below = bounds.minExclusive === true ? value <= min : value < min;
    if (below) {
      const op = bounds.minExclusive === true ? '>' : '>=';
      throw new InvalidArgumentError(`${name} must be ${op} ${min}, got ${value}`);
    }
  }
  if (max !== undefined && value > max) {
    throw new InvalidArgumentError(`${name} must be <= ${max}, got ${value}`);
  }
  return value;
}
