/**
 * Every option and default, declared once. Public option interfaces live here with a
 * `@default` per field; `resolve*` functions validate up front (InvalidArgumentError
 * names the option), never mutate the caller's object, and return frozen configs.
 */

import { InvalidArgumentError } from './errors.js';
import type { DetectorFactory } from './health/index.js';
import { DEFAULT_MAX_FRAME } from './protocol/frames.js';
import type { Clock } from './time/clock.js';

/**
 * Heartbeat defaults and why:
 * - interval 10 s: well inside the idle timeouts that cut quiet flows (AWS ALB 60 s,
 *   Azure LB 4 min, AWS NAT gateway 350 s, most home NATs minutes), and at 100k
 *   connections it is 10k PING/PONG pairs a second, which one core handles with room.
 *   Heartbeats are only sent on idle links, so busy connections cost nothing.
 * - timeout 30 s (three intervals): one lost heartbeat or a slow GC pause never kills a
 *   healthy link, yet a dead peer is found faster than Socket.IO (45 s), MQTT (90 s) or
 *   NATS (about 6 min) detect it by default.
 * - suspect after 1.5 intervals: the first missed heartbeat raises suspicion and starts
 *   fast probing, so a live peer clears it in one round trip.
 */
export const HEARTBEAT_DEFAULTS = Object.freeze({
  /** Send a PING after this long without sending anything (ms). */
  interval: 10_000,
  /** Declare the peer DEAD after this long without hearing anything (ms). */
  timeout: 30_000,
  /** Declare the peer SUSPECT after this much silence (ms); derived when not given. */
  suspectFactor: 1.5,
  /** Close with 'write-stall' when buffered outgoing bytes make no progress this long (ms). */
  writeTimeout: 30_000,
});

/** Transport defaults shared by both ends. */
export const CONNECTION_DEFAULTS = Object.freeze({
  /** Largest frame (type byte + payload) accepted or sent. */
  maxFrame: DEFAULT_MAX_FRAME,
  /** A HELLO/WELCOME must arrive within this long after the TCP connect (ms). */
  handshakeTimeout: 10_000,
  /** Send a cumulative ACK after this many unacknowledged messages. */
  ackEvery: 32,
  /** ...or after this long with anything unacknowledged (ms). */
  ackDelay: 20,
  /** send() returns false once the replay buffer holds this many bytes. */
  highWaterMark: 1024 * 1024,
  /** send() throws HL_ERR_BUFFER_FULL past this many buffered bytes. */
  maxBufferedBytes: 16 * 1024 * 1024,
  /**
   * DATA is handed to the socket only while its own buffer holds less than this, so a
   * PONG or ACK written next never waits behind megabytes of bulk data.
   */
  socketLowWater: 64 * 1024,
  /** OS keepalive backstop: idle time before the kernel probes (ms, whole seconds). */
  keepAliveDelay: 30_000,
});

/** Options both a client and a server connection accept. */
export interface CommonOptions {
  /** Clock for every timer and timestamp (tests pass a FakeClock). @default systemClock */
  clock?: Clock;
  /** Largest frame in bytes. @default 1048576 */
  maxFrame?: number;
  /** Handshake deadline in ms. @default 10000 */
  handshakeTimeout?: number;
  /** Write-stall deadline in ms. @default 30000 */
  writeTimeout?: number;
  /** Cumulative ACK every N messages. @default 32 */
  ackEvery?: number;
  /** Cumulative ACK at most this late in ms. @default 20 */
  ackDelay?: number;
  /** Replay-buffer bytes above which send() returns false. @default 1048576 */
  highWaterMark?: number;
  /** Replay-buffer bytes above which send() throws. @default 16777216 */
  maxBufferedBytes?: number;
  /** OS keepalive idle delay in ms (0 disables). @default 30000 */
  keepAliveDelay?: number;
  /** Failure detector behind SUSPECT and DEAD. @default fixedDetector() */
  detector?: DetectorFactory;
}

