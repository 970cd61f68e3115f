import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HeartlineError, InvalidArgumentError } from '../../src/errors.js';
import { CONNECTION_DEFAULTS } from '../../src/options.js';
import {
  ENTRY_OVERHEAD,
  MemoryBudget,
  OutboundBuffer,
  type OutboundOptions,
} from '../../src/session/index.js';
import { mulberry32 } from '../support/prng.js';

const bytes = (n: number, fill = n & 0xff): Uint8Array => new Uint8Array(n).fill(fill);

function state(b: OutboundBuffer) {
  return { bytes: b.bytes, size: b.size, lastSeq: b.lastSeq, acked: b.acked, full: b.full };
}

function isBufferFull(err: unknown): boolean {
  return err instanceof HeartlineError && err.code === 'HL_ERR_BUFFER_FULL';
}

describe('OutboundBuffer defaults and validation', () => {
  it('exposes frozen named defaults: 1 MiB high-water mark, 16 MiB hard cap, 160 B a message', () => {
    // Declared once, as the connection options the buffer is built from.
    assert.deepEqual(
      {
        highWaterMark: CONNECTION_DEFAULTS.highWaterMark,
        maxBytes: CONNECTION_DEFAULTS.maxBufferedBytes,
        entryOverhead: ENTRY_OVERHEAD,
      },
      {
        highWaterMark: 1 << 20,
        maxBytes: 16 << 20,
        entryOverhead: 160,
      },
    );
    assert.ok(Object.isFrozen(CONNECTION_DEFAULTS));
  });

  it('starts empty', () => {
    const b = new OutboundBuffer();
    assert.deepEqual(state(b), { bytes: 0, size: 0, lastSeq: 0, acked: 0, full: false });
  });

  it('uses the default high-water mark and cap, each message charged its overhead', () => {
    const b = new OutboundBuffer();
    b.push(bytes((1 << 20) - ENTRY_OVERHEAD - 1));
    assert.equal(b.full, false);
    b.push(bytes(1));
    assert.equal(b.full, true);
    assert.equal(b.memory, b.bytes + 2 * ENTRY_OVERHEAD);
    const room = (16 << 20) - b.memory - ENTRY_OVERHEAD;
    assert.throws(() => b.push(bytes(room + 1)), isBufferFull);
    b.push(bytes(room));
    assert.equal(b.memory, 16 << 20);
    assert.throws(() => b.push(bytes(0)), isBufferFull, 'even an empty message costs memory');
  });

  const bad: [string, OutboundOptions][] = [
    ['highWaterMark', { highWaterMark: -1 }],
    ['highWaterMark', { highWaterMark: 1.5 }],
    ['highWaterMark', { highWaterMark: Number.NaN }],
    ['highWaterMark', { highWaterMark: Number.POSITIVE_INFINITY }],
    ['maxBytes', { maxBytes: 0 }],
    ['maxBytes', { maxBytes: -5 }],
    ['maxBytes', { maxBytes: Number.POSITIVE_INFINITY }],
    ['maxBytes', { maxBytes: 2.5 }],
    ['maxBytes', { highWaterMark: 100, maxBytes: 99 }],
    ['maxBytes', { maxBytes: 1024 }], // below the default high-water mark
    ['entryOverhead', { entryOverhead: -1 }],
    ['entryOverhead', { entryOverhead: 0.5 }],
  ];
  for (const [name, options] of bad) {
    it(`rejects ${JSON.stringify(options)} naming outbound.${name}`, () => {
      assert.throws(
        () => new OutboundBuffer(options),
        (err: unknown) =>
          err instanceof InvalidArgumentError && err.message.includes(`outbound.${name}`),
      );
    });
  }

  it('honours an explicit highWaterMark of 0 (always full) instead of the default', () => {
    const b = new OutboundBuffer({ highWaterMark: 0 });
    assert.equal(b.full, true);
  });

  it('does not mutate the caller options', () => {
    const options = Object.freeze({ highWaterMark: 10, entryOverhead: 0 });
    const b = new OutboundBuffer(options);
    assert.deepEqual(options, { highWaterMark: 10, entryOverhead: 0 });
    b.push(bytes(10));
    assert.equal(b.full, true);
  });
});

