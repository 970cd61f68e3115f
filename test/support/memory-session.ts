/**
 * Both ends of a session over the in-memory transport, on one FakeClock: real Links,
 * the real server-side Connection (`ServerConnection`: replay buffer, acks, resume
 * tokens, session TTL) and a client-side Connection, with no socket anywhere.
 *
 * The Client and the Server themselves dial and accept sockets (admission, TLS, the
 * reconnect loop), so the two ends here do only their part of the handshake (PROTOCOL.md
 * 5): {@link MemoryClient} writes HELLO and attaches on WELCOME; {@link MemoryServer}
 * answers HELLO with WELCOME for a new session or a resume and attaches the link to the
 * session's ServerConnection. Everything after the handshake is the library's own code.
 */

import { randomBytes } from 'node:crypto';
import { Connection, sessionIdString } from '../../src/connection.js';
import { fixedDetector } from '../../src/health/index.js';
import { type CloseInfo, Link, type LinkOwner } from '../../src/link.js';
import {
  type CommonOptions,
  type HeartbeatSettings,
  heartbeatSettings,
  type ResolvedCommon,
  resolveCommon,
} from '../../src/options.js';
import { FINAL_REASONS } from '../../src/protocol/close-codes.js';
import { encodeHello, encodeWelcome } from '../../src/protocol/codec.js';
import {
  type Frame,
  FrameType,
  type HelloFrame,
  ID_BYTES,
  PROTOCOL_VERSION,
} from '../../src/protocol/frames.js';
import { ServerConnection, type ServerConnectionHost } from '../../src/server/server-connection.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { TimingWheel } from '../../src/time/wheel.js';
import { MemoryPair, type MemoryPairOptions } from '../../src/transport/memory.js';
import type { Transport } from '../../src/transport/transport.js';

/** The wheel's tick: deadlines hold to within one. */
export const TICK = 10;

/** One test's world: a fake clock, one wheel, the resolved options both ends share. */
export class MemoryWorld {
  readonly clock = new FakeClock();
  readonly wheel: TimingWheel;
  readonly config: ResolvedCommon;
  /** Errors thrown inside wheel callbacks (a test asserts there were none). */
  readonly errors: unknown[] = [];

  constructor(options: CommonOptions = {}) {
    this.wheel = new TimingWheel(this.clock, { onError: (err) => this.errors.push(err) });
    this.config = resolveCommon({ ...options, clock: this.clock }, this.clock, fixedDetector());
  }

  /** A new connected pair of transports. */
  pair(options: MemoryPairOptions = {}): MemoryPair {
    return new MemoryPair(options);
  }

  /** Moves fake time by `ms` one tick at a time, letting deliveries run between ticks. */
  advance(ms: number): Promise<void> {
    return this.clock.advanceAsync(ms, TICK);
  }

  /**
   * Moves fake time a tick at a time until `predicate` holds.
   * @throws Error after `limitMs` of fake time.
   */
  async until(predicate: () => boolean, what: string, limitMs = 60_000): Promise<void> {
    const deadline = this.clock.now() + limitMs;
    while (!predicate()) {
      if (this.clock.now() >= deadline) throw new Error(`${what}: not within ${limitMs} ms`);
      await this.advance(TICK);
    }
  }
}

/**
 * The client end of a session: dials a transport it is given (a test makes a new pair
 * for each reconnect), resumes its session on every link after the first.
 */
export class MemoryClient extends Connection {
  private pending: Link | null = null;
  private token: Uint8Array | null = null;

  constructor(
    world: MemoryWorld,
    private readonly asked: { interval: number; timeout: number },
  ) {
    super(world.config, world.wheel);
  }

  /** Opens a link on `transport`: HELLO at once, asking to resume if there is a session. */
  dial(transport: Transport): Link {
    const link = new Link(transport, this.config, this.wheel, this);
    this.pending = link;
    const sessionId = this.sessionId;
    link.write(
      encodeHello({
        version: PROTOCOL_VERSION,
        interval: this.asked.interval,
        timeout: this.asked.timeout,
        auth: new Uint8Array(0),
        resume:
          sessionId !== null && this.token
            ? {
                sessionId: Buffer.from(sessionId, 'hex'),
                token: this.token,
                lastReceived: this.inbound.lastReceived,
              }
            : null,
        clientId: 'memory-client',
        traceId: '',
        maxFrame: this.config.maxFrame,
      }),
    );
    link.startHandshakeTimer();
    return link;
  }

