/**
 * Hostile input against the real server over real loopback sockets, property-based
 * (fast-check): arbitrary bytes, well-formed frames in any order, and mutated or cut
 * handshakes, written in arbitrary chunks. For every input the server:
 * - never crashes the process and never throws (no 'uncaughtException' or
 *   'unhandledRejection'; every error it reports is a HeartlineError);
 * - sends only well-formed frames, the first being WELCOME or CLOSE, and every CLOSE has
 *   a code from the protocol's table for the failure at hand;
 * - closes every connection that does not complete the handshake, by the handshake
 *   deadline at the latest, and creates no session for it;
 * - never holds more than maxFrame + 3 bytes of an incomplete frame in a decoder;
 * - keeps serving: a good client echoes through it afterwards.
 * The codec itself has its own properties in codec.test.ts; this is the handshake and link
 * layer on top. CI runs a bounded number of inputs; HEARTLINE_FUZZ_RUNS=20000 runs more
 * (see SECURITY.md), and a failure prints the seed that replays it.
 */

import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { connect } from '../../src/client/client.js';
import { HeartlineError } from '../../src/errors.js';
import type { CloseInfo } from '../../src/link.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { Decoder, encodeFrame } from '../../src/protocol/codec.js';
import { type Frame, FrameType, PROTOCOL_VERSION } from '../../src/protocol/frames.js';
import { createServer, type Server } from '../../src/server/server.js';
import { serverDecoders } from '../../src/testing.js';
import { helloBytes } from '../support/peers.js';
import { onceEvent, waitFor } from '../support/wait.js';

const RUNS = Number(process.env.HEARTLINE_FUZZ_RUNS ?? 60);
const SEED = process.env.HEARTLINE_FUZZ_SEED ? Number(process.env.HEARTLINE_FUZZ_SEED) : undefined;
const MAX_FRAME = 512;
const HANDSHAKE_TIMEOUT = 250;
/** Codes the server may close a fuzzed connection with, and why. */
const ALLOWED_CLOSE = new Set<number>([
  CloseCode.PROTOCOL_ERROR, // malformed, unknown or unexpected frames
  CloseCode.UNSUPPORTED_VERSION, // HELLO with another version
  CloseCode.FRAME_TOO_LARGE, // a length above maxFrame
  CloseCode.AUTH_FAILED, // the hook refused the credentials
  CloseCode.INTERNAL_ERROR, // the hook threw (auth "throw")
  CloseCode.HANDSHAKE_TIMEOUT, // an incomplete handshake
  CloseCode.POLICY_VIOLATION, // a burst of PINGs after WELCOME
]);

// ---- inputs --------------------------------------------------------------------------

const u32 = fc.oneof(fc.constantFrom(0, 1, 1000, 0xffff_ffff), fc.nat({ max: 0xffff_ffff }));
const u53 = fc.oneof(fc.constantFrom(0, 1, 2, Number.MAX_SAFE_INTEGER), fc.nat());
const id = fc.uint8Array({ minLength: 16, maxLength: 16 });
const text = fc.string({ maxLength: 20 });
/** Credentials the hook accepts ('' and 'ok'), refuses (anything else) or throws on. */
const auth = fc.oneof(
  fc.constantFrom('', 'ok', 'throw').map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 24 }),
);

const hello = fc.record({
  type: fc.constant(FrameType.HELLO),
  version: fc.oneof(fc.constant(PROTOCOL_VERSION), fc.integer({ min: 0, max: 255 })),
  interval: u32,
  timeout: u32,
  auth,
  resume: fc.option(fc.record({ sessionId: id, token: id, lastReceived: u53 })),
  clientId: text,
  traceId: text,
  maxFrame: fc.oneof(fc.constant(1024 * 1024), fc.integer({ min: 64, max: 0xffff_ffff })),
});

