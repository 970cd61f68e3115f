/**
 * The codec without sockets: the hex vectors of PROTOCOL.md (so the document and the code
 * cannot drift), every split point, byte-by-byte feeding, a typed error for every kind of
 * malformed input, and fast-check properties over arbitrary frames, chunkings and bytes.
 *
 * Property runs are bounded so the file takes a few seconds; set HEARTLINE_FUZZ_RUNS for a
 * longer run (for example `HEARTLINE_FUZZ_RUNS=20000 node scripts/test.mjs codec`).
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type ErrorCode, InvalidArgumentError, ProtocolError } from '../../src/errors.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import {
  ACK_FRAME_BYTES,
  DATA_OVERHEAD,
  Decoder,
  decodeBody,
  encodeAck,
  encodeClose,
  encodeData,
  encodeFrame,
  encodeHello,
  encodePing,
  encodePong,
  encodeSettings,
  encodeWelcome,
  maxPayload,
  PROBE_FRAME_BYTES,
  probeSeq,
  probeTimestamp,
  wholeProbeType,
  writeAckAt,
  writeDataAt,
  writeProbeAt,
} from '../../src/protocol/codec.js';
import {
  type AckFrame,
  type CloseFrame,
  type DataFrame,
  DEFAULT_MAX_FRAME,
  type Frame,
  FrameType,
  type HelloFrame,
  ID_BYTES,
  LENGTH_BYTES,
  type PingFrame,
  type PongFrame,
  PROTOCOL_VERSION,
  type SettingsFrame,
  type WelcomeFrame,
} from '../../src/protocol/frames.js';

const MAX_U64 = Number.MAX_SAFE_INTEGER;

function fuzzRuns(): number {
  const raw = process.env.HEARTLINE_FUZZ_RUNS;
  if (raw === undefined || raw === '') return 300;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`HEARTLINE_FUZZ_RUNS must be a positive integer, got ${raw}`);
  }
  return n;
}
const RUNS = fuzzRuns();

// ---------------------------------------------------------------------------------------
// Helpers

const hex = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

function fromHex(text: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  assert.match(clean, /^(?:[0-9a-f]{2})*$/, `not lowercase hex: ${text}`);
  return Buffer.from(clean, 'hex');
}

/** A frame as plain JSON-able data: byte arrays become hex (Buffer or Uint8Array alike). */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return hex(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

function assertFrames(actual: readonly Frame[], expected: readonly Frame[], message?: string) {
  assert.deepStrictEqual(actual.map(plain), expected.map(plain), message);
}

/** Length prefix + body. */
function frameOf(body: Uint8Array): Buffer {
  const out = Buffer.alloc(LENGTH_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, LENGTH_BYTES);
  return out;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(Math.floor(n / 2 ** 32), 0);
  b.writeUInt32BE(n >>> 0, 4);
  return b;
}

/** Decodes `bytes` in one push with a fresh decoder; the decoder must end empty. */
function decodeAll(bytes: Uint8Array, maxFrame?: number): Frame[] {
  const d = new Decoder(maxFrame === undefined ? {} : { maxFrame });
  const frames = d.push(bytes);
  assert.equal(d.bufferedBytes, 0, 'bytes left over after complete frames');
  return frames;
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

function assertProtocolError(fn: () => unknown, code: ErrorCode, message?: string): ProtocolError {
  const err = caught(fn);
  assert.ok(
    err instanceof ProtocolError,
    `${message ?? ''} expected ProtocolError ${code}, got ${String(err)}`,
  );
  assert.equal(err.code, code, `${message ?? ''} ${err.message}`);
  assert.equal(err.name, 'ProtocolError');
  return err;
}

function assertInvalidArgument(fn: () => unknown, message?: string): void {
  const err = caught(fn);
  assert.ok(err instanceof InvalidArgumentError, `${message ?? ''} got ${String(err)}`);
  assert.equal(err.code, 'HL_ERR_INVALID_ARGUMENT');
}

/** Splits `buf` at the given raw points (taken modulo length + 1; may give empty chunks). */
function chunksAt(buf: Uint8Array, rawPoints: readonly number[]): Uint8Array[] {
  const points = [...new Set(rawPoints.map((n) => n % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

function bytesOf(buf: Uint8Array): Uint8Array[] {
  return Array.from(buf, (b) => Uint8Array.of(b));
}

interface FeedResult {
  frames: Frame[];
  error: ProtocolError | null;
}

/**
 * Feeds chunks to one decoder, checking after each push that nothing beyond one
 * incomplete frame is held and that a failed decoder stays failed.
 */
function feed(chunks: readonly Uint8Array[], maxFrame = DEFAULT_MAX_FRAME): FeedResult {
  const d = new Decoder({ maxFrame });
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    let got: Frame[];
    try {
      got = d.push(chunk);
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `decoder threw a non-ProtocolError: ${String(err)}`);
      assert.ok(DECODER_CODES.has(err.code), `unexpected decoder code ${err.code}`);
      assert.equal(d.bufferedBytes, 0, 'a failed decoder must drop its buffer');
      assert.equal(
        caught(() => d.push(Uint8Array.of(0, 0, 0, 1, 3))),
        err,
        'must stay failed',
      );
      assert.equal(
        caught(() => d.push(new Uint8Array(0))),
        err,
        'must stay failed',
      );
      return { frames, error: err };
    }
    frames.push(...got);
    assert.ok(
      d.bufferedBytes < maxFrame + LENGTH_BYTES,
      `buffered ${d.bufferedBytes} bytes with maxFrame ${maxFrame}`,
    );
  }
  return { frames, error: null };
}

const DECODER_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'HL_ERR_FRAME_TOO_LARGE',
  'HL_ERR_UNKNOWN_FRAME',
  'HL_ERR_MALFORMED_FRAME',
  'HL_ERR_UNSUPPORTED_VERSION',
]);

// ---------------------------------------------------------------------------------------
// PROTOCOL.md vectors

/** The key/value lines of every fenced block whose info string is `info`. */
function fencedBlocks(markdown: string, info: string): Map<string, string[]>[] {
  const blocks: Map<string, string[]>[] = [];
  let current: Map<string, string[]> | null = null;
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) {
      if (!inFence) {
        inFence = true;
        current = line.slice(3).trim() === info ? new Map() : null;
      } else {
        inFence = false;
        if (current) blocks.push(current);
        current = null;
      }
      continue;
    }
    if (!current || line.trim() === '') continue;
    const at = line.indexOf(': ');
    assert.ok(at > 0, `${info} block line is not "key: value": ${line}`);
    const key = line.slice(0, at);
    current.set(key, [...(current.get(key) ?? []), line.slice(at + 2)]);
  }
  assert.equal(inFence, false, 'unterminated fenced block in PROTOCOL.md');
  return blocks;
}

function single(block: Map<string, string[]>, key: string): string {
  const values = block.get(key);
  assert.ok(values?.length === 1, `expected one "${key}:" line, got ${values?.length ?? 0}`);
  return values[0]!;
}

const BYTE_FIELDS = new Set(['auth', 'sessionId', 'token', 'payload']);

interface Vector {
  name: string;
  /** The frame exactly as written in the document. */
  json: unknown;
  frame: Frame;
  bytes: Buffer;
}