describe('OutboundBuffer push and ack', () => {
  it('assigns sequence numbers from 1 and counts payload bytes', () => {
    const b = new OutboundBuffer();
    assert.equal(b.push(bytes(3)), 1);
    assert.equal(b.push(bytes(0)), 2);
    assert.equal(b.push(bytes(7)), 3);
    assert.deepEqual(state(b), { bytes: 10, size: 3, lastSeq: 3, acked: 0, full: false });
  });

  it('counts Buffer payloads by length', () => {
    const b = new OutboundBuffer();
    b.push(Buffer.from('hello'));
    assert.equal(b.bytes, 5);
  });

  it('rejects a non-Uint8Array payload', () => {
    const b = new OutboundBuffer();
    assert.throws(() => b.push('x' as unknown as Uint8Array), InvalidArgumentError);
    assert.equal(b.lastSeq, 0);
  });

  it('acks cumulatively and returns how many were freed', () => {
    const b = new OutboundBuffer();
    for (let i = 1; i <= 5; i++) b.push(bytes(i));
    assert.equal(b.ack(3), 3);
    assert.deepEqual(state(b), { bytes: 9, size: 2, lastSeq: 5, acked: 3, full: false });
    assert.equal(b.ack(5), 2);
    assert.deepEqual(state(b), { bytes: 0, size: 0, lastSeq: 5, acked: 5, full: false });
    assert.equal(b.push(bytes(1)), 6, 'acks do not restart the sequence');
  });

  it('treats a repeated ack as a no-op returning 0', () => {
    const b = new OutboundBuffer();
    b.push(bytes(1));
    b.push(bytes(1));
    assert.equal(b.ack(0), 0);
    assert.equal(b.ack(1), 1);
    assert.equal(b.ack(1), 0);
    assert.equal(b.size, 1);
  });

  it('ignores an ack above lastSeq or below the last ack (-1, nothing changed)', () => {
    const b = new OutboundBuffer();
    for (let i = 0; i < 4; i++) b.push(bytes(2));
    b.ack(2);
    const before = state(b);
    assert.equal(b.ack(5), -1);
    assert.deepEqual(state(b), before);
    assert.equal(b.ack(1), -1);
    assert.deepEqual(state(b), before);
    assert.equal(new OutboundBuffer().ack(1), -1, 'ack on an empty buffer');
  });

  it('throws on a non-integer ack (a caller bug, not a peer anomaly)', () => {
    const b = new OutboundBuffer();
    b.push(bytes(1));
    for (const seq of [Number.NaN, 0.5, Number.POSITIVE_INFINITY, 2 ** 53]) {
      assert.throws(() => b.ack(seq), InvalidArgumentError);
    }
    assert.equal(b.size, 1);
  });
});

describe('OutboundBuffer high-water mark and hard cap', () => {
  it('is full while bytes >= highWaterMark', () => {
    const b = new OutboundBuffer({ highWaterMark: 10, maxBytes: 100, entryOverhead: 0 });
    b.push(bytes(9));
    assert.equal(b.full, false);
    b.push(bytes(1));
    assert.equal(b.full, true, 'exactly at the mark counts as full');
    b.push(bytes(50));
    assert.equal(b.full, true);
    b.ack(2);
    assert.equal(b.full, true);
    b.ack(3);
    assert.equal(b.full, false);
  });

  it('refuses a push past maxBytes with HL_ERR_BUFFER_FULL and changes nothing', () => {
    const b = new OutboundBuffer({ highWaterMark: 5, maxBytes: 10, entryOverhead: 0 });
    b.push(bytes(6));
    const before = state(b);
    assert.throws(
      () => b.push(bytes(5)),
      (err: unknown) => isBufferFull(err) && (err as Error).name === 'HeartlineError',
    );
    assert.deepEqual(state(b), before);
    assert.equal(b.push(bytes(4)), 2, 'the refused push consumed no sequence number');
    assert.equal(b.bytes, 10, 'exactly maxBytes is allowed');
    assert.equal(b.push(bytes(0)), 3, 'an empty payload still fits at the cap');
    assert.throws(() => b.push(bytes(1)), isBufferFull);
    b.ack(1);
    assert.equal(b.push(bytes(6)), 4, 'room again after an ack');
  });

  it('refuses a single payload larger than maxBytes even when empty', () => {
    const b = new OutboundBuffer({ highWaterMark: 1, maxBytes: 8, entryOverhead: 0 });
    assert.throws(() => b.push(bytes(9)), isBufferFull);
    assert.deepEqual(state(b), { bytes: 0, size: 0, lastSeq: 0, acked: 0, full: false });
  });
});

