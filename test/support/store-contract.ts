/**
 * The store contracts of src/session/store.ts as tests, to run against every
 * implementation (MemoryStore and RedisStore: test/integration/store-contract.test.ts).
 *
 * {@link sessionStoreContract}: atomic commits (received seq, seen mark, numbered replies,
 * acks, inbox trim), idempotent retries, ownership fencing, the inbox with its notes, the
 * byte cap, snapshots, TTLs, tombstones and the client index. {@link presenceStoreContract}:
 * online and offline once each, lookups, and the reaping of a node not heard within its TTL.
 * Every call is one the library makes (sessions come into the store through their first
 * commit, acks through commits).
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, type TestContext, test } from 'node:test';
import type {
  PresenceEvent,
  PresenceStore,
  SessionStore,
  StoreNote,
} from '../../src/session/store.js';
import { firstCommit, sessionSnapshot } from './sessions.js';
import { waitFor } from './wait.js';

const snapshot = sessionSnapshot;

const b = (s: string): Uint8Array => Buffer.from(s);
const texts = (log: Uint8Array[]): string[] => log.map((p) => Buffer.from(p).toString());

/** Makes a fresh store for one test (and closes it when the test ends). */
export type MakeStore<T> = (t: TestContext) => Promise<T>;

/** Options of a contract run. */
export interface ContractOptions {
  /** Why the run is skipped (a missing redis-server). */
  skip?: string | undefined;
}

