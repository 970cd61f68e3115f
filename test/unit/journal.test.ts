/**
 * The journal that commits one server connection to a session store (the journaled
 * delivery strategy), driven through a stub host (no sockets) against a MemoryStore on a fake clock: the seen mark before
 * delivery, replies committed with their message, ACK only after the replies went out,
 * duplicates and gaps, the seen window, the inbox, fencing, and local service while the
 * store fails, with the write-back once it answers again. Plus the replay buffer's
 * `startAt`, which restores a taken-over session.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type JournalEvents, SessionJournal } from '../../src/cluster/journal.js';
import type { HeartlineError } from '../../src/errors.js';
import type { DeliveryHost } from '../../src/session/delivery.js';
import { MemoryStore } from '../../src/session/memory-store.js';
import { OutboundBuffer } from '../../src/session/outbound.js';
import type { SessionSnapshot, SessionStore, StoredSession } from '../../src/session/store.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { firstCommit, sessionSnapshot } from '../support/sessions.js';

/** Lets every settled promise and queued microtask run. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

/** What the journal did to its connection, in order. */
type Call =
  | { op: 'deliver'; seq: number; text: string; redelivered: boolean }
  | { op: 'committed'; seq: number }
  | { op: 'ackNow' }
  | { op: 'writeAck'; seq: number }
  | { op: 'flush'; durable: number };

function harness(
  options: {
    store?: SessionStore;
    clock?: FakeClock;
    onDeliver?: (seq: number, text: string, host: StubHost) => void;
    restored?: StoredSession;
    snapshot?: SessionSnapshot;
  } = {},
) {
  const store = options.store ?? new MemoryStore();
  const clock = options.clock ?? new FakeClock();
  const snapshot: SessionSnapshot = options.snapshot ?? sessionSnapshot();
  const events = {
    fenced: 0,
    overflow: 0,
    failed: [] as HeartlineError[],
    ok: 0,
    lost: 0,
    wroteBack: 0,
  };
  const handlers: JournalEvents = {
    fenced: () => events.fenced++,
    overflow: () => events.overflow++,
    failed: (_j, err) => events.failed.push(err),
    ok: () => events.ok++,
    lost: () => events.lost++,
    wroteBack: () => events.wroteBack++,
  };
  const host = new StubHost(options.onDeliver);
  const journal = new SessionJournal({
    host,
    store,
    snapshot,
    fence: { node: 'n1', gen: options.restored?.gen ?? 1 },
    timeout: 1000,
    clock,
    events: handlers,
    ...(options.restored ? { restored: options.restored } : {}),
  });
  host.journal = journal;
  return { store, clock, journal, host, events, snapshot };
}

class StubHost implements DeliveryHost {
  readonly calls: Call[] = [];
  readonly outbound = new OutboundBuffer();
  journal!: SessionJournal;
  isClosed = false;
  /** Highest outbound seq "written" (a flush writes what is durable). */
  written = 0;

  constructor(private readonly onDeliver?: (seq: number, text: string, host: StubHost) => void) {}

  deliver(seq: number, payload: Buffer, redelivered: boolean): void {
    const text = payload.toString();
    this.calls.push({ op: 'deliver', seq, text, redelivered });
    this.onDeliver?.(seq, text, this);
  }
  private received = 0;
  committed(seq: number): boolean {
    this.calls.push({ op: 'committed', seq });
    if (seq <= this.received) return false;
    this.received = seq;
    return true;
  }
  ackNow(): void {
    this.calls.push({ op: 'ackNow' });
  }
  writeAck(seq: number): boolean {
    this.calls.push({ op: 'writeAck', seq });
    return true;
  }
  logEntry(seq: number): Uint8Array | undefined {
    return this.outbound.get(seq);
  }
  get sentSeq(): number {
    return this.outbound.lastSeq;
  }
  get ackedSeq(): number {
    return this.outbound.acked;
  }
  get writtenSeq(): number {
    return this.written;
  }
  queueFromStore(payload: Uint8Array): number {
    return this.outbound.push(payload);
  }
  /** What a connection's flush does: writes up to the limit, then tells the journal. */
  flush(): void {
    this.calls.push({ op: 'flush', durable: this.journal.durableSeq });
    this.written = Math.max(this.written, this.journal.flushLimit());
    this.journal.flushed();
  }
  paused = false;
  pauseForStore(paused: boolean): void {
    this.paused = paused;
  }
  get closed(): boolean {
    return this.isClosed;
  }
  /** What send() does: push, then tell the journal. */
  send(text: string): void {
    this.outbound.push(Buffer.from(text));
    this.journal.sent();
  }
  delivered(): string[] {
    return this.calls.flatMap((c) => (c.op === 'deliver' ? [c.text] : []));
  }
}

