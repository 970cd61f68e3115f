/**
 * The did-you-mean of the command line (src/cli/suggest.ts): edit distance with
 * transpositions, and a suggestion only within two edits.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closest, didYouMean, editDistance } from '../../src/cli/suggest.js';

test('editDistance counts inserts, deletes, substitutions and swaps of neighbours', () => {
  assert.equal(editDistance('port', 'port'), 0);
  assert.equal(editDistance('prot', 'port'), 1, 'a swap is one edit');
  assert.equal(editDistance('ecko', 'echo'), 1);
  assert.equal(editDistance('sever', 'serve'), 2);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('kitten', 'sitting'), 3);
});

test('closest suggests within two edits only, the nearest first', () => {
  const commands = ['serve', 'connect', 'demo', 'chaos', 'status', 'bench'];
  assert.equal(closest('sever', commands), 'serve');
  assert.equal(closest('conect', commands), 'connect');
  assert.equal(closest('STATUS', commands), 'status', 'case does not count');
  assert.equal(closest('bogus', commands), undefined);
  assert.equal(closest('x', ['tls', 'ca']), undefined, 'no suggestion for a word all edits');
  assert.equal(closest('max-attempt', ['max-attempts', 'max-frame']), 'max-attempts');
  assert.equal(
    didYouMean('prot', ['port', 'host'], (n) => `--${n}`),
    ' (did you mean --port?)',
  );
  assert.equal(didYouMean('bogus', ['port', 'host']), '');
});
