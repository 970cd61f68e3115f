/**
 * The published package carries what its documents link to: every relative link in the
 * Markdown files `npm pack` ships (README.md first) names a file inside the tarball, so
 * the README a user reads on npm or in node_modules has no dead links. The packed file
 * list comes from `npm pack --dry-run --json` (scripts off: listing needs no build, and
 * dist/ is not linked from any document).
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The paths `npm pack` would put in the tarball, relative to the package root. */
function packedFiles(): Set<string> {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const json = execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
  const [pack] = JSON.parse(json) as Array<{ files: Array<{ path: string }> }>;
  assert.ok(pack, `npm pack --dry-run --json printed no package: ${json}`);
  return new Set(pack.files.map((f) => f.path));
}

/**
 * The relative link targets of a Markdown text: inline `[text](target)` and reference
 * `[label]: target` links, outside fenced code blocks and code spans; anchors and titles
 * dropped; links with a scheme (https:, mailto:) and same-page anchors left out.
 */
function relativeLinks(markdown: string): string[] {
  const prose = markdown
    .replace(/^(`{3,}|~{3,})[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '')
    .replace(/`[^`\n]*`/g, '');
  const targets: string[] = [];
  for (const m of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) targets.push(m[1]!);
  for (const m of prose.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) targets.push(m[1]!);
  return targets
    .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t) && !t.startsWith('#'))
    .map((t) => decodeURI(t.replace(/[?#].*$/, '')));
}

describe('the published package', () => {
  const files = packedFiles();
  const docs = [...files].filter((f) => f.endsWith('.md')).sort();

  test('ships README.md and the documents it links to', () => {
    assert.ok(files.has('README.md'), [...files].join('\n'));
    for (const f of ['LICENSE', 'SECURITY.md', 'CHANGELOG.md', 'PROTOCOL.md', 'docs/cli.md']) {
      assert.ok(files.has(f), `${f} is not in the package`);
    }
  });

  test('every relative link in a shipped Markdown file resolves inside the package', () => {
    let checked = 0;
    const dead: string[] = [];
    for (const doc of docs) {
      for (const target of relativeLinks(readFileSync(`${ROOT}${doc}`, 'utf8'))) {
        const path = posix.normalize(posix.join(posix.dirname(doc), target));
        const isDir = [...files].some((f) => f.startsWith(`${path.replace(/\/$/, '')}/`));
        if (!files.has(path) && !isDir) dead.push(`${doc}: ${target} (${path})`);
        checked++;
      }
    }
    assert.deepEqual(dead, [], `links to files the package does not carry:\n${dead.join('\n')}`);
    // README.md alone links to several documents: a parser that found none would pass.
    assert.ok(relativeLinks(readFileSync(`${ROOT}README.md`, 'utf8')).length >= 5);
    assert.ok(checked >= 10, `only ${checked} links checked`);
  });

  test('the link parser finds inline and reference links, not code or absolute ones', () => {
    const md = [
      'See [the CLI](docs/cli.md#connect) and [proto](<PROTOCOL.md> "title").',
      '[abs](https://example.com/x.md) [mail](mailto:a@b.c) [here](#top) `[no](code.md)`',
      '```sh',
      '[no](fenced.md)',
      '```',
      '[ref]: ../SECURITY.md',
    ].join('\n');
    assert.deepEqual(relativeLinks(md), ['docs/cli.md', 'PROTOCOL.md', '../SECURITY.md']);
  });
});
