/**
 * A link is one connection: the one place that knows both a transport (a TCP or TLS
 * socket, or any other {@link Transport}) and the codec. It decodes frames, answers PINGs
 * at once, runs the heartbeat, keeps control frames ahead of bulk data, watches for write
 * stalls and classifies how it closed. Everything session-shaped (sequence numbers, acks,
 * resume) lives above it, in the {@link LinkOwner}, which can change once the handshake
 * has found the session. What only one kind of transport needs (TCP's socket options)
 * lives in a subclass made for it (src/tcp-link.ts), behind {@link Link.tuneTransport}.
 */

import { type ErrorCode, HeartlineError, ProtocolError } from './errors.js';
import type { FailureDetector } from './health/index.js';
import { Heartbeat, type HeartbeatRole } from './heartbeat.js';
import { classifySocketError, errnoCode } from './net/classify.js';
import type { TcpOptionValues } from './net/sockopts.js';
import { isTlsError } from './net/tls.js';
import {
  acquireBatch,
  OWN_BUFFER_ABOVE,
  releaseBatch,
  type WriteBatch,
} from './net/write-batch.js';
import type { HeartbeatSettings, ResolvedCommon, SharedBudget } from './options.js';
import { CloseCode, type CloseReason, reasonForCode } from './protocol/close-codes.js';
import {
  ACK_FRAME_BYTES,
  closeReasonFor,
  DATA_OVERHEAD,
  Decoder,
  encodeAck,
  encodeClose,
  PROBE_FRAME_BYTES,
  probeSeq,
  probeTimestamp,
  REPLY_OVERHEAD,
  requestOverhead,
  wholeProbeType,
  writeAckAt,
  writeDataAt,
  writeProbeAt,
  writeReplyAt,
  writeRequestAt,
} from './protocol/codec.js';
import {
  DEFAULT_MAX_FRAME,
  type Frame,
  FrameType,
  type ReplyStatusValue,
} from './protocol/frames.js';

/** Reasons for which the peer cannot read a last CLOSE: fail() destroys at once. */
const PEER_GONE: ReadonlySet<CloseReason> = new Set<CloseReason>([
  'heartbeat-timeout',
  'write-stall',
  'keepalive-timeout',
]);

import type { TimingWheel, WheelTimer } from './time/wheel.js';
import type { Transport } from './transport/transport.js';

/** How a link ended. */
export interface CloseInfo {
  /** Classified reason. */
  reason: CloseReason;
  /** The CLOSE code sent or received, when there was one. */
  code?: number;
  /** The peer's reason text or the local error's message. */
  message: string;
  /** The peer's retry hint in ms (CLOSE overloaded). */
  retryAfter?: number;
  /** A typed error for every close that is not a clean one (its cause is the OS error). */
  error?: HeartlineError;
  /** The OS error code (ECONNRESET, EPIPE, ...) where there is one. */
  errno?: string;
}

/** Receives what a link produces. */
export interface LinkOwner {
  /** Any frame other than PING, PONG and CLOSE. */
  onFrame(link: Link, frame: Frame): void;
  onLiveness(link: Link, event: 'suspect' | 'alive' | 'dead'): void;
  onRtt(link: Link, sampleMs: number): void;
  /** The socket buffer fell below the low-water mark: more DATA may be written. */
  onWritable(link: Link): void;
  /**
   * This turn's frames are about to go to the socket: the seq of a cumulative ACK to put
   * ahead of them, or -1 for none. The ACK rides in front so that the peer frees its
   * replay buffer before it reads the DATA that follows.
   */
  pendingAck?(link: Link): number;
  /** The peer sent CLOSE: last chance to write (a final ACK) before our FIN. */
  onPeerClose?(link: Link): void;
  /** The link is gone; called exactly once. */
  onClose(link: Link, info: CloseInfo): void;
}

/** Byte and frame counters of one link. */
export interface LinkStats {
  bytesIn: number;
  bytesOut: number;
  framesIn: number;
  framesOut: number;
}

/** Close codes a local close sends for each reason (reasons absent here send none). */
const CODE_FOR_REASON: Partial<Record<CloseReason, number>> = {
  'protocol-error': CloseCode.PROTOCOL_ERROR,
  'frame-too-large': CloseCode.FRAME_TOO_LARGE,
  'unsupported-version': CloseCode.UNSUPPORTED_VERSION,
  'heartbeat-timeout': CloseCode.HEARTBEAT_TIMEOUT,
  'handshake-timeout': CloseCode.HANDSHAKE_TIMEOUT,
  'write-stall': CloseCode.WRITE_STALL,
  overloaded: CloseCode.OVERLOADED,
};

