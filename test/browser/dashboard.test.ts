/**
 * The dashboard end to end in real headless Chromium (Debian's chromium package, driven
 * by playwright-core): a peer completes its handshake, answers heartbeats, then freezes
 * with its socket open; the page must show its row turn SUSPECT, then DEAD. The page is
 * also checked for what a keyboard or screen-reader user needs, and a screenshot is kept
 * in test-artifacts/dashboard.png.
 *
 * Without /usr/bin/chromium the suite skips itself with the reason; under
 * HEARTLINE_REQUIRE_ALL=1 (CI) a missing browser fails it instead.
 */

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startAdmin } from '../../src/observe/index.js';
import { Decoder, encodePong } from '../../src/protocol/codec.js';
import { FrameType } from '../../src/protocol/frames.js';
import type { Server } from '../../src/server/server.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { missingTool } from '../support/require.js';
import { onceEvent, waitFor } from '../support/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = missingTool(CHROMIUM, ['--version']);
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
/** The server's grant for the live clients. */
const INTERVAL = 500;
const TIMEOUT = 2500;
/**
 * What the peer to freeze asks for: suspect after 1.5 s of silence (a stalled test
 * process cannot fake one while it still answers), dead after 4 s, so the page has
 * seconds to show SUSPECT before DEAD.
 */
const FROZEN = { interval: 1000, timeout: 4000 } as const;
/** Generous: Chromium shares two cores with other suites. */
const SLOW = 20_000;

/** The few browser globals the page functions below use (the tsconfig has no DOM lib). */
interface PageGlobals {
  seenStates: string[];
  MutationObserver: new (
    callback: (records: Array<{ addedNodes: ArrayLike<{ textContent: string | null }> }>) => void,
  ) => { observe(target: unknown, options: { childList: boolean }): void };
  document: { activeElement: { tagName: string; id: string; className: unknown } | null };
  getComputedStyle(el: unknown): { color: string; backgroundColor: string };
}

function nextConnection(server: Server): Promise<ServerConnection> {
  return new Promise((resolve) => server.once('connection', resolve));
}

