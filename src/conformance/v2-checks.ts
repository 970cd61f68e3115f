/**
 * The server checks of what protocol version 2 adds: WELCOME version 2 with its
 * maxFrame, REQUEST and REPLY, a reply that does not fit the client's maxFrame, the final
 * FRAME_TOO_LARGE, a session keeping its version.
 */

import { CloseCode } from '../protocol/close-codes.js';
import { encodeData, encodeRequest } from '../protocol/codec.js';
import { FrameType, type ReplyFrame, ReplyStatus } from '../protocol/frames.js';
import { acksOf, type ServerCheck, text } from './server-context.js';
import { expect } from './wire.js';

/** The length of a REPLY without its payload: type, seq, requestSeq, status. */
const REPLY_FIXED = 1 + 8 + 8 + 1;

/** HELLO fields of a version 2 session: the client announces a 64 KiB maxFrame. */
const V2 = { version: 2, maxFrame: 65536 } as const;

/** The checks of what protocol version 2 adds (PROTOCOL.md 3.1, 3.2, 3.8, 3.9, 5.5, 6.4). */
export const V2_CHECKS: readonly ServerCheck[] = [
  {
    id: 'v2.welcome',
    section: '3.2, 5.5',
    description: 'HELLO version 2 is answered by WELCOME version 2 announcing a maxFrame >= 64',
    versions: [2],
    async run(ctx) {
      const { welcome: w } = await ctx.session(V2);
      expect(w.version === 2, `WELCOME version ${w.version} for a version 2 HELLO`);
      expect(w.maxFrame >= 64, `WELCOME announces maxFrame ${w.maxFrame}, below 64`);
      expect(
        w.interval > 0 && w.interval < w.timeout,
        `granted ${w.interval}/${w.timeout} ms: expected 0 < interval < timeout`,
      );
      return `maxFrame ${w.maxFrame}`;
    },
  },
  {
    id: 'v2.request-reply',
    section: '3.8, 3.9, 6.4',
    description:
      'a REQUEST is acknowledged and answered by one REPLY naming its seq (an echo server: status OK, the payload back)',
    versions: [2],
    async run(ctx) {
      const { peer } = await ctx.session(V2);
      peer.autoPong = true;
      peer.send(
        Buffer.concat([
          encodeData(1, text('before')),
          encodeRequest(2, text('conformance-key'), text('question?')),
        ]),
      );
      const reply = await peer.waitFrame(
        (f): f is ReplyFrame => f.type === FrameType.REPLY,
        3000,
        'REPLY',
      );
      expect(reply.requestSeq === 2, `REPLY names request ${reply.requestSeq}, expected 2`);
      expect(
        reply.status === ReplyStatus.OK,
        `REPLY status ${reply.status} (${Buffer.from(reply.payload).toString()}), expected 0 OK from an echo server`,
      );
      expect(
        Buffer.from(reply.payload).toString() === 'question?',
        `REPLY payload "${Buffer.from(reply.payload).toString()}", expected the request's`,
      );
      const seqs = peer.frames
        .filter((f) => f.type === FrameType.DATA || f.type === FrameType.REPLY)
        .map((f) => (f as { seq: number }).seq);
      expect(
        seqs.every((q, i) => q === i + 1),
        `the server's sequenced frames have seqs [${seqs.join(', ')}], expected 1, 2...`,
      );
      await peer.until(() => acksOf(peer).some((a) => a >= 2), 2000);
      expect(
        acksOf(peer).some((a) => a >= 2),
        `the REQUEST (seq 2) was not acknowledged`,
      );
      return `REPLY seq ${reply.seq}`;
    },
  },
  {
    id: 'v2.reply-too-large',
    section: '2, 6.4',
    description:
      "a REPLY that would not fit the client's announced maxFrame (1024) comes as REPLY(ERROR) instead; no frame above 1024",
    versions: [2],
    async run(ctx) {
      const { peer } = await ctx.session({ version: 2, maxFrame: 1024 });
      peer.autoPong = true;
      peer.send(encodeRequest(1, new Uint8Array(0), Buffer.alloc(2000, 0x61)));
      const reply = await peer.waitFrame(
        (f): f is ReplyFrame => f.type === FrameType.REPLY,
        3000,
        'REPLY',
      );
      expect(reply.requestSeq === 1, `REPLY names request ${reply.requestSeq}, expected 1`);
      expect(
        reply.status === ReplyStatus.ERROR,
        `REPLY status ${reply.status} with ${reply.payload.length} B, expected 1 ERROR (2000 B do not fit 1024)`,
      );
      expect(
        REPLY_FIXED + reply.payload.length <= 1024,
        `the REPLY is ${REPLY_FIXED + reply.payload.length} bytes long, above the announced 1024`,
      );
      return `REPLY(ERROR "${Buffer.from(reply.payload).toString().slice(0, 60)}")`;
    },
  },
  {
    id: 'v2.frame-too-large',
    section: '2, 8.1',
    description:
      'a frame above the maxFrame the WELCOME announced gets a final CLOSE(FRAME_TOO_LARGE): the session is gone',
    versions: [2],
    async run(ctx) {
      const { peer, welcome: w } = await ctx.session(V2);
      const header = Buffer.alloc(4);
      header.writeUInt32BE(w.maxFrame + 1);
      peer.send(header);
      await peer.expectClose(CloseCode.FRAME_TOO_LARGE, 3000);
      const { welcome: again } = await ctx.session({
        ...V2,
        resume: { sessionId: w.sessionId, token: w.token, lastReceived: 0 },
      });
      expect(!again.resumed, 'the session closed with FRAME_TOO_LARGE (final) was resumed');
      return `refused a length of ${w.maxFrame + 1}`;
    },
  },
  {
    id: 'v2.session-keeps-version',
    section: '5.5, 6.3',
    description: 'a version 1 session resumed with a version 2 HELLO is not resumed: a new session',
    versions: [2],
    async run(ctx) {
      const { peer, welcome: w1 } = await ctx.session();
      peer.cut();
      const { welcome: w2 } = await ctx.session({
        ...V2,
        resume: { sessionId: w1.sessionId, token: w1.token, lastReceived: 0 },
      });
      expect(!w2.resumed, 'the version 1 session was resumed in version 2');
      expect(w2.version === 2, `WELCOME version ${w2.version}, expected 2`);
      return undefined;
    },
  },
];
