/**
 * The public Connection: one end of a session, which may outlive several links (TCP
 * connections). It owns the health state, the sequence numbers, the replay buffer and
 * the acks, so that a resumed session delivers every message exactly once, in order.
 * The client and server subclasses decide what happens when a link is lost.
 *
 * Memory per connection, said once here for every module that holds per-connection
 * state: a server holds tens of thousands of connections, each with its link, heartbeat,
 * health machine and timers, so every object, closure or listener table one of them
 * carries is multiplied by them (a closure and its context cost some 100 to 200 bytes, a
 * small stats object about 56, an EventEmitter's listener table more). So per-connection
 * code shares functions (socket, health and timer callbacks called with the object as
 * `this` or as a target), makes one host object per server instead of closures per
 * connection, keeps counters as plain fields, and creates what most connections never
 * use on first use. Comments elsewhere point here; measured figures: docs/benchmarks.md.
 */

import { EventEmitter } from 'node:events';
import { type ErrorCode, HeartlineError, InvalidArgumentError, RequestError } from './errors.js';
import { HealthMachine, type HealthState, type StateChange } from './health/index.js';
import type { HeartbeatRole, HeartbeatStats } from './heartbeat.js';
import type { CloseInfo, Link } from './link.js';
import type { TcpOptionValues } from './net/sockopts.js';
import type { HeartbeatSettings, ResolvedCommon } from './options.js';
import { CloseCode, type CloseReason } from './protocol/close-codes.js';
import { DATA_OVERHEAD, REPLY_OVERHEAD, requestOverhead } from './protocol/codec.js';
import {
  type Frame,
  FrameType,
  LENGTH_BYTES,
  PROTOCOL_VERSION,
  ReplyStatus,
  type ReplyStatusValue,
} from './protocol/frames.js';
import type { DeliveryStrategy } from './session/delivery.js';
import { MAX_IDEMPOTENCY_KEY_BYTES } from './session/idempotency.js';
import { asBuffer, ENTRY_OVERHEAD, InboundTracker, OutboundBuffer } from './session/index.js';
import { Delivery, type Inbound, type MessageInfo } from './session/journal.js';
import { decodeLogEntry, type Envelope, encodeLogEntry } from './session/log-entry.js';
import {
  AckCallbacks,
  type AckOptions,
  type RequestOptions,
  RequestTable,
} from './session/requests.js';
import type { TimingWheel, WheelTimer } from './time/wheel.js';

export type { DeliveryHost, DeliveryStrategy } from './session/delivery.js';
export type { MessageInfo } from './session/journal.js';
export type { AckOptions, RequestOptions } from './session/requests.js';

/** Emitted each time a link completes its handshake. */
export interface OpenEvent {
  sessionId: string;
  /** True when an existing session was resumed. */
  resumed: boolean;
  /** Messages re-sent to the peer because it had not received them. */
  replayed: number;
}

/** Emitted when the peer could not resume the session. */
export interface SessionLostEvent {
  /** The session that was lost. */
  sessionId: string;
  /** Every message sent in that session that the peer never acknowledged, in order. */
  unacked: Buffer[];
}

/**
 * The typed events of a {@link Connection}. There is deliberately no 'error' event (so
 * `conn.on('error', ...)` does not type-check): a failure either ends the link and the
 * session goes on ('disconnect', then 'reconnecting' on a client, its `info.error` says
 * why), or ends the connection ('close', whose `info.error` is the typed error), and a
 * client's `ready()` rejects with it before the first handshake. Node's EventEmitter
 * throws an 'error' emitted with no listener; a connection never emits one.
 *
 * Order on close(), abort and give-up: 'state' (to 'closed'), then 'session-lost' with
 * the unacknowledged messages (if any), then 'close', each once. A client that gives up
 * emits 'give-up' (with the unacknowledged messages) first, so no 'session-lost' follows.
 */
export interface ConnectionEvents {
  /** Health state changed. */
  state: [change: StateChange];
  /**
   * A message arrived, exactly once and in order within the session. `data` is a view
   * into the bytes as read from the socket, not a copy: it stays valid, but keeping it
   * keeps the whole chunk it arrived in alive; copy (`Buffer.from(data)`) small messages
   * that are kept for long.
   */
  message: [data: Buffer, info: MessageInfo];
  /** A new RTT sample (ms); `connection.rtt` holds the smoothed estimate. */
  rtt: [sampleMs: number];
  /** A handshake completed: a new session or a resumed one. */
  open: [event: OpenEvent];
  /** The session was resumed on a new link. */
  resumed: [event: OpenEvent];
  /** The session could not be resumed; its unacknowledged messages are handed back. */
  'session-lost': [event: SessionLostEvent];
  /** The current link was lost; the session may still resume. */
  disconnect: [info: CloseInfo];
  /** The replay buffer fell below its high-water mark after send() returned false. */
  drain: [];
  /** The connection ended for good. Emitted once. */
  close: [info: CloseInfo];
  /** Client only: the next connection attempt is scheduled. */
  reconnecting: [event: ReconnectingEvent];
  /** Client only: max attempts reached; every unacknowledged message is handed back. */
  'give-up': [event: GiveUpEvent];
  /** Client only: the circuit-breaker view changed. */
  circuit: [state: CircuitState];
}

/** Emitted before each reconnection attempt. */
export interface ReconnectingEvent {
  /**
   * Attempts since the last link that heard the server after its handshake, or stayed
   * healthy `stableAfter` (1 for the first retry).
   */
  attempt: number;
  /** How long the client waits before this attempt (ms). */
  delayMs: number;
  /** Why the previous link or attempt ended. */
  reason: CloseReason;
  /** How it ended: the error, with its OS or TLS code, and the message. */
  info: CloseInfo;
}

/** Emitted when the client stops reconnecting. */
export interface GiveUpEvent {
  attempts: number;
  /** Every message sent that the server never acknowledged, in order. */
  unacked: Buffer[];
}

/**
 * The circuit-breaker view of a client: closed while connected, open after consecutive
 * failed attempts, half-open while a probe attempt runs.
 */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** Counters of one connection. */
export interface ConnectionStats {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  links: number;
}

let nextConnectionId = 0;

/** Every connection's health listener (the machine calls it with the connection as `this`). */
function emitState(this: Connection, change: StateChange): void {
  this.emit('state', change);
}

/** The retry hint sent with CLOSE(overloaded) when the shared replay budget is spent. */
const HANDLER_RETRY_AFTER_MS = 1000;

