/**
 * Keeps the documented contracts in step with the code (fastify's errors test does the
 * same): every error code is in docs/errors.md with the same meaning, every close code is
 * in PROTOCOL.md with its reason and finality, and the error classes carry name, code and
 * cause.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  type ErrorCode,
  ErrorCodes,
  HeartlineError,
  InvalidArgumentError,
  ProtocolError,
} from '../../src/errors.js';
import { CloseCode, FINAL_REASONS, reasonForCode } from '../../src/protocol/close-codes.js';

const read = (path: string) => readFileSync(new URL(path, import.meta.url), 'utf8');
const ERRORS_MD = read('../../docs/errors.md');
const PROTOCOL_MD = read('../../PROTOCOL.md');

/** Cells of the markdown table rows whose first cell matches `first`. */
function rows(markdown: string, first: RegExp): string[][] {
  const out: string[][] = [];
  for (const line of markdown.split('\n')) {
    if (!line.startsWith('|')) continue;
    const cells = line
      .slice(1, line.trimEnd().endsWith('|') ? line.trimEnd().length - 1 : undefined)
      .split('|')
      .map((c) => c.trim());
    if (cells[0] !== undefined && first.test(cells[0])) out.push(cells);
  }
  return out;
}

describe('docs/errors.md', () => {
  const documented = new Map(
    rows(ERRORS_MD, /^`HL_ERR_[A-Z_]+`$/).map((cells) => [cells[0]!.slice(1, -1), cells]),
  );

  it('documents every ErrorCodes key in the codes table', () => {
    for (const code of Object.keys(ErrorCodes)) {
      assert.ok(documented.has(code), `${code} is missing from docs/errors.md`);
    }
  });

  it('documents no code that does not exist', () => {
    for (const code of documented.keys()) {
      assert.ok(Object.hasOwn(ErrorCodes, code), `docs/errors.md lists unknown code ${code}`);
    }
    assert.equal(documented.size, Object.keys(ErrorCodes).length, 'a code is listed twice');
  });

  it('gives each code the meaning ErrorCodes gives it', () => {
    for (const [code, meaning] of Object.entries(ErrorCodes)) {
      assert.equal(documented.get(code)?.[1], meaning, `meaning of ${code} differs`);
    }
  });

  it('has well-formed codes and meanings', () => {
    for (const [code, meaning] of Object.entries(ErrorCodes)) {
      assert.match(code, /^HL_ERR_[A-Z]+(?:_[A-Z]+)*$/);
      assert.match(meaning, /^[A-Z].*\.$/, `${code}: one sentence, capitalised, full stop`);
    }
  });
});

describe('PROTOCOL.md close codes', () => {
  const table = rows(PROTOCOL_MD, /^\d{4}$/);
  const byCode = new Map(table.map((cells) => [Number(cells[0]), cells]));

  it('lists every CloseCode with its name', () => {
    for (const [name, code] of Object.entries(CloseCode)) {
      const row = byCode.get(code);
      assert.ok(row, `close code ${code} (${name}) is missing from PROTOCOL.md`);
      assert.equal(row[1], name, `close code ${code} is named ${row[1]} in PROTOCOL.md`);
      assert.ok(PROTOCOL_MD.includes(name));
    }
  });

  it('lists no close code that does not exist, each once', () => {
    const values = new Set<number>(Object.values(CloseCode));
    for (const code of byCode.keys()) assert.ok(values.has(code), `PROTOCOL.md lists ${code}`);
    assert.equal(table.length, values.size);
  });

  it('gives each code the reason and finality of close-codes.ts', () => {
    for (const [code, row] of byCode) {
      const reason = reasonForCode(code);
      assert.equal(row[2], `\`${reason}\``, `reason of ${code}`);
      assert.equal(row[3], FINAL_REASONS.has(reason) ? 'yes' : 'no', `finality of ${code}`);
    }
  });

  it('says how unknown codes are treated', () => {
    assert.equal(reasonForCode(4000), 'remote');
    assert.ok(FINAL_REASONS.has('remote'));
    assert.match(PROTOCOL_MD, /4000–4999[^\n]*\n?[^\n]*`remote`/);
  });
});

describe('HeartlineError', () => {
  it('carries name, code, message and cause', () => {
    const cause = new Error('ECONNRESET');
    const err = new HeartlineError('HL_ERR_SOCKET', 'socket failed', { cause });
    assert.ok(err instanceof Error);
    assert.ok(err instanceof HeartlineError);
    assert.equal(err.name, 'HeartlineError');
    assert.equal(err.code, 'HL_ERR_SOCKET');
    assert.equal(err.message, 'socket failed');
    assert.equal(err.cause, cause);
    assert.ok(err.stack?.includes('socket failed'));
    assert.match(String(err), /^HeartlineError: socket failed/);
  });

  it('has no cause unless one is given', () => {
    const err = new HeartlineError('HL_ERR_ABORTED', 'aborted');
    assert.equal(Object.hasOwn(err, 'cause'), false);
    assert.equal(err.cause, undefined);
  });

  it('accepts every code', () => {
    for (const code of Object.keys(ErrorCodes) as ErrorCode[]) {
      assert.equal(new HeartlineError(code, code).code, code);
    }
  });

  it('ProtocolError is a HeartlineError with its own name', () => {
    const err = new ProtocolError('HL_ERR_MALFORMED_FRAME', 'bad frame');
    assert.ok(err instanceof HeartlineError);
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.name, 'ProtocolError');
    assert.equal(err.code, 'HL_ERR_MALFORMED_FRAME');
  });

  it('InvalidArgumentError is a HeartlineError with HL_ERR_INVALID_ARGUMENT', () => {
    const err = new InvalidArgumentError('interval must be a positive integer');
    assert.ok(err instanceof HeartlineError);
    assert.equal(err.name, 'InvalidArgumentError');
    assert.equal(err.code, 'HL_ERR_INVALID_ARGUMENT');
    assert.equal(err.message, 'interval must be a positive integer');
  });
});
