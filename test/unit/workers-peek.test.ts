/**
 * The HELLO peek of the multi-process primary: it must find the session id a resume names
 * at any chunking, wait for nothing beyond maxFrame, call anything that is not a valid HELLO
 * invalid (the worker then closes it with the proper code), keep every byte it saw, refuse
 * at once a HELLO longer than any HELLO can be, and copy each byte a bounded number of times.
 */

import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { encodeData, encodeHello, encodePing, MAX_HELLO_LENGTH } from '../../src/protocol/codec.js';
import { FrameType, ID_BYTES, PROTOCOL_VERSION } from '../../src/protocol/frames.js';
import { HelloPeek } from '../../src/server/workers/peek.js';

const MAX_FRAME = 4096;

function hello(resume: boolean): Buffer {
  const sessionId = new Uint8Array(ID_BYTES).fill(0xab);
  sessionId[0] = 3;
  return encodeHello({
    version: PROTOCOL_VERSION,
    interval: 1000,
    timeout: 3000,
    auth: Buffer.from('token'),
    resume: resume
      ? { sessionId, token: new Uint8Array(ID_BYTES).fill(7), lastReceived: 42 }
      : null,
    clientId: 'client-1',
    traceId: 'trace-1',
    maxFrame: MAX_FRAME,
  });
}

