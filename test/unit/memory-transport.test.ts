/**
 * The in-memory transport pair on its own: delivery order and timing (a later microtask,
 * never inside write), cork batching, backpressure against a paused reader, FIN, destroy,
 * reset and a pulled cable. No sockets, no clock: every step is a microtask.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { MemoryPair, type MemoryTransport } from '../../src/transport/memory.js';

/** Everything an end emits, in order: data as its text, the rest by name. */
function record(end: MemoryTransport): string[] {
  const seen: string[] = [];
  end.on('data', (chunk: Buffer) => seen.push(`data:${chunk.toString()}`));
  end.on('end', () => seen.push('end'));
  end.on('error', (err: Error) => seen.push(`error:${(err as { code?: string }).code}`));
  end.on('close', () => seen.push('close'));
  end.on('drain', () => seen.push('drain'));
  return seen;
}

/** Lets every pending microtask (and the ones they queue) run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('MemoryPair', () => {
  it('delivers each write on a later microtask, in order, never inside write()', async () => {
    const { a, b } = new MemoryPair();
    const seen = record(b);
    assert.equal(a.write(Buffer.from('one')), true);
    a.write(Buffer.from('two'));
    assert.deepEqual(seen, [], 'delivered inside write()');
    // Taken into the peer's receive buffer at once, as a kernel would.
    assert.equal(a.writableLength, 0);
    assert.equal(b.unread, 6);
    await Promise.resolve();
    assert.deepEqual(seen, ['data:one', 'data:two']);
    assert.equal(b.unread, 0);
    assert.equal(a.remotePort, b.localPort);
    assert.equal(b.remotePort, a.localPort);
    assert.equal(a.remoteAddress, 'memory');
  });

  it('a write from a data listener reaches the other end on a later microtask', async () => {
    const { a, b } = new MemoryPair();
    const seenA = record(a);
    let inside = false;
    b.on('data', (chunk: Buffer) => {
      inside = true;
      b.write(Buffer.from(`echo ${chunk.toString()}`));
      assert.deepEqual(seenA, [], 'the echo arrived inside the data listener');
      inside = false;
    });
    a.write(Buffer.from('ping'));
    await settle();
    assert.equal(inside, false);
    assert.deepEqual(seenA, ['data:echo ping']);
  });

  it('what is written between cork() and uncork() arrives as one chunk', async () => {
    const { a, b } = new MemoryPair();
    const seen = record(b);
    a.cork();
    a.write(Buffer.from('x'));
    a.write(Buffer.from('y'));
    a.write(Buffer.from('z'));
    await settle();
    assert.deepEqual(seen, [], 'corked writes left before uncork()');
    a.uncork();
    await settle();
    assert.deepEqual(seen, ['data:xyz']);
  });

  it('a paused reader fills its window, then the writer queues to highWater and drains after resume', async () => {
    const { a, b } = new MemoryPair({ highWater: 100, window: 50 });
    const seenA = record(a);
    const received: Buffer[] = [];
    b.on('data', (chunk: Buffer) => received.push(chunk));
    b.pause();
    const bytes = Buffer.alloc(180);
    for (let i = 0; i < bytes.length; i++) bytes[i] = i;
    const results: boolean[] = [];
    for (let i = 0; i < bytes.length; i += 30) results.push(a.write(bytes.subarray(i, i + 30)));
    // 50 bytes fit the window; the queue reaches highWater at the fifth write.
    assert.deepEqual(results, [true, true, true, true, false, false]);
    await settle();
    assert.equal(b.unread, 50, 'the window takes 50 bytes');
    assert.equal(a.writableLength, 130, 'the rest waits in the writer');
    assert.deepEqual(received, []);
    assert.deepEqual(seenA, [], 'drained while the reader was paused');
    b.resume();
    await settle();
    assert.deepEqual(Buffer.concat(received), bytes, 'bytes lost, duplicated or reordered');
    assert.equal(a.writableLength, 0);
    assert.deepEqual(seenA, ['drain']);
  });

  it('end(): the peer reads everything, then end; it answers with its own FIN and both close', async () => {
    const { a, b } = new MemoryPair();
    const seenA = record(a);
    const seenB = record(b);
    a.write(Buffer.from('last'));
    a.end();
    assert.equal(a.writable, false);
    assert.equal(a.destroyed, false);
    await settle();
    assert.deepEqual(seenB, ['data:last', 'end', 'close']);
    assert.deepEqual(seenA, ['end', 'close']);
    assert.equal(a.destroyed, true);
    assert.equal(b.destroyed, true);
  });

  it('a paused reader gets end only once it resumes and has read everything', async () => {
    const { a, b } = new MemoryPair();
    const seenB = record(b);
    b.pause();
    a.write(Buffer.from('held'));
    a.end();
    await settle();
    assert.deepEqual(seenB, []);
    b.resume();
    await settle();
    assert.deepEqual(seenB, ['data:held', 'end', 'close']);
  });

  it('destroy(): this end closes at once, dropping its queue; the peer reads its window, then end and close', async () => {
    const { a, b } = new MemoryPair({ window: 1000 });
    const seenA = record(a);
    const events: string[] = [];
    let read = 0;
    b.on('data', (chunk: Buffer) => {
      read += chunk.length;
    });
    b.on('end', () => events.push('end'));
    b.on('close', () => events.push('close'));
    b.pause();
    a.write(Buffer.alloc(5000));
    assert.equal(a.writableLength, 4000);
    a.destroy();
    assert.equal(a.destroyed, true);
    assert.equal(a.writable, false);
    assert.equal(a.writableLength, 0);
    assert.equal(a.write(Buffer.from('late')), false);
    b.resume();
    await settle();
    assert.deepEqual(seenA, ['close']);
    assert.equal(read, 1000, 'the peer reads what its receive buffer had taken, no more');
    assert.deepEqual(events, ['end', 'close']);
  });

  it('resetAndDestroy(): the peer gets ECONNRESET and close, and loses what it had not read', async () => {
    const { a, b } = new MemoryPair();
    const seenA = record(a);
    const seenB = record(b);
    b.pause();
    a.write(Buffer.from('unread'));
    await settle();
    assert.equal(b.unread, 6);
    a.resetAndDestroy();
    await settle();
    assert.deepEqual(seenA, ['close']);
    assert.deepEqual(seenB, ['error:ECONNRESET', 'close']);
    assert.equal(b.destroyed, true);
  });

  it('a write after end() fails the stream on a later turn, as a socket does', async () => {
    const { a } = new MemoryPair();
    const seenA = record(a);
    a.end();
    assert.equal(a.write(Buffer.from('x')), false);
    assert.deepEqual(seenA, []);
    await settle();
    assert.deepEqual(seenA, ['error:ERR_STREAM_WRITE_AFTER_END', 'close']);
  });

  it('drop(): nothing more crosses, no end is told, and writes queue without draining', async () => {
    const pair = new MemoryPair({ highWater: 8 });
    const { a, b } = pair;
    const seenA = record(a);
    const seenB = record(b);
    b.pause();
    a.write(Buffer.from('before'));
    pair.drop();
    assert.equal(pair.dropped, true);
    a.write(Buffer.from('after'));
    assert.equal(a.write(Buffer.from('more')), false);
    b.write(Buffer.from('back'));
    a.end();
    b.resume();
    await settle();
    // 'before' was in b's receive buffer when the cable went: it is still read.
    assert.deepEqual(seenB, ['data:before'], 'a byte crossed a pulled cable');
    assert.deepEqual(seenA, []);
    assert.equal(a.writableLength, 'aftermore'.length);
    assert.equal(b.writableLength, 4);
    // A reset is lost too; only the end that resets closes.
    a.resetAndDestroy();
    await settle();
    assert.deepEqual(seenA, ['close']);
    assert.deepEqual(seenB, ['data:before']);
    assert.equal(b.destroyed, false);
    b.destroy();
    await settle();
    assert.deepEqual(seenB, ['data:before', 'close']);
  });

  it('bytes a pulled cable strands in the receive window are still read', async () => {
    const pair = new MemoryPair();
    const seenB = record(pair.b);
    pair.b.pause();
    pair.a.write(Buffer.from('in the window'));
    pair.drop();
    pair.b.resume();
    await settle();
    assert.deepEqual(seenB, ['data:in the window']);
  });

  it('refuses a highWater or window below 1, naming the option', () => {
    assert.throws(() => new MemoryPair({ highWater: 0 }), InvalidArgumentError);
    assert.throws(() => new MemoryPair({ window: 1.5 }), /option "window"/);
  });
});