/** The {@link SessionStore} contract, run against the stores `make` gives. */
export function sessionStoreContract(
  name: string,
  make: MakeStore<SessionStore>,
  options: ContractOptions = {},
): void {
  describe(`SessionStore contract: ${name}`, { skip: options.skip }, () => {
    test('a first commit with a snapshot creates the session; load gives it back as written', async (t) => {
      const store = await make(t);
      const snap = snapshot({ identity: 'alice', clientId: 'phone', traceId: 'tr-1' });
      assert.deepEqual(await store.commit(snap.sessionId, firstCommit(snap, 'n1')), {
        status: 'ok',
        firstSeq: 1,
        lastSeq: 0,
        inboxTail: 0,
        created: true,
      });
      // An existing id is not created again: another node is fenced, and the owner's own
      // snapshot leaves what is stored (its token included) as it was.
      const again = { ...snap, token: randomBytes(16) };
      assert.deepEqual(await store.commit(snap.sessionId, firstCommit(again, 'n2')), {
        status: 'fenced',
        owner: 'n1',
        gen: 1,
      });
      const mine = await store.commit(snap.sessionId, firstCommit(again, 'n1'));
      assert.equal(mine.status === 'ok' && mine.created, false, 'not created again');
      const s = await store.load(snap.sessionId);
      assert.ok(s);
      assert.deepEqual(Buffer.from(s.token), Buffer.from(snap.token));
      assert.equal(s.identity, 'alice');
      assert.equal(s.clientId, 'phone');
      assert.equal(s.traceId, 'tr-1');
      assert.deepEqual(
        [s.received, s.seen, s.acked, s.lastSeq, s.bytes, s.gen, s.owner],
        [0, 0, 0, 0, 0, 1, 'n1'],
      );
      assert.deepEqual([s.inboxHead, s.inboxTail, s.ttl, s.maxBytes], [1, 0, 60_000, 1 << 20]);
      assert.equal((await store.load(snapshot().sessionId)) ?? null, null);
      const anon = snapshot();
      await store.commit(anon.sessionId, firstCommit(anon, 'n1'));
      assert.equal((await store.load(anon.sessionId))?.identity, null, 'null identity kept');
    });

    test('a commit stores received, seen and numbered replies together; acks trim', async (t) => {
      const store = await make(t);
      const snap = snapshot();
      await store.commit(snap.sessionId, firstCommit(snap, 'n1'));
      const owner = { node: 'n1', gen: 1 };
      const r1 = await store.commit(snap.sessionId, {
        received: 3,
        seen: 5,
        replies: [b('a'), b('bb')],
        owner,
      });
      assert.deepEqual(r1, { status: 'ok', firstSeq: 1, lastSeq: 2, inboxTail: 0, created: false });
      const r2 = await store.commit(snap.sessionId, { received: 2, replies: [b('ccc')], owner });
      assert.equal(r2.status === 'ok' && r2.firstSeq, 3);
      let s = (await store.load(snap.sessionId))!;
      assert.deepEqual([s.received, s.seen, s.lastSeq, s.bytes], [3, 5, 3, 6], 'never lowered');
      assert.deepEqual(texts(s.log), ['a', 'bb', 'ccc']);
      // The client acknowledged seq 2: the owner's next commit trims the log.
      await store.commit(snap.sessionId, { received: 3, replies: [], acked: 2, owner });
      s = (await store.load(snap.sessionId))!;
      assert.deepEqual([s.acked, s.lastSeq, s.bytes], [2, 3, 3]);
      assert.deepEqual(texts(s.log), ['ccc']);
      // An ack beyond what was stored never acknowledges more than there is.
      await store.commit(snap.sessionId, { received: 3, replies: [], acked: 99, owner });
      s = (await store.load(snap.sessionId))!;
      assert.deepEqual([s.acked, s.lastSeq, s.bytes, s.log.length], [3, 3, 0, 0]);
    });

    test('a retried commit stores nothing twice, and a gap is refused', async (t) => {
      const store = await make(t);
      const snap = snapshot();
      await store.commit(snap.sessionId, firstCommit(snap, 'n1'));
      const owner = { node: 'n1', gen: 1 };
      const batch = { received: 1, replies: [b('x'), b('y')], firstSeq: 1, owner };
      await store.commit(snap.sessionId, batch);
      const again = await store.commit(snap.sessionId, {
        ...batch,
        received: 2,
        replies: [b('x'), b('y'), b('z')],
      });
      assert.equal(again.status === 'ok' && again.lastSeq, 3);
      const s = (await store.load(snap.sessionId))!;
      assert.deepEqual(texts(s.log), ['x', 'y', 'z']);
      assert.equal(s.received, 2);
      const gap = await store.commit(snap.sessionId, {
        received: 2,
        replies: [b('w')],
        firstSeq: 9,
        owner,
      });
      assert.deepEqual(gap, { status: 'gap', lastSeq: 3 });
      assert.deepEqual(texts((await store.load(snap.sessionId))!.log), ['x', 'y', 'z']);
    });

    test('payloads of every byte value round-trip unchanged', async (t) => {
      const store = await make(t);
      const snap = snapshot();
      await store.commit(snap.sessionId, firstCommit(snap, 'n1'));
      const all = Uint8Array.from({ length: 256 }, (_, i) => i);
      const empty = new Uint8Array(0);
      await store.commit(snap.sessionId, { received: 0, replies: [all, empty] });
      const s = (await store.load(snap.sessionId))!;
      assert.deepEqual(Buffer.from(s.log[0]!), Buffer.from(all));
      assert.equal(s.log[1]!.length, 0);
      await store.append(snap.sessionId, all);
      const [entry] = await store.fetchInbox(snap.sessionId, 0, 10);
      assert.deepEqual(Buffer.from(entry!.payload), Buffer.from(all));
    });

    test('a claim fences the previous owner and notes it', async (t) => {
      const store = await make(t);
      const snap = snapshot();
      await store.commit(snap.sessionId, firstCommit(snap, 'n1'));
      const notes: StoreNote[] = [];
      const unsubscribe = await store.subscribe('n1', (n) => notes.push(n));
      t.after(unsubscribe);
      const claimed = await store.claim(snap.sessionId, 'n2');
      assert.equal(claimed?.owner, 'n2');
      assert.equal(claimed?.gen, 2);
      await waitFor(() => notes.length > 0, { message: 'no superseded note' });
      assert.deepEqual(notes, [{ type: 'superseded', sessionId: snap.sessionId, gen: 2 }]);
      const stale = await store.commit(snap.sessionId, {
        received: 1,
        replies: [b('late')],
        owner: { node: 'n1', gen: 1 },
      });
      assert.deepEqual(stale, { status: 'fenced', owner: 'n2', gen: 2 });
      const fresh = await store.commit(snap.sessionId, {
        received: 1,
        replies: [b('ok')],
        owner: { node: 'n2', gen: 2 },
      });
      assert.equal(fresh.status, 'ok');
      assert.deepEqual(texts((await store.load(snap.sessionId))!.log), ['ok']);
      assert.equal(await store.claim(snapshot().sessionId, 'n2'), null);
    });

    test('the inbox: append notes the owner, a commit numbers and trims it exactly once', async (t) => {
      const store = await make(t);
      const snap = snapshot({ maxBytes: 64 });
      await store.commit(snap.sessionId, firstCommit(snap, 'n1'));
      const notes: StoreNote[] = [];
      t.after(await store.subscribe('n1', (n) => notes.push(n)));
      assert.deepEqual(await store.append(snap.sessionId, b('m1')), {
        status: 'ok',
        id: 1,
        owner: 'n1',
      });
      await store.append(snap.sessionId, b('m2'));
      await store.append(snap.sessionId, b('m3'));
      await waitFor(() => notes.length === 3, { message: 'no inbox notes' });
      assert.deepEqual(notes[2], { type: 'inbox', sessionId: snap.sessionId, id: 3 });
      const entries = await store.fetchInbox(snap.sessionId, 0, 2);
      assert.deepEqual(
        entries.map((e) => [e.id, Buffer.from(e.payload).toString()]),
        [
          [1, 'm1'],
          [2, 'm2'],
        ],
      );
      const owner = { node: 'n1', gen: 1 };
      const batch = { received: 0, replies: [b('m1'), b('m2')], inboxThrough: 2, owner };
      const r = await store.commit(snap.sessionId, batch);
      assert.equal(r.status === 'ok' && r.inboxTail, 3);
      // The same commit again (its answer was lost): nothing more is trimmed or stored.
      await store.commit(snap.sessionId, { ...batch, firstSeq: 1 });
      const left = await store.fetchInbox(snap.sessionId, 0, 10);
      assert.deepEqual(
        left.map((e) => e.id),
        [3],
      );
      const s = (await store.load(snap.sessionId))!;
      assert.deepEqual(texts(s.log), ['m1', 'm2']);
      assert.deepEqual([s.inboxHead, s.inboxTail], [3, 3]);
      // The cap counts the log and the inbox together: 4 + 2 held, 64 allowed.
      assert.deepEqual(await store.append(snap.sessionId, new Uint8Array(59)), { status: 'full' });
      assert.equal((await store.append(snap.sessionId, new Uint8Array(58))).status, 'ok');
      assert.deepEqual(await store.append(snapshot().sessionId, b('x')), { status: 'missing' });
    });

    test('a commit past the byte cap deletes the session; a tombstone keeps it dead', async (t) => {
      const store = await make(t);
      const snap = snapshot({ maxBytes: 10, clientId: 'capped' });
      await store.commit(snap.sessionId, firstCommit(snap, 'n1'));
      const owner = { node: 'n1', gen: 1 };
      assert.equal(
        (await store.commit(snap.sessionId, { received: 1, replies: [b('12345')], owner })).status,
        'ok',
      );
      const over = await store.commit(snap.sessionId, {
        received: 2,
        replies: [b('123456')],
        owner,
      });
      assert.deepEqual(over, { status: 'overflow' });
      assert.equal(await store.load(snap.sessionId), null);
      assert.deepEqual(await store.sessionsOf('capped'), []);
      // A stale owner writing its snapshot back is refused.
      const back = await store.commit(snap.sessionId, {
        received: 2,
        replies: [],
        owner,
        snapshot: snap,
      });
      assert.equal(back.status, 'fenced');
      assert.equal(await store.load(snap.sessionId), null);
    });

    test('a snapshot creates a missing session and rebases one that is behind', async (t) => {
      const store = await make(t);
      const snap = snapshot({ clientId: 'snap-client' });
      const owner = { node: 'n1', gen: 4 };
      const plain = await store.commit(snap.sessionId, { received: 1, replies: [], owner });
      assert.deepEqual(plain, { status: 'missing' });
      const created = await store.commit(snap.sessionId, {
        received: 7,
        seen: 8,
        replies: [b('s11'), b('s12')],
        firstSeq: 11,
        acked: 10,
        inboxThrough: 5,
        owner,
        snapshot: snap,
      });
      assert.deepEqual(created, {
        status: 'ok',
        firstSeq: 11,
        lastSeq: 12,
        inboxTail: 5,
        created: true,
      });
      let s = (await store.load(snap.sessionId))!;
      assert.deepEqual(
        [s.received, s.seen, s.acked, s.lastSeq, s.gen, s.owner, s.inboxHead],
        [7, 8, 10, 12, 4, 'n1', 6],
      );
      assert.deepEqual(texts(s.log), ['s11', 's12']);
      assert.deepEqual(await store.sessionsOf('snap-client'), [snap.sessionId]);
      // The node is ahead of the store (it served its client while the store was away).
      const rebased = await store.commit(snap.sessionId, {
        received: 9,
        replies: [b('s20')],
        firstSeq: 20,
        acked: 19,
        owner,
        snapshot: snap,
      });
      assert.equal(rebased.status === 'ok' && rebased.lastSeq, 20);
      s = (await store.load(snap.sessionId))!;
      assert.deepEqual([s.acked, s.lastSeq, s.bytes], [19, 20, 3]);
      assert.deepEqual(texts(s.log), ['s20']);
    });

    test('touch refreshes owned sessions and reports the inbox tail; TTLs expire', async (t) => {
      const store = await make(t);
      const snap = snapshot({ ttl: 400 });
      await store.commit(snap.sessionId, firstCommit(snap, 'n1'));
      await store.append(snap.sessionId, b('hello'));
      const other = snapshot();
      await store.commit(other.sessionId, firstCommit(other, 'n2'));
      assert.deepEqual(
        await store.touch([snap.sessionId, other.sessionId, snapshot().sessionId], 'n1'),
        [1, -1, -2],
      );
      // Touched every 100 ms the session outlives its TTL many times over...
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(await store.touch([snap.sessionId], 'n1'), [1]);
      }
      // ...and without touches it expires, inbox included.
      await waitFor(async () => (await store.load(snap.sessionId)) === null, {
        timeout: 5000,
        message: 'the session did not expire',
      });
      assert.deepEqual(await store.fetchInbox(snap.sessionId, 0, 10), []);
    });

    test('delete is fenced, leaves the client index, and sessionsOf lists live sessions', async (t) => {
      const store = await make(t);
      const a = snapshot({ clientId: 'multi' });
      const c = snapshot({ clientId: 'multi' });
      await store.commit(a.sessionId, firstCommit(a, 'n1'));
      await store.commit(c.sessionId, firstCommit(c, 'n1'));
      assert.deepEqual((await store.sessionsOf('multi')).sort(), [a.sessionId, c.sessionId].sort());
      assert.equal(await store.delete(a.sessionId, { node: 'n2', gen: 1 }), false);
      assert.equal(await store.delete(a.sessionId, { node: 'n1', gen: 1 }), true);
      assert.equal(await store.delete(a.sessionId), false);
      assert.deepEqual(await store.sessionsOf('multi'), [c.sessionId]);
      assert.deepEqual(await store.sessionsOf('nobody'), []);
    });
  });
}

