/**
 * A link is one TCP (or TLS) connection: the one place that knows both a socket and the
 * codec. It decodes frames, answers PINGs at once, runs the heartbeat, keeps control
 * frames ahead of bulk data, watches for write stalls and classifies how it closed.
 * Everything session-shaped (sequence numbers, acks, resume) lives above it, in the
 * {@link LinkOwner}, which can change once the handshake has found the session.
 */

import type { Socket } from 'node:net';
import { type ErrorCode, HeartlineError, ProtocolError } from './errors.js';
import type { FailureDetector } from './health/index.js';
import { Heartbeat } from './heartbeat.js';
import { classifySocketError, errnoCode } from './net/classify.js';
import { applyTcpOptions, TCP_OPTIONS_WARNING } from './net/sockopts.js';
import { isTlsError } from './net/tls.js';
import { deriveTcpSettings, type HeartbeatSettings, type ResolvedCommon } from './options.js';
import { CloseCode, type CloseReason, reasonForCode } from './protocol/close-codes.js';
import { Decoder, encodeClose, encodePing, encodePong } from './protocol/codec.js';
import { type Frame, FrameType } from './protocol/frames.js';
import type { TimingWheel, WheelTimer } from './time/wheel.js';

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

function errorFor(reason: CloseReason, message: string): HeartlineError | undefined {
  const code = ERROR_FOR_REASON[reason];
  return code ? new HeartlineError(code, message) : undefined;
}

/** How long a closing link waits for its CLOSE frame to flush before destroying. */
const CLOSE_GRACE_MS = 1000;

let nextLinkId = 0;

/** A link's heartbeat: a retune also re-derives the TCP options from the new settings. */
class LinkHeartbeat extends Heartbeat {
  onRetune: ((settings: HeartbeatSettings) => void) | null = null;

  override retune(settings: HeartbeatSettings): void {
    super.retune(settings);
    this.onRetune?.(settings);
  }
}

export class Link {
  /** Process-unique id. */
  readonly id = ++nextLinkId;
  readonly stats: LinkStats = { bytesIn: 0, bytesOut: 0, framesIn: 0, framesOut: 0 };
  /** Monotonic ms of the last byte handed to the socket. */
  lastSent: number;
  /** Monotonic ms of the last byte received. */
  lastReceived: number;
  private remoteText: string | null = null;
  owner: LinkOwner;
  private readonly decoder: Decoder;
  private heartbeat: Heartbeat | null = null;
  private readonly stallTimer: WheelTimer;
  private readonly handshakeTimer: WheelTimer;
  private stallMark = -1;
  private drains = 0;
  private drainsAtMark = 0;
  private closing: CloseInfo | null = null;
  private closed = false;
  /** We sent CLOSE and FIN on purpose and keep reading until the peer closes. */
  private halfClosed = false;
  private graceTimer: WheelTimer | null = null;