/** Held behind an asynchronous request decision (payload + ENTRY_OVERHEAD each) before input pauses. */
const GATE_PAUSE_BYTES = 1024 * 1024;

/**
 * Bound of the queue of each async iterator over a connection's messages: once it holds
 * this many messages or payload bytes, the connection stops reading its socket (TCP
 * pushes back, so the peer's replay buffer grows and its send() returns false) and reads
 * again once the consumer has taken the queue down to half of both. The messages of the
 * socket read that crossed the bound still arrive (one read, at most 64 KiB of frames);
 * beyond that, a slow consumer costs the peer's memory, not this process's. Not reading
 * is not silence of the peer: the heartbeat does not suspect it meanwhile. A consumer
 * that takes nothing for about the heartbeat timeout may make the peer's kernel end the
 * link (TCP_USER_TIMEOUT counts a receive window kept closed); the session then resumes,
 * and nothing is lost or doubled.
 */
export const ITERATOR_HIGH_WATER = Object.freeze({ messages: 1000, bytes: 1024 * 1024 });

/**
 * A frame's length beyond its payload for a held message of this kind: DATA, REQUEST
 * (with its key) or REPLY. A payload fits the peer when it plus this is at most its maxFrame.
 */
function frameOverhead(envelope: Envelope | null): number {
  if (envelope === null) return DATA_OVERHEAD - LENGTH_BYTES;
  if (envelope.type === FrameType.REQUEST)
    return requestOverhead(envelope.key.length) - LENGTH_BYTES;
  return REPLY_OVERHEAD - LENGTH_BYTES;
}

/** Whether a key is over {@link MAX_IDEMPOTENCY_KEY_BYTES} in UTF-8. */
function tooLong(key: string): boolean {
  return Buffer.byteLength(key, 'utf8') > MAX_IDEMPOTENCY_KEY_BYTES;
}

function abortError(signal: AbortSignal): HeartlineError {
  return new HeartlineError('HL_ERR_ABORTED', 'aborted', { cause: signal.reason });
}

