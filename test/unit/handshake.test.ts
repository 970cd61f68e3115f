/**
 * The handshake decision (src/server/handshake.ts) without sockets: HELLO frames built by
 * hand, sessions as the server creates them, the single-node directory or a cluster node
 * on a MemoryStore, and a fake clock for the store timeout.
 */

import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { CLUSTER_DEFAULTS } from '../../src/cluster/defaults.js';
import { joinCluster } from '../../src/cluster/node.js';
import { fixedDetector } from '../../src/health/index.js';
import { resolveCommon } from '../../src/options.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { FrameType, type HelloFrame, PROTOCOL_VERSION } from '../../src/protocol/frames.js';
import { Admission, resolveAdmission } from '../../src/server/admission.js';
import {
  type DirectoryHost,
  LocalDirectory,
  type SessionDirectory,
} from '../../src/server/directory.js';
import {
  type Authenticate,
  type Decided,
  decideHandshake,
  type HandshakeDecision,
  type HandshakeHost,
  type HandshakePeer,
  type PeerInfo,
} from '../../src/server/handshake.js';
import { ServerConnection } from '../../src/server/server-connection.js';
import { SessionQuota } from '../../src/server/session-quota.js';
import { MemoryStore } from '../../src/session/memory-store.js';
import type { ClusterStore } from '../../src/session/store.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { TimingWheel } from '../../src/time/wheel.js';
import { firstCommit } from '../support/sessions.js';

const POLICY = {
  interval: 10_000,
  timeout: 30_000,
  minInterval: 1000,
  maxInterval: 120_000,
  maxTimeout: 300_000,
};
const ADDRESS = '10.0.0.1';

/**
 * What authenticate is shown of the peer. These hooks read only the address, so the
 * socket is a stand-in: a unit test opens none (test/loopback covers the real one).
 */
const PEER_INFO: PeerInfo = {
  remoteAddress: ADDRESS,
  remotePort: 40_000,
  socket: Object.freeze({ remoteAddress: ADDRESS }) as unknown as PeerInfo['socket'],
  tls: null,
};

/** A link as the decision sees it; `close()` is what a peer leaving does to it. */
class Peer implements HandshakePeer {
  open = true;
  readonly remoteAddress = ADDRESS;
  info(): PeerInfo {
    return PEER_INFO;
  }
}

let nextId = 0;

/** A server's worth of state around the decision: its sessions, quota and directory. */
class Harness {
  readonly clock = new FakeClock();
  readonly wheel = new TimingWheel(this.clock);
  readonly config = resolveCommon({ clock: this.clock }, this.clock, fixedDetector());
  readonly sessions = new Map<string, ServerConnection>();
  readonly quota: SessionQuota;
  readonly admission: Admission;
  /** The identities admitSession was asked about, in order (undefined: before authenticate). */
  readonly admitted: Array<string | null | undefined> = [];
  closing = false;
  readonly directory: SessionDirectory;
  readonly host: HandshakeHost;
  readonly directoryHost: DirectoryHost;

  constructor(
    t: TestContext,
    o: {
      authenticate?: Authenticate;
      maxSessionsPerIdentity?: number;
      cluster?: { store: ClusterStore; storeTimeout?: number };
    } = {},
  ) {
    this.admission = new Admission(
      resolveAdmission({ maxSessionsPerIdentity: o.maxSessionsPerIdentity ?? 1000 }, 1 << 20),
      this.clock.now(),
      () => 0.5,
    );
    this.quota = new SessionQuota(this.admission.config);
    this.directoryHost = {
      clock: this.clock,
      nodeId: 'here',
      sessionTtl: 60_000,
      maxBytes: this.config.maxBufferedBytes,
      maxFrame: this.config.maxFrame,
      presence: () => {},
      store: () => {},
    };
    this.directory = o.cluster
      ? joinCluster(o.cluster).createDirectory(this.directoryHost)
      : new LocalDirectory(this.directoryHost, this.sessions);
    t.after(() => this.directory.close());
    this.host = {
      config: {
        policy: POLICY,
        maxHelloFieldBytes: 64,
        maxAuthBytes: 32,
        authenticate: o.authenticate ?? null,
      },
      sessions: this.sessions,
      directory: this.directory,
      closing: () => this.closing,
      admitSession: (_hello, address, identity) => {
        this.admitted.push(identity);
        const excess = this.quota.check(address ?? '?', identity, this.sessions.size);
        if (excess === null) return null;
        return excess.victim === null ? this.admission.refuseSession(excess.limit) : null;
      },
    };
  }

