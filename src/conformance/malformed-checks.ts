/**
 * The malformed inputs of PROTOCOL.md section 4, and well-formed frames a client may not
 * send (step 6, unexpected frames), each with the CLOSE code it must earn, as server
 * checks: each also proves that a bystander connection keeps working.
 */

import { randomBytes } from 'node:crypto';
import { CloseCode } from '../protocol/close-codes.js';
import { encodeSettings, encodeWelcome } from '../protocol/codec.js';
import { DEFAULT_MAX_FRAME, FrameType } from '../protocol/frames.js';
import { hex, type ServerCheck, type ServerTarget, withBystander } from './server-context.js';
import { codeName, describe, expect, hello } from './wire.js';

/** A malformed input of section 4 and the CLOSE code it must earn. */
interface MalformedCase {
  id: string;
  section: string;
  description: string;
  /** 'first': sent instead of HELLO; 'session': sent after WELCOME. */
  when: 'first' | 'session';
  bytes: (t: ServerTarget) => Buffer;
  code: number;
}

/** HELLO with one byte changed (offset counted from the length prefix). */
function patchedHello(offset: number, value: number): Buffer {
  const h = hello({ clientId: '' });
  h[offset] = value;
  return h;
}

const MALFORMED: MalformedCase[] = [
  {
    id: 'malformed.length-zero',
    section: '2, 4',
    description: 'a frame of length 0 gets CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () => hex('00000000'),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.unknown-type-0x00',
    section: '2, 4',
    description: 'frame type 0x00 gets CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () => hex('00000009 00 0000000000000001'),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.unknown-type-0xff',
    section: '2, 4',
    description: 'frame type 0xff gets CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () => hex('00000001 ff'),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.request-on-v1',
    section: '2, 4',
    description: 'REQUEST (0x09) on a version 1 connection gets CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () => hex('0000000b 09 0000000000000001 0000'),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.version-0',
    section: '3.1, 4, 5',
    description: 'HELLO with version 0 gets CLOSE(UNSUPPORTED_VERSION)',
    when: 'first',
    bytes: () => patchedHello(5, 0),
    code: CloseCode.UNSUPPORTED_VERSION,
  },
  {
    id: 'malformed.version-before-layout',
    section: '4',
    description:
      'HELLO with version 255 and no other field: the version is checked first, CLOSE(UNSUPPORTED_VERSION)',
    when: 'first',
    bytes: () => hex('00000002 01 ff'),
    code: CloseCode.UNSUPPORTED_VERSION,
  },
  {
    id: 'malformed.hello-truncated',
    section: '3.1, 4',
    description: 'HELLO whose clientId runs past the frame gets CLOSE(PROTOCOL_ERROR)',
    when: 'first',
    bytes: () =>
      hex(
        '0000003a 01 01 00 00000000 00000000 00000000000000000000000000000000' +
          '00000000000000000000000000000000 0000000000000000 0000 0005 616263',
      ),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.hello-unknown-flag',
    section: '3.1, 4',
    description: 'HELLO with an unknown flag bit gets CLOSE(PROTOCOL_ERROR)',
    when: 'first',
    bytes: () => patchedHello(6, 0x02),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.hello-session-without-resume',
    section: '3.1, 4',
    description: 'HELLO with a session id but no RESUME flag gets CLOSE(PROTOCOL_ERROR)',
    when: 'first',
    bytes: () => patchedHello(15, 0x01),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.hello-bad-utf8',
    section: '1, 4',
    description: 'HELLO with a traceId that is not UTF-8 gets CLOSE(PROTOCOL_ERROR)',
    when: 'first',
    bytes: () =>
      hex(
        '0000003a 01 01 00 00000000 00000000 00000000000000000000000000000000' +
          '00000000000000000000000000000000 0000000000000000 0000 0000 0001 ff',
      ),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.trailing-bytes',
    section: '4',
    description: 'an ACK with a trailing byte gets CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () => hex('0000000a 06 0000000000000001 00'),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.truncated-ack',
    section: '4',
    description: 'an ACK too short for its seq gets CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () => hex('00000005 06 00000000'),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.u64-too-large',
    section: '1, 4',
    description: 'DATA with seq 2^53 gets CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () => hex('00000009 05 0020000000000000'),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.ping-timestamp-too-large',
    section: '1, 4',
    description: 'PING with a timestamp above 2^53 - 1 gets CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () => hex('0000000d 03 00000001 ffffffffffffffff'),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.close-bad-utf8',
    section: '1, 4, 8',
    description: 'CLOSE with an overlong UTF-8 reason is malformed: CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () => hex('00000009 07 03e8 00000000 c080'),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.close-truncated',
    section: '4, 8',
    description: 'a CLOSE too short for its retryAfter is malformed: CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () => hex('00000003 07 03e8'),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'unexpected.settings-from-client',
    section: '4, 7.5',
    description: 'SETTINGS from a client gets CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () => encodeSettings(1000, 3000),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'unexpected.welcome-from-client',
    section: '4, 5',
    description: 'WELCOME from a client gets CLOSE(PROTOCOL_ERROR)',
    when: 'session',
    bytes: () =>
      encodeWelcome({
        version: 1,
        resumed: false,
        sessionId: randomBytes(16),
        token: randomBytes(16),
        interval: 1000,
        timeout: 3000,
        lastReceived: 0,
        sessionTtl: 60_000,
        maxFrame: DEFAULT_MAX_FRAME,
      }),
    code: CloseCode.PROTOCOL_ERROR,
  },
  {
    id: 'malformed.frame-too-large',
    section: '2, 4',
    description: 'the length prefix FFFFFFFF alone gets CLOSE(FRAME_TOO_LARGE)',
    when: 'session',
    bytes: () => hex('ffffffff'),
    code: CloseCode.FRAME_TOO_LARGE,
  },
  {
    id: 'malformed.frame-one-above-max',
    section: '2, 4',
    description:
      'a length prefix of maxFrame + 1, without its body, gets CLOSE(FRAME_TOO_LARGE) before the body',
    when: 'session',
    bytes: (t) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(t.maxFrame + 1);
      return b;
    },
    code: CloseCode.FRAME_TOO_LARGE,
  },
];

function malformedCheck(c: MalformedCase): ServerCheck {
  return {
    id: c.id,
    section: c.section,
    description: `${c.description}; a bystander connection keeps working`,
    versions: [1],
    async run(ctx) {
      let close = '';
      await withBystander(ctx, async () => {
        const p = await ctx.open();
        if (c.when === 'session') await p.handshake();
        const before = p.arrivals.length;
        p.send(c.bytes(ctx.target));
        await p.expectClose(c.code, 3000);
        const after = p.frames.slice(before).filter((f) => f.type !== FrameType.CLOSE);
        expect(
          c.when === 'session' || after.length === 0,
          `expected only CLOSE(${codeName(c.code)}) in answer, got ${after.map(describe).join(', ')}`,
        );
        close = describe(p.closeFrame!);
      });
      return close;
    },
  };
}

/** The checks of the malformed inputs, in table order. */
export const MALFORMED_CHECKS: readonly ServerCheck[] = MALFORMED.map(malformedCheck);