describe('HelloPeek', () => {
  it('finds the session id of a resume at every split point, and keeps every byte', () => {
    const bytes = hello(true);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const peek = new HelloPeek(MAX_FRAME);
      const first = peek.push(bytes.subarray(0, cut));
      if (cut < bytes.length) assert.equal(first.kind, 'more', `cut at ${cut}`);
      const r = peek.push(bytes.subarray(cut));
      assert.equal(r.kind, 'hello');
      assert.ok(r.kind === 'hello' && r.sessionId);
      assert.equal(r.kind === 'hello' && r.sessionId?.[0], 3);
      assert.deepEqual(peek.bytes, bytes);
    }
  });

  it('fed byte by byte, answers "more" until the last byte of the HELLO', () => {
    const bytes = hello(false);
    const peek = new HelloPeek(MAX_FRAME);
    for (let i = 0; i < bytes.length - 1; i++) {
      assert.equal(peek.push(bytes.subarray(i, i + 1)).kind, 'more');
    }
    assert.deepEqual(peek.push(bytes.subarray(bytes.length - 1)), {
      kind: 'hello',
      sessionId: null,
    });
    assert.deepEqual(peek.bytes, bytes);
  });

  it('keeps bytes that follow the HELLO (the worker judges them)', () => {
    const bytes = Buffer.concat([hello(false), encodePing(1, 2)]);
    const peek = new HelloPeek(MAX_FRAME);
    assert.equal(peek.push(bytes).kind, 'hello');
    const more = Buffer.from([1, 2, 3]);
    assert.equal(peek.push(more).kind, 'hello');
    assert.deepEqual(peek.bytes, Buffer.concat([bytes, more]));
  });

  it('calls a length above maxFrame invalid at once, without waiting for the body', () => {
    const peek = new HelloPeek(MAX_FRAME);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_FRAME + 1);
    assert.equal(peek.push(header).kind, 'invalid');
  });

  it('calls a zero length, garbage, a bad HELLO or another first frame invalid', () => {
    const zero = Buffer.alloc(4);
    assert.equal(new HelloPeek(MAX_FRAME).push(zero).kind, 'invalid');
    const garbage = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    // "GET " as a length is far above maxFrame.
    assert.equal(new HelloPeek(MAX_FRAME).push(garbage).kind, 'invalid');
    assert.equal(new HelloPeek(MAX_FRAME).push(encodeData(1, Buffer.from('x'))).kind, 'invalid');
    const bad = Buffer.from(hello(false));
    bad[5] = PROTOCOL_VERSION + 1; // the version byte
    assert.equal(new HelloPeek(MAX_FRAME).push(bad).kind, 'invalid');
  });

  it('stays decided: bytes after a verdict do not change it', () => {
    const peek = new HelloPeek(MAX_FRAME);
    assert.equal(peek.push(Buffer.alloc(4)).kind, 'invalid');
    assert.equal(peek.push(hello(false)).kind, 'invalid');
    assert.equal(peek.bytes.length, 4 + hello(false).length);
  });

  it('MAX_HELLO_LENGTH is the length of the longest HELLO, which still peeks as a HELLO', () => {
    const longest = encodeHello({
      version: PROTOCOL_VERSION,
      interval: 0,
      timeout: 0,
      auth: Buffer.alloc(0xffff, 1),
      resume: null,
      clientId: 'c'.repeat(0xffff),
      traceId: 't'.repeat(0xffff),
      maxFrame: MAX_FRAME,
    });
    assert.equal(longest.readUInt32BE(0), MAX_HELLO_LENGTH);
    const peek = new HelloPeek(1024 * 1024);
    assert.deepEqual(peek.push(longest), { kind: 'hello', sessionId: null });
    assert.deepEqual(peek.bytes, longest);
  });

  it('calls a HELLO longer than any HELLO can be oversized after its version byte, at every split', () => {
    // Length, type, version and the first field bytes.
    const header = (length: number, version: number) =>
      Buffer.concat([u32(length), Buffer.from([FrameType.HELLO, version, 0, 0])]);
    for (const [version, code] of [
      [PROTOCOL_VERSION, 'HL_ERR_MALFORMED_FRAME'],
      [PROTOCOL_VERSION + 1, 'HL_ERR_UNSUPPORTED_VERSION'],
    ] as const) {
      const bytes = header(MAX_HELLO_LENGTH + 1, version);
      for (let cut = 0; cut <= 6; cut++) {
        const peek = new HelloPeek(1024 * 1024);
        const first = peek.push(bytes.subarray(0, cut));
        if (cut < 6) assert.equal(first.kind, 'more', `cut at ${cut}`);
        const r = peek.push(bytes.subarray(cut));
        assert.equal(r.kind, 'oversized', `cut at ${cut}`);
        assert.equal(r.kind === 'oversized' && r.error.code, code);
        assert.equal(r.kind === 'oversized' && r.length, MAX_HELLO_LENGTH + 1);
        assert.deepEqual(peek.bytes, bytes, 'every byte kept');
      }
    }
    // Another frame type of that length is the worker's to judge, after its type byte.
    const data = Buffer.concat([u32(MAX_HELLO_LENGTH + 1), Buffer.from([FrameType.DATA])]);
    assert.equal(new HelloPeek(1024 * 1024).push(data).kind, 'invalid');
    // Above maxFrame, the length alone decides (the worker says frame too large).
    assert.equal(new HelloPeek(MAX_FRAME).push(u32(MAX_HELLO_LENGTH + 1)).kind, 'invalid');
  });

  it('copies each byte about once, however small the chunks (linear, not quadratic)', () => {
    const bytes = encodeHello({
      version: PROTOCOL_VERSION,
      interval: 0,
      timeout: 0,
      auth: Buffer.alloc(0xffff, 2),
      resume: null,
      clientId: 'c'.repeat(0xffff),
      traceId: 't'.repeat(0xffff),
      maxFrame: MAX_FRAME,
    });
    const concat = mock.method(Buffer, 'concat');
    try {
      for (const size of [1, 128, 4096]) {
        const peek = new HelloPeek(1024 * 1024);
        let pushes = 0;
        for (let at = 0; at < bytes.length; at += size) {
          const r = peek.push(bytes.subarray(at, at + size));
          pushes++;
          assert.equal(r.kind, at + size >= bytes.length ? 'hello' : 'more');
        }
        // The length prefix may be copied twice; every other byte exactly once.
        assert.ok(
          peek.copied <= bytes.length + 4,
          `${peek.copied} bytes copied for ${bytes.length} in ${pushes} chunks of ${size}`,
        );
      }
      // Never re-concatenated while reading (the quadratic cost this replaced).
      assert.equal(concat.mock.callCount(), 0);
    } finally {
      concat.mock.restore();
    }
  });
});

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}