  /** A session as the server registers it. */
  session(identity: string | null = null, token = randomToken()): ServerConnection {
    const sessionId = (++nextId).toString(16).padStart(32, '0');
    const conn = new ServerConnection(this.config, this.wheel, hostOf(), 60_000, {
      sessionId,
      token,
      clientId: `c${nextId}`,
      traceId: '',
      identity,
      remote: `${ADDRESS}:1`,
    });
    this.sessions.set(sessionId, conn);
    this.quota.added(conn, ADDRESS);
    this.directory.adopt(conn, null);
    return conn;
  }

  decide(hello: HelloFrame, peer = new Peer()): Decided {
    return decideHandshake(hello, peer, this.host);
  }
}

function hostOf() {
  return { opened: () => {}, disconnected: () => {}, release: () => {} };
}

function randomToken(): Uint8Array {
  return Uint8Array.from({ length: 16 }, (_, i) => (nextId * 31 + i * 7) & 0xff);
}

function hello(o: Partial<HelloFrame> = {}): HelloFrame {
  return {
    type: FrameType.HELLO,
    version: PROTOCOL_VERSION,
    interval: 0,
    timeout: 0,
    auth: new Uint8Array(0),
    resume: null,
    clientId: 'client',
    traceId: '',
    maxFrame: 1 << 20,
    ...o,
  };
}

function resumeOf(conn: ServerConnection, lastReceived = 0, token = conn.token) {
  return { sessionId: Buffer.from(conn.sessionKey, 'hex'), token, lastReceived };
}

/** A decision made without waiting: the single-node server decides within the HELLO's turn. */
function now(d: Decided): HandshakeDecision {
  assert.ok(!(d instanceof Promise), 'decided at once, without a promise');
  return d;
}

function refusalOf(d: HandshakeDecision) {
  assert.equal(d.kind, 'refuse', `refused, got ${d.kind}`);
  return (d as Extract<HandshakeDecision, { kind: 'refuse' }>).refusal;
}

describe('handshake decision: a single node', () => {
  it('a HELLO without resume makes a new session, with the heartbeat the policy grants', (t) => {
    const h = new Harness(t);
    const d = now(h.decide(hello({ interval: 500, timeout: 0 })));
    assert.deepEqual(d, {
      kind: 'create',
      identity: null,
      granted: { interval: 1000, timeout: 3000 },
      restored: null,
    });
    assert.deepEqual(h.admitted, [undefined, null], 'admitted before and after authenticate');
  });

  it('a resume of a held session resumes it with a new single-use token', (t) => {
    const h = new Harness(t);
    const conn = h.session();
    const old = conn.token;
    const d = now(h.decide(hello({ resume: resumeOf(conn) })));
    assert.equal(d.kind, 'resume');
    if (d.kind !== 'resume') return;
    assert.equal(d.session, conn);
    assert.notDeepEqual(Buffer.from(d.token), Buffer.from(old));
    assert.deepEqual(Buffer.from(conn.token), Buffer.from(d.token), 'the new token is in force');
    assert.ok(
      conn.acceptsToken(old),
      'the presented one holds until the client shows it has the new',
    );
  });

  it('a resume of a session this server does not hold is a new session (the client sees session-lost)', (t) => {
    const h = new Harness(t);
    const gone = h.session();
    h.sessions.delete(gone.sessionKey);
    const d = now(h.decide(hello({ resume: resumeOf(gone) })));
    assert.equal(d.kind, 'create');
    if (d.kind === 'create') assert.equal(d.restored, null);
  });

  it('a resume with a wrong token is a new session, and the held one keeps its token', (t) => {
    const h = new Harness(t);
    const conn = h.session();
    const token = conn.token;
    const wrong = Uint8Array.from(token, (b) => b ^ 0xff);
    const d = now(h.decide(hello({ resume: resumeOf(conn, 0, wrong) })));
    assert.equal(d.kind, 'create');
    assert.deepEqual(Buffer.from(conn.token), Buffer.from(token));
  });

  it('a resume claiming more than was sent is a protocol error, and leaves the session as it is', (t) => {
    const h = new Harness(t);
    const conn = h.session();
    const token = conn.token;
    const r = refusalOf(now(h.decide(hello({ resume: resumeOf(conn, 5) }))));
    assert.equal(r.reason, 'protocol-error');
    assert.equal(r.code, CloseCode.PROTOCOL_ERROR);
    assert.equal(r.error?.code, 'HL_ERR_UNEXPECTED_FRAME');
    assert.match(r.message, /lastReceived 5 is outside \[0, 0\]/);
    assert.deepEqual(Buffer.from(conn.token), Buffer.from(token), 'the token did not rotate');
  });

  it('an oversized HELLO is refused before admission and authenticate see it', (t) => {
    let asked = 0;
    const h = new Harness(t, {
      authenticate: () => {
        asked++;
        return true;
      },
    });
    const r = refusalOf(now(h.decide(hello({ clientId: 'x'.repeat(65) }))));
    assert.equal(r.reason, 'policy-violation');
    assert.equal(r.code, CloseCode.POLICY_VIOLATION);
    assert.equal(r.error?.code, 'HL_ERR_POLICY_VIOLATION');
    const auth = refusalOf(now(h.decide(hello({ auth: new Uint8Array(33) }))));
    assert.match(auth.message, /auth is 33 bytes/);
    assert.equal(asked, 0);
    assert.deepEqual(h.admitted, []);
  });
});