const anyFrame: fc.Arbitrary<Frame> = fc.oneof(
  hello,
  fc.record({
    type: fc.constant(FrameType.WELCOME),
    version: fc.constant(PROTOCOL_VERSION),
    resumed: fc.boolean(),
    sessionId: id,
    token: id,
    interval: u32,
    timeout: u32,
    lastReceived: u53,
    sessionTtl: u32,
    maxFrame: fc.constant(1024 * 1024),
  }),
  fc.record({ type: fc.constant(FrameType.PING), seq: u32, timestamp: u53 }),
  fc.record({ type: fc.constant(FrameType.PONG), seq: u32, timestamp: u53 }),
  fc.record({
    type: fc.constant(FrameType.DATA),
    seq: fc.oneof(fc.integer({ min: 1, max: 4 }), u53),
    payload: fc.uint8Array({ maxLength: 600 }),
  }),
  fc.record({ type: fc.constant(FrameType.ACK), seq: u53 }),
  fc.record({
    type: fc.constant(FrameType.CLOSE),
    code: fc.nat({ max: 0xffff }),
    retryAfter: u32,
    reason: text,
  }),
  fc.record({ type: fc.constant(FrameType.SETTINGS), interval: u32, timeout: u32 }),
) as fc.Arbitrary<Frame>;

/** A valid HELLO the hook accepts. */
const goodHello = helloBytes({ auth: Buffer.from('ok'), clientId: 'fuzz' });

const edits = fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), {
  maxLength: 4,
});

/** The bytes one connection sends. */
const stream: fc.Arbitrary<Buffer> = fc.oneof(
  // pure noise
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  // well-formed frames in any order
  fc
    .array(anyFrame, { minLength: 1, maxLength: 6 })
    .map((fs) => Buffer.concat(fs.map(encodeFrame))),
  // an accepted HELLO, then anything
  fc
    .tuple(fc.array(anyFrame, { maxLength: 5 }), fc.uint8Array({ maxLength: 40 }))
    .map(([fs, tail]) => Buffer.concat([goodHello, ...fs.map(encodeFrame), tail])),
  // a valid stream with a few bytes changed and the end cut off
  fc
    .tuple(fc.array(anyFrame, { maxLength: 4 }), edits, fc.nat({ max: 12 }))
    .map(([fs, es, cut]) => {
      const b = Buffer.concat([goodHello, ...fs.map(encodeFrame)]);
      for (const { at, value } of es) b[at % b.length] = value;
      return b.subarray(0, Math.max(0, b.length - cut));
    }),
  // a header announcing a frame at, around or above maxFrame, and a partial body
  fc
    .tuple(fc.integer({ min: MAX_FRAME - 2, max: MAX_FRAME + 2 }), fc.uint8Array({ maxLength: 64 }))
    .map(([length, body]) => {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(length);
      return Buffer.concat([header, body]);
    }),
);

/** Splits `bytes` at the given cut points. */
function chunks(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    if (c > from) out.push(bytes.subarray(from, c));
    from = Math.max(from, c);
  }
  if (from < bytes.length) out.push(bytes.subarray(from));
  return out;
}

// ---- the server and its internals ---------------------------------------------------------