/** Typed error codes for the closes that are failures. */
const ERROR_FOR_REASON: Partial<Record<CloseReason, ErrorCode>> = {
  'connect-timeout': 'HL_ERR_CONNECT_TIMEOUT',
  'handshake-timeout': 'HL_ERR_HANDSHAKE_TIMEOUT',
  'heartbeat-timeout': 'HL_ERR_HEARTBEAT_TIMEOUT',
  'write-stall': 'HL_ERR_WRITE_STALL',
  'auth-failed': 'HL_ERR_AUTH_FAILED',
  overloaded: 'HL_ERR_OVERLOADED',
  'policy-violation': 'HL_ERR_POLICY_VIOLATION',
  'unsupported-version': 'HL_ERR_UNSUPPORTED_VERSION',
  'tls-error': 'HL_ERR_TLS',
};

/** The typed error of a close for `reason` that is a failure, else undefined. */
export function errorFor(reason: CloseReason, message: string): HeartlineError | undefined {
  const code = ERROR_FOR_REASON[reason];
  return code ? new HeartlineError(code, message) : undefined;
}

/** How long a closing link waits for its CLOSE frame to flush before destroying. */
const CLOSE_GRACE_MS = 1000;

let nextLinkId = 0;

function flushLink(link: Link): void {
  link.flushOut();
}

/**
 * Why a link's owner stopped reading its socket (see {@link Link.pauseInput}): a session
 * store behind, an asynchronous request decision pending, the application's consumer
 * behind. Each is a bit: the link reads again once none holds.
 */
export type InputHold = 'store' | 'request' | 'consumer';
const HOLD_BIT: Readonly<Record<InputHold, number>> = { store: 1, request: 2, consumer: 4 };

/**
 * Transport listeners shared by every link: the transport calls them with itself as
 * `this` (as an EventEmitter does), and its `heartlineLink` leads back to the link, so a
 * link adds no closure per event and no wrapper around its transport (see memory per
 * connection in src/connection.ts).
 */
interface LinkedTransport extends Transport {
  heartlineLink?: Link;
}
function onTransportData(this: LinkedTransport, chunk: Buffer): void {
  this.heartlineLink?.onData(chunk);
}
function onTransportEnd(this: LinkedTransport): void {
  this.heartlineLink?.onEnd();
}
function onTransportError(this: LinkedTransport, err: Error): void {
  this.heartlineLink?.onError(err);
}
function onTransportClose(this: LinkedTransport): void {
  this.heartlineLink?.onTransportClose();
}
function onTransportDrain(this: LinkedTransport): void {
  this.heartlineLink?.onDrain();
}
function onTransportConnect(this: LinkedTransport): void {
  // Read the address now: once a socket closes Node no longer reports it.
  void this.heartlineLink?.remote;
}

/**
 * One connection's transport, codec and heartbeat. It is its heartbeat's host and its
 * timers' target itself (no adapter objects or closures per link).
 */
// No `implements` clause: its members are internal, stripped from the published
// declarations, where the clause would fail to compile; their uses check the shape.
export class Link {
  /** Process-unique id. */
  readonly id = ++nextLinkId;
  readonly stats: LinkStats = { bytesIn: 0, bytesOut: 0, framesIn: 0, framesOut: 0 };
  /** Monotonic ms of the last write (read when a turn's batch starts; see write()). */
  lastSent: number;
  /** Monotonic ms of the last byte received. */
  lastReceived: number;
  private remoteText: string | null = null;
  owner: LinkOwner;
  private readonly decoder: Decoder;
  private heartbeat: Heartbeat | null = null;
  /** Created on first use: most links never stall, and the handshake timer goes with the handshake. */
  private stallTimer: WheelTimer | null = null;
  private handshakeTimer: WheelTimer | null = null;
  private stallMark = -1;
  private drains = 0;
  private drainsAtMark = 0;
  private closing: CloseInfo | null = null;
  private closed = false;
  /**
   * Bytes the decoder holds that are charged to the server's shared budget (what it
   * keeps of an incomplete frame), given back as frames complete and when the link ends.
   */
  private charged = 0;
  /** We sent CLOSE and FIN on purpose and keep reading until the peer closes. */
  private halfClosed = false;
  /**
   * We sent CLOSE after the handshake and have not sent FIN yet: until the peer's FIN
   * (or the grace) we still acknowledge the DATA it sent before it saw our CLOSE.
   */
  private acking = false;
  /** The peer's CLOSE arrived: only its last ACKs still count (PROTOCOL.md 8). */
  private peerClosed = false;
  private graceTimer: WheelTimer | null = null;
  /** Fires when the incomplete frame in the decoder may be too slow (see trackPartial). */
  private partialTimer: WheelTimer | null = null;
  /** Monotonic ms at which the incomplete frame in the decoder began arriving; -1: none. */
  private partialSince = -1;
  /** Bytes of the incomplete frame received since partialSince. */
  private partialBytes = 0;
  /**
   * Frames written this turn and not yet handed to the socket: they leave together in
   * one write when the turn's work is done (null while there are none).
   */
  private out: WriteBatch | null = null;
  /** True while a chunk is processed: its replies leave together at the end of it. */
  private reading = false;
  /**
   * Frames that arrived behind HELLO while the handshake runs (see {@link holdFrames}),
   * or null when frames go straight to the owner.
   */
  private held: Frame[] | null = null;
  /** The largest frame the peer accepts (version 2 announces it; the default until then). */
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  /** Bits of the {@link InputHold}s in force (0: reading), and since when (ms). */
  private inputHolds = 0;
  private pausedAt = 0;