describe('handshake decision: authenticate', () => {
  it('a refusal, sync or async, is CLOSE(auth failed)', async (t) => {
    for (const verdict of [false, null, ''] as const) {
      for (const async of [false, true]) {
        const h = new Harness(t, {
          authenticate: () => (async ? Promise.resolve(verdict) : verdict),
        });
        const d = h.decide(hello());
        assert.equal(d instanceof Promise, async, 'only an async hook makes the handshake wait');
        const r = refusalOf(await d);
        assert.equal(r.reason, 'auth-failed');
        assert.equal(r.code, CloseCode.AUTH_FAILED);
        assert.equal(r.error?.code, 'HL_ERR_AUTH_FAILED');
        assert.deepEqual(h.admitted, [undefined], 'no second admission for a refused peer');
      }
    }
  });

  it('an identity binds the new session, and a resume under another identity is a new session', async (t) => {
    const h = new Harness(t, {
      authenticate: (info, peer) => {
        assert.equal(peer.remoteAddress, ADDRESS);
        return Buffer.from(info.auth).toString();
      },
    });
    const alice = h.session('alice');
    const d = await h.decide(hello({ auth: Buffer.from('bob'), resume: resumeOf(alice) }));
    assert.equal(d.kind, 'create');
    if (d.kind === 'create') assert.equal(d.identity, 'bob');
    const same = await h.decide(hello({ auth: Buffer.from('alice'), resume: resumeOf(alice) }));
    assert.equal(same.kind, 'resume');
  });

  it('the session quota refuses a new session with CLOSE(overloaded), its limit and retry hint', (t) => {
    const h = new Harness(t, {
      authenticate: () => 'alice',
      maxSessionsPerIdentity: 1,
    });
    h.session('alice');
    const r = refusalOf(now(h.decide(hello())));
    assert.equal(r.reason, 'overloaded');
    assert.equal(r.code, CloseCode.OVERLOADED);
    assert.equal(r.limit, 'max-sessions-per-identity');
    assert.ok(r.retryAfter > 0, `a retry hint: ${r.retryAfter}`);
    assert.equal(r.error?.code, 'HL_ERR_OVERLOADED');
    // Known only once authenticate answered: the first admission could not count it.
    assert.deepEqual(h.admitted, [undefined, 'alice']);
  });

  it('the link closing while authenticate runs ends the handshake: nothing to do', async (t) => {
    let answer: (v: boolean) => void = () => {};
    const h = new Harness(t, { authenticate: () => new Promise<boolean>((r) => (answer = r)) });
    const peer = new Peer();
    const d = h.decide(hello(), peer);
    peer.open = false;
    answer(true);
    assert.deepEqual(await d, { kind: 'gone' });
    assert.deepEqual(h.admitted, [undefined], 'no session admitted for a link that is gone');
  });

  it('the server closing while authenticate runs refuses with CLOSE(going away)', async (t) => {
    let answer: (v: boolean) => void = () => {};
    const h = new Harness(t, { authenticate: () => new Promise<boolean>((r) => (answer = r)) });
    const d = h.decide(hello());
    h.closing = true;
    answer(true);
    const r = refusalOf(await d);
    assert.equal(r.reason, 'going-away');
    assert.equal(r.code, CloseCode.GOING_AWAY);
    assert.equal(r.error, undefined);
  });

  it('a hook that throws fails the decision (the server answers CLOSE(internal error))', async (t) => {
    const boom = new Error('boom');
    const sync = new Harness(t, {
      authenticate: () => {
        throw boom;
      },
    });
    assert.throws(() => sync.decide(hello()), boom);
    const async = new Harness(t, { authenticate: () => Promise.reject(boom) });
    await assert.rejects(async () => async.decide(hello()), boom);
  });
});

