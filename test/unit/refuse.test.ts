/**
 * A refusal written before the HELLO was read fits the smallest maxFrame a peer may
 * announce (PROTOCOL.md 2): its reason is cut to 57 bytes at a character boundary.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitReason } from '../../src/net/refuse.js';
import { encodeClose } from '../../src/protocol/codec.js';
import { MIN_MAX_FRAME } from '../../src/protocol/frames.js';

test('short reasons stay whole; long ones are cut to fit 64 bytes, never inside a character', () => {
  assert.equal(fitReason('server full'), 'server full');
  const long = `too many connections from this address: ${'x'.repeat(100)}`;
  const cut = fitReason(long);
  assert.ok(long.startsWith(cut));
  assert.equal(Buffer.byteLength(cut), 57);
  assert.equal(encodeClose(1007, cut, 5000).length - 4, MIN_MAX_FRAME);
  // Three-byte characters: the cut falls on a boundary, the text stays valid UTF-8.
  const wide = fitReason('€'.repeat(40));
  assert.equal(wide, '€'.repeat(19));
  assert.equal(Buffer.from(wide).toString('utf8'), wide);
});
