/**
 * Waiting helpers for tests: await a condition or an event with a generous deadline
 * instead of sleeping a fixed time, so tests are fast when things work and fail with a
 * clear message (not a hang) when they do not.
 */

import type { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

/** Generous by default: a slow CI machine must not turn a pass into a failure. */
const DEFAULT_TIMEOUT_MS = 5000;

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this long (ms). @default 5000 */
  timeout?: number;
  /** Poll every this many ms. @default 5 */
  interval?: number;
  /** Error message on timeout. */
  message?: string;
}

/**
 * Resolves once `predicate` returns true; polls every `interval` ms and rejects after
 * `timeout` ms. An exception from the predicate rejects at once.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  { timeout = DEFAULT_TIMEOUT_MS, interval = 5, message }: WaitForOptions = {},
): Promise<void> {
  const deadline = performance.now() + timeout;
  for (;;) {
    if (await predicate()) return;
    if (performance.now() >= deadline) {
      throw new Error(message ?? `waitFor: condition not met within ${timeout} ms`);
    }
    await sleep(interval);
  }
}

/** Options of {@link onceEvent} and {@link withTimeout}. */
export interface DeadlineOptions {
  /** Give up after this long (ms). @default 5000 */
  timeout?: number;
  /** Error message on timeout. */
  message?: string;
}

/**
 * Settles with `promise`, or rejects if it takes longer than `timeout` ms. The deadline
 * timer is cleared either way, so nothing is left to keep the process alive.
 */
export async function withTimeout<T>(
  promise: Promise<T>,
  { timeout = DEFAULT_TIMEOUT_MS, message }: DeadlineOptions = {},
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(message ?? `timed out after ${timeout} ms`)),
      timeout,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Resolves with the arguments of the next `event` on `emitter`. Rejects on timeout, and
 * on an 'error' event unless `event` is 'error' itself.
 */
export function onceEvent(
  emitter: EventEmitter,
  event: string,
  { timeout = DEFAULT_TIMEOUT_MS, message }: DeadlineOptions = {},
): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      emitter.off(event, onEvent);
      if (event !== 'error') emitter.off('error', onError);
    };
    const onEvent = (...args: unknown[]): void => {
      cleanup();
      resolve(args);
    };
    const onError = (err: unknown): void => {
      cleanup();
      reject(err);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(message ?? `timed out after ${timeout} ms waiting for '${event}'`));
    }, timeout);
    emitter.on(event, onEvent);
    if (event !== 'error') emitter.on('error', onError);
  });
}
