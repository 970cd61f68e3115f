import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidArgumentError } from '../../src/errors.js';
import { CONNECTION_DEFAULTS } from '../../src/options.js';
import { InboundTracker, OutboundBuffer } from '../../src/session/index.js';
import { mulberry32 } from '../support/prng.js';

/** What a resend after a resume writes: the messages above `after`, walked with get(). */
function unackedAfter(b: OutboundBuffer, after: number): { seq: number; payload: Uint8Array }[] {
  const out: { seq: number; payload: Uint8Array }[] = [];
  for (let seq = Math.max(after, b.acked) + 1; seq <= b.lastSeq; seq++) {
    const payload = b.get(seq);
    assert.ok(payload !== undefined, `seq ${seq} is buffered`);
    out.push({ seq, payload });
  }
  return out;
}

function state(t: InboundTracker) {
  return {
    lastReceived: t.lastReceived,
    lastAcked: t.lastAcked,
    ackDue: t.ackDue,
    ackPending: t.ackPending,
  };
}

describe('InboundTracker defaults and validation', () => {
  it('exposes a frozen named default: an ACK every 32 messages', () => {
    // Declared once, as the connection option the tracker is built from.
    assert.equal(CONNECTION_DEFAULTS.ackEvery, 32);
    assert.ok(Object.isFrozen(CONNECTION_DEFAULTS));
  });

  it('starts at 0 with nothing pending', () => {
    assert.deepEqual(state(new InboundTracker()), {
      lastReceived: 0,
      lastAcked: 0,
      ackDue: false,
      ackPending: false,
    });
  });

  it('uses ackEvery = 32 by default', () => {
    const t = new InboundTracker();
    for (let s = 1; s <= 31; s++) t.accept(s);
    assert.equal(t.ackDue, false);
    t.accept(32);
    assert.equal(t.ackDue, true);
  });

  for (const ackEvery of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    it(`rejects ackEvery = ${ackEvery} naming inbound.ackEvery`, () => {
      assert.throws(
        () => new InboundTracker({ ackEvery }),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.code === 'HL_ERR_INVALID_ARGUMENT' &&
          err.message.includes('inbound.ackEvery'),
      );
    });
  }

  it('rejects an invalid initial lastReceived', () => {
    for (const last of [-1, 0.5, Number.NaN]) {
      assert.throws(
        () => new InboundTracker({}, last),
        (err: unknown) =>
          err instanceof InvalidArgumentError && err.message.includes('lastReceived'),
      );
    }
  });

  it('does not mutate the caller options', () => {
    const options = Object.freeze({});
    new InboundTracker(options);
    assert.deepEqual(options, {});
  });
});

describe('InboundTracker accept()', () => {
  it('delivers seq = last + 1 and records it', () => {
    const t = new InboundTracker();
    assert.equal(t.accept(1), 'deliver');
    assert.equal(t.accept(2), 'deliver');
    assert.equal(t.lastReceived, 2);
  });

  it('flags seq <= last as a duplicate without changing the positions, and owes an ACK', () => {
    const t = new InboundTracker();
    t.accept(1);
    t.accept(2);
    t.takeAck();
    const before = state(t);
    assert.equal(t.accept(2), 'duplicate');
    assert.equal(t.accept(1), 'duplicate');
    assert.equal(t.accept(0), 'duplicate');
    assert.deepEqual(state(t), { ...before, ackPending: true });
    assert.equal(t.takeAck(), 2, 'the ACK owed for a duplicate is the cumulative one');
    assert.deepEqual(state(t), before);
  });

  it('flags seq > last + 1 as a gap without changing state', () => {
    const t = new InboundTracker();
    t.accept(1);
    const before = state(t);
    assert.equal(t.accept(3), 'gap');
    assert.equal(t.accept(1000), 'gap');
    assert.deepEqual(state(t), before);
    assert.equal(t.accept(2), 'deliver', 'the expected seq still delivers after a gap report');
  });

  it('continues from a resumed lastReceived', () => {
    const t = new InboundTracker({}, 10);
    assert.equal(t.accept(10), 'duplicate');
    assert.equal(t.accept(12), 'gap');
    assert.equal(t.accept(11), 'deliver');
    assert.equal(t.lastAcked, 10, 'the resumed position counts as acknowledged');
  });

  it('throws on a seq that is not a safe integer >= 0', () => {
    const t = new InboundTracker();
    for (const seq of [-1, 1.5, Number.NaN, 2 ** 53]) {
      assert.throws(() => t.accept(seq), InvalidArgumentError);
    }
    assert.equal(t.lastReceived, 0);
  });
});