/** WCAG relative-luminance contrast of two computed CSS colours ("rgb(r, g, b)"). */
function contrast(a: string, b: string): number {
  const lum = (c: string): number => {
    const [r, g, bl] = (c.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map((v) => {
      const s = Number(v) / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    }) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

test('the dashboard shows a frozen client turn SUSPECT, then DEAD', { skip }, async (t) => {
  const { chromium } = await import('playwright-core');
  const { server, port } = await startServer(t, {
    interval: INTERVAL,
    timeout: TIMEOUT,
    sessionTtl: 120_000,
  });
  const admin = await startAdmin(server);
  t.after(() => admin.close());

  // Company for the frozen peer: two live clients exchanging messages, one that left,
  // and a handshake refused for garbage, so that every panel has something to show.
  server.on('connection', (conn) => conn.on('message', (m) => conn.send(m)));
  for (let i = 0; i < 2; i++) {
    const client = startClient(t, { port, clientId: `live-${i}` });
    await opened(client);
    for (let j = 0; j <= i * 4; j++) client.send(`hello ${j}`);
  }
  const leaving = startClient(t, { port, reconnect: false });
  await opened(leaving);
  leaving.close();
  const refused = onceEvent(server, 'rejected', { timeout: SLOW });
  const garbage = netConnect({ host: '127.0.0.1', port });
  t.after(() => garbage.destroy());
  garbage.on('error', () => {});
  garbage.write(Buffer.from('00000005ff00000000', 'hex'));
  await refused;

  // The peer to freeze: it answers every PING until it is frozen.
  const accepted = nextConnection(server);
  const peer = await RawPeer.connect(t, port);
  const pongs = new Decoder();
  peer.socket.on('data', (chunk: Buffer) => {
    for (const frame of pongs.push(chunk)) {
      if (frame.type === FrameType.PING) peer.socket.write(encodePong(frame.seq, frame.timestamp));
    }
  });
  await peer.handshake({ clientId: 'frozen', traceId: 'trace-frozen', ...FROZEN });
  const conn = await accepted;

  const profile = mkdtempSync(join(tmpdir(), 'heartline-chromium-'));
  // The profile goes once the browser has exited (it writes into it until then); a
  // failed launch still removes it.
  let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | null = null;
  t.after(async () => {
    await context?.close();
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  });
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });

  await page.goto(admin.url);
  const row = page.locator(`tr[data-id="${conn.id}"]`);
  const stateCell = row.locator('td[data-col="state"]');
  await stateCell.getByText('HEALTHY').waitFor({ timeout: SLOW });
  await page.locator('#feed-status').getByText('Live').waitFor({ timeout: SLOW });

  // Record every state the row's cell shows from now on, however briefly (DEAD lasts
  // only until the socket is destroyed and the row moves on to DISCONNECTED).
  await stateCell.evaluate((cell) => {
    const g = globalThis as unknown as PageGlobals;
    const seen: string[] = [cell.textContent ?? ''];
    g.seenStates = seen;
    new g.MutationObserver((records) => {
      for (const r of records)
        for (const n of Array.from(r.addedNodes)) seen.push(n.textContent ?? '');
    }).observe(cell, { childList: true });
  });
  peer.freeze();
  await page.waitForFunction(
    () => (globalThis as unknown as PageGlobals).seenStates.some((s) => s.includes('DEAD')),
    undefined,
    { timeout: SLOW },
  );
  const seen = await page.evaluate(() => (globalThis as unknown as PageGlobals).seenStates);
  const states = seen.map((s) => /[A-Z]+/.exec(s)?.[0]);
  const dead = states.indexOf('DEAD');
  assert.equal(states[0], 'HEALTHY', seen.join(' | '));
  assert.equal(states[dead - 1], 'SUSPECT', seen.join(' | '));

  // The row settles on DISCONNECTED (the session may still resume) and says why.
  await stateCell.getByText('DISCONNECTED').waitFor({ timeout: SLOW });
  await row.locator('td[data-col="change"]').getByText('heartbeat-timeout').waitFor();
  // The state changes are announced in the live log, in order.
  const log = page.locator('#events');
  assert.equal(await log.getAttribute('aria-live'), 'polite');
  const entries = await log.locator('li').allTextContents();
  const mine = entries.filter((e) => e.includes(`${conn.id} (`)).reverse();
  assert.deepEqual(
    mine.slice(-3).map((e) => /(\w+) → (\w+)/.exec(e)?.slice(1).join('->')),
    ['healthy->suspect', 'suspect->dead', 'dead->disconnected'],
  );
  // The closes panel has the lost link and the refused handshake.
  const closes = await page.locator('#closes-rows').textContent();
  assert.match(closes ?? '', /heartbeat-timeout/);
  assert.match(closes ?? '', /protocol-error/);
  await page.locator('#sum-disconnected').getByText('1').waitFor({ timeout: SLOW });

  // Accessibility: a language, labelled controls, a keyboard path through the page, and
  // every state badge at 4.5:1 or better.
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  assert.equal(await page.locator('label[for="filter"]').count(), 1);
  const focused: string[] = [];
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    focused.push(
      await page.evaluate(() => {
        const el = (globalThis as unknown as PageGlobals).document.activeElement;
        if (!el) return '';
        return `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className ? `.${String(el.className)}` : ''}`;
      }),
    );
  }
  assert.ok(focused.includes('input#filter'), focused.join(', '));
  assert.ok(focused.includes('div.table-wrap'), focused.join(', '));
  assert.ok(focused.includes('button'), focused.join(', '));
  const badges = await page.locator('.badge').evaluateAll((els) =>
    els.map((el) => {
      const style = (globalThis as unknown as PageGlobals).getComputedStyle(el);
      return { text: el.textContent ?? '', fg: style.color, bg: style.backgroundColor };
    }),
  );
  assert.ok(badges.length >= 3);
  for (const b of badges) {
    assert.ok(contrast(b.fg, b.bg) >= 4.5, `${b.text}: ${b.fg} on ${b.bg}`);
  }
  // Sorting from the keyboard: Enter on a header button sorts and says so.
  await page.locator('th button[data-sort="rtt"]').focus();
  await page.keyboard.press('Enter');
  assert.equal(
    await page.locator('th:has(button[data-sort="rtt"])').getAttribute('aria-sort'),
    'ascending',
  );
  await page.keyboard.press('Enter');
  await page.keyboard.press('Enter');
  // The filter narrows the rows.
  await page.locator('#filter').fill('disconnected');
  await waitFor(async () => (await page.locator('#conn-rows tr:visible').count()) === 1, {
    timeout: SLOW,
  });
  await page.locator('#filter').fill('');
  await page.locator('#filter').blur();

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  assert.deepEqual(pageErrors, []);
});
