/**
 * The scripted server of `heartline conformance client`: it listens, waits for a client
 * implementation to connect, and walks it through a fixed script, checking at each step
 * what PROTOCOL.md says a client must do. The client under test only has to connect,
 * send at least 3 messages and keep its connection open (it need not close it).
 *
 * The script, connection by connection:
 * 1. HELLO (checked), 500 ms of silence (nothing may come), then WELCOME granting a short
 *    heartbeat and DATA 1..3; the client's ACKs and its own DATA are checked (the script
 *    acknowledges none of them); a PING from the script must get its PONG; then the
 *    script stays silent until the client pings; then it cuts the link.
 * 2. The resuming HELLO (checked); WELCOME resumed, claiming only the client's DATA 1 and
 *    resending DATA 3 (a duplicate); the client's replay and its ACK are checked; then
 *    DATA(4) and CLOSE(GOING_AWAY), answered by the client's last ACK and its FIN.
 * 3. The next resuming HELLO must carry the rotated token; it gets CLOSE(AUTH_FAILED),
 *    final, after which no connection may come for a few seconds.
 *
 * Steps depend on earlier ones: after a failed step that the rest needs, the remaining
 * checks fail as "not reached".
 */

import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { CloseCode } from '../protocol/close-codes.js';
import {
  encodeClose,
  encodeData,
  encodePing,
  encodeSettings,
  encodeWelcome,
} from '../protocol/codec.js';
import {
  type DataFrame,
  DEFAULT_MAX_FRAME,
  type Frame,
  FrameType,
  type HelloFrame,
  type PongFrame,
} from '../protocol/frames.js';
import { type CheckInfo, type CheckResult, failureText } from './report.js';
import { CheckFailure, describe, expect, WirePeer } from './wire.js';

/** The heartbeat the script grants (ms): short, so that the idle PING comes soon. */
export const SCRIPT_GRANT = { interval: 1000, timeout: 4000 } as const;

/** The heartbeat the script then changes to with SETTINGS (ms): longer, to tell them apart. */
export const SETTINGS_GRANT = { interval: 2000, timeout: 8000 } as const;

/** How long the script holds WELCOME back to see whether the client sends anything (ms). */
const HOLD_WELCOME_MS = 500;

/**
 * How much earlier than the interval an idle PING may seem to come: both arrival times
 * are taken when this process reads them, so a stall here can shorten the gap seen.
 */
const EARLY_TOLERANCE_MS = 100;

/** How long a final close must not be followed by a new connection (ms). */
const NO_RETRY_MS = 3000;

/** The checks of the client script, in the order they run. */
export const CLIENT_CHECKS: readonly CheckInfo[] = [
  {
    id: 'client.hello-first',
    section: '3.1, 5',
    description: 'the first frame is a well-formed HELLO (version 1 or 2) for a new session',
  },
  {
    id: 'client.nothing-before-welcome',
    section: '5',
    description: `nothing but CLOSE is sent before WELCOME (held back ${HOLD_WELCOME_MS} ms)`,
  },
  {
    id: 'client.acks-data',
    section: '6.2',
    description: 'DATA 1..3 from the server are acknowledged cumulatively up to ACK(3), promptly',
  },
  {
    id: 'client.data-seq',
    section: '6.1',
    description: "the client's DATA start at seq 1 and count up by 1 (at least 3 messages)",
  },
  {
    id: 'client.pong',
    section: '7.3',
    description: 'a PING is answered at once by a PONG copying its seq and timestamp',
  },
  {
    id: 'client.idle-ping',
    section: '7.2',
    description: `an idle client pings once it has sent nothing for the granted interval (${SCRIPT_GRANT.interval} ms)`,
  },
  {
    id: 'client.settings',
    section: '7.5',
    description: `after SETTINGS(${SETTINGS_GRANT.interval} ms, ${SETTINGS_GRANT.timeout} ms) the idle client pings on the new interval`,
  },
  {
    id: 'client.resume-hello',
    section: '6.3',
    description:
      'after a cut the client resumes: HELLO with RESUME, the session id and token of the WELCOME, lastReceived 3',
  },
  {
    id: 'client.replay',
    section: '6.3',
    description:
      'the client resends every DATA the server did not acknowledge, in order, without gap or duplicate',
  },
  {
    id: 'client.duplicate-ack',
    section: '6.1, 6.2',
    description: 'a duplicate DATA from the server is acknowledged at once with ACK(3)',
  },
  {
    id: 'client.close-reply',
    section: '8',
    description:
      'on DATA(4) + CLOSE(GOING_AWAY) the client sends its last ACK(4), nothing else, and ends its side (FIN) within the grace',
  },
  {
    id: 'client.token-rotated',
    section: '6.3',
    description: 'the next resume presents the token of the latest WELCOME',
  },
  {
    id: 'client.final-close',
    section: '8.1',
    description: `after CLOSE(AUTH_FAILED), a final code, the client does not reconnect (${NO_RETRY_MS} ms)`,
  },
];