describe('InboundTracker acks', () => {
  it('is pending after one message and due after ackEvery', () => {
    const t = new InboundTracker({ ackEvery: 3 });
    t.accept(1);
    assert.deepEqual(state(t), { lastReceived: 1, lastAcked: 0, ackDue: false, ackPending: true });
    t.accept(2);
    assert.equal(t.ackDue, false);
    t.accept(3);
    assert.equal(t.ackDue, true);
    assert.equal(t.takeAck(), 3);
    assert.deepEqual(state(t), { lastReceived: 3, lastAcked: 3, ackDue: false, ackPending: false });
  });

  it('counts from the last ack, so a timer ack restarts the batch', () => {
    const t = new InboundTracker({ ackEvery: 3 });
    t.accept(1);
    t.accept(2);
    assert.equal(t.takeAck(), 2, 'timer fired with 2 pending');
    t.accept(3);
    t.accept(4);
    assert.equal(t.ackDue, false);
    t.accept(5);
    assert.equal(t.ackDue, true);
  });

  it('stays due while more arrive before the ACK is taken', () => {
    const t = new InboundTracker({ ackEvery: 2 });
    for (let s = 1; s <= 7; s++) t.accept(s);
    assert.equal(t.ackDue, true);
    assert.equal(t.takeAck(), 7);
    assert.equal(t.ackPending, false);
  });

  it('with ackEvery = 1 an ACK is due after every message', () => {
    const t = new InboundTracker({ ackEvery: 1 });
    for (let s = 1; s <= 5; s++) {
      t.accept(s);
      assert.equal(t.ackDue, true);
      assert.equal(t.takeAck(), s);
      assert.equal(t.ackDue, false);
    }
  });

  it('a gap does not make an ACK pending; a duplicate does, even after everything was acknowledged (PROTOCOL.md 6.2)', () => {
    const t = new InboundTracker({ ackEvery: 1 }, 5);
    t.accept(9);
    assert.equal(t.ackPending, false);
    t.accept(3);
    assert.equal(t.ackPending, true);
    assert.equal(t.ackDue, false, 'owed at once by the caller, not by the batch count');
    assert.equal(t.takeAck(), 5);
    assert.equal(t.ackPending, false);
  });

  it('takeAck with nothing pending repeats the last cumulative ack', () => {
    const t = new InboundTracker();
    assert.equal(t.takeAck(), 0);
    t.accept(1);
    assert.equal(t.takeAck(), 1);
    assert.equal(t.takeAck(), 1);
  });
});

describe('InboundTracker reset()', () => {
  it('moves both positions and clears anything pending', () => {
    const t = new InboundTracker({ ackEvery: 2 });
    t.accept(1);
    t.accept(2);
    t.accept(3);
    t.reset(3);
    assert.deepEqual(state(t), { lastReceived: 3, lastAcked: 3, ackDue: false, ackPending: false });
    assert.equal(t.accept(4), 'deliver');
  });

  it('can start a new session from 0', () => {
    const t = new InboundTracker();
    for (let s = 1; s <= 5; s++) t.accept(s);
    t.reset(0);
    assert.equal(t.accept(1), 'deliver');
  });

  it('rejects an invalid position and changes nothing', () => {
    const t = new InboundTracker();
    t.accept(1);
    assert.throws(() => t.reset(Number.NaN), InvalidArgumentError);
    assert.throws(() => t.reset(-1), InvalidArgumentError);
    assert.equal(t.lastReceived, 1);
  });
});

