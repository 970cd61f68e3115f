/**
 * Sessions: exhausting the session table from one address (a newcomer from another
 * address must still get in), replaying a resume token after its owner resumed (must be
 * refused once tokens rotate), resuming with lastReceived = 2^53 - 1 (acknowledging
 * messages the server never sent), and connection churn (handshakes ended every way).
 */

import { randomInt } from 'node:crypto';
import { encodeClose, encodeData, encodePing } from '../../src/protocol/codec.js';
import type { WelcomeFrame } from '../../src/protocol/frames.js';
import { takeAddresses } from '../lib/addresses.js';
import type { Attack, AttackContext } from './harness.js';
import { type RawPeer, runLanes } from './raw.js';

/** Sessions the exhaustion row's server allows (a small table fills in a second). */
const MAX_SESSIONS = 200;

/** A resume HELLO's fields from a WELCOME. */
function resumeOf(w: WelcomeFrame, lastReceived = 0) {
  return { resume: { sessionId: w.sessionId, token: w.token, lastReceived } };
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/** A new session on a socket of its own; null when refused. */
async function newSession(
  ctx: AttackContext,
  localAddress?: string,
): Promise<{ peer: RawPeer; welcome: WelcomeFrame } | null> {
  const peer = await ctx.pool.open(localAddress ? { localAddress } : {});
  const welcome = await peer.handshake();
  if (!welcome) {
    peer.destroy();
    return null;
  }
  return { peer, welcome };
}

/** Every attack of this family. */
export const sessionAttacks: Attack[] = [
  {
    id: 'session-exhaustion',
    family: 'sessions',
    label: 'session exhaustion from one address, then a newcomer',
    // The table stays full for the whole check (the row's settle waits for this TTL).
    sessionTtlMs: 10_000,
    serverArgs: ['--max-sessions', String(MAX_SESSIONS)],
    seconds: (quick) => (quick ? 4 : 8),
    async run(ctx) {
      const limit = MAX_SESSIONS;
      const attempts = limit + 50;
      const [attacker] = takeAddresses(1);
      let made = 0;
      let refused = 0;
      let next = 0;
      await runLanes(10, ctx, async () => {
        if (next >= attempts) return false;
        next++;
        const s = await newSession(ctx, attacker);
        if (s) {
          made++;
          s.peer.destroy(); // abandoned: the session waits for a resume that never comes
        } else refused++;
        return true;
      });
      const newcomer = await newSession(ctx);
      ctx.note(
        `attacker ${attacker}: ${made} sessions made and abandoned, ${refused} refused (max-sessions ${limit}); newcomer from 127.0.0.1 ${newcomer ? 'got in' : `refused (${ctx.pool.describeCodes()})`}`,
      );
      if (!newcomer) {
        ctx.violation(
          'a newcomer from another address was refused while one address held every session',
        );
      }
      newcomer?.peer.destroy();
    },
  },
  {
    id: 'token-replay',
    family: 'sessions',
    label: 'token replay: resume with the first token after the owner resumed',
    seconds: (quick) => (quick ? 2 : 4),
    async run(ctx) {
      const rounds = ctx.quick ? 5 : 20;
      let accepted = 0;
      let rotated = 0;
      let superseded = 0;
      let done = 0;
      for (let i = 0; i < rounds && performance.now() < ctx.deadline; i++) {
        const first = await newSession(ctx);
        if (!first) continue;
        first.peer.destroy();
        // The owner comes back with its token...
        const owner = await ctx.pool.open();
        const resumed = await owner.handshake(resumeOf(first.welcome));
        if (!resumed?.resumed) {
          owner.destroy();
          continue;
        }
        if (!same(resumed.token, first.welcome.token)) rotated++;
        // It sends a frame right after its WELCOME, as a client should (PROTOCOL.md 6.3):
        // the old token then stops working; before, it would still resume (a client
        // whose link broke before it read the WELCOME must not lose its session).
        await owner.write(encodePing(1, 1));
        await owner.waitUntil(() => owner.pongs > 0, 1000);
        // ...and someone replays the first token (from a log, a capture).
        const thief = await ctx.pool.open();
        const stolen = await thief.handshake(resumeOf(first.welcome));
        done++;
        if (stolen?.resumed) {
          accepted++;
          if (await owner.waitUntil(() => owner.closeCode !== null, 1000)) superseded++;
        }
        owner.destroy();
        thief.destroy();
      }
      ctx.note(
        `${done} rounds: tokens rotated on resume ${rotated}/${done}; replays accepted ${accepted} (owner superseded ${superseded})`,
      );
      if (accepted > 0)
        ctx.violation(`a replayed resume token was accepted ${accepted}/${done} times`);
    },
  },
  {
    id: 'last-received-max',
    family: 'sessions',
    label: 'resume with lastReceived = 2^53 - 1',
    seconds: (quick) => (quick ? 2 : 4),
    async run(ctx) {
      const rounds = ctx.quick ? 3 : 10;
      let accepted = 0;
      let done = 0;
      const outcomes = new Map<string, number>();
      for (let i = 0; i < rounds && performance.now() < ctx.deadline; i++) {
        const s = await newSession(ctx);
        if (!s) continue;
        // Three messages out and three echoes back, never acknowledged.
        for (let seq = 1; seq <= 3; seq++) await s.peer.write(encodeData(seq, Buffer.from('m')));
        await s.peer.waitUntil(() => s.peer.lastData >= 3, 2000);
        s.peer.destroy();
        const liar = await ctx.pool.open();
        const w = await liar.handshake(resumeOf(s.welcome, Number.MAX_SAFE_INTEGER));
        done++;
        let outcome: string;
        if (w?.resumed) {
          accepted++;
          // Does the session still work after the lie?
          await liar.write(encodeData(w.lastReceived + 1, Buffer.from('n')));
          const echoed = await liar.waitUntil(() => liar.lastData > 0 || liar.closed, 1000);
          outcome = `resumed, then ${liar.closeCode !== null ? `CLOSE ${liar.closeCode}` : echoed && liar.lastData > 0 ? `echo seq ${liar.lastData}` : 'silence'}`;
        } else {
          outcome =
            liar.closeCode !== null ? `CLOSE ${liar.closeCode}` : w ? 'new session' : 'closed';
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        liar.destroy();
      }
      ctx.note(
        `${done} resumes after 3 echoes: ${[...outcomes].map(([o, n]) => `${o} x${n}`).join(', ')}`,
      );
      if (accepted > 0) {
        ctx.violation(
          `a resume acknowledging messages never sent was accepted ${accepted}/${done} times`,
        );
      }
    },
  },
  {
    id: 'churn',
    family: 'sessions',
    label: 'connection churn: handshakes ended by CLOSE, FIN, RST or nothing',
    seconds: (quick) => (quick ? 2 : 5),
    async run(ctx) {
      const cap = ctx.quick ? 500 : 3000;
      let n = 0;
      const endings = [0, 0, 0, 0];
      await runLanes(10, ctx, async () => {
        if (n >= cap) return false;
        n++;
        const kind = randomInt(4);
        endings[kind]!++;
        const peer = await ctx.pool.open();
        if (kind === 3) {
          peer.destroy(); // gone before the HELLO
          return true;
        }
        await peer.handshake();
        if (kind === 0) {
          await peer.write(encodeClose(1000, 'bye'));
          peer.end();
        } else if (kind === 1) peer.end();
        else peer.destroy();
        return true;
      });
      ctx.note(
        `${n} connections (CLOSE ${endings[0]}, FIN ${endings[1]}, RST ${endings[2]}, before HELLO ${endings[3]}); attacker got ${ctx.pool.describeCodes()}`,
      );
    },
  },
];