interface InvalidVector {
  name: string;
  bytes: Buffer;
  error: ErrorCode;
  close: number;
}

const PROTOCOL_MD = readFileSync(new URL('../../PROTOCOL.md', import.meta.url), 'utf8');

const VECTORS: Vector[] = fencedBlocks(PROTOCOL_MD, 'vector').map((block) => {
  const text = single(block, 'frame');
  return {
    name: single(block, 'name'),
    json: JSON.parse(text),
    frame: JSON.parse(text, (key, value) =>
      BYTE_FIELDS.has(key) && typeof value === 'string' ? Uint8Array.from(fromHex(value)) : value,
    ) as Frame,
    bytes: fromHex((block.get('hex') ?? []).join(' ')),
  };
});

const INVALID_VECTORS: InvalidVector[] = fencedBlocks(PROTOCOL_MD, 'invalid-vector').map(
  (block) => ({
    name: single(block, 'name'),
    bytes: fromHex((block.get('hex') ?? []).join(' ')),
    error: single(block, 'error') as ErrorCode,
    close: Number(single(block, 'close')),
  }),
);

/** The CLOSE code a receiver sends for each decoder error (PROTOCOL.md section 4). */
const CLOSE_FOR_ERROR: Partial<Record<ErrorCode, number>> = {
  HL_ERR_MALFORMED_FRAME: CloseCode.PROTOCOL_ERROR,
  HL_ERR_UNKNOWN_FRAME: CloseCode.PROTOCOL_ERROR,
  HL_ERR_UNSUPPORTED_VERSION: CloseCode.UNSUPPORTED_VERSION,
  HL_ERR_FRAME_TOO_LARGE: CloseCode.FRAME_TOO_LARGE,
};

/** One vector of each type, for tests that need a sample of every frame. */
function sampleOf(type: number): Vector {
  const v = VECTORS.find((x) => x.frame.type === type);
  assert.ok(v, `no vector for frame type ${type}`);
  return v;
}

describe('PROTOCOL.md test vectors', () => {
  it('parses, with unique names and at least one vector per frame type', () => {
    assert.ok(VECTORS.length >= 8);
    const names = VECTORS.map((v) => v.name);
    assert.equal(new Set(names).size, names.length, 'duplicate vector names');
    for (const type of Object.values(FrameType)) sampleOf(type);
    const invalid = INVALID_VECTORS.map((v) => v.name);
    assert.equal(new Set(invalid).size, invalid.length, 'duplicate invalid-vector names');
  });

  it('covers the required edge cases', () => {
    const has = (pred: (f: Frame) => boolean, what: string) =>
      assert.ok(
        VECTORS.some((v) => pred(v.frame)),
        `PROTOCOL.md needs a vector with ${what}`,
      );
    has((f) => f.type === FrameType.DATA && f.payload.length === 0, 'an empty DATA payload');
    const nonAscii = (text: string) => [...text].some((c) => c.codePointAt(0)! > 0x7f);
    has((f) => f.type === FrameType.CLOSE && nonAscii(f.reason), 'a non-ASCII CLOSE reason');
    has(
      (f) => f.type === FrameType.HELLO && f.resume !== null && f.auth.length > 0,
      'a HELLO with resume and auth',
    );
    has((f) => JSON.stringify(plain(f)).includes(String(MAX_U64)), 'a u64 of 2^53 - 1');
    has((f) => f.type === FrameType.WELCOME && f.resumed, 'a resumed WELCOME');
  });

  for (const v of VECTORS) {
    it(`vector ${v.name}: encodes to its hex and decodes to its frame`, () => {
      assert.equal(hex(encodeFrame(v.frame)), hex(v.bytes), 'encode(frame) !== hex');
      const decoded = decodeAll(v.bytes);
      assert.equal(decoded.length, 1);
      assert.deepStrictEqual(plain(decoded[0]), v.json, 'decode(hex) !== frame');
      assertFrames(bytesOfFeed(v.bytes), [v.frame], 'byte-by-byte decode differs');
    });
  }

  for (const v of INVALID_VECTORS) {
    it(`invalid vector ${v.name}: ${v.error}, CLOSE ${v.close}`, () => {
      assert.equal(CLOSE_FOR_ERROR[v.error], v.close, 'close code does not match section 4');
      assertProtocolError(() => new Decoder().push(v.bytes), v.error);
      const result = feed(bytesOf(v.bytes));
      assert.equal(result.error?.code, v.error, 'byte-by-byte feeding gives another error');
      assert.equal(result.frames.length, 0);
    });
  }
});

function bytesOfFeed(bytes: Uint8Array): Frame[] {
  const result = feed(bytesOf(bytes));
  assert.equal(result.error, null);
  return result.frames;
}

// ---------------------------------------------------------------------------------------
// Streams, split points and round trips

/** Several frames of every type, including one large enough to span many chunks. */
const STREAM_FRAMES: Frame[] = [
  ...VECTORS.map((v) => v.frame),
  { type: FrameType.DATA, seq: 3, payload: Uint8Array.from({ length: 300 }, (_, i) => i) },
  { type: FrameType.ACK, seq: 3 },
  ...VECTORS.map((v) => v.frame).reverse(),
];
const STREAM = Buffer.concat(STREAM_FRAMES.map(encodeFrame));

describe('decoder chunking', () => {
  it('decodes a multi-frame stream in one push', () => {
    assertFrames(decodeAll(STREAM), STREAM_FRAMES);
  });

  it('gives the same frames when split into two pushes at every index', () => {
    for (let i = 0; i <= STREAM.length; i++) {
      const d = new Decoder();
      const frames = [...d.push(STREAM.subarray(0, i)), ...d.push(STREAM.subarray(i))];
      assertFrames(frames, STREAM_FRAMES, `split at ${i}`);
      assert.equal(d.bufferedBytes, 0, `split at ${i}`);
    }
  });

  it('gives the same frames fed byte by byte, as plain Uint8Arrays', () => {
    const d = new Decoder();
    const frames: Frame[] = [];
    let boundary = 0;
    let expectedBuffered = 0;
    for (const byte of STREAM) {
      frames.push(...d.push(Uint8Array.of(byte)));
      expectedBuffered++;
      const done = frames.length;
      if (done > boundary) {
        // a frame completed on this byte: nothing of it stays buffered
        expectedBuffered = 0;
        boundary = done;
      }
      assert.equal(d.bufferedBytes, expectedBuffered);
    }
    assertFrames(frames, STREAM_FRAMES);
  });

  it('gives the same frames when split into three pushes, the middle one short', () => {
    // Frames and length prefixes spanning three chunks: the decoder's rarer path, where
    // chunks after the first wait in a list that is dropped once they are read.
    for (let i = 0; i <= STREAM.length; i++) {
      for (const j of [i + 1, i + 2, i + 3, i + 5].filter((x) => x <= STREAM.length)) {
        const d = new Decoder();
        const frames = [
          ...d.push(STREAM.subarray(0, i)),
          ...d.push(STREAM.subarray(i, j)),
          ...d.push(STREAM.subarray(j)),
        ];
        assertFrames(frames, STREAM_FRAMES, `split at ${i} and ${j}`);
        assert.equal(d.bufferedBytes, 0, `split at ${i} and ${j}`);
      }
    }
  });

  it('accepts empty pushes anywhere', () => {
    const d = new Decoder();
    assert.deepEqual(d.push(new Uint8Array(0)), []);
    const frames = [
      ...d.push(STREAM.subarray(0, 3)),
      ...d.push(new Uint8Array(0)),
      ...d.push(STREAM.subarray(3)),
      ...d.push(Buffer.alloc(0)),
    ];
    assertFrames(frames, STREAM_FRAMES);
  });

  it('returns byte fields as Uint8Array', () => {
    const [hello] = decodeAll(sampleOf(FrameType.HELLO).bytes);
    const [data] = decodeAll(encodeData(1, Uint8Array.of(1, 2, 3)));
    assert.ok(hello?.type === FrameType.HELLO && hello.auth instanceof Uint8Array);
    assert.ok(data?.type === FrameType.DATA && data.payload instanceof Uint8Array);
  });
});

