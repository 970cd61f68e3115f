/**
 * docs/cli.md stays a map of the command line: its table of contents names every command
 * the built CLI offers (the commands table of `heartline --help`, which main.ts prints
 * from the same table it dispatches from), each with a section of its own, and lists no
 * command that does not exist.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MAIN, ROOT, requireBuiltCli } from '../support/cli.js';

/** The command names of `heartline --help`'s "Commands:" block. */
function helpCommands(): string[] {
  requireBuiltCli();
  const help = execFileSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8' });
  const block = /^Commands:\n((?: {2}\S.*\n)+)/m.exec(help);
  assert.ok(block, `no "Commands:" block in heartline --help:\n${help}`);
  return block[1]!
    .trimEnd()
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0]!);
}

test('docs/cli.md lists every command of heartline --help in its contents, with a section', () => {
  const commands = helpCommands();
  assert.ok(commands.includes('serve') && commands.includes('connect'), commands.join(' '));
  const doc = readFileSync(join(ROOT, 'docs', 'cli.md'), 'utf8');
  // The contents: everything before the first second-level heading.
  const contents = doc.slice(0, doc.indexOf('\n## '));
  const listed = [...contents.matchAll(/\[`(\w[\w-]*)`\]\(#heartline-([\w-]+)\)/g)];
  for (const name of commands) {
    assert.ok(
      listed.some((m) => m[1] === name && m[2] === name),
      `docs/cli.md's contents do not list \`${name}\` as [\`${name}\`](#heartline-${name})`,
    );
    assert.ok(
      doc.includes(`\n### \`heartline ${name}\`\n`),
      `docs/cli.md has no section "### \`heartline ${name}\`"`,
    );
  }
  const extra = listed.map((m) => m[1]!).filter((name) => !commands.includes(name));
  assert.deepEqual(extra, [], 'the contents list commands heartline --help does not offer');
});
