import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeartlineError } from '../../src/errors.js';
import {
  createMemoryWindow,
  ENTRY_OVERHEAD_BYTES,
  IDEMPOTENCY_DEFAULTS,
  type IdempotencyClaim,
  type KeptReply,
  MAX_IDEMPOTENCY_KEY_BYTES,
  type MemoryWindowOptions,
  SCOPE_OVERHEAD_BYTES,
} from '../../src/session/idempotency.js';
import { FakeClock } from '../../src/time/fake-clock.js';

const reply = (text: string, status = 0): KeptReply => ({
  status,
  payload: new Uint8Array(Buffer.from(text)),
});
const text = (r: KeptReply | null | undefined): string | null =>
  r ? Buffer.from(r.payload).toString() : null;

function make(options: MemoryWindowOptions = {}) {
  const clock = new FakeClock();
  return { clock, window: createMemoryWindow(options, clock) };
}

/** Narrows a claim to one kind, failing the test otherwise. */
function expectKind<K extends IdempotencyClaim['kind']>(
  claim: IdempotencyClaim,
  kind: K,
): Extract<IdempotencyClaim, { kind: K }> {
  assert.equal(claim.kind, kind);
  return claim as Extract<IdempotencyClaim, { kind: K }>;
}

/** The bytes an entry is charged, its scope's share apart. */
const entryCost = (key: string, payloadBytes = 0): number =>
  ENTRY_OVERHEAD_BYTES + Buffer.byteLength(key) + payloadBytes;
const scopeCost = (scope: string): number => SCOPE_OVERHEAD_BYTES + Buffer.byteLength(scope);

