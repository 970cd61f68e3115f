/**
 * forwardLines, the primary's copy of a worker's stdout and stderr: every write it makes
 * holds whole lines only (so that two workers' lines never splice), a line split over many
 * chunks is held back until its newline, an overlong line is passed on rather than held
 * without bound, the tail is flushed at the end, and a full destination pauses the source.
 */

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { forwardLines } from '../../src/server/workers/lines.js';

/** A destination that records each write; `slow` holds every callback until release(). */
function sink(highWaterMark = 1 << 20) {
  const writes: string[] = [];
  const held: Array<() => void> = [];
  let slow = false;
  const to = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, done) {
      writes.push(chunk.toString());
      if (slow) held.push(done);
      else done();
    },
  });
  return {
    to,
    writes,
    hold: () => {
      slow = true;
    },
    release: () => {
      slow = false;
      for (const done of held.splice(0)) done();
    },
  };
}

describe('forwardLines', () => {
  it('writes whole lines only, however the source is chunked, and flushes the tail at the end', async () => {
    const from = new PassThrough();
    const { to, writes } = sink();
    forwardLines(from, to, 1024);
    for (const piece of ['{"a":', '1}\n{"b"', ':2}\n{"c":3}\n{"d', '":4}', '\n', 'tail']) {
      from.write(piece);
      await new Promise((r) => setImmediate(r));
    }
    from.end();
    await once(from, 'end');
    assert.deepEqual(writes, ['{"a":1}\n', '{"b":2}\n{"c":3}\n', '{"d":4}\n', 'tail']);
    // Every write but the flushed tail ends a line.
    for (const w of writes.slice(0, -1)) assert.ok(w.endsWith('\n'));
  });

  it('passes on a line longer than maxLine instead of holding it without bound', async () => {
    const from = new PassThrough();
    const { to, writes } = sink();
    forwardLines(from, to, 10);
    from.write('0123456789');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(writes, [], 'held: not over the bound yet');
    from.write('ABC');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(writes, ['0123456789ABC']);
  });

  it('pauses the source while the destination is full, and resumes it on drain', async () => {
    const from = new PassThrough();
    const s = sink(8);
    forwardLines(from, s.to, 1024);
    s.hold();
    from.write('a line longer than eight bytes\n');
    await new Promise((r) => setImmediate(r));
    assert.equal(from.isPaused(), true);
    from.write('second\n');
    await new Promise((r) => setImmediate(r));
    assert.equal(s.writes.length, 1, 'nothing more while full');
    const drained = once(s.to, 'drain');
    s.release();
    await drained;
    await new Promise((r) => setImmediate(r));
    assert.equal(from.isPaused(), false);
    assert.deepEqual(s.writes, ['a line longer than eight bytes\n', 'second\n']);
  });
});