  /** @internal */
  override onFrame(link: Link, frame: Frame): void {
    if (link !== this.pending) {
      super.onFrame(link, frame);
      return;
    }
    if (frame.type !== FrameType.WELCOME) {
      link.unexpected('the server must answer HELLO with WELCOME or CLOSE');
      return;
    }
    this.pending = null;
    this.token = frame.token;
    this.attach(
      link,
      heartbeatSettings(frame.interval, frame.timeout),
      sessionIdString(frame.sessionId),
      frame.resumed,
      frame.resumed ? frame.lastReceived : 0,
      { version: frame.version, maxFrame: frame.maxFrame },
    );
    // As the Client: a frame after a resumed WELCOME shows the server the new token.
    if (frame.resumed && !link.flushPending) link.beat?.ping();
  }

  /** @internal */
  override onClose(link: Link, info: CloseInfo): void {
    if (link === this.pending) {
      this.pending = null;
      return;
    }
    super.onClose(link, info);
  }

  protected willResume(info: CloseInfo): boolean {
    return !FINAL_REASONS.has(info.reason);
  }

  /** The test dials again itself (there is no reconnect loop here). */
  protected linkLost(): void {}
}

/**
 * The server end: answers each HELLO on the links it accepts with WELCOME, for a new
 * session or for the one a valid resume names, and hands the link to its connection.
 */
export class MemoryServer implements LinkOwner {
  /** Every session made, by id. */
  readonly sessions = new Map<string, ServerConnection>();
  private readonly settings: HeartbeatSettings;
  private readonly host: ServerConnectionHost = {
    opened: () => {},
    disconnected: () => {},
    release: (conn) => {
      this.sessions.delete(conn.sessionKey);
    },
  };

  constructor(
    private readonly world: MemoryWorld,
    granted: { interval: number; timeout: number },
    private readonly sessionTtl = 30_000,
  ) {
    this.settings = heartbeatSettings(granted.interval, granted.timeout);
  }

  /** Takes a transport as an accepted socket: a link waiting for HELLO. */
  accept(transport: Transport): Link {
    const { config, wheel } = this.world;
    const link = new Link(transport, config, wheel, this);
    link.startHandshakeTimer();
    return link;
  }

  /** @internal */
  onFrame(link: Link, frame: Frame): void {
    if (frame.type !== FrameType.HELLO || link.stats.framesIn !== 1) {
      link.unexpected('the first frame must be HELLO');
      return;
    }
    link.holdFrames();
    link.usePeer(frame.version, frame.maxFrame);
    const resume = frame.resume;
    const existing = resume ? this.sessions.get(sessionIdString(resume.sessionId)) : undefined;
    if (resume && existing && !existing.closed && existing.acceptsToken(resume.token)) {
      const token = existing.rotateToken(resume.token);
      link.write(this.welcome(frame, resume.sessionId, token, true, existing.lastReceived));
      existing.attachLink(link, this.settings, true, resume.lastReceived, frame);
      link.releaseFrames();
      return;
    }
    const id = randomBytes(ID_BYTES);
    const token = randomBytes(ID_BYTES);
    const conn = new ServerConnection(
      this.world.config,
      this.world.wheel,
      this.host,
      this.sessionTtl,
      {
        sessionId: id.toString('hex'),
        token,
        clientId: frame.clientId,
        traceId: frame.traceId,
        identity: null,
        remote: link.remote,
      },
    );
    this.sessions.set(conn.sessionKey, conn);
    link.write(this.welcome(frame, id, token, false, 0));
    conn.attachLink(link, this.settings, false, 0, frame);
    link.releaseFrames();
  }

  private welcome(
    hello: HelloFrame,
    sessionId: Uint8Array,
    token: Uint8Array,
    resumed: boolean,
    lastReceived: number,
  ): Buffer {
    return encodeWelcome({
      version: hello.version,
      resumed,
      sessionId,
      token,
      interval: this.settings.interval,
      timeout: this.settings.timeout,
      lastReceived,
      sessionTtl: this.sessionTtl,
      maxFrame: this.world.config.maxFrame,
    });
  }

  onLiveness(): void {}
  onRtt(): void {}
  onWritable(): void {}
  onClose(): void {}
}

/** Connects `client` to `server` over a new memory pair; returns the pair (to fault it). */
export function connectOver(
  world: MemoryWorld,
  client: MemoryClient,
  server: MemoryServer,
  options: MemoryPairOptions = {},
): MemoryPair {
  const pair = world.pair(options);
  server.accept(pair.b);
  client.dial(pair.a);
  return pair;
}