describe('decoder memory (an incomplete frame costs about its size)', () => {
  /** A DATA frame of `size` bytes on the wire with a recognisable payload. */
  function dataFrame(size: number, seq = 1): Buffer {
    const payload = Buffer.alloc(size - DATA_OVERHEAD);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + seq) & 0xff;
    return encodeData(seq, payload);
  }

  it('a frame trickled one byte per chunk is assembled in one buffer of at most twice what arrived', () => {
    const frame = dataFrame(256 * 1024);
    const d = new Decoder();
    for (let i = 0; i < frame.length - 1; i++) {
      assert.deepEqual(d.push(frame.subarray(i, i + 1)), []);
      assert.ok(d.heldChunks <= 2, `${d.heldChunks} chunks held after ${i + 1} bytes`);
      const held = d.bufferedBytes;
      assert.ok(d.retainedBytes <= 2 * held + 256, `${d.retainedBytes} B retained for ${held}`);
    }
    // Never more than the frame itself, however it grew.
    assert.ok(
      d.retainedBytes <= frame.length,
      `${d.retainedBytes} B for a ${frame.length} B frame`,
    );
    const [data] = d.push(frame.subarray(frame.length - 1)) as [DataFrame];
    assert.deepEqual(encodeData(data.seq, data.payload), frame);
    assert.equal(d.retainedBytes, 0);
    assert.equal(d.heldChunks, 0);
  });

  it('a hostile length reserves nothing beyond what arrived: 1 MiB announced, 10 bytes sent', () => {
    const d = new Decoder();
    const start = dataFrame(DEFAULT_MAX_FRAME + LENGTH_BYTES).subarray(0, 10);
    for (const b of start) d.push(Uint8Array.of(b));
    assert.equal(d.bufferedBytes, 10);
    assert.ok(d.retainedBytes <= 256, `${d.retainedBytes} B retained`);
  });

  it('large chunks are held by reference, small ones between them assembled, payloads intact', () => {
    // Frames of 100 B to 40 KB cut into chunks of 1 B to 9 KB: some below the copy
    // threshold, some above; every frame is checked after all the pushes, so a payload
    // viewing an assembly buffer that was later written to would show.
    const frames = [100, 5000, 40_000, 17, 300, 12_000, 9000].map((n, i) =>
      dataFrame(Math.max(n, DATA_OVERHEAD), i + 1),
    );
    const stream = Buffer.concat(frames);
    const sizes = [1, 3, 9000, 1, 1, 700, 5000, 2, 1023, 1024, 64, 8192, 1, 1500, 4096];
    const d = new Decoder();
    const got: Frame[] = [];
    for (let at = 0, k = 0; at < stream.length; k++) {
      const n = sizes[k % sizes.length]!;
      // Copies, as sockets deliver them: the decoder may keep the large ones.
      got.push(...d.push(Buffer.from(stream.subarray(at, at + n))));
      at += n;
      assert.ok(d.retainedBytes >= d.bufferedBytes);
    }
    assert.equal(d.bufferedBytes, 0);
    assert.deepEqual(
      got.map((f) => encodeFrame(f)),
      frames,
    );
  });

  it('large chunks are not copied, also after small ones were assembled', () => {
    const frame = dataFrame(1024 * 1024 - 4);
    const d = new Decoder();
    // A small start (assembled), then 64 KiB reads as a busy socket delivers them.
    d.push(frame.subarray(0, 10));
    d.push(frame.subarray(10, 20));
    const chunks: Buffer[] = [];
    for (let at = 20; at < frame.length - 1; at += 65536) {
      chunks.push(frame.subarray(at, Math.min(at + 65536, frame.length - 1)));
    }
    for (const c of chunks) d.push(c);
    assert.equal(d.heldChunks, 1 + chunks.length, 'each large chunk held as it came');
    // The small start's assembly buffer had room for the rest of its 1 MiB frame, given
    // up when the first large chunk came: counted, and smaller than that chunk.
    assert.ok(d.retainedBytes <= d.bufferedBytes + 65536, `${d.retainedBytes} retained`);
    const [data] = d.push(frame.subarray(frame.length - 1)) as [DataFrame];
    assert.deepEqual(encodeData(data.seq, data.payload), frame);
    assert.equal(d.retainedBytes, 0);
  });

  it('arbitrary chunkings of large frames give the same frames and retain at most about twice the bytes held', () => {
    const arbSizes = fc.array(fc.integer({ min: DATA_OVERHEAD, max: 20_000 }), {
      minLength: 1,
      maxLength: 5,
    });
    const arbChunk = fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 10_000 }));
    fc.assert(
      fc.property(arbSizes, fc.array(arbChunk, { minLength: 1, maxLength: 40 }), (sizes, cuts) => {
        const frames = sizes.map((n, i) => dataFrame(n, i + 1));
        const stream = Buffer.concat(frames);
        const d = new Decoder();
        const got: Frame[] = [];
        let largestChunk = 0;
        for (let at = 0, k = 0; at < stream.length; k++) {
          const n = cuts[k % cuts.length]!;
          largestChunk = Math.max(largestChunk, n);
          got.push(...d.push(Buffer.from(stream.subarray(at, at + n))));
          at += n;
          // Twice what is buffered, plus the smallest assembly buffer, plus the decoded
          // part of the first chunk (at most one chunk or one frame).
          const bound = 2 * d.bufferedBytes + 256 + Math.max(largestChunk, 20_000);
          assert.ok(d.retainedBytes <= bound, `${d.retainedBytes} > ${bound}`);
        }
        assert.deepEqual(
          got.map((f) => encodeFrame(f)),
          frames,
        );
      }),
      { numRuns: Math.min(RUNS, 200) },
    );
  });
});

