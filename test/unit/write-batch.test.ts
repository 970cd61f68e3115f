/**
 * WriteBatch: the bytes a link gathers in one turn come out exactly as written, in order,
 * whatever the sizes and however several batches interleave in the shared arena; bytes
 * already taken are never overwritten.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ARENA_BYTES,
  acquireBatch,
  OWN_BUFFER_ABOVE,
  releaseBatch,
  WriteBatch,
} from '../../src/net/write-batch.js';

/** Writes `bytes` into the batch the way a link does: reserve, then fill. */
function put(batch: WriteBatch, bytes: Uint8Array): void {
  const at = batch.reserve(bytes.length);
  batch.buffer.set(bytes, at);
}

function joined(taken: Buffer | Buffer[] | null): Buffer {
  if (taken === null) return Buffer.alloc(0);
  return Array.isArray(taken) ? Buffer.concat(taken) : Buffer.from(taken);
}

const fill = (n: number, byte: number): Buffer => Buffer.alloc(n, byte);

describe('WriteBatch', () => {
  it('starts empty and take() of an empty batch is null', () => {
    const b = new WriteBatch();
    assert.equal(b.bytes, 0);
    assert.equal(b.take(), null);
  });

  it('small frames written one after another leave as one contiguous Buffer', () => {
    const b = new WriteBatch();
    put(b, fill(13, 1));
    put(b, fill(100, 2));
    put(b, fill(13, 3));
    assert.equal(b.bytes, 126);
    const taken = b.take();
    assert.ok(Buffer.isBuffer(taken), 'one segment, not a list');
    assert.deepEqual(taken, Buffer.concat([fill(13, 1), fill(100, 2), fill(13, 3)]));
    assert.equal(b.bytes, 0);
    assert.equal(b.take(), null);
  });

  it('a batch that outgrows the arena spans several segments, in order', () => {
    const b = new WriteBatch();
    const frames = Array.from({ length: 10 }, (_, i) => fill(4109, i + 1));
    for (const f of frames) put(b, f);
    const taken = b.take();
    assert.ok(Array.isArray(taken) && taken.length > 1, 'several segments');
    assert.deepEqual(joined(taken), Buffer.concat(frames));
  });

  it('a frame above OWN_BUFFER_ABOVE that does not fit the arena gets a buffer of its own', () => {
    const b = new WriteBatch();
    put(b, fill(5, 7));
    const big = fill(ARENA_BYTES - 2, 8);
    assert.ok(big.length > OWN_BUFFER_ABOVE);
    put(b, big);
    put(b, fill(5, 9));
    const taken = b.take();
    assert.ok(Array.isArray(taken));
    assert.deepEqual(
      taken.map((s) => s.length),
      [5, ARENA_BYTES - 2, 5],
    );
    assert.equal(taken[1]!.buffer.byteLength, ARENA_BYTES - 2, 'its own buffer, no arena');
    assert.deepEqual(joined(taken), Buffer.concat([fill(5, 7), big, fill(5, 9)]));
  });

  it('append() adds the chunk itself, not a copy', () => {
    const b = new WriteBatch();
    put(b, fill(3, 1));
    const chunk = fill(ARENA_BYTES * 2, 2);
    b.append(chunk);
    b.append(Buffer.alloc(0));
    put(b, fill(3, 3));
    assert.equal(b.bytes, 6 + chunk.length);
    const taken = b.take();
    assert.ok(Array.isArray(taken));
    assert.equal(taken[1], chunk, 'the same Buffer');
    assert.deepEqual(joined(taken), Buffer.concat([fill(3, 1), chunk, fill(3, 3)]));
  });

  it('drop() undoes the reservation just made, and the arena space is reused', () => {
    const b = new WriteBatch();
    put(b, fill(10, 1));
    const at = b.reserve(20);
    b.drop(20);
    assert.equal(b.bytes, 10);
    assert.equal(b.reserve(20), at, 'the dropped bytes are handed out again');
    b.buffer.fill(2, at, at + 20);
    assert.deepEqual(joined(b.take()), Buffer.concat([fill(10, 1), fill(20, 2)]));
  });

  it('drop() of the first reservation of a segment leaves nothing behind', () => {
    const b = new WriteBatch();
    b.reserve(OWN_BUFFER_ABOVE + 10);
    b.drop(OWN_BUFFER_ABOVE + 10);
    assert.equal(b.bytes, 0);
    assert.equal(b.take(), null);
  });

  it('a slot at the front is filled when the batch leaves, ahead of what came after it', () => {
    const b = new WriteBatch();
    b.reserveSlot(13);
    put(b, fill(100, 2));
    b.slotBuffer.fill(1, b.slotOffset, b.slotOffset + 13);
    assert.equal(b.bytes, 113);
    assert.deepEqual(joined(b.take()), Buffer.concat([fill(13, 1), fill(100, 2)]));
  });

  it('a skipped slot is left out, also when it is a segment of its own', () => {
    const b = new WriteBatch();
    b.reserveSlot(13);
    put(b, fill(100, 2));
    b.skipSlot();
    assert.equal(b.bytes, 100);
    const one = b.take();
    assert.ok(Buffer.isBuffer(one));
    assert.deepEqual(one, fill(100, 2));

    b.reserveSlot(13);
    const big = fill(ARENA_BYTES * 2, 3);
    b.append(big);
    b.skipSlot();
    assert.equal(b.take(), big, 'only the appended chunk is left');

    b.reserveSlot(13);
    b.skipSlot();
    assert.equal(b.bytes, 0);
    assert.equal(b.take(), null, 'a batch of nothing but a skipped slot');
  });

  it('reserveSlot() needs an empty batch', () => {
    const b = new WriteBatch();
    put(b, fill(1, 1));
    assert.throws(() => b.reserveSlot(13), /empty batch/);
  });

  it('clear() drops everything held', () => {
    const b = new WriteBatch();
    put(b, fill(10, 1));
    b.append(fill(ARENA_BYTES, 2));
    b.clear();
    assert.equal(b.bytes, 0);
    assert.equal(b.take(), null);
    put(b, fill(4, 3));
    assert.deepEqual(joined(b.take()), fill(4, 3));
  });

  it('interleaved batches keep their own bytes; taken bytes stay unchanged', () => {
    const a = new WriteBatch();
    const b = new WriteBatch();
    put(a, fill(10, 1));
    put(b, fill(10, 2));
    put(a, fill(10, 3));
    const takenB = b.take();
    put(b, fill(10, 4));
    put(a, fill(10, 5));
    assert.deepEqual(joined(a.take()), Buffer.concat([fill(10, 1), fill(10, 3), fill(10, 5)]));
    assert.deepEqual(joined(takenB), fill(10, 2), 'later writes did not touch taken bytes');
    assert.deepEqual(joined(b.take()), fill(10, 4));
  });

  it('acquireBatch() hands out empty batches and reuses released ones', () => {
    const a = acquireBatch();
    put(a, fill(8, 1));
    releaseBatch(a);
    const again = acquireBatch();
    assert.equal(again, a, 'the released batch is reused');
    assert.equal(again.bytes, 0, 'and it comes back empty');
    assert.equal(again.take(), null);
    const other = acquireBatch();
    assert.notEqual(other, again);
    releaseBatch(again);
    releaseBatch(other);
  });

  describe('properties (fast-check)', () => {
    // One operation on one of three batches sharing the arena.
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('put' as const),
        batch: fc.nat(2),
        size: fc.oneof(
          fc.integer({ min: 0, max: 64 }),
          fc.integer({ min: 1000, max: 5000 }),
          fc.integer({ min: OWN_BUFFER_ABOVE - 2, max: ARENA_BYTES + 2 }),
        ),
      }),
      fc.record({
        kind: fc.constant('append' as const),
        batch: fc.nat(2),
        size: fc.integer({ min: 0, max: ARENA_BYTES * 2 }),
      }),
      fc.record({
        kind: fc.constant('drop' as const),
        batch: fc.nat(2),
        size: fc.integer({ min: 1, max: 200 }),
      }),
      fc.record({
        kind: fc.constant('take' as const),
        batch: fc.nat(2),
        size: fc.constant(0),
        fillSlot: fc.boolean(),
      }),
    );

    it('every batch yields exactly the bytes written to it, in order; taken bytes never change', () => {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
          const batches = [new WriteBatch(), new WriteBatch(), new WriteBatch()];
          const expected: number[][] = [[], [], []];
          /** Whether each batch began with a slot (as a link's batches do). */
          const slotted = [false, false, false];
          const taken: Array<{ got: Buffer | Buffer[]; want: Buffer }> = [];
          let stamp = 0;
          for (const o of ops) {
            const b = batches[o.batch]!;
            const want = expected[o.batch]!;
            stamp = (stamp % 250) + 1;
            if (o.kind !== 'take' && b.bytes === 0 && o.size % 2 === 0) {
              b.reserveSlot(13);
              slotted[o.batch] = true;
            }
            if (o.kind === 'put') {
              const bytes = fill(o.size, stamp);
              put(b, bytes);
              want.push(...bytes);
            } else if (o.kind === 'append') {
              const bytes = fill(o.size, stamp);
              b.append(bytes);
              want.push(...bytes);
            } else if (o.kind === 'drop') {
              // A failed encode: reserve, write part of it, then undo.
              const at = b.reserve(o.size);
              b.buffer.fill(0xff, at, at + Math.floor(o.size / 2));
              b.drop(o.size);
            } else {
              let front: Buffer = Buffer.alloc(0);
              if (slotted[o.batch]) {
                if ('fillSlot' in o && o.fillSlot) {
                  front = fill(13, 0xee);
                  b.slotBuffer.set(front, b.slotOffset);
                } else {
                  b.skipSlot();
                }
                slotted[o.batch] = false;
              }
              const whole = Buffer.concat([front, Buffer.from(want)]);
              const got = b.take();
              assert.equal(got === null, whole.length === 0);
              if (got !== null) taken.push({ got, want: whole });
              want.length = 0;
            }
            const slot = slotted[o.batch] ? 13 : 0;
            assert.equal(b.bytes, want.length + slot, 'bytes counts what is held');
          }
          for (const [i, b] of batches.entries()) {
            if (slotted[i]) b.skipSlot();
            const got = b.take();
            taken.push({ got: got ?? Buffer.alloc(0), want: Buffer.from(expected[i]!) });
          }
          // Checked at the end: later writes to any batch left earlier takes untouched.
          for (const t of taken) assert.deepEqual(joined(t.got), t.want);
        }),
        { numRuns: 300 },
      );
    });

    it('a single segment is returned as a Buffer, several as a list of non-empty ones', () => {
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 1, max: 3000 }), { maxLength: 30 }), (sizes) => {
          const b = new WriteBatch();
          for (const [i, n] of sizes.entries()) put(b, fill(n, i + 1));
          const got = b.take();
          if (sizes.length === 0) return got === null;
          if (Array.isArray(got)) {
            assert.ok(got.length > 1);
            for (const s of got) assert.ok(s.length > 0);
          }
          assert.equal(
            joined(got).length,
            sizes.reduce((x, y) => x + y, 0),
          );
          return true;
        }),
      );
    });
  });
});