/** The {@link PresenceStore} contract, run against the stores `make` gives. */
export function presenceStoreContract(
  name: string,
  make: MakeStore<PresenceStore>,
  options: ContractOptions = {},
): void {
  describe(`PresenceStore contract: ${name}`, { skip: options.skip }, () => {
    test('presence: online and offline once each, lookups by session and client id', async (t) => {
      const store = await make(t);
      const events: PresenceEvent[] = [];
      t.after(await store.onPresence((e) => events.push(e)));
      const sid = randomBytes(16).toString('hex');
      const entry = { node: 'p1', sessionId: sid, clientId: 'cli' };
      await store.presenceBeat('p1', 60_000);
      await store.presenceOnline(entry);
      await store.presenceOnline(entry);
      assert.deepEqual(await store.presenceLookup(sid), [entry]);
      assert.deepEqual(await store.presenceLookup('cli'), [entry]);
      assert.deepEqual(await store.presenceLookup('nobody'), []);
      await store.presenceOffline(entry);
      await store.presenceOffline(entry);
      assert.deepEqual(await store.presenceLookup('cli'), []);
      await waitFor(() => events.length >= 2, { message: 'no presence events' });
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(events, [
        { ...entry, online: true },
        { ...entry, online: false },
      ]);
    });

    test('presence: a node not heard within its TTL is reaped by another node, once', async (t) => {
      const store = await make(t);
      const events: PresenceEvent[] = [];
      t.after(await store.onPresence((e) => events.push(e)));
      const dead = { node: 'dies', sessionId: randomBytes(16).toString('hex'), clientId: '' };
      const alive = { node: 'lives', sessionId: randomBytes(16).toString('hex'), clientId: '' };
      assert.equal(await store.presenceBeat('dies', 300), true, 'a first beat is fresh');
      assert.equal(await store.presenceBeat('dies', 300), false);
      await store.presenceBeat('lives', 60_000);
      await store.presenceOnline(dead);
      await store.presenceOnline(alive);
      assert.equal((await store.presenceLookup(dead.sessionId)).length, 1);
      // Past its TTL the dead node's entries stop counting at once...
      await waitFor(async () => (await store.presenceLookup(dead.sessionId)).length === 0, {
        timeout: 5000,
        message: 'the dead node still counts',
      });
      // ...and the next beat of a live node removes them, announcing each offline once.
      await store.presenceBeat('lives', 60_000);
      await store.presenceBeat('lives', 60_000);
      await waitFor(() => events.some((e) => !e.online), { message: 'no offline event' });
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(
        events.filter((e) => !e.online),
        [{ ...dead, online: false }],
      );
      assert.deepEqual(await store.presenceLookup(alive.sessionId), [alive]);
      // A node that was reaped beats "fresh" again and re-announces what it holds.
      assert.equal(await store.presenceBeat('dies', 300), true);
      await store.presenceClear('lives');
      assert.deepEqual(await store.presenceLookup(alive.sessionId), []);
    });
  });
}
