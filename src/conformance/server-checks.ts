/**
 * The checks of `heartline conformance server`: a table of independent checks, each
 * with a stable id, the PROTOCOL.md section it checks, and its own connections and
 * deadline, run against a server that echoes every message back (`heartline serve
 * --echo`). The bytes come from the codec (src/protocol/codec.ts) or, for what the codec
 * refuses to produce, from the invalid vectors of PROTOCOL.md 11.2.
 *
 * Each check carries the protocol versions it applies to (`versions`), so that checks for
 * a later version join the same table.
 */

import { randomBytes } from 'node:crypto';
import { CloseCode } from '../protocol/close-codes.js';
import { encodeAck, encodeClose, encodeData, encodePing, encodePong } from '../protocol/codec.js';
import { type CloseFrame, FrameType, MIN_MAX_FRAME, type PongFrame } from '../protocol/frames.js';
import { MALFORMED_CHECKS } from './malformed-checks.js';
import { type CheckResult, runWithDeadline } from './report.js';
import {
  acksOf,
  type CheckContext,
  dataOf,
  echoes,
  isData,
  type ServerCheck,
  type ServerTarget,
  sameBytes,
  text,
  waitUntil,
  ZERO_ID,
} from './server-context.js';
import { V2_CHECKS } from './v2-checks.js';
import { CheckFailure, codeName, describe, expect, hello, WirePeer } from './wire.js';

/** How long `close.ends-session` waits after the closed connection before resuming (ms). */
export { SERVER_CHECK_DEFAULTS, type ServerCheck, type ServerTarget } from './server-context.js';

const CLOSE_SETTLE_MS = 200;

/**
 * Writes 8 DATA of the largest size and a PING while not reading, so that the echoes
 * pile up in the server's output queue; returns how many echoes the PONG came ahead of.
 */
async function pongAheadOfEchoes(ctx: CheckContext): Promise<number> {
  const { peer } = await ctx.session();
  peer.autoPong = true;
  const count = 8;
  const payload = randomBytes(ctx.target.maxFrame - 9);
  peer.socket.pause();
  peer.send(
    Buffer.concat([
      ...Array.from({ length: count }, (_, i) => encodeData(i + 1, payload)),
      encodePing(7, 7007),
    ]),
  );
  // Once all of it has left this process, give the server a moment to read the PING.
  await waitUntil(() => peer.socket.writableLength === 0, 5000);
  await peer.idle(300);
  peer.socket.resume();
  // Acknowledge echoes as they come, so that the replay buffer stays small.
  const acker = setInterval(() => {
    const last = dataOf(peer).at(-1);
    if (last) peer.send(encodeAck(last.seq));
  }, 20);
  try {
    await peer.until(
      () => dataOf(peer).length >= count && peer.ofType(FrameType.PONG).length > 0,
      10_000,
    );
  } finally {
    clearInterval(acker);
  }
  const frames = peer.frames;
  const pongAt = frames.findIndex((f) => f.type === FrameType.PONG);
  expect(pongAt >= 0, `no PONG: ${peer.endState()}`);
  expect(dataOf(peer).length >= count, `not every echo came back: ${peer.endState()}`);
  const pong = frames[pongAt] as PongFrame;
  expect(
    pong.seq === 7 && pong.timestamp === 7007,
    `expected PONG(seq 7, ts 7007), got ${describe(pong)}`,
  );
  peer.cut();
  return frames.slice(pongAt).filter(isData).length;
}

/**
 * A refusal before the HELLO was read cannot know the client's maxFrame: its CLOSE must
 * fit the smallest one, 64 bytes, so its reason is at most 57 bytes (section 2).
 */
function fitsSmallestMaxFrame(close: CloseFrame): void {
  const length = 7 + Buffer.byteLength(close.reason, 'utf8');
  expect(
    length <= MIN_MAX_FRAME,
    `a CLOSE sent before the HELLO was read is ${length} bytes long, above the smallest maxFrame (${MIN_MAX_FRAME})`,
  );
}

