/**
 * Source addresses for clients. A TCP connection is named by its source and destination
 * address and port, so one source address reaches one server port at most once per
 * ephemeral port (about 28,000 here), and TIME_WAIT keeps ports busy after a run. Every
 * address in 127.0.0.0/8 reaches the loopback interface on Linux, so each client process
 * gets a block of its own addresses, 127.A.B.1 to 127.A.B.n, and each run starts at a
 * random block so that consecutive runs do not meet each other's TIME_WAIT entries.
 */

import { randomInt } from 'node:crypto';

/** Blocks 127.A.B.x with A in 1..254 and B in 0..255 (127.0.x.x, with 127.0.0.1, is never used). */
const BLOCKS = 254 * 256;

let cursor = randomInt(0, BLOCKS);

/** Addresses per client process: each one then carries at most a few thousand sockets. */
export const ADDRESSES_PER_PROCESS = 8;

/** A fresh block of `n` (at most 254) addresses. */
export function takeAddresses(n = ADDRESSES_PER_PROCESS): string[] {
  if (n < 1 || n > 254) throw new RangeError(`between 1 and 254 addresses per block, not ${n}`);
  const block = cursor;
  cursor = (cursor + 1) % BLOCKS;
  const a = 1 + Math.floor(block / 256);
  const b = block % 256;
  return Array.from({ length: n }, (_, i) => `127.${a}.${b}.${i + 1}`);
}