/** The first `room` bytes of UTF-8 `bytes`, less a character the cut would split. */
function cutUtf8(bytes: Uint8Array, room: number): Uint8Array {
  let end = Math.max(0, room);
  // Back off over continuation bytes (10xxxxxx) to the start of the split character.
  while (end > 0 && end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/**
 * The local delivery strategy, one stateless object for every connection without a
 * session store: each message reaches the application and is acknowledged at once
 * (receiveNow), and whatever is queued may be written.
 */
const LOCAL_DELIVERY: DeliveryStrategy<Connection> = Object.freeze({
  flushLimit: (conn: Connection) => conn.sentSeq,
  flushed: () => {},
  receive: (conn: Connection, seq: number, payload: Buffer, kind: Inbound) =>
    conn.receiveNow(seq, payload, kind),
  sent: () => {},
  acked: () => {},
  keepsSession: false,
});

/** Converts a session id to its printed form. */
export function sessionIdString(id: Uint8Array): string {
  return Buffer.from(id).toString('hex');
}

/**
 * One end of a session. Created by `createServer` (on 'connection') and by `connect`.
 */
// No `implements LinkOwner`: its members are internal, stripped from the published
// declarations, where the clause would then fail to compile. `link.owner = this` checks
// the same shape where it is used.
export abstract class Connection extends EventEmitter<ConnectionEvents> {
  /** Stable id of this connection, the same in every event about it. */
  readonly id: string;
  /** @internal Behind {@link sessionId}: the handshakes set it, users only read it. */
  protected currentSessionId: string | null = null;
  /** @internal Behind {@link settings}. */
  protected currentSettings: HeartbeatSettings | null = null;
  /** Counters behind {@link stats}: plain fields, not an object per connection. */
  private messagesIn = 0;
  private messagesOut = 0;
  private closedBytesIn = 0;
  private closedBytesOut = 0;
  private links = 0;
  protected link: Link | null = null;
  protected outbound: OutboundBuffer;
  protected inbound: InboundTracker;
  /** Next sequence number to hand to the link. */
  protected nextSend = 1;
  protected readonly health: HealthMachine<Connection>;
  /**
   * Created on first use, like the other per-connection extras below: a server holds one
   * connection per client, and most idle ones never need them.
   */
  private ackTimer: WheelTimer | null = null;
  private wasFull = false;
  private lastRtt: number | undefined;
  private lastHeard = 0;
  /** Heartbeat counters of the links that have closed (null until one has). */
  private beatTotals: HeartbeatStats | null = null;
  /** Remote address of the latest link (kept while disconnected). */
  protected lastRemote: string | null = null;
  private finalInfo: CloseInfo | null = null;
  /** Set by close() while the closing handshake runs. */
  private closing: CloseInfo | null = null;
  private ackWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> | null = null;
  /**
   * @internal How messages are delivered and acknowledged: {@link LOCAL_DELIVERY} (shared
   * by every connection) unless a session store journals this one (src/session/delivery.ts).
   */
  protected delivery: DeliveryStrategy<Connection> = LOCAL_DELIVERY;
  /** The protocol version of the session (its first handshake says; 2 until then). */
  protected sessionVersion: number = PROTOCOL_VERSION;
  /**
   * The largest frame we send: what the peer accepts (its handshake says), never more
   * than our own maxFrame (which is all we assume until then).
   */
  protected peerMaxFrame: number;
  /** REQUEST and REPLY messages still held, by seq (null until the first one). */
  private envelopes: Map<number, Envelope> | null = null;
  /** Our requests waiting for their REPLY (null until the first request). */
  private requests: RequestTable | null = null;
  /** send() callbacks and sendAcked() promises waiting for their ACK. */
  private ackCallbacks: AckCallbacks | null = null;
  /** Highest seq ever written to a link (what the peer may have seen). */
  private everWritten = 0;
  /**
   * Messages that arrived while a request waits for an asynchronous decision (an
   * idempotency window on Redis): delivered in order once it is made. Null: none waits.
   */
  private gate: Array<[number, Buffer, boolean, Inbound]> | null = null;
  private gateBytes = 0;
  private gatePaused = false;
  /** Async iterators whose queue is past {@link ITERATOR_HIGH_WATER}: input paused while > 0. */
  private iteratorsBehind = 0;

  protected constructor(
    protected readonly config: ResolvedCommon,
    protected readonly wheel: TimingWheel,
  ) {
    super();
    this.id = `c${++nextConnectionId}`;
    this.outbound = new OutboundBuffer({
      highWaterMark: config.highWaterMark,
      maxBytes: config.maxBufferedBytes,
      budget: config.budget,
    });
    this.inbound = new InboundTracker({ ackEvery: config.ackEvery });
    this.health = new HealthMachine<Connection>(emitState, 'connecting', this);
    this.peerMaxFrame = config.maxFrame;
  }

  /** Which end of the heartbeat this connection is (PROTOCOL.md 7.2). */
  protected heartbeatRole(): HeartbeatRole {
    return 'client';
  }

  /** Session id (hex), once a handshake has given one. */
  get sessionId(): string | null {
    return this.currentSessionId;
  }

  /** The granted heartbeat settings, once a handshake has given them. */
  get settings(): HeartbeatSettings | null {
    return this.currentSettings;
  }

  /**
   * The protocol version the session speaks (PROTOCOL.md 5.5): 2, or 1 for a peer that
   * only speaks version 1 (no requests, no announced maxFrame).
   */
  get protocolVersion(): number {
    return this.sessionVersion;
  }

  /** Current health state. */
  get state(): HealthState {
    return this.health.state;
  }

  /** Smoothed round-trip time in ms (RFC 6298 SRTT), or undefined before any sample. */
  get rtt(): number | undefined {
    return this.link?.beat?.rtt.srtt ?? this.lastRtt;
  }

  /** Remote address (host:port) of the current link, or of the last one while disconnected. */
  get remote(): string | null {
    return this.link?.remote ?? this.lastRemote;
  }

  /**
   * The TCP options in force on the current link's socket, read back from the kernel
   * with getsockopt (in ms), or null while disconnected or where they cannot be read
   * (see `tcpOptionsSupport()`).
   */
  tcpOptions(): TcpOptionValues | null {
    return this.link?.tcpOptions() ?? null;
  }

  /** Monotonic ms when anything was last heard from the peer. */
  get lastHeardAt(): number {
    return this.link?.lastReceived ?? this.lastHeard;
  }

  /**
   * Counters of this connection, a snapshot taken at each read (`bytesIn`/`bytesOut`
   * count links that have closed; `traffic` adds the live one).
   */
  get stats(): ConnectionStats {
    return {
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      bytesIn: this.closedBytesIn,
      bytesOut: this.closedBytesOut,
      links: this.links,
    };
  }

  /** Heartbeat counters over every link of this connection. */
  get heartbeatStats(): HeartbeatStats {
    const live = this.link?.beat?.stats;
    const t = this.beatTotals;
    return {
      pingsSent: (t?.pingsSent ?? 0) + (live?.pingsSent ?? 0),
      pongsReceived: (t?.pongsReceived ?? 0) + (live?.pongsReceived ?? 0),
      pingsReceived: (t?.pingsReceived ?? 0) + (live?.pingsReceived ?? 0),
      probes: (t?.probes ?? 0) + (live?.probes ?? 0),
    };
  }

  /**
   * Bytes received and sent over every link of this connection, the live one included
   * (`stats.bytesIn`/`bytesOut` count only links that have closed).
   */
  get traffic(): { bytesIn: number; bytesOut: number } {
    const live = this.link?.stats;
    return {
      bytesIn: this.closedBytesIn + (live?.bytesIn ?? 0),
      bytesOut: this.closedBytesOut + (live?.bytesOut ?? 0),
    };
  }

  /** Bytes held for replay (sent or queued, not yet acknowledged). */
  get bufferedBytes(): number {
    return this.outbound.bytes;
  }

  /**
   * Memory the replay buffer is charged for: {@link bufferedBytes} plus a fixed overhead
   * per message. `highWaterMark` and `maxBufferedBytes` compare against this.
   */
  get bufferedMemory(): number {
    return this.outbound.memory;
  }

  /** Messages sent and not yet acknowledged by the peer. */
  get unackedCount(): number {
    return this.outbound.size;
  }

  /**
   * Resolves once every message sent so far has been acknowledged by the peer; rejects
   * if the connection closes first with messages still unacknowledged.
   */
  whenAcked(): Promise<void> {
    if (this.outbound.size === 0) return Promise.resolve();
    if (this.closed) {
      return Promise.reject(
        new HeartlineError('HL_ERR_CONNECTION_CLOSED', `connection ${this.id} is closed`),
      );
    }
    return new Promise((resolve, reject) => {
      this.ackWaiters ??= [];
      this.ackWaiters.push({ resolve, reject });
    });
  }

  /** True from close() until the closing handshake ends; send() throws meanwhile. */
  get isClosing(): boolean {
    return this.closing !== null && !this.closed;
  }

  /** True once the connection ended for good. */
  get closed(): boolean {
    return this.health.state === 'closed';
  }

  /**
   * Sends one message. It is queued in the replay buffer until the peer acknowledges it,
   * so it survives a lost link. Returns false once the buffer passes its high-water mark
   * ('drain' follows); throws HL_ERR_BUFFER_FULL at the hard cap and
   * HL_ERR_CONNECTION_CLOSED after close. The payload is kept by reference until
   * acknowledged (a resend after a resume sends it again): do not modify it afterwards.
   * Messages sent in one run of code leave in one write when it ends.
   */
  send(data: Uint8Array | string, onAck?: (err: Error | null) => void): boolean {
    const payload = this.checkSend(data, frameOverhead(null));
    this.beforeSend();
    return this.queue(payload, typeof data === 'string', null, onAck);
  }

  /**
   * Sends one message like {@link send} and resolves once the peer acknowledged it (it
   * reached the peer's heartline, which hands it to its application in the same turn).
   * Rejects with HL_ERR_SESSION_LOST or HL_ERR_CONNECTION_CLOSED if it never is (the
   * message is then among those handed back), HL_ERR_ABORTED if `signal` fires first
   * (the message stays queued). For backpressure use send(data, onAck), which returns
   * send()'s boolean and calls `onAck` once.
   */
  sendAcked(data: Uint8Array | string, options: AckOptions = {}): Promise<void> {
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<void>((resolve, reject) => {
      let seq = 0;
      const onAbort = () => {
        this.ackCallbacks?.delete(seq);
        reject(abortError(signal!));
      };
      this.send(data, (err) => {
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      });
      seq = this.outbound.lastSeq;
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Sends a request and resolves with the peer's reply: the responder answers with
   * `info.reply(data)` (or `info.fail(message)`) on its 'message' event. The request is
   * a sequenced message: it survives lost links like send()'s messages, reaches the
   * responder's handler once, and its reply rides the resumed session back. Rejects with
   * a {@link RequestError}: HL_ERR_REQUEST_TIMEOUT (after `timeout`), HL_ERR_ABORTED,
   * HL_ERR_REMOTE (the responder failed it), HL_ERR_NO_RESPONDER, HL_ERR_OVERLOADED,
   * HL_ERR_SESSION_LOST / HL_ERR_CONNECTION_CLOSED (the session ended first),
   * HL_ERR_CIRCUIT_OPEN (a client failing fast), HL_ERR_NOT_SUPPORTED (a protocol 1
   * peer); `mayHaveBeenHandled` says whether the responder may have run it. Argument
   * errors (too large, key too long, closed) reject the same way, unsent.
   */
  request(data: Uint8Array | string, options: RequestOptions = {}): Promise<Buffer> {
    try {
      const key = Buffer.from(options.idempotencyKey ?? '', 'utf8');
      if (key.length > MAX_IDEMPOTENCY_KEY_BYTES) {
        throw new InvalidArgumentError(
          `idempotencyKey is ${key.length} bytes; at most ${MAX_IDEMPOTENCY_KEY_BYTES}`,
        );
      }
      const timeout = options.timeout ?? this.config.requestTimeout;
      if (!Number.isInteger(timeout) || timeout < 0 || timeout > 0x7fff_ffff) {
        throw new InvalidArgumentError(
          `timeout must be an integer from 0 to 2147483647 ms, got ${timeout}`,
        );
      }
      if (options.signal?.aborted) throw abortError(options.signal);
      if (this.sessionVersion < 2) {
        throw new HeartlineError(
          'HL_ERR_NOT_SUPPORTED',
          'the peer speaks protocol version 1, which has no requests',
        );
      }
      const envelope: Envelope = { type: FrameType.REQUEST, key };
      const payload = this.checkSend(data, frameOverhead(envelope));
      this.beforeRequest();
      this.requests ??= new RequestTable(
        this.config.clock,
        () => this.everWritten,
        this.requestOutcome(),
      );
      const seq = this.outbound.lastSeq + 1;
      const reply = this.requests.add(seq, timeout, options.signal);
      try {
        this.queue(payload, typeof data === 'string', envelope);
      } catch (err) {
        // Not queued (the replay buffer is full): nothing waits for it.
        this.requests.forget(seq);
        throw err;
      }
      return reply;
    } catch (err) {
      if (err instanceof RequestError) return Promise.reject(err);
      const e = err as HeartlineError;
      return Promise.reject(
        new RequestError(e.code ?? 'HL_ERR_INTERNAL', e.message, false, { cause: err }),
      );
    }
  }

  /** Requests waiting for their reply. */
  get pendingRequests(): number {
    return this.requests?.size ?? 0;
  }

  /**
   * @internal Answers the peer's REQUEST `requestSeq`: a REPLY, sequenced and held until
   * acknowledged like any message. Never throws for the peer's doing: a reply past the
   * replay buffer's cap ends the connection as a throwing handler would (the peer left
   * too much unacknowledged). False when the connection is closed or closing.
   */
  replyTo(requestSeq: number, status: ReplyStatusValue, data: Uint8Array | string): boolean {
    if (this.closed || this.closing) return false;
    let payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const envelope: Extract<Envelope, { type: typeof FrameType.REPLY }> = {
      type: FrameType.REPLY,
      requestSeq,
      status,
    };
    const room = this.peerMaxFrame - frameOverhead(envelope);
    if (payload.length > room && status === ReplyStatus.OK) {
      envelope.status = ReplyStatus.ERROR;
      payload = Buffer.from(
        `the reply of ${payload.length} bytes exceeds the requester's maximum of ${room}`,
      );
    }
    // A message (the one just made too) is cut to fit, at a UTF-8 character boundary.
    if (payload.length > room) payload = cutUtf8(payload, room);
    try {
      this.queue(payload, typeof data === 'string', envelope);
    } catch (err) {
      this.handlerFailed(err, requestSeq);
      return false;
    }
    return true;
  }

  /** The checks of every send: open, and a frame the peer accepts. */
  private checkSend(data: Uint8Array | string, frameOverhead: number): Uint8Array {
    if (this.closed || this.closing) {
      throw new HeartlineError('HL_ERR_CONNECTION_CLOSED', `connection ${this.id} is closed`);
    }
    const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const room = this.peerMaxFrame - frameOverhead;
    if (payload.length > room) {
      throw new HeartlineError(
        'HL_ERR_FRAME_TOO_LARGE',
        `message of ${payload.length} bytes exceeds the maximum of ${room} (maxFrame ${this.peerMaxFrame}: the smaller of ours and the peer's)`,
      );
    }
    return payload;
  }

  /** Numbers a message, holds it for replay and writes what may go. */
  private queue(
    payload: Uint8Array,
    owned: boolean,
    envelope: Envelope | null,
    onAck?: (err: Error | null) => void,
  ): boolean {
    // A string's bytes were made here: no check whether they keep a larger buffer alive.
    const seq = this.outbound.push(payload, owned);
    if (envelope) {
      this.envelopes ??= new Map();
      this.envelopes.set(seq, envelope);
    }
    if (onAck) {
      this.ackCallbacks ??= new AckCallbacks();
      this.ackCallbacks.add(seq, onAck);
    }
    this.messagesOut++;
    this.delivery.sent(this);
    this.flush();
    const full = this.outbound.full;
    if (full) this.wasFull = true;
    return !full;
  }

  /** Closes the connection for good, telling the peer with CLOSE(code, reason). */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    this.closeLocal(code, reason);
  }

  /**
   * The work of close(); `error` says why when the close is not the application's choice,
   * and `why` classifies it (default 'local').
   */
  protected closeLocal(
    code: number,
    reason: string,
    error?: HeartlineError,
    why: CloseReason = 'local',
  ): void {
    if (this.closed || this.closing) return;
    const info: CloseInfo = { reason: why, code, message: reason, ...(error ? { error } : {}) };
    const link = this.link;
    if (!link) {
      this.finish(info);
      return;
    }
    // A closing handshake: CLOSE and FIN go out now, but what the peer sent before it saw
    // them is still delivered; 'close' follows once the peer has closed its side too.
    this.closing = info;
    // What it holds is freed within the close grace: a shared budget need not wait.
    this.outbound.releaseBudget();
    this.sendAck();
    link.close(why, code, reason, why === 'overloaded' ? HANDLER_RETRY_AFTER_MS : 0, error);
  }

  /**
   * @internal The server's replay budget is spent and this connection holds the most:
   * it ends with CLOSE(overloaded), and what it holds leaves the budget now (the
   * messages are handed back when the close completes, at most the close grace later).
   * @returns The bytes given back.
   */
  shed(): number {
    const held = this.outbound.memory;
    const message = `server replay budget full: this connection held the most (${held} bytes unacknowledged)`;
    this.closeLocal(
      CloseCode.OVERLOADED,
      message,
      new HeartlineError('HL_ERR_OVERLOADED', message),
      'overloaded',
    );
    return held;
  }

  /**
   * Async iteration over received messages; ends when the connection closes. Its queue
   * is bounded ({@link ITERATOR_HIGH_WATER}): a consumer that falls behind stops the
   * connection reading its socket until it catches up, so the peer holds the rest.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer, void, undefined> {
    const queue: Buffer[] = [];
    let bytes = 0;
    let behind = false;
    let wake: (() => void) | null = null;
    let done = this.closed;
    const { messages: maxMessages, bytes: maxBytes } = ITERATOR_HIGH_WATER;
    const onMessage = (data: Buffer) => {
      queue.push(data);
      bytes += data.length;
      if (!behind && (queue.length >= maxMessages || bytes >= maxBytes)) {
        behind = true;
        if (++this.iteratorsBehind === 1) this.link?.pauseInput('consumer', true);
      }
      wake?.();
    };
    const caughtUp = () => {
      behind = false;
      if (--this.iteratorsBehind === 0) this.link?.pauseInput('consumer', false);
    };
    const onClose = () => {
      done = true;
      wake?.();
    };
    this.on('message', onMessage);
    this.once('close', onClose);
    try {
      while (true) {
        const next = queue.shift();
        if (next !== undefined) {
          bytes -= next.length;
          if (behind && queue.length <= maxMessages / 2 && bytes <= maxBytes / 2) caughtUp();
          yield next;
          continue;
        }
        if (done) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = null;
      }
    } finally {
      this.off('message', onMessage);
      this.off('close', onClose);
      if (behind) caughtUp();
    }
  }

  // ---- LinkOwner -------------------------------------------------------------------

  /** @internal */
  onFrame(link: Link, frame: Frame): void {
    if (link !== this.link) return;
    switch (frame.type) {
      case FrameType.DATA:
        this.onDataFrame(link, frame.seq, frame.payload as Buffer, null);
        return;
      case FrameType.REQUEST:
        if (frame.key.length > MAX_IDEMPOTENCY_KEY_BYTES / 4 && tooLong(frame.key)) {
          // The wire allows 65535 bytes; a window keeps keys for minutes (PROTOCOL.md 3.8).
          const message = `REQUEST idempotency key over ${MAX_IDEMPOTENCY_KEY_BYTES} bytes`;
          this.closeLocal(
            CloseCode.POLICY_VIOLATION,
            message,
            new HeartlineError('HL_ERR_POLICY_VIOLATION', message),
            'policy-violation',
          );
          return;
        }
        this.onDataFrame(link, frame.seq, frame.payload as Buffer, frame.key);
        return;
      case FrameType.REPLY:
        if (frame.requestSeq === 0 || frame.requestSeq > this.everWritten) {
          link.unexpected(`REPLY to request ${frame.requestSeq}, which was never sent`);
          return;
        }
        this.onDataFrame(link, frame.seq, frame.payload as Buffer, frame);
        return;
      case FrameType.ACK:
        this.onAck(link, frame.seq);
        return;
      default:
        this.onControlFrame(link, frame);
    }
  }

  /** @internal */
  onLiveness(link: Link, event: 'suspect' | 'alive' | 'dead'): void {
    if (link !== this.link) return;
    const s = this.settings;
    if (event === 'suspect') {
      this.health.transition(['healthy'], 'suspect', `nothing heard for ${s?.suspectAfter} ms`);
    } else if (event === 'alive') {
      this.health.transition(['suspect'], 'healthy', 'traffic resumed');
    } else {
      this.health.transition(['healthy', 'suspect'], 'dead', 'heartbeat-timeout');
    }
  }

  /** @internal */
  onRtt(link: Link, sampleMs: number): void {
    if (link !== this.link) return;
    this.lastRtt = link.beat?.rtt.srtt;
    this.emit('rtt', sampleMs);
  }

  /** @internal */
  onPeerClose(link: Link): void {
    if (link === this.link) this.sendAck();
  }

  /** @internal */
  onWritable(link: Link): void {
    if (link === this.link) this.flush();
  }

  /**
   * @internal Frames are about to leave: a pending ACK rides in front of them (same
   * write), so a busy session acknowledges once per write and its ack timer rarely fires.
   */
  pendingAck(link: Link): number {
    if (link !== this.link || !this.inbound.ackPending) return -1;
    this.ackTimer?.cancel();
    return this.inbound.takeAck();
  }

  /** @internal */
  onClose(link: Link, info: CloseInfo): void {
    this.closedBytesIn += link.stats.bytesIn;
    this.closedBytesOut += link.stats.bytesOut;
    const beat = link.beat?.stats;
    if (beat) {
      this.beatTotals ??= { pingsSent: 0, pongsReceived: 0, pingsReceived: 0, probes: 0 };
      const t = this.beatTotals;
      t.pingsSent += beat.pingsSent;
      t.pongsReceived += beat.pongsReceived;
      t.pingsReceived += beat.pingsReceived;
      t.probes += beat.probes;
    }
    if (link !== this.link) return;
    this.detach(link);
    if (this.closed) return;
    if (this.closing) {
      this.finish(this.closing);
      return;
    }
    // A close that ends the session is a 'close', never a 'disconnect' first.
    if (!this.willResume(info)) {
      this.linkEnded(info);
      return;
    }
    this.health.transition(
      ['connecting', 'healthy', 'suspect', 'dead'],
      'disconnected',
      info.reason,
    );
    this.linkDisconnected();
    this.emit('disconnect', info);
    this.linkLost(info);
  }

  // ---- for subclasses ----------------------------------------------------------------

  /** Whether the session may go on (resume or retry) after its link closed for `info`. */
  protected abstract willResume(info: CloseInfo): boolean;

  /** The link was lost and the session goes on: wait for a resume, or retry. */
  protected abstract linkLost(info: CloseInfo): void;

  /**
   * Hooks for the library's own bookkeeping, called just before 'open' and 'disconnect'
   * are emitted: a direct call instead of a listener, so that a connection nobody else
   * listens to holds no listener table.
   */
  protected linkOpened(_event: OpenEvent): void {}
  protected linkDisconnected(): void {}

  /** The link closed in a way that ends the session. */
  protected linkEnded(info: CloseInfo): void {
    this.finish(info);
  }

  /** Handles frames other than DATA and ACK after the handshake. */
  protected onControlFrame(link: Link, frame: Frame): void {
    link.unexpected(`unexpected frame type ${frame.type} after the handshake`);
  }

  /** Hook before a message is buffered (the client fails fast while its circuit is open). */
  protected beforeSend(): void {}

  /** Hook before a request is buffered (the client's circuit breaker). */
  protected beforeRequest(): void {
    this.beforeSend();
  }

  /** What learns of each request's outcome (the client's circuit breaker); null: nothing. */
  protected requestOutcome(): ((ok: boolean) => void) | null {
    return null;
  }

  /**
   * Puts a handshaken link in place. `peerLastReceived` is the highest seq the peer has
   * from us: everything up to it counts as acknowledged and the rest is re-sent.
   */
  protected attach(
    link: Link,
    settings: HeartbeatSettings,
    sessionId: string,
    resumed: boolean,
    peerLastReceived: number,
    peer: { version: number; maxFrame: number } = {
      version: this.sessionVersion,
      maxFrame: this.peerMaxFrame,
    },
  ): void {
    this.sessionVersion = peer.version;
    // Our own maxFrame bounds what we send too ("accepted or sent"): a peer announcing
    // more does not raise it.
    this.peerMaxFrame = Math.min(peer.maxFrame, this.config.maxFrame);
    link.usePeer(peer.version, peer.maxFrame);
    this.link = link;
    this.lastRemote = link.remote;
    this.links++;
    link.owner = this;
    this.currentSettings = settings;
    this.currentSessionId = sessionId;
    link.startHeartbeat(
      settings,
      this.config.detector(settings, this.config.clock.now()),
      this.heartbeatRole(),
    );
    // An iterator still behind holds the new link too.
    if (this.iteratorsBehind > 0) link.pauseInput('consumer', true);
    const acked = Math.max(this.outbound.acked, Math.min(peerLastReceived, this.outbound.lastSeq));
    if (acked > this.outbound.acked) this.applyAck(acked);
    this.nextSend = acked + 1;
    // The peer learned our last received seq from the handshake: nothing is owed.
    this.inbound.reset(this.inbound.lastReceived);
    const replayed = this.outbound.lastSeq - acked;
    this.health.transition(
      ['connecting', 'disconnected'],
      'healthy',
      resumed ? 'session resumed' : 'handshake complete',
    );
    const event: OpenEvent = { sessionId, resumed, replayed };
    this.linkOpened(event);
    this.emit('open', event);
    if (resumed) this.emit('resumed', event);
    if (peer.maxFrame < this.config.maxFrame && this.holdsOversized()) return;
    this.flush();
  }

  /**
   * Messages queued before the handshake were checked against our own maxFrame: one the
   * peer announced it cannot take ends the connection for good (resending it would be
   * refused every time), and 'session-lost' hands it back.
   */
  private holdsOversized(): boolean {
    for (let seq = this.outbound.acked + 1; seq <= this.outbound.lastSeq; seq++) {
      const payload = this.outbound.get(seq);
      if (payload === undefined) continue;
      const overhead = frameOverhead(this.envelopes?.get(seq) ?? null);
      if (payload.length + overhead <= this.peerMaxFrame) continue;
      const message = `message ${seq} of ${payload.length} bytes exceeds the peer's maxFrame ${this.peerMaxFrame}`;
      this.closeLocal(
        CloseCode.NORMAL,
        message,
        new HeartlineError('HL_ERR_FRAME_TOO_LARGE', message),
        'frame-too-large',
      );
      return true;
    }
    return false;
  }

  /** Forgets the current link (it closed or was superseded). */
  protected detach(link: Link): void {
    if (link !== this.link) return;
    this.lastHeard = link.lastReceived;
    this.lastRtt = link.beat?.rtt.srtt ?? this.lastRtt;
    this.link = null;
    this.ackTimer?.cancel();
  }

  /** Starts a fresh session: hands back what the peer never acknowledged. */
  protected loseSession(): SessionLostEvent | null {
    const sessionId = this.sessionId;
    // Requests and replies are not handed back: their promises reject (just below), and
    // a reply means nothing in another session.
    const envelopes = this.envelopes;
    let seq = this.outbound.acked;
    const unacked: Buffer[] = [];
    for (const payload of this.outbound.takeAll()) {
      if (envelopes?.has(++seq) !== true) unacked.push(asBuffer(payload));
    }
    this.envelopes = null;
    this.inbound.reset(0);
    this.nextSend = 1;
    this.currentSessionId = null;
    const lost = 'the session was lost before everything was acknowledged';
    this.rejectAckWaiters('HL_ERR_SESSION_LOST', lost);
    this.ackCallbacks?.failAll('HL_ERR_SESSION_LOST', lost);
    // Before everWritten restarts: it tells which requests may have run (were written).
    this.requests?.failAll('HL_ERR_SESSION_LOST', 'the session was lost before the reply');
    this.everWritten = 0;
    if (sessionId === null) return null;
    const event = { sessionId, unacked };
    this.emit('session-lost', event);
    return event;
  }

  /** Ends the connection for good and emits 'close' once. */
  protected finish(info: CloseInfo): void {
    if (this.finalInfo) return;
    this.finalInfo = info;
    this.ackTimer?.cancel();
    this.health.transition(
      ['connecting', 'healthy', 'suspect', 'dead', 'disconnected'],
      'closed',
      info.reason,
    );
    // Nothing disappears silently: what the peer never acknowledged goes back to the app.
    if (this.outbound.size > 0 && this.handsBackOnClose()) this.loseSession();
    this.outbound.releaseBudget();
    this.onFinish(info);
    const closed = `connection ${this.id} closed`;
    this.rejectAckWaiters('HL_ERR_CONNECTION_CLOSED', closed);
    this.ackCallbacks?.failAll('HL_ERR_CONNECTION_CLOSED', closed);
    this.requests?.failAll('HL_ERR_CONNECTION_CLOSED', `${closed} before the reply`);
    this.emit('close', info);
  }

  /**
   * Whether unacknowledged messages are handed back ('session-lost') when the connection
   * closes. False where a shared store keeps them for the session on another node.
   */
  protected handsBackOnClose(): boolean {
    return true;
  }

  /** Subclass cleanup when the connection ends (timers, registries). */
  protected onFinish(_info: CloseInfo): void {}

  /** The reason the connection closed, once it has. */
  get closeInfo(): CloseInfo | null {
    return this.finalInfo;
  }

  /**
   * @internal Writes queued messages while the socket has room, up to what the delivery
   * strategy allows, ACKs riding ahead of them.
   */
  flush(): void {
    const link = this.link;
    const limit = this.delivery.flushLimit(this);
    if (link && this.nextSend <= limit && link.writable) {
      // The link gathers this turn's frames into one write; a pending ACK rides in front
      // of them (pendingAck), once per write rather than once per message.
      const envelopes = this.envelopes;
      while (this.nextSend <= limit && link.writable) {
        const seq = this.nextSend;
        const payload = this.outbound.get(seq);
        if (payload === undefined) break;
        const envelope = envelopes?.get(seq);
        if (envelope === undefined) link.writeData(seq, payload);
        else if (envelope.type === FrameType.REQUEST) link.writeRequest(seq, envelope.key, payload);
        else link.writeReply(seq, envelope.requestSeq, envelope.status, payload);
        this.nextSend = seq + 1;
      }
      if (this.nextSend - 1 > this.everWritten) this.everWritten = this.nextSend - 1;
    }
    this.delivery.flushed(this);
  }

  // ---- DeliveryHost: what a delivery strategy uses (src/session/delivery.ts) ----------

  /**
   * @internal Highest outbound seq assigned; a resume's lastReceived must lie between
   * {@link ackedSeq} and it (PROTOCOL.md 6.3).
   */
  get sentSeq(): number {
    return this.outbound.lastSeq;
  }

  /** @internal Highest outbound seq the peer acknowledged. */
  get ackedSeq(): number {
    return this.outbound.acked;
  }

  /** @internal Highest outbound seq written to the current link. */
  get writtenSeq(): number {
    return this.nextSend - 1;
  }

  /** @internal Peer messages up to `seq` are committed: no ACK of ours is owed for them. */
  committed(seq: number): boolean {
    if (seq <= this.inbound.lastReceived) return false;
    this.inbound.reset(seq);
    return true;
  }

  /** @internal Sends ACK(last received) at once. */
  ackNow(): void {
    const seq = this.inbound.lastReceived;
    if (seq > 0) this.writeAck(seq);
  }

  /** @internal Writes ACK(seq) on the current link; false without one. */
  writeAck(seq: number): boolean {
    const link = this.link;
    if (link === null) return false;
    link.writeAck(seq);
    return true;
  }

  /** @internal Numbers a message taken from a session store's inbox, like send(). */
  queueFromStore(payload: Uint8Array): number {
    const seq = this.outbound.push(payload);
    this.messagesOut++;
    return seq;
  }

  /** @internal Stops or resumes reading the link while a session store catches up. */
  pauseForStore(paused: boolean): void {
    this.link?.pauseInput('store', paused);
  }

  /**
   * @internal The local path of a sequenced message: drops duplicates, hands the next
   * seq to the application at once and acknowledges it (at once, riding ahead of this
   * turn's frames, or after ackDelay). False for a gap.
   */
  receiveNow(seq: number, payload: Buffer, kind: Inbound): boolean {
    const link = this.link;
    const verdict = this.inbound.accept(seq);
    if (verdict === 'gap') return false;
    if (verdict === 'deliver') this.deliver(seq, payload, false, kind);
    if (link === null || this.link !== link) return true;
    if (this.closing) {
      // It crossed our CLOSE: acknowledged at once, so the peer hands back exactly what
      // we never received (PROTOCOL.md 8).
      if (this.inbound.ackPending) link.ackAfterClose(this.inbound.takeAck());
      return true;
    }
    // Frames already wait to leave this turn (a reply from the handler): the ACK rides
    // in front of them (pendingAck), so neither an ACK of its own nor the timer is needed.
    // A duplicate counts as pending too (InboundTracker), so it is acknowledged at once.
    if (link.flushPending) return true;
    if (this.inbound.ackDue || verdict === 'duplicate') this.sendAck();
    else if (this.inbound.ackPending && !this.ackTimer?.armed) this.armAckTimer();
    return true;
  }

  /**
   * @internal Hands one message to the application; reply() works while its listeners
   * run. A listener that throws ends this connection only (see {@link handlerFailed}):
   * the message came from the peer, and no peer may take the process down with it.
   */
  deliver(seq: number, payload: Buffer, redelivered: boolean, kind: Inbound): void {
    if (this.gate !== null) {
      this.gate.push([seq, payload, redelivered, kind]);
      // An empty message costs its bookkeeping too: without it a flood never pauses.
      this.gateBytes += payload.length + ENTRY_OVERHEAD;
      if (!this.gatePaused && this.gateBytes > GATE_PAUSE_BYTES && this.link) {
        // TCP pushes back on the peer until the decision is made.
        this.gatePaused = true;
        this.link.pauseInput('request', true);
      }
      return;
    }
    this.messagesIn++;
    if (kind !== null && typeof kind === 'object') {
      // A REPLY: it settles our request (or is dropped if nobody waits any more).
      this.requests?.settle(kind.requestSeq, kind.status, payload);
      return;
    }
    if (kind !== null) {
      const decided = this.deliverRequest(seq, payload, redelivered, kind);
      if (decided !== undefined) {
        // What arrives meanwhile waits, so that delivery stays in order.
        this.gate = [];
        this.gateBytes = 0;
        void decided.then(() => this.openGate());
      }
      return;
    }
    const info = new Delivery(this, seq, redelivered);
    try {
      this.emit('message', payload, info);
    } catch (err) {
      this.handlerFailed(err, seq);
    } finally {
      info.live = false;
    }
  }

  /**
   * Hands a REQUEST to the application. Its handler's failure is the requester's
   * business, not the connection's: a listener that throws (or returns a promise that
   * rejects) answers REPLY(error); no listener at all answers REPLY(no responder).
   * Subclasses may answer from an idempotency window instead (see ServerConnection).
   */
  protected deliverRequest(
    seq: number,
    payload: Buffer,
    redelivered: boolean,
    key: string,
  ): Promise<void> | undefined {
    this.runRequest(seq, payload, redelivered, key, null);
    return undefined;
  }

  /** The asynchronous decision is made: delivers what waited, in order. */
  private openGate(): void {
    const waiting = this.gate;
    this.gate = null;
    if (this.gatePaused) {
      this.gatePaused = false;
      this.link?.pauseInput('request', false);
    }
    if (waiting === null) return;
    for (let i = 0; i < waiting.length; i++) {
      if (this.closed) return;
      const [seq, payload, redelivered, kind] = waiting[i]!;
      this.deliver(seq, payload, redelivered, kind);
      // deliver() may have closed the gate again (TypeScript cannot see it).
      const gate = this.gate as typeof waiting | null;
      if (gate !== null) {
        // Another decision to wait for: the rest queue behind it.
        for (let j = i + 1; j < waiting.length; j++) gate.push(waiting[j]!);
        return;
      }
    }
  }

  /**
   * @internal A held outbound message as a session store keeps it (cluster mode): the
   * frame's kind travels with the payload, so another node replays the same frame.
   */
  logEntry(seq: number): Uint8Array | undefined {
    const payload = this.outbound.get(seq);
    if (payload === undefined) return undefined;
    return encodeLogEntry(payload, this.envelopes?.get(seq) ?? null);
  }

  /** Holds a message read back from a session store's log (see {@link logEntry}). */
  protected restoreEntry(entry: Uint8Array): void {
    const { payload, envelope } = decodeLogEntry(entry);
    // The store held it within its own cap: counted, never refused.
    const seq = this.outbound.push(payload, false, true);
    if (envelope !== null) {
      this.envelopes ??= new Map();
      this.envelopes.set(seq, envelope);
    }
  }

  /**
   * Runs the 'message' listeners for REQUEST `seq`; `kept` learns its answer (for an
   * idempotency window), or of none if the connection closes before one.
   */
  protected runRequest(
    seq: number,
    payload: Buffer,
    redelivered: boolean,
    key: string,
    kept: ((status: ReplyStatusValue, payload: Uint8Array | null) => void) | null,
  ): void {
    const info = new Delivery(this, seq, redelivered, { key, kept });
    if (this.listenerCount('message') === 0) {
      info.answer(ReplyStatus.NO_RESPONDER, 'no message listener');
      return;
    }
    try {
      // Called one by one rather than through emit(): a listener's rejected promise
      // fails the request too.
      for (const listener of this.listeners('message')) {
        const result: unknown = listener.call(this, payload, info);
        if (result instanceof Promise) result.catch((err) => info.failFromHandler(err));
      }
    } catch (err) {
      info.failFromHandler(err);
    } finally {
      info.live = false;
    }
  }

  /**
   * A 'message' listener threw. The connection closes for good, and the peer learns why
   * from the CLOSE code:
   * - HL_ERR_BUFFER_FULL (a reply past maxBufferedBytes: the peer leaves that much
   *   unacknowledged) -> POLICY_VIOLATION, final;
   * - HL_ERR_OVERLOADED (a server's shared replay budget is spent) -> OVERLOADED, retry later;
   * - anything else -> INTERNAL_ERROR.
   * The 'close' event carries the error (HL_ERR_HANDLER with the thrown value as cause for
   * the last case). Once closing, later failures are the same story and are dropped.
   */
  private handlerFailed(err: unknown, seq: number): void {
    if (this.closed || this.closing) return;
    const code = err instanceof HeartlineError ? err.code : null;
    if (code === 'HL_ERR_BUFFER_FULL') {
      const message = `the peer left ${this.outbound.memory} bytes unacknowledged (maxBufferedBytes ${this.config.maxBufferedBytes})`;
      this.closeLocal(
        CloseCode.POLICY_VIOLATION,
        message,
        new HeartlineError('HL_ERR_POLICY_VIOLATION', message, { cause: err }),
        'policy-violation',
      );
    } else if (code === 'HL_ERR_OVERLOADED') {
      const message = (err as HeartlineError).message;
      this.closeLocal(CloseCode.OVERLOADED, message, err as HeartlineError, 'overloaded');
    } else {
      const error = new HeartlineError(
        'HL_ERR_HANDLER',
        `a 'message' listener threw on message ${seq}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
      this.closeLocal(CloseCode.INTERNAL_ERROR, 'message handler failed', error, 'internal-error');
    }
  }

  private onDataFrame(link: Link, seq: number, payload: Buffer, kind: Inbound): void {
    // Draining: what arrives after our CLOSE(going away) cannot be acknowledged any more,
    // so it is left to the next server, which the client will resend it to. Closing for
    // a fault (a handler that threw, a peer that left too much unacknowledged): nothing
    // more is handed to the application, and a flood in flight costs decoding only.
    const closing = this.closing;
    if (closing && (closing.code === CloseCode.GOING_AWAY || closing.reason !== 'local')) return;
    // Sequences start at 1 (PROTOCOL.md 6.1): seq 0 is no duplicate, no correct peer sends it.
    if (seq === 0) {
      link.unexpected('DATA seq 0: sequence numbers start at 1');
      return;
    }
    if (!this.delivery.receive(this, seq, payload, kind)) {
      link.unexpected(`DATA seq ${seq} skips ahead of the next expected one`);
    }
  }

  private armAckTimer(): void {
    this.ackTimer ??= this.wheel.timerFor(this, Connection.ackDue);
    this.ackTimer.arm(this.config.ackDelay);
  }

  private onAck(link: Link, seq: number): void {
    if (seq > this.outbound.lastSeq || seq >= this.nextSend) {
      link.unexpected(`ACK ${seq} for a message never sent`);
      return;
    }
    if (seq > this.outbound.acked) this.applyAck(seq);
    this.delivery.acked(this, seq);
  }

  private applyAck(seq: number): void {
    this.outbound.ack(seq);
    const envelopes = this.envelopes;
    if (envelopes !== null) {
      // Seqs grow: the Map's order is seq order, and an ACK frees a prefix of it.
      for (const s of envelopes.keys()) {
        if (s > seq) break;
        envelopes.delete(s);
      }
    }
    this.ackCallbacks?.acked(seq);
    if (this.outbound.size === 0 && this.ackWaiters !== null) {
      const waiters = this.ackWaiters;
      this.ackWaiters = null;
      for (const w of waiters) w.resolve();
    }
    if (this.wasFull && !this.outbound.full) {
      this.wasFull = false;
      this.emit('drain');
    }
  }

  private rejectAckWaiters(code: ErrorCode, message: string): void {
    const waiters = this.ackWaiters;
    if (waiters === null) return;
    this.ackWaiters = null;
    for (const w of waiters) w.reject(new HeartlineError(code, message));
  }

  /**
   * The ack timer's handler: a static method, shared by every connection (no closure
   * each), that may still call private members.
   */
  private static ackDue(conn: Connection): void {
    conn.sendAck();
  }

  /**
   * Acknowledges now: the ACK goes out in front of this turn's write (pendingAck), so
   * one write never carries two ACKs and the values a peer sees never decrease.
   */
  private sendAck(): void {
    this.ackTimer?.cancel();
    const link = this.link;
    if (!link || !this.inbound.ackPending) return;
    link.flushSoon();
  }
}