/**
 * What a resend after a resume writes: every message above `after` (and above the last
 * ack), walked with get() one seq at a time as Connection.flush() does.
 */
function unackedAfter(b: OutboundBuffer, after: number): { seq: number; payload: Uint8Array }[] {
  const out: { seq: number; payload: Uint8Array }[] = [];
  for (let seq = Math.max(after, b.acked) + 1; seq <= b.lastSeq; seq++) {
    const payload = b.get(seq);
    assert.ok(payload !== undefined, `seq ${seq} is buffered`);
    out.push({ seq, payload });
  }
  return out;
}

describe('OutboundBuffer resend walk', () => {
  function filled(n: number): OutboundBuffer {
    const b = new OutboundBuffer();
    for (let i = 1; i <= n; i++) b.push(bytes(1, i));
    return b;
  }
  const seqs = (messages: { seq: number; payload: Uint8Array }[]) =>
    messages.map(({ seq, payload }) => {
      assert.equal(payload[0], seq, 'payload matches its seq');
      return seq;
    });

  it('yields every message above `after`, in order', () => {
    const b = filled(5);
    assert.deepEqual(seqs(unackedAfter(b, 0)), [1, 2, 3, 4, 5]);
    assert.deepEqual(seqs(unackedAfter(b, 3)), [4, 5]);
    assert.deepEqual(seqs(unackedAfter(b, 5)), []);
    assert.deepEqual(seqs(unackedAfter(b, 9)), []);
  });

  it('starts after the last ack when `after` is below it', () => {
    const b = filled(5);
    b.ack(2);
    assert.deepEqual(seqs(unackedAfter(b, 0)), [3, 4, 5]);
    assert.deepEqual(seqs(unackedAfter(b, -3)), [3, 4, 5]);
  });

  it('does not consume: it can be walked again', () => {
    const b = filled(3);
    assert.deepEqual(seqs(unackedAfter(b, 1)), [2, 3]);
    assert.deepEqual(seqs(unackedAfter(b, 1)), [2, 3]);
    assert.equal(b.size, 3);
  });

  it('stays correct across compaction', () => {
    const b = filled(250);
    for (let i = 0; i < 5000; i++) b.push(bytes(1, (251 + i) & 0xff));
    for (let s = 1; s <= 4000; s++) b.ack(s);
    const got = unackedAfter(b, 0);
    assert.equal(got.length, 1250);
    assert.deepEqual(
      got.map((m) => m.seq),
      Array.from({ length: 1250 }, (_, i) => 4001 + i),
    );
    assert.ok(got.every((m) => m.payload[0] === (m.seq & 0xff)));
  });
});

describe('OutboundBuffer get()', () => {
  it('returns a buffered payload by seq and undefined outside (acked, lastSeq]', () => {
    const b = new OutboundBuffer();
    const payloads = [bytes(1, 1), bytes(1, 2), bytes(1, 3)];
    for (const p of payloads) b.push(p);
    assert.equal(b.get(1), payloads[0]);
    assert.equal(b.get(3), payloads[2]);
    b.ack(1);
    assert.equal(b.get(1), undefined, 'acknowledged');
    assert.equal(b.get(2), payloads[1]);
    assert.equal(b.get(4), undefined, 'never sent');
    for (const seq of [0, -1, 2.5, Number.NaN]) assert.equal(b.get(seq), undefined);
  });
});