  constructor(
    readonly socket: Socket,
    private readonly config: ResolvedCommon,
    private readonly wheel: TimingWheel,
    owner: LinkOwner,
  ) {
    this.owner = owner;
    this.decoder = new Decoder({ maxFrame: config.maxFrame });
    const now = config.clock.now();
    this.lastSent = now;
    this.lastReceived = now;
    // Read the address now: once the socket closes Node no longer reports it.
    if (socket.remoteAddress !== undefined) void this.remote;
    else socket.once('connect', () => void this.remote);
    this.stallTimer = wheel.timer(() => this.checkStall());
    this.handshakeTimer = wheel.timer(() =>
      this.fail('handshake-timeout', 'no handshake within the handshake timeout'),
    );
    socket.setNoDelay(true);
    if (config.keepAliveDelay > 0) socket.setKeepAlive(true, config.keepAliveDelay);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => this.onError(err));
    socket.on('close', () => this.onSocketClose());
    socket.on('drain', () => this.onDrain());
  }

  /** Remote address as host:port (kept after the socket closes). */
  get remote(): string {
    if (this.remoteText) return this.remoteText;
    const { remoteAddress, remotePort } = this.socket;
    if (remoteAddress === undefined) return '?';
    this.remoteText = remoteAddress.includes(':')
      ? `[${remoteAddress}]:${remotePort}`
      : `${remoteAddress}:${remotePort}`;
    return this.remoteText;
  }

  /** True until the link starts closing. */
  get open(): boolean {
    return this.closing === null && !this.closed;
  }

  /** True while DATA may be written without queueing behind bulk bytes. */
  get writable(): boolean {
    return this.open && this.socket.writableLength < this.config.socketLowWater;
  }

  /** The heartbeat, once started. */
  get beat(): Heartbeat | null {
    return this.heartbeat;
  }

  /** Arms the handshake deadline (less than handshakeTimeout when TLS used part of it). */
  startHandshakeTimer(ms = this.config.handshakeTimeout): void {
    this.handshakeTimer.arm(ms);
  }

  /** Handshake done: cancels its deadline and starts the heartbeat with the granted settings. */
  startHeartbeat(settings: HeartbeatSettings, detector: FailureDetector): Heartbeat {
    this.handshakeTimer.cancel();
    this.heartbeat?.stop();
    const link = this;
    const heartbeat = new LinkHeartbeat(
      this.wheel,
      this.config.clock,
      settings,
      detector,
      {
        get lastSent() {
          return link.lastSent;
        },
        get lastReceived() {
          return link.lastReceived;
        },
        sendPing: (seq, ts) => this.write(encodePing(seq, ts)),
        onLiveness: (event) => this.onLiveness(event),
        onRtt: (ms) => this.owner.onRtt(this, ms),
        onPingFlood: (strikes) => this.onPingFlood(strikes),
      },
      this.config.maxPingStrikes,
    );
    heartbeat.onRetune = (next) => this.applyTcp(next);
    this.heartbeat = heartbeat;
    heartbeat.start();
    this.applyTcp(settings);
    return heartbeat;
  }

  /**
   * Sets keepalive and TCP_USER_TIMEOUT from the granted heartbeat (or the explicit `tcp`
   * option): after the handshake, since the defaults derive from what the server granted,
   * and again on each retune. Values were validated when the options were resolved, so
   * a failure here means the socket is closing or the kernel refused: the heartbeat still
   * bounds detection, so it is reported as a warning, not a failure of the link.
   */
  private applyTcp(settings: HeartbeatSettings): void {
    const tcp = this.config.tcp;
    if (tcp === false || this.socket.destroyed) return;
    try {
      applyTcpOptions(this.socket, deriveTcpSettings(tcp, settings));
    } catch (err) {
      if (this.socket.destroyed) return;
      process.emitWarning(`heartline could not set TCP options: ${(err as Error).message}`, {
        code: TCP_OPTIONS_WARNING,
        type: 'HeartlineWarning',
      });
    }
  }

  /** Writes an encoded frame to the socket now (control frames and DATA the owner paced). */
  write(frame: Buffer): void {
    if (!this.open) return;
    this.stats.bytesOut += frame.length;
    this.stats.framesOut++;
    this.lastSent = this.config.clock.now();
    this.socket.write(frame);
    if (this.socket.writableLength > 0 && this.stallMark < 0) this.markStall();
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
    this.heartbeat?.stop();
    this.handshakeTimer.cancel();
    this.stallTimer.cancel();
    if (code !== undefined && !this.socket.destroyed) {
      try {
        this.socket.write(encodeClose(code, message, retryAfter));
      } catch {
        // the socket may already be failing; the close below still runs
      }
    }
    this.socket.end();
    this.graceTimer = this.wheel.timer(() => this.socket.destroy());
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
    if (code !== undefined && !this.socket.destroyed && this.socket.writable) {
      try {
        this.socket.write(encodeClose(code, message));
      } catch {
        // best effort: the peer may be gone
      }
    }
    this.socket.destroy();
  }

  /** The peer pinged faster than its grant allows, again and again: a final CLOSE. */
  private onPingFlood(strikes: number): void {
    const interval = this.heartbeat?.current.interval ?? 0;
    this.close(
      'policy-violation',
      CloseCode.POLICY_VIOLATION,
      `too many pings: ${strikes} strikes for pinging faster than the granted interval of ${interval} ms allows`,
    );
  }

  private onLiveness(event: 'suspect' | 'alive' | 'dead'): void {
    this.owner.onLiveness(this, event);
    if (event === 'dead') {
      const t = this.heartbeat?.current.timeout ?? 0;
      this.fail('heartbeat-timeout', `nothing heard from the peer for ${t} ms`);
    }
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastReceived = this.config.clock.now();
    this.stats.bytesIn += chunk.length;
    if (this.heartbeat?.isSuspect) this.heartbeat.heardWhileSuspect();
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.failProtocol(err);
      return;
    }
    for (const frame of frames) {
      // After our own close() the peer's frames still count until its FIN (closing handshake).
      if (this.closed || (this.closing && !this.halfClosed)) return;
      this.stats.framesIn++;
      this.dispatch(frame);
    }
  }

  private dispatch(frame: Frame): void {
    const hb = this.heartbeat;
    switch (frame.type) {
      case FrameType.PING:
        if (!hb) {
          this.unexpected('PING before the handshake completed');
          return;
        }
        // Policed first, so that the PING that earns a policy close is not answered.
        hb.beat(this.lastReceived, true);
        this.write(encodePong(frame.seq, frame.timestamp));
        return;
      case FrameType.PONG:
        if (!hb) {
          this.unexpected('PONG before the handshake completed');
          return;
        }
        hb.beat(this.lastReceived, false);
        hb.pong(frame.timestamp);
        return;
      case FrameType.CLOSE:
        if (this.halfClosed) {
          // Both ends closed at once: ours is the reason we report.
          this.halfClosed = false;
          return;
        }
        // Our answer to the closing handshake: a last ACK, so the closer knows exactly
        // what we received before it hands anything back to its application.
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
        this.socket.end();
        this.graceTimer = this.wheel.timer(() => this.socket.destroy());
        this.graceTimer.arm(CLOSE_GRACE_MS);
        return;
      default:
        hb?.other();
        this.owner.onFrame(this, frame);
    }
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

  private onEnd(): void {
    // FIN from the peer. After a CLOSE frame the reason is already set.
    if (!this.closing) this.closing = { reason: 'eof', message: 'the peer closed the connection' };
    this.heartbeat?.stop();
    if (!this.socket.destroyed) this.socket.end();
    if (!this.graceTimer) {
      this.graceTimer = this.wheel.timer(() => this.socket.destroy());
      this.graceTimer.arm(CLOSE_GRACE_MS);
    }
  }

  private onError(err: Error): void {
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

  private onSocketClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.heartbeat?.stop();
    this.handshakeTimer.cancel();
    this.stallTimer.cancel();
    this.graceTimer?.cancel();
    const info = this.closing ?? { reason: 'eof', message: 'the connection closed' };
    this.owner.onClose(this, info);
  }

  private onDrain(): void {
    this.drains++;
    if (this.socket.writableLength === 0) {
      this.stallMark = -1;
      this.stallTimer.cancel();
    }
    if (this.open) this.owner.onWritable(this);
  }

  private markStall(): void {
    this.stallMark = this.socket.writableLength;
    this.drainsAtMark = this.drains;
    this.stallTimer.arm(this.config.writeTimeout);
  }

  /** Stalled: bytes are buffered and none left the buffer since the mark. */
  private checkStall(): void {
    if (!this.open) return;
    const pending = this.socket.writableLength;
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