describe('InboundTracker against a reference model', () => {
  it('matches the model for arbitrary seq streams (fast-check)', () => {
    const step = fc.oneof(
      {
        weight: 8,
        arbitrary: fc.integer({ min: -3, max: 3 }).map((d) => ({ kind: 'seq' as const, d })),
      },
      { weight: 2, arbitrary: fc.constant({ kind: 'take' as const }) },
      { weight: 1, arbitrary: fc.nat(50).map((n) => ({ kind: 'reset' as const, n })) },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.nat(20),
        fc.array(step, { maxLength: 200 }),
        (ackEvery, start, steps) => {
          const t = new InboundTracker({ ackEvery }, start);
          let last = start;
          let acked = start;
          let owed = false;
          for (const s of steps) {
            if (s.kind === 'seq') {
              // Around the expected seq: duplicates (d < 1), in order (d = 1) and gaps (d > 1).
              const seq = Math.max(0, last + s.d);
              const want = seq === last + 1 ? 'deliver' : seq <= last ? 'duplicate' : 'gap';
              if (want === 'deliver') last = seq;
              if (want === 'duplicate') owed = true;
              assert.equal(t.accept(seq), want);
            } else if (s.kind === 'take') {
              acked = last;
              owed = false;
              assert.equal(t.takeAck(), last);
            } else {
              last = s.n;
              acked = s.n;
              owed = false;
              t.reset(s.n);
            }
            assert.deepEqual(state(t), {
              lastReceived: last,
              lastAcked: acked,
              ackDue: last - acked >= ackEvery,
              ackPending: owed || last > acked,
            });
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('OutboundBuffer + InboundTracker over a lossy, reconnecting link', () => {
  it('delivers 20,000 messages exactly once and in order across 500 resumes', () => {
    const random = mulberry32(99);
    const sender = new OutboundBuffer({ highWaterMark: 64 * 1024, maxBytes: 1 << 20 });
    const receiver = new InboundTracker({ ackEvery: 8 });
    const delivered: number[] = [];
    let wire: { seq: number; payload: Uint8Array }[] = [];
    let acksOnWire: number[] = [];
    let next = 0;
    let resumes = 0;
    let duplicates = 0;
    const TOTAL = 20_000;

    const receive = (frames: typeof wire) => {
      for (const f of frames) {
        const verdict = receiver.accept(f.seq);
        assert.notEqual(verdict, 'gap', 'a reliable stream never skips');
        if (verdict === 'duplicate') duplicates++;
        if (verdict === 'deliver') delivered.push(new DataView(f.payload.buffer).getUint32(0));
        if (receiver.ackDue) acksOnWire.push(receiver.takeAck());
      }
    };

    while (delivered.length < TOTAL) {
      const r = random();
      if (r < 0.6 && next < TOTAL && !sender.full) {
        const payload = new Uint8Array(4);
        new DataView(payload.buffer).setUint32(0, next++);
        wire.push({ seq: sender.push(payload), payload });
      } else if (r < 0.9) {
        // Deliver a prefix of the wire (TCP keeps order), and the acks in flight.
        receive(wire.splice(0, Math.floor(random() * (wire.length + 1))));
        for (const a of acksOnWire.splice(0, Math.floor(random() * (acksOnWire.length + 1)))) {
          assert.ok(sender.ack(a) >= 0);
        }
      } else if (r < 0.93) {
        if (receiver.ackPending) acksOnWire.push(receiver.takeAck()); // ack timer
      } else if (r < 0.95 || (next === TOTAL && wire.length === 0)) {
        // Connection drops: everything in flight is lost. The handshake carries the
        // receiver's lastReceived, which acks implicitly, and the sender resends the rest.
        // Half the time the sender resends from its own last ack instead, as if it had to
        // resend before learning the peer's position: the receiver must drop the repeats.
        wire = [];
        acksOnWire = [];
        const last = receiver.lastReceived;
        receiver.reset(last);
        if (random() < 0.5) {
          assert.ok(sender.ack(last) >= 0);
          wire = unackedAfter(sender, last);
        } else {
          wire = unackedAfter(sender, sender.acked);
        }
        resumes++;
      }
    }
    assert.deepEqual(
      delivered,
      Array.from({ length: TOTAL }, (_, i) => i),
    );
    assert.ok(resumes >= 500, `resumes: ${resumes}`);
    assert.ok(duplicates > 0, 'the run exercised duplicate filtering');
    // The final ACK frees the whole replay buffer.
    assert.ok(sender.ack(receiver.takeAck()) >= 0);
    assert.equal(sender.size, 0);
    assert.equal(sender.bytes, 0);
  });
});