describe('memory idempotency window', () => {
  it('runs a key once, then answers done with a copy of the reply', () => {
    const { window } = make();
    expectKind(window.begin('alice', 'k1'), 'run');
    const sent = reply('first', 7);
    window.finish('alice', 'k1', sent);
    sent.payload[0] = 0x58; // the caller's buffer may be reused; the kept copy is not
    const done = expectKind(window.begin('alice', 'k1'), 'done');
    assert.equal(done.reply.status, 7);
    assert.equal(text(done.reply), 'first');
    assert.equal(expectKind(window.begin('alice', 'k1'), 'done').reply.status, 7);
    window.close();
  });

  it('keys are per scope: the same key from another identity runs', () => {
    const { window } = make();
    expectKind(window.begin('alice', 'k'), 'run');
    window.finish('alice', 'k', reply('a'));
    expectKind(window.begin('bob', 'k'), 'run');
    window.finish('bob', 'k', reply('b'));
    assert.equal(text(expectKind(window.begin('alice', 'k'), 'done').reply), 'a');
    assert.equal(text(expectKind(window.begin('bob', 'k'), 'done').reply), 'b');
    window.close();
  });

  it('a second begin while pending waits for the reply; all waiters share it', async () => {
    const { window } = make();
    expectKind(window.begin('alice', 'k'), 'run');
    const p1 = expectKind(window.begin('alice', 'k'), 'pending');
    const p2 = expectKind(window.begin('alice', 'k'), 'pending');
    window.finish('alice', 'k', reply('answer'));
    assert.equal(text(await p1.settled), 'answer');
    assert.equal(text(await p2.settled), 'answer');
    expectKind(window.begin('alice', 'k'), 'done');
    window.close();
  });

  it('abandon forgets the claim: waiters get null and a retry runs', async () => {
    const { window } = make();
    expectKind(window.begin('alice', 'k'), 'run');
    const waiting = expectKind(window.begin('alice', 'k'), 'pending');
    window.abandon('alice', 'k');
    assert.equal(await waiting.settled, null);
    assert.deepEqual(window.stats, { keys: 0, bytes: 0, unkept: 0 });
    expectKind(window.begin('alice', 'k'), 'run');
    window.finish('alice', 'k', reply('x'));
    // abandon and finish of a key that is not pending are ignored
    window.abandon('alice', 'k');
    expectKind(window.begin('alice', 'k'), 'done');
    window.finish('alice', 'nope', reply('y'));
    window.abandon('bob', 'nope');
    assert.equal(window.stats.keys, 1);
    window.close();
  });

  it('a reply is kept for exactly windowMs from finish', () => {
    const { clock, window } = make({ windowMs: 1000 });
    expectKind(window.begin('alice', 'k'), 'run');
    clock.advance(400);
    window.finish('alice', 'k', reply('r'));
    clock.advance(999); // 1 ms before the window ends (finish + 1000)
    expectKind(window.begin('alice', 'k'), 'done');
    clock.advance(1);
    expectKind(window.begin('alice', 'k'), 'run');
    window.close();
  });

  it('a pending claim lapses windowMs after begin: waiters get null, a retry runs', async () => {
    const { clock, window } = make({ windowMs: 1000 });
    expectKind(window.begin('alice', 'k'), 'run');
    clock.advance(500);
    const waiting = expectKind(window.begin('alice', 'k'), 'pending');
    clock.advance(499);
    expectKind(window.begin('alice', 'k'), 'pending');
    clock.advance(1);
    expectKind(window.begin('alice', 'k'), 'run');
    assert.equal(await waiting.settled, null);
    window.close();
  });

  it('the sweep timer frees expired entries without any further call', async () => {
    const { clock, window } = make({ windowMs: 1600 });
    expectKind(window.begin('alice', 'a'), 'run');
    const waiting = expectKind(window.begin('alice', 'a'), 'pending');
    clock.advance(100);
    expectKind(window.begin('bob', 'b'), 'run');
    window.finish('bob', 'b', reply('b'));
    assert.equal(window.stats.keys, 2);
    clock.advance(1500); // a's deadline (1600)
    assert.equal(window.stats.keys, 1);
    assert.equal(await waiting.settled, null, 'the lapsed claim settles its waiters');
    // b's deadline is 1700; sweeps are at most every windowMs/16 = 100 ms apart
    clock.advance(200);
    assert.deepEqual(window.stats, { keys: 0, bytes: 0, unkept: 0 });
    assert.equal(clock.pending, 0, 'no timer is left once the window is empty');
    window.close();
  });

  it('charges key, reply, per-entry overhead and the scope; frees them on expiry', () => {
    const { clock, window } = make({ windowMs: 1000 });
    const key = 'clé-ünïcode'; // UTF-8 bytes, not UTF-16 units
    expectKind(window.begin('alice', key), 'run');
    assert.equal(window.stats.bytes, scopeCost('alice') + entryCost(key));
    window.finish('alice', key, { status: 0, payload: new Uint8Array(1000) });
    assert.equal(window.stats.bytes, scopeCost('alice') + entryCost(key, 1000));
    expectKind(window.begin('alice', 'two'), 'run');
    assert.equal(window.stats.bytes, scopeCost('alice') + entryCost(key, 1000) + entryCost('two'));
    expectKind(window.begin('bob', 'k'), 'run');
    assert.equal(window.stats.keys, 3);
    clock.advance(1000);
    expectKind(window.begin('carol', 'k'), 'run');
    assert.deepEqual(window.stats, {
      keys: 1,
      bytes: scopeCost('carol') + entryCost('k'),
      unkept: 0,
    });
    window.close();
    assert.deepEqual(window.stats, { keys: 0, bytes: 0, unkept: 0 });
  });

  it('a scope at its cap evicts its own oldest finished entry, never a pending one', () => {
    const { clock, window } = make({ maxKeysPerScope: 3 });
    expectKind(window.begin('alice', 'p'), 'run'); // stays pending
    for (const k of ['a', 'b']) {
      clock.advance(1);
      expectKind(window.begin('alice', k), 'run');
      window.finish('alice', k, reply(k));
    }
    expectKind(window.begin('bob', 'x'), 'run');
    window.finish('bob', 'x', reply('x'));
    expectKind(window.begin('alice', 'c'), 'run'); // evicts a (oldest finished), not p
    expectKind(window.begin('alice', 'b'), 'done');
    expectKind(window.begin('alice', 'p'), 'pending');
    expectKind(window.begin('bob', 'x'), 'done');
    assert.equal(window.stats.keys, 4);
    expectKind(window.begin('alice', 'a'), 'run'); // a was forgotten; this evicts b
    // p, c and a are all pending: nothing of alice's own to give up, so alice is refused
    expectKind(window.begin('alice', 'd'), 'full');
    expectKind(window.begin('bob', 'y'), 'run');
    expectKind(window.begin('bob', 'x'), 'done');
    window.close();
  });

  it('a scope at its cap is refused, not evicted, when the window has no room anyway', () => {
    const maxBytes = 4 * (ENTRY_OVERHEAD_BYTES + 1) + 2 * scopeCost('a') + 100;
    const { window } = make({ maxBytes, maxKeysPerScope: 2 });
    for (const k of ['1', '2']) {
      expectKind(window.begin('a', k), 'run');
      window.finish('a', k, reply(''));
    }
    expectKind(window.begin('b', '1'), 'run');
    expectKind(window.begin('b', '2'), 'run');
    // a is at its cap; evicting a's oldest would free an entry, but the new key's name is longer
    expectKind(window.begin('a', 'x'.repeat(200)), 'full');
    expectKind(window.begin('a', '1'), 'done');
    // a same-size key fits in the room its oldest leaves
    expectKind(window.begin('a', '3'), 'run');
    expectKind(window.begin('a', '1'), 'run');
    window.close();
  });

  it('full at maxKeys: refuses new keys, evicts no other scope, frees up as entries expire', () => {
    const { clock, window } = make({ windowMs: 1000, maxKeys: 3 });
    expectKind(window.begin('alice', 'a'), 'run');
    window.finish('alice', 'a', reply('a'));
    clock.advance(10);
    expectKind(window.begin('bob', 'b'), 'run');
    window.finish('bob', 'b', reply('b'));
    expectKind(window.begin('carol', 'c'), 'run');
    expectKind(window.begin('dave', 'd'), 'full');
    expectKind(window.begin('alice', 'z'), 'full');
    const before = window.stats;
    // existing keys still answer while full
    expectKind(window.begin('alice', 'a'), 'done');
    expectKind(window.begin('bob', 'b'), 'done');
    expectKind(window.begin('carol', 'c'), 'pending');
    assert.deepEqual(window.stats, before, 'a refused begin charges nothing');
    clock.advance(990); // alice's a expires
    expectKind(window.begin('dave', 'd'), 'run');
    expectKind(window.begin('bob', 'b'), 'done');
    window.close();
  });

  it('full at maxBytes; a reply that does not fit evicts its own scope first, else is not kept', async () => {
    const maxBytes = 2 * 1024 + 3 * (ENTRY_OVERHEAD_BYTES + 1) + 2 * scopeCost('a') + 100;
    const { window } = make({ maxBytes });
    expectKind(window.begin('a', '1'), 'run');
    window.finish('a', '1', { status: 0, payload: new Uint8Array(1024) });
    expectKind(window.begin('b', '1'), 'run');
    window.finish('b', '1', { status: 0, payload: new Uint8Array(1024) });
    expectKind(window.begin('a', '2'), 'run');
    // no room for another entry: full, b's entry untouched
    expectKind(window.begin('c', '1'), 'full');
    // a's reply does not fit: a's own oldest goes, b's stays
    window.finish('a', '2', { status: 0, payload: new Uint8Array(1024) });
    expectKind(window.begin('a', '1'), 'run');
    window.abandon('a', '1');
    expectKind(window.begin('a', '2'), 'done');
    expectKind(window.begin('b', '1'), 'done');
    // b's next reply finds nothing of b's own to evict but its first: that goes
    expectKind(window.begin('b', '2'), 'run');
    const waiting = expectKind(window.begin('b', '2'), 'pending');
    window.finish('b', '2', { status: 0, payload: new Uint8Array(maxBytes) });
    // too large even alone: delivered to the waiter, not kept; b's first was given up
    assert.equal((await waiting.settled)?.payload.byteLength, maxBytes);
    assert.equal(window.stats.unkept, 1);
    expectKind(window.begin('b', '2'), 'run');
    expectKind(window.begin('a', '2'), 'done');
    assert.ok(window.stats.bytes <= maxBytes);
    window.close();
  });

  it('a reply over maxReplyBytes is answered but not kept, and evicts nothing', async () => {
    const { window } = make({ maxReplyBytes: 100 });
    expectKind(window.begin('a', 'small'), 'run');
    window.finish('a', 'small', { status: 0, payload: new Uint8Array(100) });
    const before = window.stats.bytes;
    expectKind(window.begin('a', 'large'), 'run');
    const waiting = expectKind(window.begin('a', 'large'), 'pending');
    window.finish('a', 'large', { status: 3, payload: new Uint8Array(101) });
    // the waiter still gets the answer; nothing is kept, the scope's answers stay
    const got = await waiting.settled;
    assert.deepEqual([got?.status, got?.payload.byteLength], [3, 101]);
    assert.equal(window.stats.unkept, 1);
    assert.equal(window.stats.bytes, before);
    expectKind(window.begin('a', 'large'), 'run');
    expectKind(window.begin('a', 'small'), 'done');
    // 0 keeps only empty replies
    const { window: none } = make({ maxReplyBytes: 0 });
    expectKind(none.begin('a', 'empty'), 'run');
    none.finish('a', 'empty', { status: 0, payload: new Uint8Array(0) });
    expectKind(none.begin('a', 'empty'), 'done');
    expectKind(none.begin('a', 'one'), 'run');
    none.finish('a', 'one', reply('x'));
    expectKind(none.begin('a', 'one'), 'run');
    assert.equal(none.stats.unkept, 1);
    // the default: 64 KiB kept, a byte more not
    assert.equal(IDEMPOTENCY_DEFAULTS.maxReplyBytes, 65_536);
    const { window: d } = make();
    expectKind(d.begin('a', '64k'), 'run');
    d.finish('a', '64k', { status: 0, payload: new Uint8Array(65_536) });
    expectKind(d.begin('a', '64k'), 'done');
    expectKind(d.begin('a', '64k+1'), 'run');
    d.finish('a', '64k+1', { status: 0, payload: new Uint8Array(65_537) });
    expectKind(d.begin('a', '64k+1'), 'run');
    for (const w of [window, none, d]) w.close();
  });

  it('a flood of 100k keys with 1 KiB replies from one scope only costs that scope', () => {
    const maxBytes = 8 * 1024 * 1024;
    const { clock, window } = make({ maxBytes, maxKeysPerScope: 1000 });
    for (const victim of ['alice', 'bob']) {
      for (let i = 0; i < 100; i++) {
        expectKind(window.begin(victim, `k${i}`), 'run');
        window.finish(victim, `k${i}`, reply(`${victim}-${i}`));
      }
    }
    const kib = new Uint8Array(1024);
    let peak = 0;
    let full = 0;
    for (let i = 0; i < 100_000; i++) {
      const claim = window.begin('mallory', `flood-${i}`);
      if (claim.kind === 'full') {
        full++;
        continue;
      }
      expectKind(claim, 'run');
      window.finish('mallory', `flood-${i}`, { status: 0, payload: kib });
      peak = Math.max(peak, window.stats.bytes);
      if (i % 1000 === 0) clock.advance(1); // time moves, but far less than the window
    }
    assert.equal(full, 0, 'the flooding scope evicts its own entries instead of being refused');
    assert.ok(peak <= maxBytes, `peak ${peak} <= ${maxBytes}`);
    assert.equal(window.stats.keys, 200 + 1000);
    // its own oldest went; its newest are there
    expectKind(window.begin('mallory', 'flood-0'), 'run');
    window.abandon('mallory', 'flood-0');
    expectKind(window.begin('mallory', 'flood-99999'), 'done');
    // nobody else lost anything
    for (const victim of ['alice', 'bob']) {
      for (let i = 0; i < 100; i++) {
        assert.equal(
          text(expectKind(window.begin(victim, `k${i}`), 'done').reply),
          `${victim}-${i}`,
        );
      }
    }
    window.close();
  });

  it('many flooding scopes fill the window: then new keys are refused, no one is evicted', () => {
    const maxBytes = 1024 * 1024;
    const { window } = make({ maxBytes });
    expectKind(window.begin('alice', 'mine'), 'run');
    window.finish('alice', 'mine', reply('kept'));
    let refused = 0;
    for (let i = 0; i < 5000; i++) {
      const claim = window.begin(`sybil-${i}`, 'k');
      if (claim.kind === 'full') refused++;
      else window.finish(`sybil-${i}`, 'k', { status: 0, payload: new Uint8Array(1024) });
      assert.ok(window.stats.bytes <= maxBytes);
    }
    assert.ok(refused > 0);
    assert.equal(text(expectKind(window.begin('alice', 'mine'), 'done').reply), 'kept');
    window.close();
  });

  it('close settles waiters with null and refuses later begins', async () => {
    const { clock, window } = make();
    expectKind(window.begin('alice', 'k'), 'run');
    const waiting = expectKind(window.begin('alice', 'k'), 'pending');
    window.close();
    assert.equal(await waiting.settled, null);
    assert.equal(clock.pending, 0);
    expectKind(window.begin('alice', 'k'), 'full');
    window.finish('alice', 'k', reply('late')); // ignored
    assert.deepEqual(window.stats, { keys: 0, bytes: 0, unkept: 0 });
    window.close();
  });

  it('validates options, keys and replies with InvalidArgumentError', () => {
    const clock = new FakeClock();
    for (const [name, value] of [
      ['windowMs', 0],
      ['windowMs', 1.5],
      ['maxKeys', 0],
      ['maxBytes', -1],
      ['maxKeysPerScope', Number.NaN],
      ['maxReplyBytes', -1],
      ['maxReplyBytes', 0.5],
    ] as const) {
      assert.throws(
        () => createMemoryWindow({ [name]: value }, clock),
        (err: unknown) =>
          err instanceof HeartlineError &&
          err.code === 'HL_ERR_INVALID_ARGUMENT' &&
          err.message.includes(`"${name}"`),
      );
    }
    const { window } = make();
    assert.throws(() => window.begin('alice', ''), /idempotency key/);
    assert.throws(
      () => window.begin('alice', 'x'.repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1)),
      /idempotency key/,
    );
    expectKind(window.begin('alice', 'é'.repeat(MAX_IDEMPOTENCY_KEY_BYTES / 2)), 'run');
    assert.throws(
      () => window.finish('alice', 'k', { status: -1, payload: new Uint8Array() }),
      /reply/,
    );
    assert.equal(IDEMPOTENCY_DEFAULTS.windowMs, 120_000);
    window.close();
  });
});