/** The payloads the echo check sends, with what they exercise. */
function echoVectors(maxFrame: number): { what: string; payload: Buffer }[] {
  return [
    { what: 'empty', payload: Buffer.alloc(0) },
    { what: '1 byte', payload: text('x') },
    { what: 'UTF-8', payload: text('grüße ⏳ 🚀 \u0000 \ufeff end') },
    { what: 'binary 0-255', payload: Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256)) },
    { what: `maxFrame - 9 (${maxFrame - 9} B)`, payload: randomBytes(maxFrame - 9) },
  ];
}

/** Every check of `heartline conformance server`, in the order they run. */
export const SERVER_CHECKS: readonly ServerCheck[] = [
  {
    id: 'handshake.welcome',
    section: '3.2, 5',
    description:
      'HELLO is answered by WELCOME first: version 1, a new session, 16-byte id and token, 0 < interval < timeout',
    versions: [1],
    async run(ctx) {
      const { welcome: w } = await ctx.session();
      expect(w.version === 1, `WELCOME version ${w.version}, expected 1`);
      expect(!w.resumed, 'WELCOME has RESUMED set for a HELLO without RESUME');
      expect(
        w.sessionId.length === 16 && !ZERO_ID.equals(Buffer.from(w.sessionId)),
        'the session id is all zero',
      );
      expect(!ZERO_ID.equals(Buffer.from(w.token)), 'the resume token is all zero');
      expect(
        w.interval > 0 && w.interval < w.timeout,
        `granted interval ${w.interval} ms, timeout ${w.timeout} ms: expected 0 < interval < timeout`,
      );
      expect(w.lastReceived === 0, `lastReceived ${w.lastReceived} in a new session, expected 0`);
      const { welcome: other } = await ctx.session();
      expect(
        !sameBytes(other.sessionId, w.sessionId) && !sameBytes(other.token, w.token),
        'two new sessions got the same session id or token',
      );
      return `interval ${w.interval} ms, timeout ${w.timeout} ms, sessionTtl ${w.sessionTtl} ms`;
    },
  },
  {
    id: 'handshake.grant',
    section: '7.1',
    description:
      'requested heartbeat values are granted as 0 < interval < timeout, whatever was asked',
    versions: [1],
    async run(ctx) {
      const seen: string[] = [];
      for (const [interval, timeout] of [
        [ctx.target.interval, 3 * ctx.target.interval],
        [1, 2],
        [0xffff_ffff, 0xffff_ffff],
      ] as const) {
        const { welcome: w } = await ctx.session({ interval, timeout });
        expect(
          w.interval > 0 && w.interval < w.timeout,
          `asked ${interval}/${timeout} ms, granted ${w.interval}/${w.timeout} ms: expected 0 < interval < timeout`,
        );
        seen.push(`${interval}/${timeout} -> ${w.interval}/${w.timeout}`);
      }
      return seen.join(', ');
    },
  },
  {
    id: 'handshake.pipelined',
    section: '5.3',
    description:
      'DATA and PING pipelined behind HELLO get no answer before WELCOME, then their echo, ACK and PONG',
    versions: [1],
    async run(ctx) {
      const p = await ctx.open();
      p.send(Buffer.concat([hello(), encodeData(1, text('pipelined')), encodePing(1, 424242)]));
      const first = await p.frameAt(0, 5000, 'WELCOME');
      expect(
        first.type === FrameType.WELCOME,
        `the first frame was ${describe(first)}, expected WELCOME (nothing may precede it)`,
      );
      await p.until(
        () =>
          dataOf(p).length > 0 &&
          acksOf(p).includes(1) &&
          p.frames.some((f) => f.type === FrameType.PONG),
        5000,
      );
      expect(dataOf(p).length > 0, `no echo of the pipelined DATA: ${p.endState()}`);
      expect(acksOf(p).includes(1), `no ACK(1) for the pipelined DATA: ${p.endState()}`);
      const pong = p.ofType(FrameType.PONG)[0];
      expect(
        pong?.seq === 1 && pong.timestamp === 424242,
        `expected PONG(seq 1, ts 424242) for the pipelined PING: ${p.endState()}`,
      );
      return undefined;
    },
  },
  {
    id: 'handshake.first-frame',
    section: '2, 5.2',
    description:
      'a PING before HELLO gets CLOSE(PROTOCOL_ERROR) (fitting the smallest maxFrame) and no WELCOME',
    versions: [1],
    async run(ctx) {
      const p = await ctx.open();
      p.send(encodePing(1, 1));
      const close = await p.expectClose(CloseCode.PROTOCOL_ERROR, 3000);
      expect(
        p.frames.every((f) => f.type === FrameType.CLOSE),
        `expected only CLOSE, got ${p.endState()}`,
      );
      fitsSmallestMaxFrame(close);
      return undefined;
    },
  },
  {
    id: 'handshake.second-hello',
    section: '5.2',
    description: 'a second HELLO on a connection gets CLOSE(PROTOCOL_ERROR) after the WELCOME',
    versions: [1],
    async run(ctx) {
      const p = await ctx.open();
      p.send(Buffer.concat([hello(), hello()]));
      await p.expectClose(CloseCode.PROTOCOL_ERROR, 3000);
      expect(p.frames[0]?.type === FrameType.WELCOME, `expected WELCOME first: ${p.endState()}`);
      return undefined;
    },
  },
  {
    id: 'handshake.timeout',
    section: '2, 5.6',
    description:
      'a connection that sends no HELLO gets CLOSE(HANDSHAKE_TIMEOUT) (fitting the smallest maxFrame) by the deadline',
    versions: [1],
    slow: true,
    deadline: (t) => t.handshakeTimeout + t.slack + 5000,
    async run(ctx) {
      const p = await ctx.open();
      const opened = performance.now();
      const limit = ctx.target.handshakeTimeout + ctx.target.slack;
      fitsSmallestMaxFrame(await p.expectClose(CloseCode.HANDSHAKE_TIMEOUT, limit));
      return `closed after ${Math.round(p.closedAt! - opened)} ms (limit ${limit} ms)`;
    },
  },
  {
    id: 'data.echo',
    section: '3.4, 6.1',
    description:
      'DATA payloads (empty, 1 byte, UTF-8, binary, maxFrame - 9 bytes) come back byte-exact, in order, seq 1..5',
    versions: [1],
    async run(ctx) {
      const { peer } = await ctx.session();
      peer.autoPong = true;
      const vectors = echoVectors(ctx.target.maxFrame);
      peer.send(Buffer.concat(vectors.map((v, i) => encodeData(i + 1, v.payload))));
      const got = await echoes(peer, vectors.length, 10_000);
      vectors.forEach((v, i) => {
        const d = got[i]!;
        expect(d.seq === i + 1, `echo ${i + 1} has seq ${d.seq}, expected ${i + 1}`);
        expect(
          sameBytes(d.payload, v.payload),
          `echo ${i + 1} (${v.what}) differs: ${d.payload.length} B back for ${v.payload.length} B sent`,
        );
      });
      peer.send(encodeAck(vectors.length));
      return undefined;
    },
  },
  {
    id: 'ack.cumulative',
    section: '6.2',
    description: '40 DATA in one write are acknowledged up to ACK(40), never decreasing, promptly',
    versions: [1],
    async run(ctx) {
      const { peer } = await ctx.session();
      peer.autoPong = true;
      const sent = performance.now();
      peer.send(
        Buffer.concat(Array.from({ length: 40 }, (_, i) => encodeData(i + 1, text(`m${i + 1}`)))),
      );
      const bound = 1000 + ctx.target.slack;
      await peer.until(() => acksOf(peer).includes(40), bound);
      const acks = acksOf(peer);
      expect(
        acks.includes(40),
        `expected ACK(40) within ${bound} ms, got ACKs [${acks.join(', ')}]`,
      );
      for (let i = 1; i < acks.length; i++) {
        expect(acks[i]! >= acks[i - 1]!, `ACKs decreased: [${acks.join(', ')}]`);
      }
      expect(
        acks.every((a) => a >= 1 && a <= 40),
        `an ACK outside 1..40: [${acks.join(', ')}]`,
      );
      const at = peer.arrivals.find(
        (a) => a.frame.type === FrameType.ACK && a.frame.seq === 40,
      )!.at;
      return `${acks.length} ACK(s), ACK(40) after ${Math.round(at - sent)} ms`;
    },
  },
  {
    id: 'ack.duplicate',
    section: '6.1, 6.2',
    description:
      'a duplicate DATA is not delivered again and is acknowledged at once with ACK(lastReceived)',
    versions: [1],
    async run(ctx) {
      const { peer } = await ctx.session();
      peer.autoPong = true;
      peer.send(Buffer.concat([1, 2, 3].map((s) => encodeData(s, text(`m${s}`)))));
      await peer.until(() => acksOf(peer).includes(3) && dataOf(peer).length >= 3, 3000);
      expect(acksOf(peer).includes(3), `no ACK(3) for DATA 1..3: ${peer.endState()}`);
      await echoes(peer, 3, 3000);
      const acksBefore = acksOf(peer).length;
      const sent = performance.now();
      peer.send(encodeData(2, text('m2')));
      const bound = 500 + ctx.target.slack;
      await peer.until(() => acksOf(peer).length > acksBefore, bound);
      const after = acksOf(peer).slice(acksBefore);
      expect(after.length > 0, `the duplicate DATA(2) got no ACK within ${bound} ms`);
      expect(after[0] === 3, `the duplicate got ACK(${after[0]}), expected ACK(3)`);
      const took = performance.now() - sent;
      await peer.idle(200);
      expect(
        dataOf(peer).length === 3,
        `the duplicate was delivered again: ${dataOf(peer).length} echoes for 3 messages`,
      );
      return `ACK(3) after ${Math.round(took)} ms`;
    },
  },
  {
    id: 'data.seq-zero',
    section: '6.1',
    description: 'DATA with seq 0 gets CLOSE(PROTOCOL_ERROR)',
    versions: [1],
    async run(ctx) {
      const { peer } = await ctx.session();
      peer.send(encodeData(0, text('zero')));
      await peer.expectClose(CloseCode.PROTOCOL_ERROR, 3000);
      expect(dataOf(peer).length === 0, 'DATA seq 0 was delivered (echoed)');
      return undefined;
    },
  },
  {
    id: 'data.gap',
    section: '6.1',
    description: 'DATA(1) then DATA(3) (a gap) gets CLOSE(PROTOCOL_ERROR)',
    versions: [1],
    async run(ctx) {
      const { peer } = await ctx.session();
      peer.send(Buffer.concat([encodeData(1, text('one')), encodeData(3, text('three'))]));
      await peer.expectClose(CloseCode.PROTOCOL_ERROR, 3000);
      expect(
        dataOf(peer).every((d) => Buffer.from(d.payload).toString() !== 'three'),
        'DATA after the gap was delivered (echoed)',
      );
      return undefined;
    },
  },
  {
    id: 'ack.never-sent',
    section: '6.2',
    description: 'an ACK for a DATA the server never sent gets CLOSE(PROTOCOL_ERROR)',
    versions: [1],
    async run(ctx) {
      const { peer } = await ctx.session();
      peer.send(encodeAck(5));
      await peer.expectClose(CloseCode.PROTOCOL_ERROR, 3000);
      return undefined;
    },
  },
  {
    id: 'ping.pong',
    section: '3.3, 7.3',
    description: 'a PING is answered at once by a PONG copying its seq and timestamp',
    versions: [1],
    async run(ctx) {
      const { peer } = await ctx.session();
      const seq = 0xfedc_ba98;
      const timestamp = Number.MAX_SAFE_INTEGER;
      const sent = performance.now();
      peer.send(encodePing(seq, timestamp));
      const bound = 200 + ctx.target.slack;
      const pong = await peer.waitFrame(
        (f): f is PongFrame => f.type === FrameType.PONG,
        bound,
        'PONG',
      );
      expect(
        pong.seq === seq && pong.timestamp === timestamp,
        `expected PONG(seq ${seq}, ts ${timestamp}), got ${describe(pong)}`,
      );
      const at = peer.arrivals.find((a) => a.frame === pong)!.at;
      return `PONG after ${(at - sent).toFixed(1)} ms`;
    },
  },
  {
    id: 'ping.not-behind-data',
    section: '7.3',
    description:
      'a PING sent behind large DATA is answered before the echoes queued ahead of it (best of 3 tries)',
    versions: [1],
    deadline: () => 40_000,
    async run(ctx) {
      // How many echoes the socket takes before the server's own queue starts depends on
      // kernel buffers and scheduling, which can hand them all over before the PING is
      // read: a PONG behind every echo in one try may be bad luck, in three it is a queue.
      for (let attempt = 1; attempt <= 3; attempt++) {
        const ahead = await pongAheadOfEchoes(ctx);
        if (ahead > 0) return `PONG ahead of ${ahead} of 8 echoes (try ${attempt})`;
      }
      throw new CheckFailure(
        `the PONG came after all 8 echoes in each of 3 tries (it waited behind queued DATA)`,
      );
    },
  },
  {
    id: 'heartbeat.idle-survival',
    section: '7.2, 7.4, 7.6',
    description:
      'a link that pings every interval / 4 (the fastest compliant pace) stays open past the timeout',
    versions: [1],
    deadline: (t) => 12 * t.interval + 10_000,
    async run(ctx) {
      const { peer, welcome } = await ctx.session({
        interval: ctx.target.interval,
        timeout: 2 * ctx.target.interval,
      });
      peer.autoPong = true;
      const span = welcome.timeout + welcome.interval;
      const every = Math.max(1, Math.floor(welcome.interval / 4));
      let seq = 0;
      const started = performance.now();
      while (performance.now() - started < span && peer.closedAt === null) {
        peer.send(encodePing(++seq, Math.round(performance.now() * 1000)));
        await peer.idle(every);
      }
      expect(
        peer.closedAt === null && peer.closeFrame === undefined,
        `the link was closed after ${Math.round((peer.closedAt ?? performance.now()) - started)} ms of pinging every ${every} ms: ${peer.endState()}`,
      );
      const pongs = peer.ofType(FrameType.PONG).length;
      expect(pongs >= seq - 1, `only ${pongs} PONGs for ${seq} PINGs`);
      return `${seq} PINGs over ${span} ms (grant ${welcome.interval}/${welcome.timeout} ms), ${pongs} PONGs`;
    },
  },
  {
    id: 'heartbeat.silent-client',
    section: '7.4',
    description:
      'a client silent after HELLO is closed no earlier than the granted timeout, and at most a bound after it',
    versions: [1],
    deadline: (t) => 20 * t.interval + t.slack + 10_000,
    async run(ctx) {
      const p = await ctx.open();
      const sent = performance.now();
      const welcome = await p.handshake({
        interval: ctx.target.interval,
        timeout: 2 * ctx.target.interval,
      });
      const bound = welcome.timeout + ctx.target.slack;
      await p.until(() => p.closedAt !== null, bound + 1000, false);
      expect(
        p.closedAt !== null,
        `still open ${bound + 1000} ms after the last frame (granted timeout ${welcome.timeout} ms)`,
      );
      const after = p.closedAt - sent;
      // The server heard HELLO no earlier than it was written: closing before the timeout
      // counted from the write is early for certain (a 5 ms allowance for rounding).
      expect(
        after >= welcome.timeout - 5,
        `closed after ${Math.round(after)} ms, before the granted timeout of ${welcome.timeout} ms`,
      );
      expect(
        after <= bound,
        `closed after ${Math.round(after)} ms, later than timeout + ${ctx.target.slack} ms`,
      );
      const close = p.closeFrame;
      expect(
        close === undefined || close.code === CloseCode.HEARTBEAT_TIMEOUT,
        `closed with ${describe(close!)}, expected CLOSE(${codeName(CloseCode.HEARTBEAT_TIMEOUT)}) or none`,
      );
      return `closed after ${Math.round(after)} ms (timeout ${welcome.timeout} ms)${close ? ' with CLOSE(1005)' : ' without CLOSE'}`;
    },
  },
  {
    id: 'ping.flood',
    section: '7.6',
    description:
      'a flood of 100 PINGs is either all answered or closed with CLOSE(POLICY_VIOLATION), nothing else',
    versions: [1],
    async run(ctx) {
      const { peer } = await ctx.session({
        interval: ctx.target.interval,
        timeout: 2 * ctx.target.interval,
      });
      const n = 100;
      peer.send(Buffer.concat(Array.from({ length: n }, (_, i) => encodePing(i + 1, i + 1))));
      await peer.until(
        () => peer.closeFrame !== undefined || peer.ofType(FrameType.PONG).length >= n,
        3000,
      );
      const pongs = peer.ofType(FrameType.PONG);
      pongs.forEach((p, i) => {
        expect(p.seq === i + 1 && p.timestamp === i + 1, `PONG ${i + 1} is ${describe(p)}`);
      });
      const close = peer.closeFrame;
      if (close) {
        expect(
          close.code === CloseCode.POLICY_VIOLATION,
          `the flood got ${describe(close)}, expected CLOSE(${codeName(CloseCode.POLICY_VIOLATION)})`,
        );
        return `policy enforced: CLOSE(POLICY_VIOLATION) after ${pongs.length} PONGs`;
      }
      expect(
        pongs.length >= n,
        `${pongs.length} PONGs for ${n} PINGs and no CLOSE: ${peer.endState()}`,
      );
      return `no ping policy: all ${n} PINGs answered`;
    },
  },
  {
    id: 'ping.unsolicited-pong',
    section: '7.3',
    description: 'PONGs that answer no PING are ignored: no CLOSE, the link keeps working',
    versions: [1],
    async run(ctx) {
      const { peer } = await ctx.session();
      peer.autoPong = true;
      peer.send(
        Buffer.concat(Array.from({ length: 20 }, (_, i) => encodePong(0x7000_0000 + i, i))),
      );
      peer.send(encodeData(1, text('after the PONGs')));
      await peer.until(() => dataOf(peer).length > 0, 3000);
      expect(
        dataOf(peer).length > 0 && peer.closeFrame === undefined && peer.closedAt === null,
        `the link did not carry on after 20 unsolicited PONGs: ${peer.endState()}`,
      );
      return undefined;
    },
  },
  {
    id: 'resume.replay',
    section: '6.3',
    description:
      'after a cut, a resume gets RESUMED, the same session, a new token, and the unacknowledged DATA again without gap or duplicate',
    versions: [1],
    async run(ctx) {
      const { peer: a, welcome: w1 } = await ctx.session();
      a.send(Buffer.concat([1, 2, 3].map((s) => encodeData(s, text(`r${s}`)))));
      await a.until(() => dataOf(a).length >= 3 && acksOf(a).includes(3), 3000);
      expect(
        dataOf(a).length >= 3 && acksOf(a).includes(3),
        `expected 3 echoes and ACK(3) before the cut: ${a.endState()}`,
      );
      const firstEchoes = dataOf(a).slice(0, 3);
      a.cut();
      // The client claims it received only the first echo: 2 and 3 must come again.
      const b = await ctx.open();
      b.autoPong = true;
      const w2 = await b.handshake({
        resume: { sessionId: w1.sessionId, token: w1.token, lastReceived: 1 },
      });
      expect(w2.resumed, 'WELCOME has RESUMED clear: the session was not resumed');
      expect(sameBytes(w2.sessionId, w1.sessionId), 'the resumed WELCOME names another session');
      expect(!sameBytes(w2.token, w1.token), 'the resume token was not rotated');
      expect(w2.lastReceived === 3, `WELCOME lastReceived ${w2.lastReceived}, expected 3`);
      await echoes(b, 2, 3000);
      b.send(encodeData(4, text('r4')));
      await b.until(() => dataOf(b).some((d) => d.seq === 4), 3000);
      await b.idle(200);
      const seqs = dataOf(b).map((d) => d.seq);
      expect(
        seqs.join(',') === '2,3,4',
        `DATA seqs after the resume: [${seqs.join(', ')}], expected [2, 3, 4]`,
      );
      for (const i of [0, 1]) {
        expect(
          sameBytes(dataOf(b)[i]!.payload, firstEchoes[i + 1]!.payload),
          `the resent DATA(${i + 2}) differs from the original`,
        );
      }
      return undefined;
    },
  },
  {
    id: 'resume.supersede',
    section: '6.3',
    description: 'a resume while the old link is open closes the old link with CLOSE(SUPERSEDED)',
    versions: [1],
    async run(ctx) {
      const { peer: a, welcome: w1 } = await ctx.session();
      a.autoPong = true;
      const b = await ctx.open();
      const w2 = await b.handshake({
        resume: { sessionId: w1.sessionId, token: w1.token, lastReceived: 0 },
      });
      expect(w2.resumed && sameBytes(w2.sessionId, w1.sessionId), 'the session was not resumed');
      await a.expectClose(CloseCode.SUPERSEDED, 3000, false);
      return undefined;
    },
  },
  {
    id: 'resume.wrong-token',
    section: '6.3',
    description:
      'a resume with a wrong token gets a new session; the named session and its link are untouched',
    versions: [1],
    async run(ctx) {
      const { peer: a, welcome: w1 } = await ctx.session();
      a.autoPong = true;
      const b = await ctx.open();
      const w2 = await b.handshake({
        resume: { sessionId: w1.sessionId, token: randomBytes(16), lastReceived: 0 },
      });
      expect(!w2.resumed, 'a wrong token resumed the session');
      expect(!sameBytes(w2.sessionId, w1.sessionId), 'a wrong token got the named session id');
      expect(w2.lastReceived === 0, `new session with lastReceived ${w2.lastReceived}`);
      a.send(encodeData(1, text('still here')));
      await a.until(() => dataOf(a).length > 0, 3000);
      expect(
        dataOf(a).length > 0 && a.closeFrame === undefined,
        `the owner's link stopped working: ${a.endState()}`,
      );
      return undefined;
    },
  },
  {
    id: 'resume.unknown-session',
    section: '6.3',
    description: 'a resume of an unknown session gets WELCOME with RESUMED clear and a new session',
    versions: [1],
    async run(ctx) {
      const sessionId = randomBytes(16);
      const { welcome: w } = await ctx.session({
        resume: { sessionId, token: randomBytes(16), lastReceived: 7 },
      });
      expect(!w.resumed, 'an unknown session was "resumed"');
      expect(!sameBytes(w.sessionId, sessionId), 'the new session took the unknown id');
      expect(w.lastReceived === 0, `new session with lastReceived ${w.lastReceived}`);
      return undefined;
    },
  },
  ...MALFORMED_CHECKS,
  {
    id: 'close.handshake',
    section: '8',
    description:
      "after the client's CLOSE the server sends nothing but an ACK and ends its side (FIN) within the grace",
    versions: [1],
    async run(ctx) {
      const { peer } = await ctx.session();
      const before = peer.arrivals.length;
      const sent = performance.now();
      peer.send(encodeClose(CloseCode.NORMAL, 'conformance done'));
      const bound = 1000 + ctx.target.slack;
      await peer.until(() => peer.closedAt !== null, bound, false);
      expect(peer.closedAt !== null, `the connection was still open ${bound} ms after CLOSE`);
      const after = peer.frames.slice(before);
      expect(
        after.every((f) => f.type === FrameType.ACK),
        `frames after CLOSE (only an ACK may follow it): ${after.map(describe).join(', ')}`,
      );
      return `closed after ${Math.round(peer.closedAt - sent)} ms`;
    },
  },
  {
    id: 'close.last-ack',
    section: '8',
    description:
      "a CLOSE right behind DATA 1..3 gets ACK(3), the server's last word on what it received, before its FIN",
    versions: [1],
    async run(ctx) {
      const { peer } = await ctx.session();
      peer.send(
        Buffer.concat([
          ...[1, 2, 3].map((q) => encodeData(q, text(`c${q}`))),
          encodeClose(CloseCode.NORMAL, 'conformance done'),
        ]),
      );
      const bound = 1000 + ctx.target.slack;
      await peer.until(() => peer.closedAt !== null, bound, false);
      const acks = acksOf(peer);
      expect(
        acks.includes(3),
        `expected ACK(3) before the connection ended, got ACKs [${acks.join(', ')}] (${peer.endState()})`,
      );
      expect(peer.closedAt !== null, `the connection was still open ${bound} ms after CLOSE`);
      return undefined;
    },
  },
  {
    id: 'close.ends-session',
    section: '8',
    description: "a client's CLOSE(NORMAL) ends its session: resuming it gets a new session",
    versions: [1],
    async run(ctx) {
      const { peer, welcome: w1 } = await ctx.session();
      peer.send(encodeClose(CloseCode.NORMAL, 'bye'));
      // Resumed only once the connection is closed at both ends, and a moment after: a
      // server may end the session when its socket closes rather than on the CLOSE.
      await peer.until(() => peer.socket.closed, 3000, false);
      await peer.idle(CLOSE_SETTLE_MS);
      const { welcome: w2 } = await ctx.session({
        resume: { sessionId: w1.sessionId, token: w1.token, lastReceived: 0 },
      });
      expect(!w2.resumed, 'the session closed with CLOSE(NORMAL) was resumed');
      return undefined;
    },
  },
  ...V2_CHECKS,
];