/** A store whose `load` waits until the test lets it go (or never, with `hold`). */
function gatedStore(store: MemoryStore, gate: { hold: boolean; fail?: Error }): ClusterStore {
  return new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      if (prop !== 'load') return value.bind(target);
      return (id: string) => {
        if (gate.fail) return Promise.reject(gate.fail);
        if (gate.hold) return new Promise(() => {});
        return target.load(id);
      };
    },
  });
}

describe('handshake decision: with a session store (cluster node on a MemoryStore)', () => {
  /** A session node 'elsewhere' wrote to the store, with its resume token. */
  async function storedElsewhere(store: MemoryStore, token: Uint8Array): Promise<string> {
    const sessionId = (++nextId).toString(16).padStart(32, '0');
    const snapshot = {
      sessionId,
      token,
      identity: null,
      clientId: 'far',
      traceId: '',
      ttl: 60_000,
      maxBytes: 1 << 20,
    };
    assert.equal((await store.commit(sessionId, firstCommit(snapshot, 'elsewhere'))).status, 'ok');
    return sessionId;
  }

  it('a resume of a session another node held takes it over, with a new token', async (t) => {
    const clock = new FakeClock();
    const store = new MemoryStore({ clock });
    const h = new Harness(t, { cluster: { store } });
    const token = randomToken();
    const sessionId = await storedElsewhere(store, token);
    const resume = { sessionId: Buffer.from(sessionId, 'hex'), token, lastReceived: 0 };
    const d = h.decide(hello({ resume }));
    assert.ok(d instanceof Promise, 'the store is asked');
    const decided = await d;
    assert.equal(decided.kind, 'create');
    if (decided.kind !== 'create') return;
    assert.equal(decided.restored?.sessionId, sessionId);
    assert.equal(decided.restored?.clientId, 'far');
    assert.notDeepEqual(Buffer.from(decided.restored!.token), Buffer.from(token));
    assert.deepEqual(Buffer.from(decided.restored!.previousToken!), Buffer.from(token));
  });

  it('a resume the store does not know (or with a wrong token) is a new session', async (t) => {
    const store = new MemoryStore();
    const h = new Harness(t, { cluster: { store } });
    const token = randomToken();
    const sessionId = await storedElsewhere(store, token);
    const wrong = Uint8Array.from(token, (b) => b ^ 1);
    for (const resume of [
      { sessionId: Buffer.alloc(16, 0xee), token, lastReceived: 0 },
      { sessionId: Buffer.from(sessionId, 'hex'), token: wrong, lastReceived: 0 },
    ]) {
      const d = await h.decide(hello({ resume }));
      assert.deepEqual(d.kind === 'create' && d.restored, null);
    }
  });

  it('a store that fails refuses the resume with CLOSE(overloaded) and its retry hint', async (t) => {
    const gate = { hold: false, fail: new Error('connection refused') };
    const h = new Harness(t, { cluster: { store: gatedStore(new MemoryStore(), gate) } });
    const resume = { sessionId: Buffer.alloc(16, 1), token: randomToken(), lastReceived: 0 };
    const r = refusalOf(await h.decide(hello({ resume })));
    assert.equal(r.reason, 'overloaded');
    assert.equal(r.code, CloseCode.OVERLOADED);
    assert.equal(r.retryAfter, CLUSTER_DEFAULTS.storeRetryAfter);
    assert.equal(r.error?.code, 'HL_ERR_STORE');
    assert.equal(r.limit, undefined, 'not an admission limit');
  });

  it('a store that does not answer within storeTimeout (fake clock) refuses the same way', async (t) => {
    const gate = { hold: true };
    const h = new Harness(t, {
      cluster: { store: gatedStore(new MemoryStore(), gate), storeTimeout: 500 },
    });
    const resume = { sessionId: Buffer.alloc(16, 2), token: randomToken(), lastReceived: 0 };
    const d = h.decide(hello({ resume }));
    h.clock.advance(499);
    await h.clock.advanceAsync(1);
    const r = refusalOf(await d);
    assert.equal(r.retryAfter, CLUSTER_DEFAULTS.storeRetryAfter);
    assert.match(r.error?.message ?? '', /did not answer within 500 ms/);
  });

  it('the link closing while the store is asked ends the handshake: nothing to do', async (t) => {
    const gate = { hold: true };
    const h = new Harness(t, {
      cluster: { store: gatedStore(new MemoryStore(), gate), storeTimeout: 500 },
    });
    const peer = new Peer();
    const resume = { sessionId: Buffer.alloc(16, 3), token: randomToken(), lastReceived: 0 };
    const d = h.decide(hello({ resume }), peer);
    peer.open = false;
    await h.clock.advanceAsync(500);
    assert.deepEqual(await d, { kind: 'gone' });
  });
});
