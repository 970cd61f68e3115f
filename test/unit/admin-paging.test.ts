/**
 * The admin endpoint's paging and cutting, without sockets: pickWorst's pages, at every
 * offset and size, are slices of one worst-first ordering; shownText cuts peer-chosen
 * strings without splitting a character.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Connection } from '../../src/connection.js';
import { HEALTH_STATES, type HealthState } from '../../src/health/index.js';
import { pickWorst } from '../../src/observe/live.js';
import { MAX_SHOWN_CHARS, shownText } from '../../src/observe/snapshot.js';

/** The model pickWorst must match: worst state first, then creation order of the ids. */
const SEVERITY: Record<HealthState, number> = {
  dead: 0,
  suspect: 1,
  disconnected: 2,
  connecting: 3,
  healthy: 4,
  closed: 5,
};

/** Compares two connections as the model orders them. */
function worstFirst(a: Connection, b: Connection): number {
  return (
    SEVERITY[a.state] - SEVERITY[b.state] ||
    a.id.length - b.id.length ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

/** Only what pickWorst and worstFirst read of a connection. */
function fakeConnections(states: HealthState[]): Map<string, Connection> {
  return new Map(
    states.map((state, i) => [`c${i + 1}`, { id: `c${i + 1}`, state } as unknown as Connection]),
  );
}

test('pickWorst pages are consecutive slices of the worst-first ordering', () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom(...HEALTH_STATES), { maxLength: 60 }),
      fc.integer({ min: 0, max: 70 }),
      fc.integer({ min: 0, max: 20 }),
      fc.option(fc.subarray([...HEALTH_STATES], { minLength: 1 }), { nil: undefined }),
      (states, offset, limit, only) => {
        const conns = fakeConnections(states);
        const filter = only ? new Set(only) : undefined;
        const ordered = [...conns.values()]
          .filter((c) => !filter || filter.has(c.state))
          .sort(worstFirst)
          .map((c) => c.id);
        const { picked, total } = pickWorst(conns, limit, filter, offset);
        assert.equal(total, ordered.length);
        assert.deepEqual(
          picked.map((c) => c.id),
          ordered.slice(offset, offset + limit),
        );
      },
    ),
  );
});

test('pickWorst: dead and suspect first, creation order within a state', () => {
  const conns = fakeConnections(['healthy', 'dead', 'healthy', 'suspect', 'dead']);
  const ids = (offset: number, limit: number) =>
    pickWorst(conns, limit, undefined, offset).picked.map((c) => c.id);
  assert.deepEqual(ids(0, 10), ['c2', 'c5', 'c4', 'c1', 'c3']);
  assert.deepEqual(ids(1, 2), ['c5', 'c4']);
  assert.deepEqual(ids(4, 2), ['c3']);
  assert.deepEqual(ids(5, 2), []);
});

test('shownText keeps short strings, cuts long ones at MAX_SHOWN_CHARS without splitting a pair', () => {
  assert.equal(shownText('sensor-7'), 'sensor-7');
  const exact = 'x'.repeat(MAX_SHOWN_CHARS);
  assert.equal(shownText(exact), exact);
  assert.equal(shownText(`${exact}y`), `${exact}…`);
  // The cut falls between the two halves of an emoji: the whole emoji goes.
  assert.equal(shownText('a😀😀', 2), 'a…');
  assert.equal(shownText('a😀😀', 3), 'a😀…');
  fc.assert(
    fc.property(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.integer({ min: 1, max: 20 }),
      (s, max) => {
        const shown = shownText(s, max);
        if (s.length <= max) return shown === s;
        const kept = shown.slice(0, -1);
        return (
          shown.endsWith('…') &&
          kept.length <= max &&
          s.startsWith(kept) &&
          // Never half a pair: the kept part ends where a character ends.
          !/[\ud800-\udbff]$/.test(kept.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))
        );
      },
    ),
  );
});
