/**
 * The CLI's event lines with hostile text in them: a peer's message, client id or close
 * reason carrying ESC sequences, newlines or bidirectional overrides must come out as one
 * line with visible escapes (readable) or as JSON that parses back to the same text with
 * nothing raw a terminal would act on.
 */

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import {
  EventOutput,
  OUTPUT_BACKLOG_LIMIT,
  UNACKED_PRINT_LIMIT,
  unackedFields,
} from '../../src/cli/output.js';
import { escapeControl } from '../../src/text.js';

/** An EventOutput writing into an array, one entry per write(). */
function capture(json: boolean, tty = false): { out: EventOutput; writes: string[] } {
  const writes: string[] = [];
  const sink = Object.assign(
    new Writable({
      write(chunk: Buffer, _enc, done) {
        writes.push(chunk.toString('utf8'));
        done();
      },
    }),
    { isTTY: tty },
  );
  return { out: new EventOutput(json, sink, () => 0), writes };
}

/** The first character in `text` that a terminal would act on, if any. */
function rawControl(text: string): string | undefined {
  return [...text].find((c) => {
    const n = c.codePointAt(0)!;
    return n < 0x20 || (n >= 0x7f && n <= 0x9f) || n === 0x2028 || n === 0x2029 || n === 0x202e;
  });
}

/** Every character a terminal could act on, and text that forges a whole event line. */
const HOSTILE =
  'hi\x1b[2J\x1b]0;pwned\x07\r\n00:00:00.000 c9 close reason=local\t\x00\x7f\x9b31m\u2028\u202eevil\\n';

describe('CLI output of peer-controlled text', () => {
  it('escapeControl shows each control character as a visible escape', () => {
    assert.equal(escapeControl('a\nb\rc\td'), 'a\\nb\\rc\\td');
    assert.equal(escapeControl('\x1b[31m'), '\\x1b[31m');
    assert.equal(escapeControl('\x00\x07\x7f\x80\x9f'), '\\x00\\x07\\x7f\\x80\\x9f');
    assert.equal(escapeControl('\u2028\u2029\u202e\u2066'), '\\u{2028}\\u{2029}\\u{202e}\\u{2066}');
    // A backslash is doubled, so that "\n" in the output always means a newline was there.
    assert.equal(escapeControl('C:\\n'), 'C:\\\\n');
    // Printable text, including non-ASCII, is left alone.
    assert.equal(escapeControl('héllo wörld ✓ 日本'), 'héllo wörld ✓ 日本');
  });

  it('readable: a message, a client id and a reason stay on one line, escaped', () => {
    const { out, writes } = capture(false);
    out.event('message', { conn: 'c1', session: 'ab', data: HOSTILE });
    out.event('rejected', { remote: '1.2.3.4:5', reason: HOSTILE, client: HOSTILE });
    out.event('state', { conn: 'c1', from: 'healthy', to: 'suspect', reason: HOSTILE });
    out.event(HOSTILE, { conn: HOSTILE });
    assert.equal(writes.length, 4);
    for (const line of writes) {
      assert.ok(line.endsWith('\n'));
      const body = line.slice(0, -1);
      assert.equal(rawControl(body), undefined, JSON.stringify(body));
    }
    assert.equal(
      writes[0],
      '00:00:00.000 c1 message hi\\x1b[2J\\x1b]0;pwned\\x07\\r\\n00:00:00.000 c9 close reason=local\\t\\x00\\x7f\\x9b31m\\u{2028}\\u{202e}evil\\\\n\n',
    );
  });

  it('readable on a TTY: only the state colour is raw, the text around it is escaped', () => {
    const { out, writes } = capture(false, true);
    out.event('state', { conn: 'c1', from: 'healthy', to: 'dead', reason: '\x1b[32mfine' });
    assert.equal(writes[0], '00:00:00.000 c1 healthy -> \x1b[31mdead\x1b[0m (\\x1b[32mfine)\n');
  });

  it('JSON: one line that parses back to the same text, with nothing raw a terminal acts on', () => {
    const { out, writes } = capture(true);
    out.event('message', { conn: 'c1', data: HOSTILE, unacked: [HOSTILE] });
    assert.equal(writes.length, 1);
    const line = writes[0]!;
    assert.equal(line.indexOf('\n'), line.length - 1);
    assert.equal(rawControl(line.slice(0, -1)), undefined);
    assert.deepEqual(JSON.parse(line), {
      ts: 0,
      event: 'message',
      conn: 'c1',
      data: HOSTILE,
      unacked: [HOSTILE],
    });
  });
});

describe('EventOutput with a reader that falls behind', () => {
  it('drops message events past the backlog limit, writes the others, then reports the count', async () => {
    const lines: string[] = [];
    let release: (() => void) | null = null;
    // A reader that takes nothing until released: writes queue in the stream.
    const sink = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        if (release === null) release = done;
        else done();
      },
    });
    const out = new EventOutput(true, sink, () => 0);
    const big = 'x'.repeat(64 * 1024);
    let written = 0;
    while (sink.writableLength <= OUTPUT_BACKLOG_LIMIT) {
      out.event('message', { data: big });
      written++;
    }
    for (let i = 0; i < 10; i++) out.event('message', { data: big });
    out.event('close', { reason: 'eof' });
    const drained = new Promise((r) => sink.once('drain', r));
    (release as unknown as () => void)();
    await drained;
    await new Promise((r) => setImmediate(r));
    const events = lines.map((l) => JSON.parse(l) as { event: string; count?: number });
    assert.equal(events.filter((e) => e.event === 'message').length, written);
    assert.ok(
      events.some((e) => e.event === 'close'),
      'other events are always written',
    );
    assert.deepEqual(
      events.filter((e) => e.event === 'dropped'),
      [{ ts: 0, event: 'dropped', count: 10 }],
    );
  });
});

describe('handed-back messages in output', () => {
  it('prints their texts up to 64 KiB and counts them all', () => {
    const small = [Buffer.from('a'), Buffer.from('b')];
    assert.deepEqual(unackedFields(small), { unacked: ['a', 'b'], count: 2, truncated: false });
    const big = Array.from({ length: 40 }, () => Buffer.alloc(4096, 0x78));
    const f = unackedFields(big);
    assert.equal(f.count, 40);
    assert.equal(f.truncated, true);
    assert.equal(f.unacked.length, UNACKED_PRINT_LIMIT / 4096);
  });
});