describe('OutboundBuffer takeAll()', () => {
  it('returns every unacknowledged payload in order and restarts the sequence', () => {
    const b = new OutboundBuffer({ highWaterMark: 2, maxBytes: 10, entryOverhead: 0 });
    const payloads = [bytes(1, 1), bytes(1, 2), bytes(1, 3), bytes(1, 4)];
    for (const p of payloads) b.push(p);
    b.ack(1);
    const taken = b.takeAll();
    assert.equal(taken.length, 3);
    for (const [i, p] of taken.entries())
      assert.equal(p, payloads[i + 1], 'same object, not a copy');
    assert.deepEqual(state(b), { bytes: 0, size: 0, lastSeq: 0, acked: 0, full: false });
    assert.equal(b.push(bytes(1)), 1);
    assert.equal(b.ack(1), 1);
  });

  it('returns an empty array when everything was acknowledged', () => {
    const b = new OutboundBuffer();
    b.push(bytes(1));
    b.ack(1);
    assert.deepEqual(b.takeAll(), []);
    assert.deepEqual(b.takeAll(), []);
  });
});

describe('OutboundBuffer memory accounting', () => {
  it('charges every message its overhead, so a flood of empty messages hits the cap', () => {
    const b = new OutboundBuffer({ highWaterMark: 1600, maxBytes: 16_000 });
    let pushed = 0;
    assert.throws(() => {
      for (;;) {
        b.push(new Uint8Array(0));
        pushed++;
      }
    }, isBufferFull);
    assert.equal(pushed, 16_000 / ENTRY_OVERHEAD);
    assert.equal(b.bytes, 0);
    assert.equal(b.memory, 16_000);
    b.ack(10);
    assert.equal(b.memory, 16_000 - 10 * ENTRY_OVERHEAD);
  });

  it('copies a small view that would keep a much larger buffer alive, and keeps others', () => {
    const b = new OutboundBuffer();
    const chunk = Buffer.alloc(64 * 1024, 7);
    const view = chunk.subarray(100, 116);
    b.push(view);
    const kept = b.get(1)!;
    assert.notEqual(kept, view);
    assert.deepEqual(Buffer.from(kept), Buffer.from(view));
    assert.ok(kept.buffer.byteLength < 16 * 1024, 'the 64 KiB chunk is not retained');
    const whole = new Uint8Array(4000);
    b.push(whole);
    assert.equal(b.get(2), whole, 'a payload that owns its buffer is kept as it is');
    const mostly = chunk.subarray(0, chunk.length - 512);
    b.push(mostly);
    assert.equal(b.get(3), mostly, 'a view over nearly all of its buffer is kept');
    const empty = chunk.subarray(5, 5);
    b.push(empty);
    assert.equal(b.get(4)!.length, 0);
    assert.notEqual(b.get(4)!.buffer, chunk.buffer);
    const owned = chunk.subarray(0, 8);
    b.push(owned, true);
    assert.equal(b.get(5), owned, 'owned: the caller says it made it, no check');
  });

  it('draws from a shared budget and gives it back on ack, takeAll and release', () => {
    const budget = new MemoryBudget(1000);
    const a = new OutboundBuffer({ highWaterMark: 0, maxBytes: 1000, entryOverhead: 100, budget });
    const b = new OutboundBuffer({ highWaterMark: 0, maxBytes: 1000, entryOverhead: 100, budget });
    a.push(bytes(300)); // 400
    b.push(bytes(300)); // 800
    assert.equal(budget.used, 800);
    assert.throws(
      () => a.push(bytes(101)),
      (err: unknown) =>
        err instanceof HeartlineError &&
        err.code === 'HL_ERR_OVERLOADED' &&
        /server-wide/.test(err.message),
    );
    assert.equal(a.size, 1, 'a refused push changes nothing');
    assert.equal(budget.refusals, 1);
    a.push(bytes(100)); // exactly at the limit
    assert.equal(budget.used, 1000);
    a.ack(1);
    assert.equal(budget.used, 600);
    b.takeAll();
    assert.equal(budget.used, 200);
    a.releaseBudget();
    assert.equal(budget.used, 0);
    a.ack(2);
    assert.equal(budget.used, 0, 'a released buffer no longer touches the budget');
    assert.equal(budget.peak, 1000);
  });

  it('force-pushes what a store held past the limits, still counting it', () => {
    const budget = new MemoryBudget(500);
    const b = new OutboundBuffer({ highWaterMark: 0, maxBytes: 500, entryOverhead: 100, budget });
    for (let i = 0; i < 4; i++) b.push(bytes(100), false, true);
    assert.equal(b.memory, 800);
    assert.equal(budget.used, 800);
    assert.throws(() => b.push(bytes(0)), isBufferFull);
    b.ack(4);
    assert.equal(budget.used, 0);
  });
});

