/**
 * Optional peer dependencies: a feature asked for without its package installed throws
 * HL_ERR_MISSING_PACKAGE naming the `npm install` that adds it; an installed one loads.
 * (test/integration/package.test.ts shows the same with the real peers uninstalled.)
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeartlineError } from '../../src/errors.js';
import { checkPeer, isMissingPackage, requirePeer } from '../../src/optional-deps.js';

/** A package name no registry holds, so it is never installed. */
const ABSENT = 'heartline-test-absent-package';

function missing(err: unknown): boolean {
  assert.ok(err instanceof HeartlineError);
  assert.equal(err.code, 'HL_ERR_MISSING_PACKAGE');
  assert.equal(
    err.message,
    `Tracing needs the optional package "${ABSENT}", which is not installed: npm install ${ABSENT}`,
  );
  assert.ok(isMissingPackage(err.cause, ABSENT), 'the cause is the resolver error');
  return true;
}

test('a missing peer dependency is a typed error naming npm install', () => {
  assert.throws(() => checkPeer(ABSENT, 'Tracing'), missing);
  assert.throws(() => requirePeer(ABSENT, 'Tracing'), missing);
});

test('an installed peer dependency resolves and loads', () => {
  assert.doesNotThrow(() => checkPeer('prom-client', 'Metrics'));
  const prom = requirePeer<{ Registry: unknown }>('prom-client', 'Metrics');
  assert.equal(typeof prom.Registry, 'function');
});

test('a failure inside an installed package is not taken for a missing package', () => {
  const inner = Object.assign(
    new Error("Cannot find module 'sonic-boom'\nRequire stack:\n- /x/node_modules/pino/pino.js"),
    {
      code: 'MODULE_NOT_FOUND',
    },
  );
  assert.equal(isMissingPackage(inner, 'pino'), false);
  assert.equal(isMissingPackage(inner, 'sonic-boom'), true);
});