describe('round trips', () => {
  const id = (start: number) => Uint8Array.from({ length: ID_BYTES }, (_, i) => start + i);
  const cases: Array<[string, Frame, Buffer]> = [];
  const hello: HelloFrame = {
    type: FrameType.HELLO,
    version: PROTOCOL_VERSION,
    interval: 1,
    timeout: 0xffff_ffff,
    auth: new Uint8Array(0xffff).fill(7),
    resume: { sessionId: id(1), token: id(100), lastReceived: 2 ** 32 },
    clientId: 'ü'.repeat(0xffff >> 1),
    traceId: '𝄞',
    maxFrame: 0xffff_ffff,
  };
  cases.push(['HELLO', hello, encodeHello(hello)]);
  const welcome: WelcomeFrame = {
    type: FrameType.WELCOME,
    version: PROTOCOL_VERSION,
    resumed: true,
    sessionId: id(3),
    token: id(200),
    interval: 0xffff_ffff,
    timeout: 0,
    lastReceived: MAX_U64,
    sessionTtl: 0xffff_ffff,
    maxFrame: 64,
  };
  cases.push(['WELCOME', welcome, encodeWelcome(welcome)]);
  const ping: PingFrame = { type: FrameType.PING, seq: 0, timestamp: 0 };
  cases.push(['PING', ping, encodePing(0, 0)]);
  const pong: PongFrame = { type: FrameType.PONG, seq: 0xffff_ffff, timestamp: MAX_U64 };
  cases.push(['PONG', pong, encodePong(0xffff_ffff, MAX_U64)]);
  const data: DataFrame = { type: FrameType.DATA, seq: 2 ** 32 + 1, payload: id(9) };
  cases.push(['DATA', data, encodeData(2 ** 32 + 1, id(9))]);
  const ack: AckFrame = { type: FrameType.ACK, seq: 0 };
  cases.push(['ACK', ack, encodeAck(0)]);
  const close: CloseFrame = { type: FrameType.CLOSE, code: 0xffff, retryAfter: 1, reason: '\0x' };
  cases.push(['CLOSE', close, encodeClose(0xffff, '\0x', 1)]);
  const settings: SettingsFrame = { type: FrameType.SETTINGS, interval: 0, timeout: 0xffff_ffff };
  cases.push(['SETTINGS', settings, encodeSettings(0, 0xffff_ffff)]);

  for (const [name, frame, bytes] of cases) {
    it(`${name}: the per-type encoder matches encodeFrame and decodes back`, () => {
      assert.equal(hex(bytes), hex(encodeFrame(frame)));
      assertFrames(decodeAll(bytes), [frame]);
    });
  }

  it('encodeClose defaults to an empty reason and no retry hint', () => {
    assertFrames(decodeAll(encodeClose(CloseCode.NORMAL)), [
      { type: FrameType.CLOSE, code: 1000, retryAfter: 0, reason: '' },
    ]);
  });

  it('keeps a leading U+FEFF in strings (not stripped as a byte-order mark)', () => {
    const [close] = decodeAll(encodeClose(1000, '\ufeff\ufeffx'));
    assert.ok(close?.type === FrameType.CLOSE);
    assert.equal(close.reason, '\ufeff\ufeffx');
    const [h] = decodeAll(encodeHello({ ...hello, clientId: '\ufeffa', traceId: '\ufeff' }));
    assert.ok(h?.type === FrameType.HELLO);
    assert.equal(h.clientId, '\ufeffa');
    assert.equal(h.traceId, '\ufeff');
  });

  it('DATA_OVERHEAD and maxPayload describe the DATA frame size', () => {
    assert.equal(encodeData(1, new Uint8Array(10)).length, DATA_OVERHEAD + 10);
    assert.equal(maxPayload(100) + DATA_OVERHEAD, 100 + LENGTH_BYTES);
  });
});

// ---------------------------------------------------------------------------------------
// Malformed input

/** A HELLO built byte by byte, independent of the encoder. */
function rawHello(
  o: {
    version?: number;
    flags?: number;
    sessionId?: Uint8Array;
    token?: Uint8Array;
    lastReceived?: Uint8Array;
    auth?: Uint8Array;
    clientId?: Uint8Array;
    traceId?: Uint8Array;
    extra?: Uint8Array;
  } = {},
): Buffer {
  const auth = o.auth ?? new Uint8Array(0);
  const clientId = o.clientId ?? Buffer.from('c');
  const traceId = o.traceId ?? Buffer.from('t');
  return frameOf(
    Buffer.concat([
      Uint8Array.of(FrameType.HELLO, o.version ?? 1, o.flags ?? 0),
      u32(1000),
      u32(3000),
      o.sessionId ?? new Uint8Array(ID_BYTES),
      o.token ?? new Uint8Array(ID_BYTES),
      o.lastReceived ?? new Uint8Array(8),
      u16(auth.length),
      auth,
      u16(clientId.length),
      clientId,
      u16(traceId.length),
      traceId,
      o.extra ?? new Uint8Array(0),
    ]),
  );
}

/** A WELCOME built byte by byte. */
function rawWelcome(
  o: { version?: number; flags?: number; lastReceived?: Uint8Array; extra?: Uint8Array } = {},
): Buffer {
  return frameOf(
    Buffer.concat([
      Uint8Array.of(FrameType.WELCOME, o.version ?? 1, o.flags ?? 0),
      new Uint8Array(ID_BYTES).fill(1),
      new Uint8Array(ID_BYTES).fill(2),
      u32(1000),
      u32(3000),
      o.lastReceived ?? new Uint8Array(8),
      u32(60_000),
      o.extra ?? new Uint8Array(0),
    ]),
  );
}

function rawClose(reason: Uint8Array): Buffer {
  return frameOf(Buffer.concat([Uint8Array.of(FrameType.CLOSE), u16(1000), u32(0), reason]));
}

const malformed = (bytes: Uint8Array, message?: string) =>
  assertProtocolError(() => new Decoder().push(bytes), 'HL_ERR_MALFORMED_FRAME', message);