/** Options of {@link runClientScript}. */
export interface ClientScriptOptions {
  host: string;
  port: number;
  /** How long to wait for the client to connect (ms). */
  wait: number;
  /** How late an answer may be beyond what the protocol says (ms). */
  slack: number;
  /** Serve TLS with these options (certificate and key). */
  tls?: TlsOptions;
  /** Called once listening. */
  onListening(address: { host: string; port: number }): void;
  /** Called with each result as it comes. */
  onResult(result: CheckResult): void;
}

/** Accepted connections, handed out in order. */
class Acceptor {
  private readonly queue: WirePeer[] = [];
  private readonly waiters: ((p: WirePeer) => void)[] = [];
  readonly all: WirePeer[] = [];
  accepted = 0;

  constructor(
    readonly server: Server,
    tls: boolean,
  ) {
    // Over TLS a connection counts once its TLS handshake is done.
    server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      const peer = new WirePeer(socket);
      this.all.push(peer);
      this.accepted++;
      const w = this.waiters.shift();
      if (w) w(peer);
      else this.queue.push(peer);
    });
  }

  /** The next connection, or null after `timeout` ms. */
  next(timeout: number): Promise<WirePeer | null> {
    const ready = this.queue.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(take), 1);
        resolve(null);
      }, timeout);
      const take = (p: WirePeer): void => {
        clearTimeout(timer);
        resolve(p);
      };
      this.waiters.push(take);
    });
  }
}

/** Records results in table order; once a hard step has failed, the rest fail as not reached. */
class Steps {
  private index = 0;
  private stopped: string | null = null;

  constructor(private readonly onResult: (r: CheckResult) => void) {}

  /**
   * Runs the next check's body; a failure of a `hard` step stops the script. Returns
   * whether it passed.
   */
  async run(id: string, body: () => Promise<string | undefined>, hard = true): Promise<boolean> {
    const info = CLIENT_CHECKS[this.index++]!;
    if (info.id !== id) throw new Error(`script out of order: ${id} where ${info.id} belongs`);
    if (this.stopped !== null) {
      this.onResult({
        ...info,
        status: 'fail',
        detail: `not reached (${this.stopped} failed)`,
        ms: 0,
      });
      return false;
    }
    const started = performance.now();
    let status: CheckResult['status'] = 'pass';
    let detail = '';
    try {
      detail = (await body()) ?? '';
    } catch (err) {
      status = 'fail';
      detail = failureText(err);
      if (hard) this.stopped = id;
    }
    this.onResult({ ...info, status, detail, ms: Math.round(performance.now() - started) });
    return status === 'pass';
  }

  /** Reports every check not run yet as not reached. */
  finish(why: string): void {
    this.stopped ??= why;
    while (this.index < CLIENT_CHECKS.length) {
      void this.run(CLIENT_CHECKS[this.index]!.id, async () => undefined);
    }
  }
}

const isType =
  <T extends Frame['type']>(type: T) =>
  (f: Frame): f is Extract<Frame, { type: T }> =>
    f.type === type;

/** The protocol versions the script speaks: it answers a HELLO in the version it names. */
const VERSIONS: readonly number[] = [1, 2];

/** The client's first frame, which must be a HELLO of a version the script speaks. */
async function helloOf(peer: WirePeer, timeout: number): Promise<HelloFrame> {
  const first = await peer.frameAt(0, timeout, 'HELLO');
  expect(first.type === FrameType.HELLO, `the first frame was ${describe(first)}, expected HELLO`);
  expect(
    VERSIONS.includes(first.version),
    `HELLO version ${first.version}, expected one of ${VERSIONS.join(', ')}`,
  );
  return first;
}