const data = (text: string): Buffer => Buffer.from(text);

describe('SessionJournal', () => {
  test('a new session is written first; delivery waits for the seen mark', async () => {
    const { store, journal, host, snapshot } = harness();
    assert.equal(journal.receive(host, 1, data('a')), true);
    assert.deepEqual(host.delivered(), [], 'nothing is delivered before the store has it');
    await settle();
    assert.deepEqual(host.delivered(), ['a']);
    const s = await store.load(snapshot.sessionId);
    assert.ok(s, 'the session was created');
    assert.equal(s.seen, 1, 'the seen mark covered the message before its delivery');
  });

  test('replies are committed with their message, sent, then the message is acknowledged', async () => {
    const { store, host, journal, snapshot } = harness({
      onDeliver: (_seq, text, h) => h.send(`re:${text}`),
    });
    journal.receive(host, 1, data('x'));
    journal.receive(host, 2, data('y'));
    await settle();
    assert.deepEqual(host.delivered(), ['x', 'y']);
    const s = (await store.load(snapshot.sessionId))!;
    assert.equal(s.received, 2);
    assert.deepEqual(
      s.log.map((p) => Buffer.from(p).toString()),
      ['re:x', 're:y'],
    );
    assert.equal(journal.durableSeq, 2);
    // The flush that makes the replies durable on the wire comes before the ACK.
    const ackAt = host.calls.findIndex((c) => c.op === 'committed' && c.seq === 2);
    const flushAt = host.calls.findIndex((c) => c.op === 'flush' && c.durable === 2);
    assert.ok(flushAt >= 0 && ackAt > flushAt, JSON.stringify(host.calls));
    // The ACK itself goes out once, for 2, after the replies were written.
    const acks = host.calls.flatMap((c, i) => (c.op === 'writeAck' ? [{ seq: c.seq, i }] : []));
    assert.deepEqual(
      acks.map((a) => a.seq),
      [2],
    );
    assert.ok(acks[0]!.i > flushAt, JSON.stringify(host.calls));
  });

  test('duplicates are acknowledged at once and gaps refused', async () => {
    const { journal, host } = harness();
    journal.receive(host, 1, data('a'));
    await settle();
    assert.equal(journal.receive(host, 1, data('a')), true);
    assert.equal(host.calls.at(-1)?.op, 'ackNow');
    assert.equal(journal.receive(host, 5, data('e')), false, 'a gap is a protocol error');
    assert.deepEqual(host.delivered(), ['a']);
  });

  test('the seen mark runs at most 64 messages ahead of the application', async () => {
    const { store, journal, host, snapshot } = harness();
    let seenMarks = 0;
    const commit = store.commit.bind(store);
    store.commit = async (id, batch) => {
      assert.ok(
        (batch.seen ?? 0) - batch.received <= 64,
        `seen ${batch.seen} received ${batch.received}`,
      );
      seenMarks++;
      return commit(id, batch);
    };
    for (let i = 1; i <= 200; i++) journal.receive(host, i, data(String(i)));
    await settle();
    assert.equal(host.delivered().length, 200);
    assert.ok(seenMarks >= 4, `${seenMarks} commits`);
    assert.equal((await store.load(snapshot.sessionId))?.received, 200);
  });

  test('inbox messages are numbered into the log and trimmed from the inbox exactly once', async () => {
    const { store, journal, host, snapshot } = harness();
    await settle();
    await store.append(snapshot.sessionId, data('m1'));
    await store.append(snapshot.sessionId, data('m2'));
    journal.inboxNote(2);
    journal.inboxNote(2); // a doubled note
    await settle();
    assert.equal(host.outbound.lastSeq, 2);
    const s = (await store.load(snapshot.sessionId))!;
    assert.deepEqual(
      s.log.map((p) => Buffer.from(p).toString()),
      ['m1', 'm2'],
    );
    assert.deepEqual([s.inboxHead, s.inboxTail], [3, 2], 'trimmed');
    journal.touched(2); // a touch that finds nothing new
    await settle();
    assert.equal(host.outbound.lastSeq, 2);
  });

  test('messages waiting for the store are bounded: reading pauses past the cap', async () => {
    const memory = new MemoryStore();
    let gate: Promise<void> | null = null;
    let open: () => void = () => {};
    const gated = new Proxy(memory, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== 'function') return value;
        if (prop !== 'commit') return value.bind(target);
        return async (...args: Parameters<MemoryStore['commit']>) => {
          if (gate) await gate;
          return target.commit(...args);
        };
      },
    });
    const snapshot = sessionSnapshot({ maxBytes: 1000 });
    const { journal, host } = harness({ store: gated, snapshot });
    await settle();
    gate = new Promise<void>((r) => {
      open = r;
    });
    for (let seq = 1; seq <= 20; seq++) journal.receive(host, seq, Buffer.alloc(100));
    await settle();
    assert.equal(host.paused, true, 'past 1000 queued bytes the socket is not read');
    gate = null;
    open();
    await settle();
    assert.equal(host.delivered().length, 20);
    assert.equal(host.paused, false, 'reading resumes once the store caught up');
  });

  test('fenced by another node: no further delivery, reported once', async () => {
    const { store, journal, host, events, snapshot } = harness();
    journal.receive(host, 1, data('a'));
    await settle();
    await store.claim(snapshot.sessionId, 'n2');
    journal.receive(host, 2, data('b'));
    await settle();
    assert.equal(events.fenced, 1);
    assert.deepEqual(host.delivered(), ['a'], 'b was never handed out: its seen mark was refused');
    assert.equal(journal.ended, true);
  });

  test('a store that hangs: local service after the timeout, then a write-back', async () => {
    const memory = new MemoryStore();
    let hang = false;
    const never = new Promise<never>(() => {});
    const flaky = new Proxy(memory, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) =>
          hang ? never : (value as (...a: unknown[]) => unknown).apply(target, args);
      },
    });
    const clock = new FakeClock();
    const { journal, host, events, snapshot } = harness({
      store: flaky,
      clock,
      onDeliver: (_s, text, h) => h.send(`re:${text}`),
    });
    journal.receive(host, 1, data('a'));
    await settle();
    hang = true;
    journal.receive(host, 2, data('b'));
    await settle();
    assert.deepEqual(host.delivered(), ['a'], 'b waits for its seen mark');
    clock.advance(1000);
    await settle();
    assert.equal(events.failed[0]?.code, 'HL_ERR_STORE');
    assert.equal(journal.degraded, true);
    assert.deepEqual(host.delivered(), ['a', 'b'], 'served locally');
    assert.ok(
      host.calls.some((c) => c.op === 'committed' && c.seq === 2),
      'acked locally',
    );
    assert.equal(journal.durableSeq, 2, 'the reply may go out');
    journal.receive(host, 3, data('c'));
    await settle();
    assert.deepEqual(host.delivered(), ['a', 'b', 'c'], 'at once while degraded');
    assert.equal(journal.needsWriteBack, true);
    assert.equal(events.wroteBack, 0);
    // The store is back: the whole session is written back.
    hang = false;
    journal.retry();
    await settle();
    assert.equal(journal.degraded, false);
    assert.equal(journal.needsWriteBack, false);
    assert.equal(events.wroteBack, 1, 'the write-back is reported once');
    const s = (await memory.load(snapshot.sessionId))!;
    assert.equal(s.received, 3);
    assert.deepEqual(
      s.log.map((p) => Buffer.from(p).toString()),
      ['re:a', 're:b', 're:c'],
    );
  });

  test('the store lost everything (a restart): the session is written back from the node', async () => {
    let current = new MemoryStore();
    const restartable = new Proxy({} as SessionStore, {
      get(_target, prop) {
        const value = Reflect.get(current, prop, current) as unknown;
        return typeof value === 'function' ? value.bind(current) : value;
      },
    });
    const { journal, host, snapshot, events } = harness({
      store: restartable,
      onDeliver: (_s, text, h) => h.send(`re:${text}`),
    });
    journal.receive(host, 1, data('a'));
    await settle();
    assert.equal(events.wroteBack, 0, 'creating a new session is no write-back');
    current = new MemoryStore(); // Redis restarted without persistence
    journal.receive(host, 2, data('b'));
    await settle();
    assert.deepEqual(host.delivered(), ['a', 'b']);
    assert.deepEqual([events.lost, events.wroteBack], [1, 1], 'lost, then written back');
    assert.ok(
      host.calls.some((c) => c.op === 'committed' && c.seq === 2),
      'b is acknowledged once the store holds it again',
    );
    const s = (await current.load(snapshot.sessionId))!;
    assert.ok(s, 'written back');
    assert.equal(s.received, 2);
    assert.deepEqual(
      s.log.map((p) => Buffer.from(p).toString()),
      ['re:a', 're:b'],
    );
  });
});