describe('malformed input gives typed errors', () => {
  it('the raw builders agree with the encoder', () => {
    const f = decodeAll(rawHello());
    assert.equal(hex(encodeFrame(f[0]!)), hex(rawHello()));
    assert.equal(hex(encodeFrame(decodeAll(rawWelcome())[0]!)), hex(rawWelcome()));
  });

  it('length 0: HL_ERR_MALFORMED_FRAME, at once and after valid frames', () => {
    malformed(Uint8Array.of(0, 0, 0, 0));
    const d = new Decoder();
    assert.equal(d.push(encodeAck(1)).length, 1);
    assertProtocolError(() => d.push(Uint8Array.of(0, 0, 0, 0)), 'HL_ERR_MALFORMED_FRAME');
    assertProtocolError(() => decodeBody(Buffer.alloc(0)), 'HL_ERR_MALFORMED_FRAME');
  });

  it('length over maxFrame: HL_ERR_FRAME_TOO_LARGE from the 4-byte header alone', () => {
    const d = new Decoder();
    assert.deepEqual(d.push(Uint8Array.of(0xff, 0xff, 0xff)), []);
    assert.equal(d.bufferedBytes, 3);
    assertProtocolError(() => d.push(Uint8Array.of(0xff)), 'HL_ERR_FRAME_TOO_LARGE');
    assert.equal(d.bufferedBytes, 0);
    assertProtocolError(() => new Decoder().push(u32(0xffff_ffff)), 'HL_ERR_FRAME_TOO_LARGE');
    assertProtocolError(
      () => new Decoder().push(u32(DEFAULT_MAX_FRAME + 1)),
      'HL_ERR_FRAME_TOO_LARGE',
    );
  });

  it('a frame of exactly maxFrame is accepted and one byte more is not', () => {
    for (const maxFrame of [100, DEFAULT_MAX_FRAME]) {
      const fits = encodeData(1, new Uint8Array(maxPayload(maxFrame)).fill(5));
      assert.equal(fits.readUInt32BE(0), maxFrame);
      const [frame] = decodeAll(fits, maxFrame);
      assert.ok(frame?.type === FrameType.DATA && frame.payload.length === maxPayload(maxFrame));
      const tooBig = encodeData(1, new Uint8Array(maxPayload(maxFrame) + 1));
      const d = new Decoder({ maxFrame });
      assertProtocolError(() => d.push(tooBig.subarray(0, LENGTH_BYTES)), 'HL_ERR_FRAME_TOO_LARGE');
    }
  });

  it('unknown frame types: HL_ERR_UNKNOWN_FRAME', () => {
    for (const type of [0x00, 0x0b, 0x10, 0x7f, 0x80, 0xff]) {
      assertProtocolError(
        () => new Decoder().push(frameOf(Uint8Array.of(type, 1, 2, 3))),
        'HL_ERR_UNKNOWN_FRAME',
        `type ${type}`,
      );
    }
  });

  it('a truncated field in every frame type: HL_ERR_MALFORMED_FRAME', () => {
    // DATA, CLOSE, REQUEST and REPLY end in a field running to the end of the frame:
    // only their fixed part can be truncated. Every other frame is invalid at every
    // shorter length.
    const fixedPart: Partial<Record<number, number>> = {
      [FrameType.DATA]: 1 + 8,
      [FrameType.CLOSE]: 1 + 2 + 4,
      [FrameType.REPLY]: 1 + 8 + 8 + 1,
    };
    for (const v of VECTORS) {
      const body = v.bytes.subarray(LENGTH_BYTES);
      const limit =
        v.frame.type === FrameType.REQUEST
          ? 1 + 8 + 2 + Buffer.byteLength(v.frame.key)
          : (fixedPart[v.frame.type] ?? body.length);
      for (let k = 1; k < limit; k++)
        malformed(frameOf(body.subarray(0, k)), `${v.name} cut to ${k}`);
    }
    // a length-prefixed HELLO field that runs past the end
    malformed(truncatedHello(), 'HELLO clientId runs past the end of the frame');
  });

  it('trailing bytes after a fixed-layout frame: HL_ERR_MALFORMED_FRAME', () => {
    for (const type of [
      FrameType.HELLO,
      FrameType.WELCOME,
      FrameType.PING,
      FrameType.PONG,
      FrameType.ACK,
      FrameType.SETTINGS,
    ]) {
      const body = sampleOf(type).bytes.subarray(LENGTH_BYTES);
      for (const extra of [Uint8Array.of(0), new Uint8Array(8)]) {
        malformed(frameOf(Buffer.concat([body, extra])), `type ${type} + ${extra.length} bytes`);
      }
    }
    // DATA and CLOSE have no trailing bytes: more bytes are more payload or reason
    const [data] = decodeAll(
      frameOf(Buffer.concat([encodeData(1, Uint8Array.of(1)).subarray(4), Uint8Array.of(2)])),
    );
    assert.ok(data?.type === FrameType.DATA);
    assert.equal(hex(data.payload), '0102');
  });

  const BAD_UTF8 = [
    'ff', // never valid
    'fe',
    '80', // lone continuation byte
    'c328', // lead byte without continuation
    'c080', // overlong NUL
    'c1bf', // overlong
    'e0808f', // overlong 3-byte
    'f0808080', // overlong 4-byte
    'e282', // truncated sequence
    'eda080', // encoded surrogate U+D800
    'edbfbf', // encoded surrogate U+DFFF
    'f4908080', // above U+10FFFF
    'f8888080', // 5-byte form
  ];

  it('ill-formed UTF-8 in a CLOSE reason: HL_ERR_MALFORMED_FRAME', () => {
    for (const bad of BAD_UTF8) {
      malformed(rawClose(fromHex(bad)), bad);
      malformed(rawClose(Buffer.concat([Buffer.from('ok'), fromHex(bad), Buffer.from('ok')])), bad);
    }
    // the boundaries that are valid
    for (const good of ['00', '7f', 'c280', 'efbfbf', 'f48fbfbf', 'efbbbf']) {
      assert.equal(decodeAll(rawClose(fromHex(good))).length, 1, good);
    }
  });

  it('ill-formed UTF-8 in a HELLO clientId or traceId: HL_ERR_MALFORMED_FRAME', () => {
    for (const bad of BAD_UTF8) {
      malformed(rawHello({ clientId: fromHex(bad) }), `clientId ${bad}`);
      malformed(rawHello({ traceId: fromHex(bad) }), `traceId ${bad}`);
    }
    // auth is opaque bytes, never UTF-8 checked
    assert.equal(decodeAll(rawHello({ auth: fromHex('ff80c0') })).length, 1);
  });

  it('HELLO or WELCOME with another protocol version: HL_ERR_UNSUPPORTED_VERSION', () => {
    for (const version of [0, 3, 0x80, 0xff]) {
      const code = 'HL_ERR_UNSUPPORTED_VERSION';
      assertProtocolError(() => new Decoder().push(rawHello({ version })), code);
      assertProtocolError(() => new Decoder().push(rawWelcome({ version })), code);
      // the version is checked before the rest of the layout
      const short = frameOf(Uint8Array.of(FrameType.HELLO, version));
      assertProtocolError(() => new Decoder().push(short), code);
      const long = rawWelcome({ version, extra: new Uint8Array(50) });
      assertProtocolError(() => new Decoder().push(long), code);
    }
    malformed(frameOf(Uint8Array.of(FrameType.HELLO)), 'HELLO without a version byte');
  });

  it('unknown flag bits: HL_ERR_MALFORMED_FRAME', () => {
    const resume = { sessionId: new Uint8Array(ID_BYTES), token: new Uint8Array(ID_BYTES) };
    for (let bit = 0x02; bit <= 0x80; bit <<= 1) {
      malformed(rawHello({ flags: bit }), `HELLO flag ${bit}`);
      malformed(rawHello({ ...resume, flags: bit | 0x01 }), `HELLO flags ${bit | 1}`);
      malformed(rawWelcome({ flags: bit }), `WELCOME flag ${bit}`);
      malformed(rawWelcome({ flags: bit | 0x01 }), `WELCOME flags ${bit | 1}`);
    }
  });

  it('HELLO without the resume flag but with session fields: HL_ERR_MALFORMED_FRAME', () => {
    const nonZeroId = new Uint8Array(ID_BYTES);
    nonZeroId[ID_BYTES - 1] = 1;
    const fields = [
      { sessionId: nonZeroId },
      { token: nonZeroId },
      { lastReceived: u64(1) },
      { lastReceived: u64(2 ** 32) },
    ];
    for (const f of fields) {
      malformed(rawHello(f), JSON.stringify(plain(f)));
      // the same fields are fine with the flag
      const [hello] = decodeAll(rawHello({ ...f, flags: 0x01 }));
      assert.ok(hello?.type === FrameType.HELLO && hello.resume !== null);
    }
    const [plainHello] = decodeAll(rawHello());
    assert.ok(plainHello?.type === FrameType.HELLO && plainHello.resume === null);
  });

  it('u64 fields above 2^53 - 1: HL_ERR_MALFORMED_FRAME', () => {
    const tooBig = [
      fromHex('0020000000000000'),
      fromHex('ffffffffffffffff'),
      fromHex('8000000000000000'),
    ];
    const max = fromHex('001fffffffffffff');
    const frames = (v: Buffer): Buffer[] => [
      rawHello({ flags: 0x01, lastReceived: v }),
      rawWelcome({ lastReceived: v }),
      frameOf(Buffer.concat([Uint8Array.of(FrameType.PING), u32(1), v])),
      frameOf(Buffer.concat([Uint8Array.of(FrameType.PONG), u32(1), v])),
      frameOf(Buffer.concat([Uint8Array.of(FrameType.DATA), v, Uint8Array.of(1)])),
      frameOf(Buffer.concat([Uint8Array.of(FrameType.ACK), v])),
    ];
    for (const v of tooBig) for (const f of frames(v)) malformed(f, hex(f));
    for (const f of frames(max)) {
      const [frame] = decodeAll(f);
      assert.ok(JSON.stringify(frame).includes(String(MAX_U64)), hex(f));
    }
  });

  it('a failed decoder stays failed and holds nothing', () => {
    const d = new Decoder();
    assert.equal(d.push(Buffer.concat([encodeAck(1), encodeAck(2).subarray(0, 6)])).length, 1);
    assert.equal(d.bufferedBytes, 6);
    // the rest of ACK(2), then a zero length: the valid ACK is not returned with the error
    const rest = Buffer.concat([encodeAck(2).subarray(6), Uint8Array.of(0, 0, 0, 0)]);
    const err = assertProtocolError(() => d.push(rest), 'HL_ERR_MALFORMED_FRAME');
    assert.equal(d.bufferedBytes, 0);
    assert.equal(
      caught(() => d.push(encodeAck(3))),
      err,
    );
    assert.equal(
      caught(() => d.push(new Uint8Array(0))),
      err,
    );
    assert.equal(d.bufferedBytes, 0);
  });
});

