/**
 * The handshake decision: from a HELLO to what the server does with it (a new session, a
 * resume, or a refusal), through the checks in their order: HELLO sizes, admission,
 * authenticate, resume or takeover, admission again once the identity is known. It
 * touches no socket and writes nothing: the server applies the decision in one place.
 *
 * A step that waits (authenticate, the session store) goes through {@link after}, the one
 * place that looks at what may have changed meanwhile: the link closed (the peer left,
 * the handshake timed out, the server closed it) or the server began closing. A step that
 * answers at once does not wait, so a server without an async hook or a store decides
 * within the turn that read the HELLO, as it always has.
 */

import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { sessionIdString } from '../connection.js';
import { type HeartlineError, ProtocolError } from '../errors.js';
import { errorFor } from '../link.js';
import { CloseCode, type CloseReason } from '../protocol/close-codes.js';
import type { HelloFrame } from '../protocol/frames.js';
import type { StoredSession } from '../session/store.js';
import type { Transport } from '../transport/transport.js';
import { type AdmissionLimit, type Refusal, refusalInfo } from './admission.js';
import type { ResumeRequest, SessionDirectory } from './directory.js';
import { type GrantPolicy, grantHeartbeat } from './grant.js';
import type { ServerConnection } from './server-connection.js';
import { type TlsPeerInfo, tlsPeerInfo } from './tls.js';

/** What the authenticate hook sees of a HELLO. */
export interface HelloInfo {
  /** The auth field of HELLO (opaque bytes; a token as UTF-8 is typical). */
  auth: Buffer;
  clientId: string;
  traceId: string;
  /** True when the client asks to resume a session. */
  resume: boolean;
}

/** What the authenticate hook sees of the peer. */
export interface PeerInfo {
  /** The peer's address ('memory' for the in-memory transport of the tests). */
  remoteAddress: string;
  /** The peer's port (0 where the transport has none). */
  remotePort: number;
  /**
   * The TCP or TLS socket the HELLO came on; null when the link runs on another
   * transport (the in-memory pair of the tests, a WebSocket later), which has none.
   */
  socket: Socket | null;
  /** TLS facts (client certificate, protocol) when the server runs TLS; null otherwise. */
  tls: TlsPeerInfo | null;
}

/**
 * Decides whether a client may connect. Return true (or a non-empty identity string, to
 * which the session is bound) to accept; false or null to refuse with CLOSE(auth failed).
 */
export type Authenticate = (
  hello: HelloInfo,
  peer: PeerInfo,
) => boolean | string | null | Promise<boolean | string | null>;

/** The heartbeat a HELLO was granted (before `heartbeatPolicy` adjusts it). */
export interface Granted {
  interval: number;
  timeout: number;
}

/** Why a handshake is refused, and what its CLOSE and `rejected` event say. */
export interface HandshakeRefusal {
  reason: CloseReason;
  code: number;
  message: string;
  /** The client's retry hint (ms), 0 for none. */
  retryAfter: number;
  /** The typed error of every refusal but CLOSE(going away). */
  error?: HeartlineError;
  /** The admission limit, when admission control refused it. */
  limit?: AdmissionLimit;
}

/** What the server does with a HELLO. */
export type HandshakeDecision =
  /**
   * A new session; `restored` when it is one taken over from the session store (the
   * WELCOME then says resumed).
   */
  | {
      kind: 'create';
      identity: string | null;
      granted: Granted;
      restored: StoredSession | null;
    }
  /** A session this server holds, resumed; `token` is the WELCOME's new resume token. */
  | { kind: 'resume'; session: ServerConnection; token: Uint8Array; granted: Granted }
  /** Turned away with a CLOSE. */
  | { kind: 'refuse'; refusal: HandshakeRefusal }
  /** The link closed while the handshake waited: its close was reported already. */
  | { kind: 'gone' };

/** A decision, or the promise of one when a step had to wait. */
export type Decided = HandshakeDecision | Promise<HandshakeDecision>;

/** The server's settings the decision reads. */
export interface HandshakeConfig {
  readonly policy: GrantPolicy;
  readonly maxHelloFieldBytes: number;
  readonly maxAuthBytes: number;
  readonly authenticate: Authenticate | null;
}