/** The protocol versions the kit has checks for. */
export const KIT_VERSIONS: readonly number[] = [1, 2];

/** Options of {@link runServerChecks}. */
export interface RunServerOptions {
  /** Ids (or id prefixes such as `malformed`) to run; all when empty. */
  only?: readonly string[];
  /** Skip the checks that wait on long server timers. */
  quick?: boolean;
  /** The protocol versions whose checks run. @default [1, 2] */
  versions?: readonly number[];
  /** Called with each result as it comes. */
  onResult(result: CheckResult): void;
}

/** The checks an --only list selects; throws naming an entry that selects nothing. */
export function selectChecks(only: readonly string[] = []): ServerCheck[] {
  if (only.length === 0) return [...SERVER_CHECKS];
  const matches = (c: ServerCheck, s: string) => c.id === s || c.id.startsWith(`${s}.`);
  for (const s of only) {
    if (!SERVER_CHECKS.some((c) => matches(c, s))) {
      throw new RangeError(`no check "${s}"`);
    }
  }
  return SERVER_CHECKS.filter((c) => only.some((s) => matches(c, s)));
}

/** Runs the selected checks one after the other, each with its own connections and deadline. */
export async function runServerChecks(
  target: ServerTarget,
  options: RunServerOptions,
): Promise<void> {
  const versions = options.versions ?? KIT_VERSIONS;
  for (const check of selectChecks(options.only)) {
    const info = { id: check.id, section: check.section, description: check.description };
    if (!check.versions.some((v) => versions.includes(v))) continue;
    if (check.slow && options.quick) {
      options.onResult({ ...info, status: 'skip', detail: 'skipped by --quick', ms: 0 });
      continue;
    }
    const peers: WirePeer[] = [];
    const open = async (): Promise<WirePeer> => {
      const p = await WirePeer.connect(target.host, target.port, 5000, target.maxFrame, target.tls);
      peers.push(p);
      return p;
    };
    const ctx: CheckContext = {
      target,
      open,
      async session(fields) {
        const peer = await open();
        const welcome = await peer.handshake(fields);
        return { peer, welcome };
      },
    };
    const deadline = check.deadline?.(target) ?? 15_000;
    const result = await runWithDeadline(
      info,
      deadline,
      () => check.run(ctx),
      () => {
        for (const p of peers) p.cut();
      },
    );
    options.onResult(result);
  }
}