function truncatedHello(): Buffer {
  // clientId announces 5 bytes but only 3 follow and traceId's length is missing
  const full = rawHello({ clientId: Buffer.from('abcde'), traceId: new Uint8Array(0) });
  const body = full.subarray(LENGTH_BYTES, full.length - 2 - 2);
  return frameOf(body);
}

// ---------------------------------------------------------------------------------------
// Encoder and decoder argument checks

describe('encoder range errors: HL_ERR_INVALID_ARGUMENT', () => {
  const base: Omit<HelloFrame, 'type'> = {
    version: PROTOCOL_VERSION,
    interval: 0,
    timeout: 0,
    auth: new Uint8Array(0),
    resume: null,
    clientId: '',
    traceId: '',
    maxFrame: DEFAULT_MAX_FRAME,
  };
  const welcome: Omit<WelcomeFrame, 'type'> = {
    version: PROTOCOL_VERSION,
    resumed: false,
    sessionId: new Uint8Array(ID_BYTES),
    token: new Uint8Array(ID_BYTES),
    interval: 1,
    timeout: 2,
    lastReceived: 0,
    sessionTtl: 0,
    maxFrame: DEFAULT_MAX_FRAME,
  };
  const badU32 = [-1, 2 ** 32, 1.5, Number.NaN, Number.POSITIVE_INFINITY];
  const badU64 = [-1, 2 ** 53, 0.5, Number.NaN, Number.POSITIVE_INFINITY];

  it('u32 fields', () => {
    for (const n of badU32) {
      assertInvalidArgument(() => encodePing(n, 0), `ping seq ${n}`);
      assertInvalidArgument(() => encodePong(n, 0), `pong seq ${n}`);
      assertInvalidArgument(() => encodeSettings(n, 1), `settings interval ${n}`);
      assertInvalidArgument(() => encodeSettings(1, n), `settings timeout ${n}`);
      assertInvalidArgument(() => encodeClose(1000, '', n), `retryAfter ${n}`);
      assertInvalidArgument(() => encodeHello({ ...base, interval: n }), `hello interval ${n}`);
      assertInvalidArgument(() => encodeHello({ ...base, timeout: n }), `hello timeout ${n}`);
      assertInvalidArgument(() => encodeWelcome({ ...welcome, sessionTtl: n }), `ttl ${n}`);
    }
  });

  it('u64 fields', () => {
    const id = new Uint8Array(ID_BYTES);
    for (const n of badU64) {
      assertInvalidArgument(() => encodePing(1, n), `timestamp ${n}`);
      assertInvalidArgument(() => encodeData(n, new Uint8Array(0)), `data seq ${n}`);
      assertInvalidArgument(() => encodeAck(n), `ack ${n}`);
      assertInvalidArgument(() => encodeWelcome({ ...welcome, lastReceived: n }), `welcome ${n}`);
      const resume = { sessionId: id, token: id, lastReceived: n };
      assertInvalidArgument(() => encodeHello({ ...base, resume }), `hello lastReceived ${n}`);
    }
  });

  it('u8 version, u16 close code', () => {
    for (const version of [-1, 256, 1.5]) {
      assertInvalidArgument(() => encodeHello({ ...base, version }), `hello version ${version}`);
      assertInvalidArgument(() => encodeWelcome({ ...welcome, version }), `welcome ${version}`);
    }
    for (const code of [-1, 0x1_0000, 1000.5, Number.NaN]) {
      assertInvalidArgument(() => encodeClose(code), `close code ${code}`);
    }
  });

  it('ids of the wrong size', () => {
    for (const size of [0, ID_BYTES - 1, ID_BYTES + 1]) {
      const bad = new Uint8Array(size);
      const ok = new Uint8Array(ID_BYTES);
      assertInvalidArgument(() => encodeWelcome({ ...welcome, sessionId: bad }));
      assertInvalidArgument(() => encodeWelcome({ ...welcome, token: bad }));
      const r1 = { sessionId: bad, token: ok, lastReceived: 0 };
      const r2 = { sessionId: ok, token: bad, lastReceived: 0 };
      assertInvalidArgument(() => encodeHello({ ...base, resume: r1 }));
      assertInvalidArgument(() => encodeHello({ ...base, resume: r2 }));
    }
  });

  it('HELLO byte strings over 65535 bytes, counted in UTF-8 bytes', () => {
    assertInvalidArgument(() => encodeHello({ ...base, auth: new Uint8Array(0x1_0000) }));
    assertInvalidArgument(() => encodeHello({ ...base, clientId: 'a'.repeat(0x1_0000) }));
    // 32768 characters, 65536 bytes
    assertInvalidArgument(() => encodeHello({ ...base, traceId: 'é'.repeat(0x8000) }));
    assert.ok(encodeHello({ ...base, clientId: 'a'.repeat(0xffff) }));
  });

  it('Decoder refuses a maxFrame that would disable or break the size guard', () => {
    for (const maxFrame of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 32]) {
      assertInvalidArgument(() => new Decoder({ maxFrame }), `maxFrame ${maxFrame}`);
    }
    assert.equal(new Decoder({ maxFrame: 1 }).maxFrame, 1);
    assert.equal(new Decoder().maxFrame, DEFAULT_MAX_FRAME);
  });
});