/** What the decision needs of the server. */
export interface HandshakeHost {
  readonly config: HandshakeConfig;
  /** The server's sessions by session id. */
  readonly sessions: ReadonlyMap<string, ServerConnection>;
  readonly directory: SessionDirectory;
  /** True once the server began closing. */
  closing(): boolean;
  /**
   * Admission of a session (load, quotas; may evict an abandoned session): null to go on.
   * Called before authenticate with `identity` undefined, and again once it is known.
   */
  admitSession(
    hello: HelloFrame,
    remoteAddress: string | undefined,
    identity?: string | null,
  ): Refusal | null;
}

/** The link a HELLO came on, as the decision sees it. */
export interface HandshakePeer {
  /** False once the link closed or began closing. */
  readonly open: boolean;
  readonly remoteAddress: string | undefined;
  /** What `authenticate` is shown (built only when there is a hook). */
  info(): PeerInfo;
}

/** What `authenticate` sees of the transport a HELLO came on (a socket, or another). */
export function peerInfo(transport: Transport): PeerInfo {
  return {
    remoteAddress: transport.remoteAddress ?? '',
    remotePort: transport.remotePort ?? 0,
    socket: transport instanceof Socket ? transport : null,
    tls: transport instanceof TLSSocket ? tlsPeerInfo(transport) : null,
  };
}

/** Decides what the server does with `hello`, which arrived on `peer`. */
export function decideHandshake(
  hello: HelloFrame,
  peer: HandshakePeer,
  host: HandshakeHost,
): Decided {
  // Checked first: nothing of an oversized HELLO reaches admission, authenticate or a session.
  const oversized = oversizedHello(hello, host.config);
  if (oversized !== null) {
    return refuse('policy-violation', CloseCode.POLICY_VIOLATION, oversized);
  }
  // Before authenticate, which may be costly; checked again once the identity is known.
  const early = host.admitSession(hello, peer.remoteAddress);
  if (early) return admissionRefusal(early);
  const auth = host.config.authenticate;
  if (!auth) return identified(hello, peer, host, null);
  const info: HelloInfo = {
    auth: Buffer.from(hello.auth),
    clientId: hello.clientId,
    traceId: hello.traceId,
    resume: hello.resume !== null,
  };
  return after(auth(info, peer.info()), peer, host, (verdict) => {
    if (verdict === false || verdict === null || verdict === '') {
      return refuse('auth-failed', CloseCode.AUTH_FAILED, 'authentication failed');
    }
    return identified(hello, peer, host, typeof verdict === 'string' ? verdict : null);
  });
}

/** Authenticated as `identity`: a resume of a session held here, or a new session. */
function identified(
  hello: HelloFrame,
  peer: HandshakePeer,
  host: HandshakeHost,
  identity: string | null,
): Decided {
  const granted = grantHeartbeat(host.config.policy, hello.interval, hello.timeout);
  const resume = hello.resume;
  const found = resume ? findSession(host.sessions, resume, identity, hello.version) : null;
  if (resume === null || found === null) return create(hello, peer, host, identity, granted);
  // With a store, only while this node still owns it: it may have moved to another node.
  return after(host.directory.keeps(found), peer, host, (kept) =>
    kept
      ? resumeHeld(found, resume, peer, host, granted)
      : create(hello, peer, host, identity, granted),
  );
}

function resumeHeld(
  session: ServerConnection,
  resume: ResumeRequest,
  peer: HandshakePeer,
  host: HandshakeHost,
  granted: Granted,
): Decided {
  // The client cannot have received more than was sent, nor less than it acknowledged.
  if (resume.lastReceived > session.sentSeq || resume.lastReceived < session.ackedSeq) {
    const message = `resume lastReceived ${resume.lastReceived} is outside [${session.ackedSeq}, ${session.sentSeq}] (acknowledged, sent)`;
    // The session stays as it is: a peer that knows its token still cannot corrupt it.
    return {
      kind: 'refuse',
      refusal: {
        reason: 'protocol-error',
        code: CloseCode.PROTOCOL_ERROR,
        message,
        retryAfter: 0,
        error: new ProtocolError('HL_ERR_UNEXPECTED_FRAME', message),
      },
    };
  }
  // Single-use tokens: with a store, the new one is in force once the store holds it.
  return after(host.directory.rotateToken(session, resume.token), peer, host, (token) => ({
    kind: 'resume',
    session,
    token,
    granted,
  }));
}