/** A naive reference model: an array of live messages. */
class Model {
  live: { seq: number; payload: Uint8Array }[] = [];
  lastSeq = 0;
  acked = 0;
  constructor(
    readonly maxBytes: number,
    readonly overhead: number,
  ) {}
  get bytes(): number {
    return this.live.reduce((n, m) => n + m.payload.length, 0);
  }
  get memory(): number {
    return this.bytes + this.live.length * this.overhead;
  }
  push(payload: Uint8Array): number | 'full' {
    if (this.memory + payload.length + this.overhead > this.maxBytes) return 'full';
    this.live.push({ seq: ++this.lastSeq, payload });
    return this.lastSeq;
  }
  ack(seq: number): number {
    if (seq > this.lastSeq || seq < this.acked) return -1;
    const before = this.live.length;
    this.live = this.live.filter((m) => m.seq > seq);
    this.acked = seq;
    return before - this.live.length;
  }
  takeAll(): Uint8Array[] {
    const out = this.live.map((m) => m.payload);
    this.live = [];
    this.lastSeq = 0;
    this.acked = 0;
    return out;
  }
}

type Op =
  | { kind: 'push'; size: number }
  | { kind: 'ack'; delta: number }
  | { kind: 'after'; delta: number }
  | { kind: 'takeAll' };

function run(ops: Op[], hwm: number, maxBytes: number, overhead: number): void {
  const b = new OutboundBuffer({ highWaterMark: hwm, maxBytes, entryOverhead: overhead });
  const m = new Model(maxBytes, overhead);
  for (const op of ops) {
    switch (op.kind) {
      case 'push': {
        const p = bytes(op.size, m.lastSeq + 1);
        const want = m.push(p);
        if (want === 'full') assert.throws(() => b.push(p), isBufferFull);
        else assert.equal(b.push(p), want);
        break;
      }
      case 'ack': {
        // Aim around the live window so that valid, repeated, stale and future acks all occur.
        const seq = Math.max(0, m.acked + op.delta);
        assert.equal(b.ack(seq), m.ack(seq));
        break;
      }
      case 'after': {
        const from = m.acked + op.delta;
        assert.deepEqual(
          unackedAfter(b, from),
          m.live.filter((x) => x.seq > from),
        );
        break;
      }
      case 'takeAll':
        assert.deepEqual(b.takeAll(), m.takeAll());
        break;
    }
    assert.equal(b.bytes, m.bytes);
    assert.equal(b.memory, m.memory);
    assert.equal(b.size, m.live.length);
    assert.equal(b.lastSeq, m.lastSeq);
    assert.equal(b.acked, m.acked);
    assert.equal(b.full, m.memory >= hwm);
    for (const seq of [m.acked, m.acked + 1, m.lastSeq, m.lastSeq + 1]) {
      assert.equal(b.get(seq), m.live.find((x) => x.seq === seq)?.payload);
    }
  }
}

describe('OutboundBuffer against a reference model', () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('push' as const), size: fc.nat(40) }) },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('ack' as const),
        delta: fc.integer({ min: -2, max: 12 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('after' as const),
        delta: fc.integer({ min: -2, max: 12 }),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'takeAll' as const }) },
  );

  it('matches the model for arbitrary operation sequences (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 300 }),
        fc.nat(200),
        fc.nat(400),
        fc.nat(24),
        (ops, hwm, extra, overhead) => {
          run(ops, hwm, Math.max(1, hwm + extra), overhead);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('matches the model over 50,000 seeded operations (exercises compaction)', () => {
    const random = mulberry32(2024);
    const ops: Op[] = [];
    for (let i = 0; i < 50_000; i++) {
      const r = random();
      if (r < 0.6) ops.push({ kind: 'push', size: Math.floor(random() * 64) });
      else if (r < 0.95) ops.push({ kind: 'ack', delta: Math.floor(random() * 6) - 1 });
      else if (r < 0.9995) ops.push({ kind: 'after', delta: Math.floor(random() * 2000) });
      else ops.push({ kind: 'takeAll' });
    }
    run(ops, 4096, 200_000, 0);
    run(ops, 4096 * 8, 200_000 * 8, ENTRY_OVERHEAD);
  });
});