// ---------------------------------------------------------------------------------------
// Properties

const arbU32 = fc.integer({ min: 0, max: 0xffff_ffff });
const arbU64 = fc.oneof(fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, MAX_U64), fc.maxSafeNat());
const arbId = fc.uint8Array({ minLength: ID_BYTES, maxLength: ID_BYTES });
const arbText = fc.string({ unit: 'binary', maxLength: 24 });

/** Version 1 has no maxFrame field: it decodes as the default. */
const arbVersioned = fc.oneof(
  fc.constant({ version: 1, maxFrame: DEFAULT_MAX_FRAME }),
  fc.record({ version: fc.constant(2), maxFrame: fc.integer({ min: 64, max: 0xffff_ffff }) }),
);

const arbHello: fc.Arbitrary<HelloFrame> = fc
  .record({
    type: fc.constant(FrameType.HELLO),
    version: fc.constant(PROTOCOL_VERSION),
    interval: arbU32,
    timeout: arbU32,
    auth: fc.uint8Array({ maxLength: 48 }),
    resume: fc.option(fc.record({ sessionId: arbId, token: arbId, lastReceived: arbU64 }), {
      nil: null,
    }),
    clientId: arbText,
    traceId: arbText,
    maxFrame: fc.constant(DEFAULT_MAX_FRAME),
  })
  .chain((f) => arbVersioned.map((v) => ({ ...f, ...v })));
const arbWelcome: fc.Arbitrary<WelcomeFrame> = fc
  .record({
    type: fc.constant(FrameType.WELCOME),
    version: fc.constant(PROTOCOL_VERSION),
    resumed: fc.boolean(),
    sessionId: arbId,
    token: arbId,
    interval: arbU32,
    timeout: arbU32,
    lastReceived: arbU64,
    sessionTtl: arbU32,
    maxFrame: fc.constant(DEFAULT_MAX_FRAME),
  })
  .chain((f) => arbVersioned.map((v) => ({ ...f, ...v })));
const arbPing: fc.Arbitrary<PingFrame> = fc.record({
  type: fc.constant(FrameType.PING),
  seq: arbU32,
  timestamp: arbU64,
});
const arbPong: fc.Arbitrary<PongFrame> = fc.record({
  type: fc.constant(FrameType.PONG),
  seq: arbU32,
  timestamp: arbU64,
});
const arbData: fc.Arbitrary<DataFrame> = fc.record({
  type: fc.constant(FrameType.DATA),
  seq: arbU64,
  payload: fc.uint8Array({ maxLength: 200 }),
});
const arbAck: fc.Arbitrary<AckFrame> = fc.record({ type: fc.constant(FrameType.ACK), seq: arbU64 });
const arbClose: fc.Arbitrary<CloseFrame> = fc.record({
  type: fc.constant(FrameType.CLOSE),
  code: fc.integer({ min: 0, max: 0xffff }),
  retryAfter: arbU32,
  reason: arbText,
});
const arbSettings: fc.Arbitrary<SettingsFrame> = fc.record({
  type: fc.constant(FrameType.SETTINGS),
  interval: arbU32,
  timeout: arbU32,
});
const arbFrame: fc.Arbitrary<Frame> = fc.oneof(
  arbHello,
  arbWelcome,
  arbPing,
  arbPong,
  arbData,
  arbAck,
  arbClose,
  arbSettings,
);
const arbFrames = fc.array(arbFrame, { minLength: 1, maxLength: 8 });
const arbCuts = fc.array(fc.nat(), { maxLength: 12 });

/** Checks decoding of arbitrary bytes under two chunkings and returns nothing. */
function checkArbitraryStream(bytes: Uint8Array, cuts: number[], maxFrame: number): void {
  const chunked = feed(chunksAt(bytes, cuts), maxFrame);
  const byByte = feed(bytesOf(bytes), maxFrame);
  // The first bad frame decides the error whatever the chunking; frames decoded before it
  // in the same push are not returned, so the chunked frames are a prefix.
  assert.equal(chunked.error?.code, byByte.error?.code);
  assertFrames(chunked.frames, byByte.frames.slice(0, chunked.frames.length));
  if (!chunked.error) assert.equal(chunked.frames.length, byByte.frames.length);
}

