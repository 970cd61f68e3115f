/**
 * The server's end of a session. When its link is lost it waits up to the session TTL
 * for the client to resume, holding what it sent and what it received; after that the
 * session expires and the connection closes with 'session-expired'.
 */

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Connection, type DeliveryStrategy } from '../connection.js';
import type { HeartbeatRole } from '../heartbeat.js';
import type { CloseInfo, Link } from '../link.js';
import type { HeartbeatSettings, ResolvedCommon } from '../options.js';
import { CloseCode } from '../protocol/close-codes.js';
import { encodeSettings } from '../protocol/codec.js';
import { ID_BYTES, ReplyStatus, type ReplyStatusValue } from '../protocol/frames.js';
import type { IdempotencyClaim, IdempotencyWindow } from '../session/idempotency.js';
import type { TimingWheel, WheelTimer } from '../time/wheel.js';

/** Compares bytes with a token kept as a latin1 string, in constant time. */
function timingSafeEqualLatin1(given: Buffer, kept: string): boolean {
  const expected = Buffer.from(kept, 'latin1');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * Hooks the server gives each of its connections: one object for all of them, called
 * directly (internal listeners would give every connection a listener table).
 */
export interface ServerConnectionHost {
  /** A link completed its handshake (called just before 'open'). */
  opened(conn: ServerConnection): void;
  /** The link was lost and the session may resume (called just before 'disconnect'). */
  disconnected(conn: ServerConnection): void;
  /** The connection ended for good: forget it (called just before 'close'). */
  release(conn: ServerConnection): void;
  /** The client showed it holds its new resume token: the previous one is void. */
  tokenSettled?(conn: ServerConnection): void;
  /** The server's idempotency window (PROTOCOL.md 6.5), or null when keys are not kept. */
  readonly idempotency?: IdempotencyWindow | null;
}

/** How often {@link ServerConnection.watchToken} looks before settings are known (ms). */
const TOKEN_CHECK_FALLBACK_MS = 1000;

export class ServerConnection extends Connection {
  /** The client's self-chosen id from HELLO (may be empty). */
  readonly clientId: string;
  /** The trace id from HELLO (may be empty). */
  readonly traceId: string;
  /** The identity the authenticate hook returned, bound to the session. */
  readonly identity: string | null;
  /** The session id this connection was created with (sessionId is cleared if it is lost). */
  readonly sessionKey: string;
  /**
   * The resume token's bytes as a latin1 string (one byte a character): 32 bytes of heap
   * where a Buffer of its own costs some 200 with its ArrayBuffer and backing store.
   */
  private tokenBytes: string;
  /**
   * The token this one replaced, still accepted until the client shows it received the
   * new one (see {@link rotateToken}); null once it has.
   */
  private previousToken: string | null = null;
  /** Frames the current link had received when it was attached (its HELLO and anything pipelined). */
  private framesAtAttach = 0;
  /** Session TTL while no link is attached; created when the first link is lost. */
  private ttlTimer: WheelTimer | null = null;
  /** Applies tightened settings once the client has had time to learn them (retune). */
  private leniency: WheelTimer | null = null;
  /** Looks whether the client holds its new token (see {@link watchToken}); created on first use. */
  private tokenTimer: WheelTimer | null = null;
  /** Keys claimed in the idempotency window whose handler has not answered yet. */
  private claims: Set<string> | null = null;

  constructor(
    config: ResolvedCommon,
    wheel: TimingWheel,
    private readonly host: ServerConnectionHost,
    private readonly sessionTtl: number,
    init: {
      sessionId: string;
      token: Uint8Array;
      /** A token still accepted beside `token` (a session taken over from a store). */
      previousToken?: Uint8Array;
      clientId: string;
      traceId: string;
      identity: string | null;
      remote: string;
    },
  ) {
    super(config, wheel);
    this.currentSessionId = init.sessionId;
    this.sessionKey = init.sessionId;
    this.tokenBytes = Buffer.from(init.token).toString('latin1');
    if (init.previousToken?.length) {
      this.previousToken = Buffer.from(init.previousToken).toString('latin1');
    }
    this.clientId = init.clientId;
    this.traceId = init.traceId;
    this.identity = init.identity;
    this.lastRemote = init.remote;
  }

  /** @internal The resume token (16 bytes, a fresh copy each read); compared in constant time by the server. */
  get token(): Uint8Array {
    return Buffer.from(this.tokenBytes, 'latin1');
  }

  /**
   * Whether `token` may resume this session: the current token, or the one it replaced
   * while the client has not yet shown that it received the current one. Constant time.
   * @internal
   */
  acceptsToken(token: Uint8Array): boolean {
    const link = this.link;
    if (link) this.settleToken(link);
    const given = Buffer.from(token);
    const current = timingSafeEqualLatin1(given, this.tokenBytes);
    const previous =
      this.previousToken !== null && timingSafeEqualLatin1(given, this.previousToken);
    return current || previous;
  }

  /**
   * @internal Issues a new resume token for the WELCOME of a resume: tokens are single-use,
   * so one copied from an earlier WELCOME (a log, a stolen device) cannot take the
   * session over once its owner has resumed. The token the client resumed with stays
   * valid until the client sends a frame on the link that carried the new one, so a link
   * cut before the client read that WELCOME does not lose the session.
   */
  rotateToken(presented: Uint8Array): Uint8Array {
    const next = this.nextToken(presented);
    this.useToken(next);
    return next.token;
  }

  /**
   * @internal The token a resume with `presented` would get, and the one still accepted
   * beside it, without changing anything yet (a store must hold them first).
   */
  nextToken(presented: Uint8Array): { token: Uint8Array; previous: Uint8Array } {
    // Resuming with the current token proves the client has it: the older one is done.
    const previous = timingSafeEqualLatin1(Buffer.from(presented), this.tokenBytes)
      ? this.tokenBytes
      : (this.previousToken ?? this.tokenBytes);
    return { token: randomBytes(ID_BYTES), previous: Buffer.from(previous, 'latin1') };
  }

  /** @internal Puts a token from {@link nextToken} in force. */
  useToken(next: { token: Uint8Array; previous: Uint8Array }): void {
    this.tokenBytes = Buffer.from(next.token).toString('latin1');
    this.previousToken = Buffer.from(next.previous).toString('latin1');
  }

  /** The client sent a frame after its WELCOME on `link`: it holds the current token. */
  private settleToken(link: Link): void {
    if (this.previousToken !== null && link.stats.framesIn > this.framesAtAttach) {
      this.previousToken = null;
      this.tokenTimer?.cancel();
      this.host.tokenSettled?.(this);
    }
  }

  /**
   * While an older token is still accepted, looks once per heartbeat interval whether the
   * client has shown it holds the new one (an idle client pings at least that often), so
   * that the old token stops working soon, not only at the next resume.
   */
  private watchToken(): void {
    if (this.previousToken === null || !this.link) return;
    this.tokenTimer ??= this.wheel.timerFor(this, ServerConnection.tokenDue);
    this.tokenTimer.arm(this.settings?.interval ?? TOKEN_CHECK_FALLBACK_MS);
  }

  protected override detach(link: Link): void {
    if (link === this.link) this.settleToken(link);
    super.detach(link);
  }

  // The handlers of this class's wheel timers: static methods, shared by every connection
  // (no closure each), that may still call private members.

  /** The token timer: settles the old token if the client has shown it holds the new one. */
  private static tokenDue(conn: ServerConnection): void {
    if (conn.link) conn.settleToken(conn.link);
    conn.watchToken();
  }

  /** The leniency after a retune is over: the detector takes the new settings. */
  private static leniencyDue(conn: ServerConnection): void {
    if (conn.settings) conn.link?.beat?.retune(conn.settings);
  }

  /** The session TTL ran out without a resume. */
  private static ttlDue(conn: ServerConnection): void {
    conn.expire();
  }

  /** The server lags the client's pings and samples RTT on its PONGs (PROTOCOL.md 7.2). */
  protected override heartbeatRole(): HeartbeatRole {
    return 'server';
  }

  /** No resume within the session TTL. */
  private expire(): void {
    // Nothing disappears silently: the application gets back what the client never acked.
    this.loseSession();
    this.finish({
      reason: 'session-expired',
      code: CloseCode.SESSION_EXPIRED,
      message: `no resume within the session TTL of ${this.sessionTtl} ms`,
    });
  }

  /** @internal Attaches the first link or a resuming one (the server already sent WELCOME). */
  attachLink(
    link: Link,
    settings: HeartbeatSettings,
    resumed: boolean,
    peerLastReceived: number,
    peer: { version: number; maxFrame: number },
  ): void {
    this.ttlTimer?.cancel();
    const old = this.link;
    if (old) {
      // A newer connection resumed this session: the old link is half-open or about to be.
      this.detach(old);
      old.close('superseded', CloseCode.SUPERSEDED, 'a newer connection resumed this session');
    }
    this.framesAtAttach = link.stats.framesIn;
    this.attach(link, settings, this.sessionKey, resumed, peerLastReceived, peer);
    this.watchToken();
    // The handshake acknowledged what the client has: the store may trim it too.
    this.delivery.acked(this, this.outbound.acked);
  }

  /**
   * @internal Restores a session taken over from a session store, before its first link:
   * the client's committed messages and the server's unacknowledged log.
   */
  restoreSession(state: { received: number; acked: number; log: readonly Uint8Array[] }): void {
    this.outbound.startAt(state.acked);
    for (const entry of state.log) this.restoreEntry(entry);
    this.inbound.reset(state.received);
    this.nextSend = state.acked + 1;
  }

  /**
   * @internal Delivers through `strategy` instead of at once: a journal that commits
   * this session to a session store (cluster mode). Chosen before the first link.
   */
  useDelivery(strategy: DeliveryStrategy<Connection>): void {
    this.delivery = strategy;
  }

  /**
   * Ends the session here on the cluster's word: `superseded` (another node holds it now;
   * it is not lost) or `session-expired` (the store dropped it; what the client never
   * acknowledged is handed back with 'session-lost'). The link, if any, gets the CLOSE.
   * @internal
   */
  endSession(reason: 'superseded' | 'session-expired', message: string): void {
    if (this.closed) return;
    const code = reason === 'superseded' ? CloseCode.SUPERSEDED : CloseCode.SESSION_EXPIRED;
    if (reason === 'session-expired') this.loseSession();
    const link = this.link;
    if (link) {
      this.detach(link);
      link.close(reason, code, message);
    }
    this.finish({ reason, code, message });
  }

  /** @internal Highest DATA seq received from the client (goes into WELCOME on resume). */
  get lastReceived(): number {
    return this.inbound.lastReceived;
  }

  /**
   * Changes the heartbeat settings in-band: tells the client with SETTINGS, then applies
   * them. Tighter values are applied to this end's detector only after one old timeout,
   * judging the client meanwhile by the more lenient of the old and new values (PROTOCOL.md
   * 7.5): until SETTINGS reaches it, the client pings on its old, slower schedule.
   * @internal
   */
  retune(settings: HeartbeatSettings): void {
    this.currentSettings = settings;
    const link = this.link;
    if (!link) return;
    link.write(encodeSettings(settings.interval, settings.timeout));
    const judged = link.beat?.current;
    if (
      judged &&
      (settings.timeout < judged.timeout || settings.suspectAfter < judged.suspectAfter)
    ) {
      link.beat?.retune(
        Object.freeze({
          interval: settings.interval,
          timeout: Math.max(judged.timeout, settings.timeout),
          suspectAfter: Math.max(judged.suspectAfter, settings.suspectAfter),
        }),
      );
      this.leniency ??= this.wheel.timerFor(this, ServerConnection.leniencyDue);
      this.leniency.arm(judged.timeout);
      return;
    }
    this.leniency?.cancel();
    link.beat?.retune(settings);
  }

  /** A deliberate close by the client, or our policy close, ends the session. */
  protected willResume(info: CloseInfo): boolean {
    return !(
      info.reason === 'remote' ||
      info.reason === 'local' ||
      info.reason === 'policy-violation' ||
      info.reason === 'frame-too-large'
    );
  }

  protected override linkEnded(info: CloseInfo): void {
    // We closed the client for flooding or for a frame over our maxFrame: that is final
    // for it (it would resend the same frame), so it will never resume.
    if (info.reason === 'policy-violation' || info.reason === 'frame-too-large') {
      this.loseSession();
    }
    this.finish(info);
  }

  protected override linkOpened(): void {
    this.host.opened(this);
  }

  protected override linkDisconnected(): void {
    this.host.disconnected(this);
  }

  protected linkLost(): void {
    this.ttlTimer ??= this.wheel.timerFor(this, ServerConnection.ttlDue);
    this.ttlTimer.arm(this.sessionTtl);
  }

  /**
   * @internal Whether the session goes on elsewhere now that this connection has closed:
   * another node took it over (superseded), or this node went away (CLOSE going away:
   * drain, close) and its client resumes on another. Only with a session store does
   * anything keep it: the cluster keeps or deletes the stored session on this answer.
   */
  get sessionGoesOn(): boolean {
    const info = this.closeInfo;
    return info?.reason === 'superseded' || info?.code === CloseCode.GOING_AWAY;
  }

  /**
   * What the client never acknowledged is handed back ('session-lost') unless a session
   * store keeps it for the node where the session goes on: handing it back too would
   * report as lost what the client still receives, exactly once, from that node. A
   * journal on local service (store down) keeps nothing, so it hands back as before.
   */
  protected override handsBackOnClose(): boolean {
    return !this.delivery.keepsSession || !this.sessionGoesOn;
  }

  protected override onFinish(): void {
    this.ttlTimer?.cancel();
    this.tokenTimer?.cancel();
    this.leniency?.cancel();
    // Handlers that never answered: a retry of their keys must run, not wait a window.
    const window = this.host.idempotency ?? null;
    if (window && this.claims) {
      for (const key of this.claims) settle(window.abandon(this.idempotencyScope(), key));
      this.claims = null;
    }
    this.host.release(this);
  }

  /**
   * Who a key belongs to (PROTOCOL.md 6.5): the identity the authenticate hook returned;
   * without one the client id, which the client chose and nobody checked; else this
   * session alone.
   * @internal
   */
  idempotencyScope(): string {
    if (this.identity !== null) return `id:${this.identity}`;
    if (this.clientId !== '') return `client:${this.clientId}`;
    return `session:${this.sessionKey}`;
  }

  /**
   * A REQUEST with an idempotency key is answered from the server's window when the key
   * was answered within it (or joins the run in progress), else run once and its answer
   * kept. A window on Redis decides asynchronously: the promise holds back the messages
   * behind the request until it has (delivery stays in order).
   */
  protected override deliverRequest(
    seq: number,
    payload: Buffer,
    redelivered: boolean,
    key: string,
  ): Promise<void> | undefined {
    const window = this.host.idempotency ?? null;
    if (key === '' || window === null) {
      return super.deliverRequest(seq, payload, redelivered, key);
    }
    const scope = this.idempotencyScope();
    let claim: IdempotencyClaim | Promise<IdempotencyClaim>;
    try {
      claim = window.begin(scope, key);
    } catch (err) {
      this.replyTo(seq, ReplyStatus.OVERLOADED, `idempotency key refused: ${errorText(err)}`);
      return undefined;
    }
    if (!(claim instanceof Promise)) {
      this.onClaim(claim, scope, seq, payload, redelivered, key);
      return undefined;
    }
    return claim.then(
      (c) => this.onClaim(c, scope, seq, payload, redelivered, key),
      (err) => {
        this.replyTo(seq, ReplyStatus.OVERLOADED, `idempotency store: ${errorText(err)}`);
      },
    );
  }

  private onClaim(
    claim: IdempotencyClaim,
    scope: string,
    seq: number,
    payload: Buffer,
    redelivered: boolean,
    key: string,
  ): void {
    if (this.closed) {
      if (claim.kind === 'run') settle(this.host.idempotency?.abandon(scope, key));
      return;
    }
    switch (claim.kind) {
      case 'run': {
        const window = this.host.idempotency!;
        this.claims ??= new Set();
        this.claims.add(key);
        this.runRequest(seq, payload, redelivered, key, (status, bytes) => {
          this.claims?.delete(key);
          // Only an answer of the handler's is kept: a refusal means it did not run.
          const ran = status === ReplyStatus.OK || status === ReplyStatus.ERROR;
          if (bytes !== null && ran) settle(window.finish(scope, key, { status, payload: bytes }));
          else settle(window.abandon(scope, key));
        });
        return;
      }
      case 'done':
        this.replyTo(seq, claim.reply.status as ReplyStatusValue, claim.reply.payload);
        return;
      case 'pending':
        // The first request with this key is running (here or on another node): its answer
        // is this one's too; if it never comes, this one runs.
        void claim.settled.then((reply) => {
          if (this.closed) return;
          if (reply) this.replyTo(seq, reply.status as ReplyStatusValue, reply.payload);
          else void this.deliverRequest(seq, payload, redelivered, key);
        });
        return;
      case 'full':
        this.replyTo(seq, ReplyStatus.OVERLOADED, 'the idempotency window is full');
    }
  }
}

/** Ignores the outcome of a window update (a Redis one may fail): the answer went out. */
function settle(result: void | Promise<void> | undefined): void {
  if (result instanceof Promise) result.catch(() => {});
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