/**
 * Waits for the client's next PING and checks that it came once the client had sent
 * nothing for `interval` ms (measured from its previous frame), not earlier and at most
 * `slack` later.
 */
async function idlePing(peer: WirePeer, interval: number, slack: number): Promise<string> {
  const from = peer.arrivals.length;
  const bound = interval + slack;
  await peer.until(
    () => peer.frames.slice(from).some((f) => f.type === FrameType.PING),
    bound + 2000,
  );
  const i = peer.arrivals.findIndex((x, j) => j >= from && x.frame.type === FrameType.PING);
  expect(i >= 0, `no PING within ${bound + 2000} ms of silence (${peer.endState()})`);
  // Silence counted from the client's last frame before the PING (its PONG, or more).
  const gap = peer.arrivals[i]!.at - peer.arrivals[i - 1]!.at;
  expect(
    gap >= interval - EARLY_TOLERANCE_MS,
    `PING after ${Math.round(gap)} ms of silence, before the interval of ${interval} ms`,
  );
  expect(
    gap <= bound,
    `PING after ${Math.round(gap)} ms of silence, later than interval + ${slack} ms`,
  );
  return `PING after ${Math.round(gap)} ms of silence`;
}

/** Runs the script; reports every check through `onResult`. */
export async function runClientScript(options: ClientScriptOptions): Promise<void> {
  const server = options.tls ? createTlsServer(options.tls) : createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const acceptor = new Acceptor(server, options.tls !== undefined);
  options.onListening({ host: options.host, port });
  const steps = new Steps(options.onResult);
  try {
    await script(acceptor, steps, options);
  } finally {
    steps.finish('the script');
    for (const p of acceptor.all) p.cut();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function script(acceptor: Acceptor, steps: Steps, o: ClientScriptOptions): Promise<void> {
  const sessionId = randomBytes(16);
  const tokens = [randomBytes(16), randomBytes(16)];
  const { interval, timeout } = SCRIPT_GRANT;
  // The session speaks the version of the first HELLO (PROTOCOL.md 5.5).
  let version = 1;

  // Connection 1: the handshake, acks, the client's DATA, PING/PONG, idle pings.
  const conns: { a?: WirePeer | null; b?: WirePeer | null; c?: WirePeer | null } = {};
  const ok = await steps.run('client.hello-first', async () => {
    const a = await acceptor.next(o.wait);
    conns.a = a;
    if (!a) throw new CheckFailure(`no client connected within ${o.wait} ms`);
    const h = await helloOf(a, 5000);
    expect(h.resume === null, 'the first HELLO asks to resume a session the script never gave');
    version = h.version;
    return `version ${h.version}, clientId "${h.clientId}", asked ${h.interval}/${h.timeout} ms`;
  });
  if (!ok || !conns.a) {
    conns.a?.send(encodeClose(CloseCode.PROTOCOL_ERROR, 'expected HELLO'));
    return;
  }
  const first = conns.a;
  await steps.run(
    'client.nothing-before-welcome',
    async () => {
      await first.idle(HOLD_WELCOME_MS);
      const early = first.frames.slice(1);
      expect(
        early.every((f) => f.type === FrameType.CLOSE),
        `sent before WELCOME: ${early.map(describe).join(', ')}`,
      );
      expect(early.length === 0, 'the client gave up (CLOSE) before WELCOME');
      return undefined;
    },
    false,
  );
  const welcomeSent = first.arrivals.length;
  const welcomeAt = performance.now();
  first.send(
    Buffer.concat([
      encodeWelcome({
        version,
        maxFrame: DEFAULT_MAX_FRAME,
        resumed: false,
        sessionId,
        token: tokens[0]!,
        interval,
        timeout,
        lastReceived: 0,
        sessionTtl: 60_000,
      }),
      ...[1, 2, 3].map((s) => encodeData(s, Buffer.from(`s${s}`))),
    ]),
  );
  const acks = () => first.frames.slice(welcomeSent).filter(isType(FrameType.ACK));
  await steps.run(
    'client.acks-data',
    async () => {
      const bound = 1000 + o.slack;
      await first.until(() => acks().some((x) => x.seq >= 3), bound);
      const seen = acks().map((x) => x.seq);
      expect(seen.includes(3), `expected ACK(3) within ${bound} ms, got ACKs [${seen.join(', ')}]`);
      for (let i = 1; i < seen.length; i++) {
        expect(seen[i]! >= seen[i - 1]!, `ACKs decreased: [${seen.join(', ')}]`);
      }
      expect(
        seen.every((s) => s >= 1 && s <= 3),
        `an ACK outside 1..3: [${seen.join(', ')}]`,
      );
      const at = first.arrivals.find(
        (x) => x.frame.type === FrameType.ACK && x.frame.seq === 3,
      )!.at;
      return `ACK(3) ${Math.round(at - welcomeAt)} ms after WELCOME`;
    },
    false,
  );
  const data1 = () => first.frames.filter(isType(FrameType.DATA));
  const dataOk = await steps.run('client.data-seq', async () => {
    const bound = 10_000 + o.slack;
    await first.until(() => data1().length >= 3, bound);
    const seqs = data1().map((d) => d.seq);
    expect(
      seqs.length >= 3,
      `expected at least 3 DATA within ${bound} ms, got [${seqs.join(', ')}] (${first.endState()})`,
    );
    expect(
      seqs.every((s, i) => s === i + 1),
      `DATA seqs [${seqs.join(', ')}], expected 1, 2, 3...`,
    );
    return `${seqs.length} messages`;
  });
  if (!dataOk) return;
  await steps.run(
    'client.pong',
    async () => {
      const sent = performance.now();
      const [seq, ts] = [0xabcd_ef01, 123_456_789_012];
      first.send(encodePing(seq, ts));
      const bound = 200 + o.slack;
      const pong = await first.waitFrame(
        (f): f is PongFrame => f.type === FrameType.PONG && f.seq === seq,
        bound,
        `PONG(seq ${seq})`,
      );
      expect(pong.timestamp === ts, `PONG timestamp ${pong.timestamp}, expected ${ts}`);
      const at = first.arrivals.find((x) => x.frame === pong)!.at;
      return `PONG after ${(at - sent).toFixed(1)} ms`;
    },
    false,
  );
  first.autoPong = true;
  await steps.run('client.idle-ping', () => idlePing(first, interval, o.slack), false);
  await steps.run(
    'client.settings',
    () => {
      first.send(encodeSettings(SETTINGS_GRANT.interval, SETTINGS_GRANT.timeout));
      return idlePing(first, SETTINGS_GRANT.interval, o.slack);
    },
    false,
  );
  const sent1 = data1();
  const k = sent1.at(-1)!.seq;
  first.cut();

  // Connection 2: the resume, the client's replay, the ACK of a duplicate.
  const resumed = await steps.run('client.resume-hello', async () => {
    const bound = 15_000 + o.slack;
    const b = await acceptor.next(bound);
    conns.b = b;
    if (!b) throw new CheckFailure(`the client did not reconnect within ${bound} ms of the cut`);
    const h = await helloOf(b, 5000);
    expect(h.resume !== null, 'the reconnecting HELLO has no RESUME flag');
    expect(Buffer.from(h.resume.sessionId).equals(sessionId), 'HELLO names another session id');
    expect(Buffer.from(h.resume.token).equals(tokens[0]!), 'HELLO presents another token');
    expect(h.resume.lastReceived === 3, `HELLO lastReceived ${h.resume.lastReceived}, expected 3`);
    expect(
      h.version === version,
      `the resume asks for version ${h.version}, the session is ${version}`,
    );
    return undefined;
  });
  if (!resumed || !conns.b) return;
  const second = conns.b;
  second.autoPong = true;
  const welcomed = second.arrivals.length;
  const resumedAt = performance.now();
  second.send(
    Buffer.concat([
      encodeWelcome({
        version,
        maxFrame: DEFAULT_MAX_FRAME,
        resumed: true,
        sessionId,
        token: tokens[1]!,
        interval,
        timeout,
        lastReceived: 1,
        sessionTtl: 60_000,
      }),
      encodeData(3, Buffer.from('s3')),
    ]),
  );
  const data2 = () => second.frames.slice(welcomed).filter(isType(FrameType.DATA));
  await steps.run(
    'client.replay',
    async () => {
      const bound = 2000 + o.slack;
      await second.until(() => data2().some((d) => d.seq >= k), bound);
      await second.idle(300);
      const seqs = data2().map((d) => d.seq);
      expect(
        seqs.length >= k - 1 && seqs.every((s, i) => s === i + 2),
        `DATA after the resumed WELCOME (lastReceived 1): [${seqs.join(', ')}], expected ${Array.from({ length: k - 1 }, (_, i) => i + 2).join(', ')} first`,
      );
      data2()
        .slice(0, k - 1)
        .forEach((d: DataFrame, i) => {
          expect(
            Buffer.from(d.payload).equals(Buffer.from(sent1[i + 1]!.payload)),
            `the resent DATA(${d.seq}) differs from the original`,
          );
        });
      return `resent ${k - 1} (seq 2..${k})`;
    },
    false,
  );
  await steps.run(
    'client.duplicate-ack',
    async () => {
      const bound = 500 + o.slack;
      const acked = () => second.arrivals.find((x) => x.frame.type === FrameType.ACK);
      await second.until(() => acked() !== undefined, bound);
      const ack = acked();
      expect(ack !== undefined, `no ACK for the duplicate DATA(3) within ${bound} ms`);
      expect(
        (ack.frame as { seq: number }).seq === 3,
        `got ${describe(ack.frame)}, expected ACK(3)`,
      );
      return `ACK(3) ${Math.round(ack.at - resumedAt)} ms after WELCOME`;
    },
    false,
  );
  let closedAt = performance.now();
  await steps.run(
    'client.close-reply',
    async () => {
      const from = second.arrivals.length;
      // DATA(4) right before the CLOSE: an ACK is owed, and must come as the last word.
      second.send(
        Buffer.concat([
          encodeData(4, Buffer.from('s4')),
          encodeClose(CloseCode.GOING_AWAY, 'conformance: going away'),
        ]),
      );
      closedAt = performance.now();
      const bound = 1000 + o.slack;
      await second.until(() => second.closedAt !== null, bound, false);
      const after = second.frames.slice(from);
      expect(
        after.some((f) => f.type === FrameType.ACK && f.seq === 4),
        `expected ACK(4) after DATA(4) + CLOSE(GOING_AWAY), got ${after.map(describe).join(', ') || 'nothing'}`,
      );
      expect(
        after.every((f) => f.type === FrameType.ACK || f.type === FrameType.PING),
        `after CLOSE the client sent ${after.map(describe).join(', ')} (only its last ACK may follow)`,
      );
      expect(
        second.closedAt !== null,
        `the client did not end its side within ${bound} ms of CLOSE`,
      );
      return `FIN ${Math.round(second.closedAt - closedAt)} ms after CLOSE`;
    },
    false,
  );
  second.cut();

  // Connection 3: the rotated token, then a final close.
  const third = await steps.run('client.token-rotated', async () => {
    const bound = 15_000 + o.slack;
    const c = await acceptor.next(bound);
    conns.c = c;
    if (!c) throw new CheckFailure(`the client did not reconnect within ${bound} ms of the cut`);
    const h = await helloOf(c, 5000);
    expect(h.resume !== null, 'the reconnecting HELLO has no RESUME flag');
    expect(
      Buffer.from(h.resume.token).equals(tokens[1]!),
      Buffer.from(h.resume.token).equals(tokens[0]!)
        ? 'HELLO presents the old token, not the one of the latest WELCOME'
        : 'HELLO presents a token the script never gave',
    );
    return undefined;
  });
  if (!third || !conns.c) return;
  const last = conns.c;
  last.send(encodeClose(CloseCode.AUTH_FAILED, 'conformance: a final close'));
  await steps.run('client.final-close', async () => {
    const before = acceptor.accepted;
    await last.idle(NO_RETRY_MS);
    expect(
      acceptor.accepted === before,
      `the client connected again within ${NO_RETRY_MS} ms of CLOSE(AUTH_FAILED)`,
    );
    return undefined;
  });
}