describe('SessionJournal on a taken-over session', () => {
  test('messages up to the seen mark are redelivered flagged; an idle journal stays idle', async () => {
    const store = new MemoryStore();
    const snapshot = sessionSnapshot();
    await store.commit(snapshot.sessionId, firstCommit(snapshot, 'dead'));
    await store.commit(snapshot.sessionId, { received: 100, seen: 164, replies: [] });
    const restored = (await store.claim(snapshot.sessionId, 'n1'))!;
    let commits = 0;
    const commit = store.commit.bind(store);
    store.commit = (id, batch) => {
      // A journal that commits in a loop would spin here forever: fail instead.
      if (++commits > 1000) return Promise.reject(new Error('commit loop'));
      return commit(id, batch);
    };
    const { journal, host } = harness({ store, snapshot, restored });
    journal.acked(host, 0);
    journal.probe();
    await settle();
    assert.ok(commits <= 2, `${commits} commits for nothing to write`);
    for (let seq = 101; seq <= 170; seq++) journal.receive(host, seq, data(String(seq)));
    await settle();
    const delivered = host.calls.flatMap((c) => (c.op === 'deliver' ? [c] : []));
    assert.equal(delivered.length, 70);
    assert.ok(delivered.every((c) => c.redelivered === c.seq <= 164));
    assert.equal((await store.load(snapshot.sessionId))?.received, 170);
  });
});

describe('OutboundBuffer.startAt', () => {
  test('restores a session: the next seq follows, earlier ones count as acknowledged', () => {
    const b = new OutboundBuffer();
    b.startAt(41);
    assert.deepEqual([b.acked, b.lastSeq, b.size], [41, 41, 0]);
    assert.equal(b.push(Buffer.from('x')), 42);
    assert.equal(b.get(42)?.toString(), 'x');
    assert.equal(b.get(41), undefined);
    assert.throws(() => b.startAt(3), { code: 'HL_ERR_INVALID_ARGUMENT' });
    assert.throws(() => new OutboundBuffer().startAt(-1), { code: 'HL_ERR_INVALID_ARGUMENT' });
  });
});
