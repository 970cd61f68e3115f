/**
 * What every server check shares: the target, the context a check opens connections
 * through, the row type of the check tables, and small helpers over a {@link WirePeer}.
 */

import type { ConnectionOptions } from 'node:tls';
import { CONNECTION_DEFAULTS } from '../options.js';
import { encodeData } from '../protocol/codec.js';
import { type DataFrame, DEFAULT_MAX_FRAME, type Frame, FrameType } from '../protocol/frames.js';
import type { CheckInfo } from './report.js';
import { expect, type WirePeer } from './wire.js';

/** What the server checks need to know about the server under test. */
export interface ServerTarget {
  host: string;
  port: number;
  /** The server's maxFrame (not negotiated in version 1): the large DATA is maxFrame - 9. */
  maxFrame: number;
  /** The server's handshake timeout (ms), for `handshake.timeout`. */
  handshakeTimeout: number;
  /** The interval to ask for in the heartbeat checks: the server's shortest (ms). */
  interval: number;
  /** How late a PONG, an ACK or a detection may come beyond what the protocol says (ms). */
  slack: number;
  /** Connect over TLS with these options (CA, client certificate, server name). */
  tls?: ConnectionOptions;
}

/** Defaults of the server checks' target. */
export const SERVER_CHECK_DEFAULTS = {
  /** @default 1048576 (PROTOCOL.md section 10) */
  maxFrame: DEFAULT_MAX_FRAME,
  /** @default 10000 (PROTOCOL.md section 10) */
  handshakeTimeout: CONNECTION_DEFAULTS.handshakeTimeout,
  /** @default 1000 (heartline's minInterval) */
  interval: 1000,
  /** @default 1000 */
  slack: 1000,
} as const;

/** What a check does with the connections it opens. */
export interface CheckContext {
  target: ServerTarget;
  /** Opens a connection, closed when the check ends. */
  open(): Promise<WirePeer>;
  /** Opens a connection and completes a handshake (a new session, HELLO fields overridable). */
  session(fields?: Parameters<WirePeer['handshake']>[0]): Promise<{
    peer: WirePeer;
    welcome: Awaited<ReturnType<WirePeer['handshake']>>;
  }>;
}

/** One check of the table. */
export interface ServerCheck extends CheckInfo {
  /** Protocol versions the check applies to. */
  versions: readonly number[];
  /** Skipped by --quick (it waits on a long server timer). */
  slow?: boolean;
  /** The check's deadline (ms). @default 15000 */
  deadline?: (t: ServerTarget) => number;
  /** Runs the check; throws a CheckFailure, or returns facts worth showing. */
  run(ctx: CheckContext): Promise<string | undefined>;
}

/** UTF-8 bytes of a string. */
export const text = (s: string): Buffer => Buffer.from(s, 'utf8');
/** Bytes of a hex string; spaces separate fields for the reader, as in PROTOCOL.md 11. */
export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** Whether a frame is DATA. */
export const isData = (f: Frame): f is DataFrame => f.type === FrameType.DATA;
/** The DATA frames a peer has received. */
export const dataOf = (p: WirePeer): DataFrame[] => p.ofType(FrameType.DATA);
/** The seqs of the ACKs a peer has received, in order. */
export const acksOf = (p: WirePeer): number[] => p.ofType(FrameType.ACK).map((a) => a.seq);
/** Whether two byte strings are equal. */
export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  Buffer.from(a).equals(Buffer.from(b));
/** An all-zero session id or token. */
export const ZERO_ID = Buffer.alloc(16);

/** Polls `predicate` every 10 ms until it holds or `timeout` ms have passed. */
export async function waitUntil(predicate: () => boolean, timeout: number): Promise<boolean> {
  const end = performance.now() + timeout;
  while (!predicate()) {
    if (performance.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** Waits for the echoes of `n` DATA frames (any payload) and returns them. */
export async function echoes(p: WirePeer, n: number, timeout: number): Promise<DataFrame[]> {
  await p.until(() => dataOf(p).length >= n, timeout);
  const got = dataOf(p);
  expect(
    got.length >= n,
    `expected ${n} echoed DATA within ${timeout} ms, got ${got.length} (${p.endState()})`,
  );
  return got;
}

/**
 * Opens a bystander session before a check breaks another connection, and afterwards
 * proves it still works: its DATA is echoed (section 4: an error ends only the connection
 * that caused it).
 */
export async function withBystander(ctx: CheckContext, body: () => Promise<void>): Promise<void> {
  const { peer } = await ctx.session();
  peer.autoPong = true;
  await body();
  peer.send(encodeData(1, text('bystander')));
  await peer.until(() => dataOf(peer).length > 0, 3000);
  const echo = dataOf(peer)[0];
  expect(
    echo !== undefined && Buffer.from(echo.payload).toString() === 'bystander',
    `the bystander connection stopped working: ${peer.endState()}`,
  );
}