  /**
   * `transport` is held as it is (a `net.Socket` is one): the link listens to it with
   * shared listeners and writes to it directly.
   */
  constructor(
    readonly transport: Transport,
    protected readonly config: ResolvedCommon,
    private readonly wheel: TimingWheel,
    owner: LinkOwner,
  ) {
    this.owner = owner;
    this.decoder = new Decoder({ maxFrame: config.maxFrame });
    const now = config.clock.now();
    this.lastSent = now;
    this.lastReceived = now;
    const linked = transport as LinkedTransport;
    linked.heartlineLink = this;
    // Read the address now: once a socket closes Node no longer reports it.
    if (transport.remoteAddress !== undefined) void this.remote;
    else transport.once('connect', onTransportConnect);
    transport.on('data', onTransportData);
    transport.on('end', onTransportEnd);
    transport.on('error', onTransportError);
    transport.on('close', onTransportClose);
    transport.on('drain', onTransportDrain);
  }

  // The handlers of the link's wheel timers: static methods, shared by every link (no
  // closure each), that may still call private members.
  private static stallDue(link: Link): void {
    link.checkStall();
  }
  private static handshakeDue(link: Link): void {
    link.fail('handshake-timeout', 'no handshake within the handshake timeout');
  }
  private static partialDue(link: Link): void {
    link.checkPartial();
  }
  private static graceDue(link: Link): void {
    link.transport.destroy();
  }

  /** Remote address as host:port (kept after the socket closes). */
  get remote(): string {
    if (this.remoteText) return this.remoteText;
    const { remoteAddress, remotePort } = this.transport;
    if (remoteAddress === undefined) return '?';
    // join() builds one flat string; a template literal makes a cons string of two parts
    // (about 50 B more, kept for the link's life by the link and its connection).
    this.remoteText = (
      remoteAddress.includes(':')
        ? ['[', remoteAddress, ']:', remotePort]
        : [remoteAddress, ':', remotePort]
    ).join('');
    return this.remoteText;
  }

  /** True until the link starts closing. */
  get open(): boolean {
    return this.closing === null && !this.closed;
  }

  /** True while DATA may be written without queueing behind bulk bytes. */
  get writable(): boolean {
    return (
      this.open &&
      this.transport.writableLength + (this.out?.bytes ?? 0) < this.config.socketLowWater
    );
  }

  /** True while frames written this turn wait for the end of the turn to leave. */
  get flushPending(): boolean {
    return this.out !== null;
  }

  /** The heartbeat, once started. */
  get beat(): Heartbeat | null {
    return this.heartbeat;
  }

  /**
   * The handshake named the connection's protocol version (REQUEST and REPLY are unknown
   * frames in version 1, PROTOCOL.md 5.5) and the peer's maxFrame, which bounds even our
   * CLOSE: its reason is cut to fit.
   */
  usePeer(version: number, maxFrame: number): void {
    this.decoder.version = version;
    this.peerMaxFrame = maxFrame;
  }

  /** CLOSE(code, reason) cut to the peer's maxFrame (a reason is only for logs). */
  private closeFrame(code: number, message: string, retryAfter = 0): Buffer {
    return encodeClose(code, closeReasonFor(message, this.peerMaxFrame), retryAfter);
  }

  /** Arms the handshake deadline (less than handshakeTimeout when TLS used part of it). */
  startHandshakeTimer(ms = this.config.handshakeTimeout): void {
    this.handshakeTimer ??= this.wheel.timerFor(this, Link.handshakeDue);
    this.handshakeTimer.arm(ms);
  }

  /**
   * Server, on HELLO: frames behind it wait until the handshake is decided, so that none
   * is answered (an ACK, a PONG) ahead of WELCOME (PROTOCOL.md 5.3). The socket stops
   * reading meanwhile: what waits is bounded by the chunk that carried the HELLO.
   */
  holdFrames(): void {
    this.held ??= [];
    this.transport.pause();
  }