/** Heartbeat timing for one link. */
export interface HeartbeatSettings {
  interval: number;
  timeout: number;
  suspectAfter: number;
}

/** Derives suspectAfter: 1.5 intervals, kept strictly below the timeout. */
export function deriveSuspectAfter(interval: number, timeout: number): number {
  return Math.max(
    1,
    Math.min(Math.round(interval * HEARTBEAT_DEFAULTS.suspectFactor), timeout - 1),
  );
}

/** Builds the settings of one link from a granted interval and timeout. */
export function heartbeatSettings(interval: number, timeout: number): HeartbeatSettings {
  return Object.freeze({ interval, timeout, suspectAfter: deriveSuspectAfter(interval, timeout) });
}

// ---------------------------------------------------------------------------------------
// Validation helpers

/** Checks an integer option in [min, max]; returns the default when undefined. */
export function intOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(
      `option "${name}" must be an integer in [${min}, ${max}], got ${String(value)}`,
    );
  }
  return value;
}

/** Checks a finite number option in [min, max]. */
export function numberOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min = 0,
  max = Number.POSITIVE_INFINITY,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || value > max) {
    throw new InvalidArgumentError(
      `option "${name}" must be a number in [${min}, ${max}], got ${String(value)}`,
    );
  }
  return value;
}

/** Checks a boolean option. */
export function boolOption(name: string, value: boolean | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw new InvalidArgumentError(`option "${name}" must be a boolean, got ${String(value)}`);
  }
  return value;
}

/** Resolved transport settings shared by client and server connections. */
export interface ResolvedCommon {
  readonly clock: Clock;
  readonly maxFrame: number;
  readonly handshakeTimeout: number;
  readonly writeTimeout: number;
  readonly ackEvery: number;
  readonly ackDelay: number;
  readonly highWaterMark: number;
  readonly maxBufferedBytes: number;
  readonly keepAliveDelay: number;
  readonly socketLowWater: number;
  readonly detector: DetectorFactory;
}

/** Validates the common options; `clock` and `detector` defaults are passed in. */
export function resolveCommon(
  o: CommonOptions,
  clock: Clock,
  detector: DetectorFactory,
): ResolvedCommon {
  const d = CONNECTION_DEFAULTS;
  const maxFrame = intOption('maxFrame', o.maxFrame, d.maxFrame, 64, 0xffff_ffff);
  const highWaterMark = intOption('highWaterMark', o.highWaterMark, d.highWaterMark, 1);
  const maxBufferedBytes = intOption('maxBufferedBytes', o.maxBufferedBytes, d.maxBufferedBytes, 1);
  if (maxBufferedBytes < highWaterMark) {
    throw new InvalidArgumentError('option "maxBufferedBytes" must be >= "highWaterMark"');
  }
  const keepAliveDelay = intOption('keepAliveDelay', o.keepAliveDelay, d.keepAliveDelay, 0);
  if (keepAliveDelay > 0 && keepAliveDelay < 1000) {
    // Node silently keeps the kernel default (2 h) for delays under one second.
    throw new InvalidArgumentError('option "keepAliveDelay" must be 0 (off) or at least 1000 ms');
  }
  return Object.freeze({
    clock: o.clock ?? clock,
    maxFrame,
    handshakeTimeout: intOption('handshakeTimeout', o.handshakeTimeout, d.handshakeTimeout, 1),
    writeTimeout: intOption('writeTimeout', o.writeTimeout, HEARTBEAT_DEFAULTS.writeTimeout, 1),
    ackEvery: intOption('ackEvery', o.ackEvery, d.ackEvery, 1),
    ackDelay: intOption('ackDelay', o.ackDelay, d.ackDelay, 0),
    highWaterMark,
    maxBufferedBytes,
    keepAliveDelay,
    socketLowWater: d.socketLowWater,
    detector: o.detector ?? detector,
  });
}