/** A new session, or one taken over from the store when another node held it. */
function create(
  hello: HelloFrame,
  peer: HandshakePeer,
  host: HandshakeHost,
  identity: string | null,
  granted: Granted,
): Decided {
  const refusal = host.admitSession(hello, peer.remoteAddress, identity);
  if (refusal) return admissionRefusal(refusal);
  const created = (restored: StoredSession | null): HandshakeDecision => ({
    kind: 'create',
    identity,
    granted,
    restored,
  });
  if (hello.resume === null) return created(null);
  // Held by another node of the cluster (or by this one before a restart): take it over.
  return after(host.directory.takeOver(hello.resume, identity), peer, host, created, (err) => {
    const { message, retryAfter, error } = host.directory.refusal(err);
    return {
      kind: 'refuse',
      refusal: { reason: 'overloaded', code: CloseCode.OVERLOADED, message, retryAfter, error },
    };
  });
}

/**
 * Goes on with `next` once `value` is there. Only a promise waits, and after a wait the
 * state is checked again, here and nowhere else: a link that closed meanwhile ends the
 * handshake ('gone': its close was reported as it happened), and so does a server that
 * began closing (the link gets CLOSE(going away)). `failed` turns a rejection into a
 * decision; without it, the rejection is the handshake's failure.
 */
function after<T>(
  value: T | PromiseLike<T>,
  peer: HandshakePeer,
  host: HandshakeHost,
  next: (value: T) => Decided,
  failed?: (err: unknown) => HandshakeDecision,
): Decided {
  if (!isThenable(value)) return next(value);
  return Promise.resolve(value).then(
    (v) => interrupted(peer, host) ?? next(v),
    (err: unknown) => {
      if (failed === undefined) throw err;
      const decision = failed(err);
      return interrupted(peer, host) ?? decision;
    },
  );
}

/** What changed while the handshake waited, as a decision; null when nothing did. */
function interrupted(peer: HandshakePeer, host: HandshakeHost): HandshakeDecision | null {
  if (!peer.open) return GONE;
  if (host.closing()) return refuse('going-away', CloseCode.GOING_AWAY, 'server closing');
  return null;
}

function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

const GONE: HandshakeDecision = Object.freeze({ kind: 'gone' });

/** A refusal whose error is the one the link gives a close for `reason` ({@link errorFor}). */
function refuse(reason: CloseReason, code: number, message: string): HandshakeDecision {
  const error = errorFor(reason, message);
  return {
    kind: 'refuse',
    refusal: { reason, code, message, retryAfter: 0, ...(error ? { error } : {}) },
  };
}

/** An admission refusal: CLOSE(overloaded) with its retry hint, reported with its limit. */
function admissionRefusal(r: Refusal): HandshakeDecision {
  const { error } = refusalInfo(r);
  return {
    kind: 'refuse',
    refusal: {
      reason: 'overloaded',
      code: CloseCode.OVERLOADED,
      message: r.message,
      retryAfter: r.retryAfter,
      ...(error ? { error } : {}),
      limit: r.limit,
    },
  };
}

/**
 * Why a HELLO's fields exceed the server's limits, or null. A peer must not make the
 * server keep (or log, or serve on the admin endpoint) what it likes per session.
 */
export function oversizedHello(
  hello: HelloFrame,
  limits: Pick<HandshakeConfig, 'maxHelloFieldBytes' | 'maxAuthBytes'>,
): string | null {
  const { maxHelloFieldBytes, maxAuthBytes } = limits;
  if (hello.auth.length > maxAuthBytes) {
    return `HELLO auth is ${hello.auth.length} bytes, over the server's limit of ${maxAuthBytes}`;
  }
  for (const [name, value] of [
    ['clientId', hello.clientId],
    ['traceId', hello.traceId],
  ] as const) {
    // A UTF-16 unit is at most 3 UTF-8 bytes: short strings need no count.
    if (value.length * 3 <= maxHelloFieldBytes) continue;
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > maxHelloFieldBytes) {
      return `HELLO ${name} is ${bytes} bytes, over the server's limit of ${maxHelloFieldBytes}`;
    }
  }
  return null;
}

/**
 * The session a resume names, if the server holds it, the token matches and the identity
 * is the same (`undefined`: not known yet, any identity).
 */
export function findSession(
  sessions: ReadonlyMap<string, ServerConnection>,
  resume: ResumeRequest,
  identity: string | null | undefined,
  version: number,
): ServerConnection | null {
  const conn = sessions.get(sessionIdString(resume.sessionId));
  if (!conn || conn.closed) return null;
  if (!conn.acceptsToken(resume.token)) return null;
  // A session speaks the version it began with: a resume in another is a new session.
  if (version !== conn.protocolVersion) return null;
  if (identity !== undefined && conn.identity !== identity) return null;
  return conn;
}
