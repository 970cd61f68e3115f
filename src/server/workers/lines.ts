/**
 * Worker output, forwarded whole lines at a time. Workers that shared the primary's stdout
 * wrote to one pipe from several processes, and a write() above PIPE_BUF (4 KiB on Linux)
 * to a pipe is not atomic: two workers' long JSON lines came out spliced. Each worker's
 * stdout and stderr are pipes to the primary instead, which writes only complete lines to
 * its own streams: one writer per stream, so lines never interleave.
 */

import type { Readable, Writable } from 'node:stream';

/** Callbacks for the next 'drain' of a stream: one listener however many workers wait. */
const drainWaiters = new WeakMap<Writable, Array<() => void>>();

function onDrain(to: Writable, callback: () => void): void {
  let waiting = drainWaiters.get(to);
  if (!waiting) {
    const list: Array<() => void> = [];
    waiting = list;
    drainWaiters.set(to, list);
    to.once('drain', () => {
      drainWaiters.delete(to);
      for (const resume of list) resume();
    });
  }
  waiting.push(callback);
}

/**
 * Copies `from` to `to`, holding back a trailing partial line until its newline arrives
 * (or `from` ends). A line longer than `maxLine` bytes is passed on in pieces rather than
 * held without bound. Waits for `to` to drain when it is full, so a slow terminal slows
 * the worker's writes instead of filling the primary's memory.
 */
export function forwardLines(from: Readable, to: Writable, maxLine: number): void {
  let partial: Buffer[] = [];
  let partialBytes = 0;
  let waiting = false;
  const write = (chunk: Buffer) => {
    if (chunk.length === 0) return;
    // Paused once until the next 'drain' (not once per chunk that arrived meanwhile).
    if (!to.write(chunk) && !waiting) {
      waiting = true;
      from.pause();
      onDrain(to, () => {
        waiting = false;
        from.resume();
      });
    }
  };
  const flush = () => {
    if (partialBytes > 0) write(Buffer.concat(partial));
    partial = [];
    partialBytes = 0;
  };
  from.on('data', (chunk: Buffer) => {
    const nl = chunk.lastIndexOf(0x0a);
    if (nl < 0) {
      partial.push(chunk);
      partialBytes += chunk.length;
      if (partialBytes > maxLine) flush();
      return;
    }
    const lines = chunk.subarray(0, nl + 1);
    // One write per chunk: the held-back start of a line and every line completed here.
    write(partialBytes === 0 ? lines : Buffer.concat([...partial, lines]));
    partial = [];
    partialBytes = 0;
    if (nl + 1 < chunk.length) {
      partial.push(chunk.subarray(nl + 1));
      partialBytes = chunk.length - nl - 1;
    }
  });
  from.on('end', flush);
  from.on('error', () => {
    // The worker is gone; its exit is reported by the primary.
  });
}