describe('hostile bytes against the real server', () => {
  let server: Server;
  let port: number;
  const problems: string[] = [];
  /** How the inputs ended, for the diagnostic line (welcome, close:<code>, silent close). */
  const outcomes = new Map<string, number>();
  const onUncaught = (err: unknown) => problems.push(`uncaughtException: ${String(err)}`);
  const onRejection = (err: unknown) => problems.push(`unhandledRejection: ${String(err)}`);
  const checkInfo = (where: string, info: CloseInfo) => {
    if (info.error !== undefined && !(info.error instanceof HeartlineError)) {
      problems.push(`${where}: untyped error ${String(info.error)}`);
    }
  };

  before(async () => {
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onRejection);
    server = createServer({
      maxFrame: MAX_FRAME,
      handshakeTimeout: HANDSHAKE_TIMEOUT,
      interval: 200,
      timeout: 600,
      sessionTtl: 0,
      authenticate: (h) => {
        const a = h.auth.toString('latin1');
        if (a === 'throw') throw new Error('hook failure');
        return a === '' || a === 'ok';
      },
    });
    server.on('rejected', (e) => checkInfo('rejected', e.info));
    server.on('connection', (conn) => {
      conn.on('message', (m) => conn.send(m));
      conn.on('disconnect', (i) => checkInfo('disconnect', i));
      conn.on('close', (i) => checkInfo('close', i));
    });
    ({ port } = await server.listen(0, '127.0.0.1'));
  });

  after(async () => {
    await server.close();
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onRejection);
  });

  /** Sends one input on a fresh socket and checks everything the server did with it. */
  async function probe(bytes: Buffer, cuts: number[]): Promise<void> {
    const socket: Socket = netConnect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    const received: Frame[] = [];
    const decoder = new Decoder();
    let garbage: unknown = null;
    let closed = false;
    socket.on('data', (chunk: Buffer) => {
      try {
        received.push(...decoder.push(chunk));
      } catch (err) {
        garbage = err;
      }
    });
    socket.on('close', () => {
      closed = true;
    });
    try {
      await onceEvent(socket, 'connect');
      const sessionsBefore = server.connections.size;
      for (const chunk of chunks(bytes, cuts)) {
        if (closed || socket.destroyed) break;
        socket.write(chunk);
        await new Promise((r) => setImmediate(r));
        for (const d of serverDecoders(server)) {
          assert.ok(d.bufferedBytes <= MAX_FRAME + 3, `a decoder holds ${d.bufferedBytes} bytes`);
        }
      }
      // Whatever it was, the server has decided within the handshake deadline (plus slack
      // for a loaded machine): closed, or answered with WELCOME.
      const welcomed = () => received.some((f) => f.type === FrameType.WELCOME);
      await waitFor(() => closed || welcomed(), {
        timeout: HANDSHAKE_TIMEOUT + 3000,
        message: `no decision on ${bytes.toString('hex')}`,
      });
      // An incomplete handshake must be closed by its deadline, never left open.
      if (!welcomed()) {
        await waitFor(() => closed, { timeout: HANDSHAKE_TIMEOUT + 3000 });
        assert.ok(server.connections.size <= sessionsBefore, 'no session without WELCOME');
      } else {
        // Give the rest of the input a moment to be judged.
        await waitFor(() => closed, { timeout: 100 }).catch(() => {});
      }
      for (const d of serverDecoders(server)) assert.ok(d.bufferedBytes <= MAX_FRAME + 3);
      const closeFrame = received.find((f) => f.type === FrameType.CLOSE);
      const outcome = `${welcomed() ? 'welcome+' : ''}${closeFrame?.type === FrameType.CLOSE ? `close:${closeFrame.code}` : closed ? 'closed' : 'open'}`;
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      assert.equal(garbage, null, 'the server sent bytes that are not frames');
      if (received.length > 0) {
        const first = received[0]!;
        assert.ok(
          first.type === FrameType.WELCOME || first.type === FrameType.CLOSE,
          `first frame ${first.type}`,
        );
      }
      for (const f of received) {
        if (f.type === FrameType.CLOSE) {
          assert.ok(ALLOWED_CLOSE.has(f.code), `CLOSE ${f.code} (${f.reason})`);
        }
        assert.ok(f.type !== FrameType.HELLO, 'a server never sends HELLO');
      }
      assert.deepEqual(problems, []);
    } finally {
      socket.destroy();
    }
  }

  it(`never crashes, always decides, answers with protocol codes, bounds its buffers (${RUNS} inputs)`, async (t) => {
    await fc.assert(
      fc.asyncProperty(stream, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) =>
        probe(bytes, cuts),
      ),
      { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}) },
    );
    // Everything the fuzzing opened is gone.
    await waitFor(() => serverDecoders(server).length === 0 && server.connections.size === 0, {
      timeout: HANDSHAKE_TIMEOUT + 5000,
    });
    assert.deepEqual(problems, []);
    t.diagnostic(
      `outcomes: ${JSON.stringify(Object.fromEntries([...outcomes].sort((a, b) => b[1] - a[1])))}`,
    );
  });

  it('keeps serving a good client afterwards', async (t) => {
    const client = connect({ port, auth: 'ok', reconnect: false });
    t.after(() => client.close());
    await onceEvent(client, 'open');
    const echoed: string[] = [];
    client.on('message', (m) => echoed.push(m.toString()));
    for (let i = 1; i <= 20; i++) client.send(`m${i}`);
    await waitFor(() => echoed.length === 20);
    assert.deepEqual(
      echoed,
      Array.from({ length: 20 }, (_, i) => `m${i + 1}`),
    );
    assert.deepEqual(problems, []);
  });
});