describe('encoding into a buffer, decoding in place', () => {
  it('writeDataAt and writeAckAt write the bytes of encodeData and encodeAck at any offset', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 64 }),
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.uint8Array({ maxLength: 300 }),
        (offset, seq, payload) => {
          const buf = Buffer.alloc(offset + DATA_OVERHEAD + payload.length + ACK_FRAME_BYTES, 0xaa);
          writeDataAt(buf, offset, seq, payload);
          writeAckAt(buf, offset + DATA_OVERHEAD + payload.length, seq);
          assert.deepEqual(buf.subarray(0, offset), Buffer.alloc(offset, 0xaa), 'bytes before');
          assert.deepEqual(
            buf.subarray(offset),
            Buffer.concat([encodeData(seq, payload), encodeAck(seq)]),
          );
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('writeProbeAt writes the bytes of encodePing and encodePong at any offset', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 64 }),
        fc.nat({ max: 2 ** 32 - 1 }),
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        (offset, seq, timestamp) => {
          const buf = Buffer.alloc(offset + 2 * PROBE_FRAME_BYTES, 0xaa);
          writeProbeAt(buf, offset, FrameType.PING, seq, timestamp);
          writeProbeAt(buf, offset + PROBE_FRAME_BYTES, FrameType.PONG, seq, timestamp);
          assert.deepEqual(buf.subarray(0, offset), Buffer.alloc(offset, 0xaa), 'bytes before');
          assert.deepEqual(
            buf.subarray(offset),
            Buffer.concat([encodePing(seq, timestamp), encodePong(seq, timestamp)]),
          );
        },
      ),
      { numRuns: RUNS },
    );
    for (const [seq, timestamp] of [
      [-1, 0],
      [2 ** 32, 0],
      [0, -1],
      [0, Number.MAX_SAFE_INTEGER + 1],
    ] as const) {
      const buf = Buffer.alloc(PROBE_FRAME_BYTES, 0xaa);
      assert.throws(
        () => writeProbeAt(buf, 0, FrameType.PONG, seq, timestamp),
        InvalidArgumentError,
      );
      assert.deepEqual(buf, Buffer.alloc(PROBE_FRAME_BYTES, 0xaa), `${seq}/${timestamp}`);
    }
  });

  it('wholeProbeType reads exactly one PING or PONG as the decoder does, and nothing else', () => {
    fc.assert(
      fc.property(arbFrame, (frame) => {
        const bytes = encodeFrame(frame);
        const type = wholeProbeType(bytes, DEFAULT_MAX_FRAME);
        if (frame.type === FrameType.PING || frame.type === FrameType.PONG) {
          assert.equal(type, frame.type);
          assert.equal(probeSeq(bytes), frame.seq);
          assert.equal(probeTimestamp(bytes), frame.timestamp);
          // Not whole: a probe plus one more byte, or with its last byte missing.
          assert.equal(wholeProbeType(Buffer.concat([bytes, Buffer.of(0)]), DEFAULT_MAX_FRAME), 0);
          assert.equal(wholeProbeType(bytes.subarray(0, -1), DEFAULT_MAX_FRAME), 0);
        } else {
          assert.equal(type, 0);
        }
      }),
      { numRuns: RUNS },
    );
    // What the decoder would refuse is left to it, so that its error is the one raised.
    const ping = encodePing(7, 1);
    const tooBig = Buffer.from(ping);
    tooBig.writeUInt32BE(0x20_0000, LENGTH_BYTES + 5);
    assert.equal(wholeProbeType(tooBig, DEFAULT_MAX_FRAME), 0, 'timestamp above 2^53 - 1');
    assert.equal(wholeProbeType(ping, 8), 0, 'a frame larger than maxFrame');
    assert.equal(wholeProbeType(ping, DEFAULT_MAX_FRAME), FrameType.PING);
  });

  it('a seq out of range throws before any byte is written', () => {
    for (const seq of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, Number.NaN]) {
      const buf = Buffer.alloc(DATA_OVERHEAD + 4, 0xaa);
      assert.throws(
        () => writeDataAt(buf, 0, seq, Uint8Array.of(1, 2, 3, 4)),
        InvalidArgumentError,
      );
      assert.throws(() => writeAckAt(buf, 0, seq), InvalidArgumentError);
      assert.deepEqual(buf, Buffer.alloc(DATA_OVERHEAD + 4, 0xaa), String(seq));
    }
  });

  it('a DATA payload is a view into the chunk it arrived in, not a copy', () => {
    // Documented: the application may keep it (Node never reuses a read chunk), and a
    // frame split across chunks is the only one that is copied (into a buffer of its own).
    const chunk = Buffer.concat([encodeAck(1), encodeData(7, Buffer.from('hello'))]);
    const [, data] = new Decoder().push(chunk) as [AckFrame, DataFrame];
    assert.equal(data.seq, 7);
    assert.equal(data.payload.buffer, chunk.buffer);
    assert.equal(data.payload.byteOffset, chunk.byteOffset + ACK_FRAME_BYTES + DATA_OVERHEAD);
    assert.equal(Buffer.from(data.payload).toString(), 'hello');
  });

  it('frames decoded in place equal decodeBody() of each body, for arbitrary frames', () => {
    fc.assert(
      fc.property(arbFrames, (frames) => {
        const stream = Buffer.concat(frames.map(encodeFrame));
        const bodies: Frame[] = [];
        for (let at = 0; at < stream.length; ) {
          const length = stream.readUInt32BE(at);
          bodies.push(decodeBody(stream.subarray(at + LENGTH_BYTES, at + LENGTH_BYTES + length)));
          at += LENGTH_BYTES + length;
        }
        assertFrames(new Decoder().push(stream), bodies);
        assertFrames(bodies, frames);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('properties (fast-check)', () => {
  it('decode(encode(frame)) equals frame for arbitrary valid frames', () => {
    fc.assert(
      fc.property(arbFrame, (frame) => {
        const bytes = encodeFrame(frame);
        assertFrames(decodeAll(bytes), [frame]);
        assert.equal(bytes.readUInt32BE(0), bytes.length - LENGTH_BYTES);
      }),
      { numRuns: RUNS },
    );
  });

  it('arbitrary chunkings of a multi-frame stream give the same frames, buffering exactly the incomplete tail', () => {
    fc.assert(
      fc.property(arbFrames, arbCuts, fc.nat({ max: 16 }), (frames, cuts, slack) => {
        const encoded = frames.map(encodeFrame);
        const stream = Buffer.concat(encoded);
        const largest = Math.max(...encoded.map((b) => b.length - LENGTH_BYTES));
        const maxFrame = largest + slack;
        const d = new Decoder({ maxFrame });
        const got: Frame[] = [];
        let pushed = 0;
        let consumed = 0;
        for (const chunk of chunksAt(stream, cuts)) {
          const out = d.push(chunk);
          pushed += chunk.length;
          for (const f of out) consumed += encodeFrame(f).length;
          got.push(...out);
          assert.equal(d.bufferedBytes, pushed - consumed);
          assert.ok(d.bufferedBytes < maxFrame + LENGTH_BYTES);
        }
        assertFrames(got, frames);
        assert.equal(d.bufferedBytes, 0);
      }),
      { numRuns: RUNS },
    );
  });

  it('arbitrary bytes only ever throw ProtocolError, the same one under any chunking', () => {
    const arbMaxFrame = fc.oneof(fc.integer({ min: 1, max: 256 }), fc.constant(DEFAULT_MAX_FRAME));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), arbCuts, arbMaxFrame, (bytes, cuts, max) =>
        checkArbitraryStream(bytes, cuts, max),
      ),
      { numRuns: RUNS },
    );
  });

  it('garbage bodies behind valid lengths only ever throw ProtocolError', () => {
    const arbBody = fc.tuple(
      fc.integer({ min: 0, max: 9 }),
      fc.oneof(fc.constant(PROTOCOL_VERSION), fc.integer({ min: 0, max: 255 })),
      fc.uint8Array({ maxLength: 90 }),
    );
    fc.assert(
      fc.property(fc.array(arbBody, { minLength: 1, maxLength: 6 }), arbCuts, (bodies, cuts) => {
        const stream = Buffer.concat(
          bodies.map(([type, first, rest]) =>
            frameOf(Buffer.concat([Uint8Array.of(type, first), rest])),
          ),
        );
        checkArbitraryStream(stream, cuts, DEFAULT_MAX_FRAME);
      }),
      { numRuns: RUNS },
    );
  });

  it('mutated and truncated valid streams only ever throw ProtocolError', () => {
    const arbEdit = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) });
    fc.assert(
      fc.property(
        arbFrames,
        fc.array(arbEdit, { minLength: 1, maxLength: 4 }),
        fc.nat(),
        arbCuts,
        (frames, edits, cut, cuts) => {
          const stream = Buffer.concat(frames.map(encodeFrame));
          for (const { at, value } of edits) stream[at % stream.length] = value;
          const kept = stream.subarray(0, stream.length - (cut % 8));
          checkArbitraryStream(kept, cuts, 4096);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('an over-size length is refused by the push that completes the header', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4096 }),
        fc.nat(),
        fc.uint8Array({ maxLength: 64 }),
        arbCuts,
        (maxFrame, over, tail, cuts) => {
          const length = maxFrame + 1 + (over % (0xffff_ffff - maxFrame));
          const stream = Buffer.concat([u32(length), tail]);
          const d = new Decoder({ maxFrame });
          let seen = 0;
          for (const chunk of chunksAt(stream, cuts)) {
            seen += chunk.length;
            if (seen < LENGTH_BYTES) {
              assert.deepEqual(d.push(chunk), []);
              continue;
            }
            assertProtocolError(() => d.push(chunk), 'HL_ERR_FRAME_TOO_LARGE');
            assert.equal(d.bufferedBytes, 0);
            return;
          }
          assert.fail('the header never completed');
        },
      ),
      { numRuns: RUNS },
    );
  });
});