  /**
   * Stops (`paused` true) or resumes reading the socket for `hold`, one of the owner's
   * independent reasons: it reads again once none holds, and TCP meanwhile pushes back on
   * the peer. The silence is ours, not the peer's: while paused the heartbeat counts the
   * peer as heard (and still pings, so the peer hears us) and the deadline of an
   * incomplete frame stops. The frames of the read in progress are still handed over.
   */
  pauseInput(hold: InputHold, paused: boolean): void {
    const before = this.inputHolds;
    const after = paused ? before | HOLD_BIT[hold] : before & ~HOLD_BIT[hold];
    this.inputHolds = after;
    if ((before === 0) === (after === 0) || !this.open) return;
    const now = this.config.clock.now();
    if (after !== 0) {
      this.pausedAt = now;
      this.transport.pause();
    } else {
      if (this.partialSince >= 0) {
        this.partialSince += now - this.pausedAt;
        // checkPartial() skipped its firing while paused: look again.
        if (this.partialTimer?.armed === false) this.partialTimer.arm(0);
      }
      if (this.held === null) this.transport.resume();
    }
    this.heartbeat?.pauseInput(after !== 0);
  }

  /**
   * Server, after WELCOME and the session's resends were written: hands them to the
   * socket on their own (no ACK slot in front of WELCOME), then gives the frames that
   * waited behind HELLO to the new owner, in order, and reads again.
   */
  releaseFrames(): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    this.flushOut();
    if (this.open && this.inputHolds === 0) this.transport.resume();
    for (const frame of held) {
      if (this.closed || (this.closing && !this.halfClosed)) return;
      this.dispatch(frame);
    }
  }

  /**
   * Handshake done: cancels its deadline and starts the heartbeat with the granted
   * settings; `role` says which end leads the idle exchange (PROTOCOL.md 7.2).
   */
  startHeartbeat(
    settings: HeartbeatSettings,
    detector: FailureDetector,
    role: HeartbeatRole = 'client',
  ): Heartbeat {
    this.handshakeTimer?.cancel();
    this.handshakeTimer = null;
    this.heartbeat?.stop();
    const heartbeat = new Heartbeat(
      this.wheel,
      this.config.clock,
      settings,
      detector,
      this,
      this.config.maxPingStrikes,
      role,
    );
    this.heartbeat = heartbeat;
    heartbeat.start();
    if (this.inputHolds !== 0) heartbeat.pauseInput(true);
    this.tuneTransport(settings);
    return heartbeat;
  }

  // ---- HeartbeatHost (called by this link's heartbeat) -----------------------------

  /** @internal */
  sendPing(seq: number, timestampMicros: number): void {
    this.writeProbe(FrameType.PING, seq, timestampMicros);
  }

  /** @internal */
  onRtt(sampleMs: number): void {
    this.owner.onRtt(this, sampleMs);
  }

  /** @internal A retune re-tunes the transport to the new settings. */
  onRetune(settings: HeartbeatSettings): void {
    this.tuneTransport(settings);
  }

  /**
   * The heartbeat settings were granted (handshake) or retuned: a transport that has its
   * own liveness machinery derives it from them here (TCP keepalive and user timeout in
   * src/tcp-link.ts). The generic link has none.
   */
  protected tuneTransport(_settings: HeartbeatSettings): void {}

  /**
   * The TCP options in force on the transport, read back from the kernel, or null where
   * the transport is not a TCP socket (or they cannot be read).
   */
  tcpOptions(): TcpOptionValues | null {
    return null;
  }

  /**
   * Writes an encoded frame (control frames and DATA the owner paced). Frames written in
   * one turn (while a received chunk is handled, or in one synchronous run of code) reach
   * the socket together, in order, in one write at the end of it: one system call per
   * turn instead of one per frame. A frame is not modified afterwards, so a large one is
   * written as it is rather than copied.
   */
  write(frame: Buffer): void {
    if (!this.open) return;
    const out = this.batch();
    if (frame.length > OWN_BUFFER_ABOVE) {
      out.append(frame);
    } else {
      const at = out.reserve(frame.length); // before reading out.buffer: it may move
      frame.copy(out.buffer, at);
    }
    this.written(out, frame.length);
  }

  /** Writes DATA `seq`, encoded straight into this turn's batch (see {@link write}). */
  writeData(seq: number, payload: Uint8Array): void {
    if (!this.open) return;
    const n = DATA_OVERHEAD + payload.length;
    const out = this.batch();
    const at = out.reserve(n);
    try {
      writeDataAt(out.buffer, at, seq, payload);
    } catch (err) {
      out.drop(n);
      throw err;
    }
    this.written(out, n);
  }

  /** Writes REQUEST `seq` (version 2) into this turn's batch, like {@link writeData}. */
  writeRequest(seq: number, key: Uint8Array, payload: Uint8Array): void {
    if (!this.open) return;
    const n = requestOverhead(key.length) + payload.length;
    const out = this.batch();
    const at = out.reserve(n);
    try {
      writeRequestAt(out.buffer, at, seq, key, payload);
    } catch (err) {
      out.drop(n);
      throw err;
    }
    this.written(out, n);
  }

  /** Writes REPLY `seq` (version 2) into this turn's batch, like {@link writeData}. */
  writeReply(seq: number, requestSeq: number, status: ReplyStatusValue, payload: Uint8Array): void {
    if (!this.open) return;
    const n = REPLY_OVERHEAD + payload.length;
    const out = this.batch();
    const at = out.reserve(n);
    try {
      writeReplyAt(out.buffer, at, seq, requestSeq, status, payload);
    } catch (err) {
      out.drop(n);
      throw err;
    }
    this.written(out, n);
  }

  /** Writes a cumulative ACK of `seq` into this turn's batch (see {@link write}). */
  writeAck(seq: number): void {
    if (!this.open) return;
    const out = this.batch();
    const at = out.reserve(ACK_FRAME_BYTES);
    try {
      writeAckAt(out.buffer, at, seq);
    } catch (err) {
      out.drop(ACK_FRAME_BYTES);
      throw err;
    }
    this.written(out, ACK_FRAME_BYTES);
  }

  /** Writes a PING or PONG straight into this turn's batch (no Buffer per heartbeat). */
  private writeProbe(
    type: typeof FrameType.PING | typeof FrameType.PONG,
    seq: number,
    timestamp: number,
  ): void {
    if (!this.open) return;
    const out = this.batch();
    const at = out.reserve(PROBE_FRAME_BYTES);
    try {
      writeProbeAt(out.buffer, at, type, seq, timestamp);
    } catch (err) {
      out.drop(PROBE_FRAME_BYTES);
      throw err;
    }
    this.written(out, PROBE_FRAME_BYTES);
  }

  /**
   * Makes sure a write leaves at the end of this turn even if nothing else is written:
   * the owner's cumulative ACK then goes out in it (see {@link LinkOwner.pendingAck}).
   */
  flushSoon(): void {
    if (this.open) this.batch();
  }

  /**
   * Counts a frame of `n` bytes just added to `out`. A batch that reaches the low-water
   * mark leaves at once: bulk data then fills the kernel's buffer as fast as it takes
   * it, and pacing sees the socket's own backlog.
   */
  private written(out: WriteBatch, n: number): void {
    this.stats.bytesOut += n;
    this.stats.framesOut++;
    if (out.bytes >= this.config.socketLowWater) this.flushOut();
  }

  /** This turn's batch, started (and its flush scheduled) on the first frame. */
  private batch(): WriteBatch {
    let out = this.out;
    if (out === null) {
      // Read once per batch, not per frame: the frames of one turn leave together. While
      // a chunk is handled, its arrival time (read for it just now) serves.
      this.lastSent = this.reading ? this.lastReceived : this.config.clock.now();
      out = this.out = acquireBatch();
      // Room for the owner's ACK in front, filled or left out when the batch leaves.
      out.reserveSlot(ACK_FRAME_BYTES);
      // While a chunk is handled, onData flushes at its end; otherwise once this run of
      // code is done (before any I/O, so latency grows by microseconds, not a turn).
      if (!this.reading) process.nextTick(flushLink, this);
    }
    return out;
  }

  /**
   * @internal Hands this turn's frames to the socket in one write, behind the owner's
   * cumulative ACK if it has one to send. Called at the end of the turn, and before
   * anything that ends the socket so that frames written before a CLOSE or FIN go out
   * ahead of it.
   */
  flushOut(): void {
    const out = this.out;
    if (out === null) return;
    this.out = null;
    // Also while closing: the last ACK goes out ahead of our CLOSE or FIN.
    const ack = this.closed ? -1 : (this.owner.pendingAck?.(this) ?? -1);
    if (ack >= 0) {
      writeAckAt(out.slotBuffer, out.slotOffset, ack);
      this.stats.bytesOut += ACK_FRAME_BYTES;
      this.stats.framesOut++;
    } else {
      out.skipSlot();
    }
    const bytes = out.take();
    releaseBatch(out);
    const transport = this.transport;
    if (bytes === null || transport.destroyed || !transport.writable) return;
    if (!Array.isArray(bytes)) transport.write(bytes);
    else if (bytes.length === 1) transport.write(bytes[0]!);
    else {
      transport.cork();
      for (const b of bytes) transport.write(b);
      transport.uncork();
    }
    if (transport.writableLength > 0 && this.stallMark < 0) this.markStall();
  }

  /**
   * Closes the link on purpose: sends CLOSE(code, message) when a code is given, lets it
   * flush, then ends the socket. The owner hears onClose with `reason`.
   */
  close(
    reason: CloseReason,
    code?: number,
    message = '',
    retryAfter = 0,
    error: HeartlineError | undefined = errorFor(reason, message),
  ): void {
    if (!this.open) return;
    this.closing = {
      reason,
      message,
      ...(code !== undefined ? { code } : {}),
      ...(error ? { error } : {}),
    };
    this.halfClosed = true;
    if (this.held !== null) {
      // Refused during the handshake: what waited behind HELLO is dropped, and reading
      // resumes so that the closing handshake sees the peer's FIN.
      this.held = null;
      this.transport.resume();
    }
    if (this.inputHolds !== 0) {
      // The closing handshake reads on until the peer's FIN, whatever held it.
      this.inputHolds = 0;
      this.transport.resume();
    }
    this.heartbeat?.stop();
    this.handshakeTimer?.cancel();
    this.stallTimer?.cancel();
    this.flushOut();
    if (code !== undefined && !this.transport.destroyed) {
      try {
        this.transport.write(this.closeFrame(code, message, retryAfter));
      } catch {
        // the socket may already be failing; the close below still runs
      }
    }
    // After the handshake our FIN waits for the peer's (PROTOCOL.md 8): DATA it sent
    // before it saw our CLOSE is acknowledged meanwhile, so what it hands back is exactly
    // what we never received. Before it there is nothing to acknowledge.
    if (code !== undefined && this.heartbeat !== null && !this.transport.destroyed) {
      this.acking = true;
    } else {
      this.transport.end();
    }
    this.armGrace();
  }

  /**
   * The closer's ACK of DATA that crossed its CLOSE, written at once (no batch: nothing
   * else goes out after a CLOSE). Ignored once our FIN is out.
   */
  ackAfterClose(seq: number): void {
    if (!this.acking || this.closed || !this.transport.writable) return;
    try {
      this.transport.write(encodeAck(seq));
      this.stats.bytesOut += ACK_FRAME_BYTES;
      this.stats.framesOut++;
    } catch {
      // the peer may be gone; the grace ends the link
    }
  }

  /** Destroys the socket if the closing handshake has not ended it within the grace. */
  private armGrace(): void {
    this.graceTimer ??= this.wheel.timerFor(this, Link.graceDue);
    this.graceTimer.arm(CLOSE_GRACE_MS);
  }

  /** Ends the link at once for a local failure, sending the matching CLOSE code if any. */
  fail(reason: CloseReason, message: string, error?: HeartlineError): void {
    if (!this.open) return;
    const code = CODE_FOR_REASON[reason];
    const typed = error ?? errorFor(reason, message);
    this.closing = {
      reason,
      message,
      ...(code !== undefined ? { code } : {}),
      ...(typed ? { error: typed } : {}),
    };
    this.heartbeat?.stop();
    this.flushOut();
    if (code !== undefined && !this.transport.destroyed && this.transport.writable) {
      try {
        this.transport.write(this.closeFrame(code, message));
      } catch {
        // best effort: the peer may be gone
      }
    }
    // A peer that broke the protocol is alive and reading: if frames of this turn still
    // wait in the socket (over TLS they always pass through its encryption first), a
    // destroy would drop the CLOSE behind them, so the socket ends and the grace bounds
    // the wait. A dead or stalled peer cannot take them anyway: destroyed at once.
    if (code !== undefined && this.transport.writableLength > 0 && !PEER_GONE.has(reason)) {
      this.transport.end();
      this.armGrace();
      return;
    }
    this.transport.destroy();
  }

  /** @internal The peer pinged faster than its grant allows, again and again: a final CLOSE. */
  onPingFlood(strikes: number): void {
    const interval = this.heartbeat?.current.interval ?? 0;
    this.close(
      'policy-violation',
      CloseCode.POLICY_VIOLATION,
      `too many pings: ${strikes} strikes for pinging faster than the granted interval of ${interval} ms allows`,
    );
  }

  /** @internal */
  onLiveness(event: 'suspect' | 'alive' | 'dead'): void {
    this.owner.onLiveness(this, event);
    if (event === 'dead') {
      const t = this.heartbeat?.current.timeout ?? 0;
      this.fail('heartbeat-timeout', `nothing heard from the peer for ${t} ms`);
    }
  }

  /** @internal (transport 'data') */
  onData(chunk: Buffer): void {
    if (this.closed) return;
    this.reading = true;
    try {
      this.receive(chunk);
    } finally {
      this.reading = false;
      this.flushOut();
    }
  }

  private receive(chunk: Buffer): void {
    this.lastReceived = this.config.clock.now();
    this.stats.bytesIn += chunk.length;
    if (this.heartbeat?.isSuspect) this.heartbeat.heardWhileSuspect();
    if (this.held === null && this.receiveProbe(chunk)) return;
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.failProtocol(err);
      return;
    }
    if (this.config.minDataRate > 0) this.trackPartial(chunk.length, frames.length > 0);
    if (this.config.budget !== null && !this.chargeDecoder(this.config.budget)) return;
    for (const frame of frames) {
      // After our own close() the peer's frames still count until its FIN; after the
      // peer's CLOSE, only the ACKs it sends for what crossed it (closing handshake).
      if (this.closed) return;
      if (this.closing && !this.halfClosed) {
        if (this.peerClosed && frame.type === FrameType.ACK) this.owner.onFrame(this, frame);
        continue;
      }
      this.stats.framesIn++;
      if (this.held !== null) this.held.push(frame);
      else this.dispatch(frame);
    }
  }

  /**
   * Charges what the decoder now keeps to the server's budget, so that incomplete frames
   * on many connections cannot together pass it (each is bounded by maxFrame alone). When
   * the budget cannot take it, even after shedding connections that hold more, this link
   * ends with CLOSE(overloaded). False when it did.
   */
  private chargeDecoder(budget: SharedBudget): boolean {
    const held = this.decoder.retainedBytes;
    const delta = held - this.charged;
    if (delta > 0 && !budget.tryReserve(delta, this.charged)) {
      const message = `server buffer budget full: no room for ${held} bytes of an incomplete frame`;
      this.fail('overloaded', message, new HeartlineError('HL_ERR_OVERLOADED', message));
      return false;
    }
    if (delta < 0) budget.release(-delta);
    this.charged = held;
    return true;
  }

  /**
   * The idle heartbeat's fast path: a chunk that is exactly one PING or PONG, with
   * nothing buffered before it (how nearly every heartbeat arrives), is read where it
   * lies, without the frame list and frame object of {@link Decoder.push}. Anything else,
   * a malformed probe included, goes through the decoder so that errors stay the same.
   */
  private receiveProbe(chunk: Buffer): boolean {
    if (this.decoder.bufferedBytes !== 0) return false;
    const type = wholeProbeType(chunk, this.config.maxFrame);
    if (type === 0) return false;
    if (this.closed || (this.closing && !this.halfClosed)) return true;
    this.stats.framesIn++;
    if (type === FrameType.PING) this.onPing(probeSeq(chunk), probeTimestamp(chunk));
    else this.onPong(probeSeq(chunk), probeTimestamp(chunk));
    return true;
  }

  private onPing(seq: number, timestamp: number): void {
    const hb = this.heartbeat;
    if (!hb) {
      this.unexpected('PING before the handshake completed');
      return;
    }
    // Policed first, so that the PING that earns a policy close is not answered.
    hb.beat(this.lastReceived, true);
    const rttDue = hb.rttDue(this.lastReceived);
    this.writeProbe(FrameType.PONG, seq, timestamp);
    // The server's RTT sample rides with the PONG (7.2): both go into the write batch
    // of the chunk being read, so they leave in one write.
    if (rttDue) hb.ping();
  }

  private onPong(seq: number, timestamp: number): void {
    const hb = this.heartbeat;
    if (!hb) {
      this.unexpected('PONG before the handshake completed');
      return;
    }
    // A PONG answering none of our PINGs is ignored (PROTOCOL.md 7.3): its bytes were life.
    hb.pong(seq, timestamp, this.lastReceived);
  }

  private dispatch(frame: Frame): void {
    switch (frame.type) {
      case FrameType.PING:
        this.onPing(frame.seq, frame.timestamp);
        return;
      case FrameType.PONG:
        this.onPong(frame.seq, frame.timestamp);
        return;
      case FrameType.CLOSE:
        if (this.halfClosed) {
          // Both ends closed at once: ours is the reason we report.
          this.halfClosed = false;
          return;
        }
        // Our answer to the closing handshake: a last ACK, so the closer knows exactly
        // what we received before it hands anything back to its application.
        this.peerClosed = true;
        this.owner.onPeerClose?.(this);
        {
          const reason = reasonForCode(frame.code);
          const error = errorFor(reason, frame.reason || reason);
          this.closing = {
            reason,
            code: frame.code,
            message: frame.reason,
            ...(frame.retryAfter > 0 ? { retryAfter: frame.retryAfter } : {}),
            ...(error ? { error } : {}),
          };
        }
        this.heartbeat?.stop();
        this.flushOut();
        this.transport.end();
        this.armGrace();
        return;
      default:
        this.heartbeat?.other();
        this.owner.onFrame(this, frame);
    }
  }

  /**
   * Keeps the clock of the incomplete frame the decoder holds after a chunk: a frame must
   * be complete within partialFrameTimeout plus one second per minDataRate bytes of it
   * received. Bytes (PINGs included: inside a frame they are its bytes) keep the heartbeat
   * alive but never restart this clock; only completing the frame does. The hot path only
   * counts: the one wheel timer is armed when a frame starts and no timer is armed, and
   * {@link checkPartial} re-arms it to the true deadline when it fires early.
   */
  private trackPartial(n: number, completed: boolean): void {
    if (this.decoder.bufferedBytes === 0) {
      this.partialSince = -1;
      return;
    }
    if (this.partialSince < 0 || completed) {
      // A frame began in this chunk (after any that completed in it).
      this.partialSince = this.lastReceived;
      this.partialBytes = this.decoder.bufferedBytes;
      this.partialTimer ??= this.wheel.timerFor(this, Link.partialDue);
      // An armed timer fires no later than this frame's deadline: its frame started earlier.
      if (!this.partialTimer.armed) this.partialTimer.arm(this.config.partialFrameTimeout);
    } else {
      this.partialBytes += n;
    }
  }

  /** The partial-frame timer fired: cut the link if its frame is past its deadline. */
  private checkPartial(): void {
    if (!this.open || this.partialSince < 0 || this.decoder.bufferedBytes === 0) return;
    // Not reading is ours: pauseInput() shifts the clock and looks again on resume.
    if (this.inputHolds !== 0) return;
    const { partialFrameTimeout, minDataRate, clock } = this.config;
    const deadline =
      this.partialSince + partialFrameTimeout + (this.partialBytes * 1000) / minDataRate;
    const now = clock.now();
    if (now < deadline) {
      this.partialTimer!.arm(Math.ceil(deadline - now));
      return;
    }
    const message = `a frame stayed incomplete for ${Math.round(now - this.partialSince)} ms with ${this.partialBytes} bytes of it received, below the minimum rate of ${minDataRate} bytes/s after the first ${partialFrameTimeout} ms`;
    this.fail('protocol-error', message, new ProtocolError('HL_ERR_SLOW_FRAME', message));
  }

  /** Ends the link because the peer sent a frame that is valid but not allowed now. */
  unexpected(message: string): void {
    this.fail('protocol-error', message, new ProtocolError('HL_ERR_UNEXPECTED_FRAME', message));
  }

  private failProtocol(err: unknown): void {
    if (err instanceof ProtocolError) {
      const reason: CloseReason =
        err.code === 'HL_ERR_FRAME_TOO_LARGE'
          ? 'frame-too-large'
          : err.code === 'HL_ERR_UNSUPPORTED_VERSION'
            ? 'unsupported-version'
            : 'protocol-error';
      this.fail(reason, err.message, err);
    } else {
      const message = err instanceof Error ? err.message : String(err);
      this.fail(
        'protocol-error',
        message,
        new HeartlineError('HL_ERR_MALFORMED_FRAME', message, { cause: err }),
      );
    }
  }

  /** @internal (transport 'end') */
  onEnd(): void {
    // FIN from the peer. After a CLOSE frame the reason is already set.
    if (!this.closing) this.closing = { reason: 'eof', message: 'the peer closed the connection' };
    this.acking = false;
    this.heartbeat?.stop();
    this.flushOut();
    if (!this.transport.destroyed) this.transport.end();
    if (!this.graceTimer?.armed) this.armGrace();
  }

  /** @internal (transport 'error') */
  onError(err: Error): void {
    if (this.closing) return;
    const tls = isTlsError(err);
    const reason = tls ? 'tls-error' : classifySocketError(err);
    const errno = errnoCode(err);
    this.closing = {
      reason,
      message: err.message,
      error: new HeartlineError(tls ? 'HL_ERR_TLS' : 'HL_ERR_SOCKET', err.message, { cause: err }),
      ...(errno ? { errno } : {}),
    };
  }

  /** @internal (transport 'close') */
  onTransportClose(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.charged > 0) {
      this.config.budget?.release(this.charged);
      this.charged = 0;
    }
    if (this.out !== null) {
      releaseBatch(this.out);
      this.out = null;
    }
    this.heartbeat?.stop();
    this.handshakeTimer?.cancel();
    this.stallTimer?.cancel();
    this.graceTimer?.cancel();
    this.partialTimer?.cancel();
    const info = this.closing ?? { reason: 'eof', message: 'the connection closed' };
    this.owner.onClose(this, info);
  }

  /** @internal (transport 'drain') */
  onDrain(): void {
    this.drains++;
    if (this.transport.writableLength === 0) {
      this.stallMark = -1;
      this.stallTimer?.cancel();
    }
    if (this.open) this.owner.onWritable(this);
  }

  private markStall(): void {
    this.stallMark = this.transport.writableLength;
    this.drainsAtMark = this.drains;
    this.stallTimer ??= this.wheel.timerFor(this, Link.stallDue);
    this.stallTimer.arm(this.config.writeTimeout);
  }

  /** Stalled: bytes are buffered and none left the buffer since the mark. */
  private checkStall(): void {
    if (!this.open) return;
    const pending = this.transport.writableLength;
    if (pending === 0) {
      this.stallMark = -1;
      return;
    }
    if (this.drains === this.drainsAtMark && pending >= this.stallMark) {
      this.fail(
        'write-stall',
        `${pending} bytes made no progress for ${this.config.writeTimeout} ms`,
      );
      return;
    }
    this.markStall();
  }
}
