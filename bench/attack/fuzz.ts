/**
 * Random bytes: streams of pure noise, noise after a valid HELLO, streams of small frames
 * with random types and payloads, and valid HELLOs with random bytes flipped, each in
 * random pieces. A seeded generator makes a run repeatable (the seed is in the notes).
 */

import { randomInt } from 'node:crypto';
import type { Attack } from './harness.js';
import { helloBytes, runLanes } from './raw.js';

/** mulberry32: a small seeded generator (bench code; not for secrets). */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KINDS = ['noise', 'hello+noise', 'random frames', 'mutated hello'] as const;

/** One fuzz input of `kind` drawn from `rnd`. */
function input(kind: (typeof KINDS)[number], rnd: () => number): Buffer {
  const int = (n: number) => Math.floor(rnd() * n);
  const noise = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  switch (kind) {
    case 'noise':
      return noise(1 + int(4096));
    case 'hello+noise':
      return Buffer.concat([helloBytes({ clientId: 'fuzz' }), noise(1 + int(4096))]);
    case 'random frames': {
      const frames: Buffer[] = [helloBytes()];
      for (let i = 0, n = 1 + int(20); i < n; i++) {
        const body = noise(int(64));
        const head = Buffer.alloc(5);
        head.writeUInt32BE(1 + body.length, 0);
        head[4] = int(10);
        frames.push(head, body);
      }
      return Buffer.concat(frames);
    }
    case 'mutated hello': {
      const hello = helloBytes({ clientId: 'fuzz', traceId: 'mutated' });
      for (let i = 0, n = 1 + int(4); i < n; i++) hello[int(hello.length)] = int(256);
      return hello;
    }
  }
}

/** Every attack of this family. */
export const fuzzAttacks: Attack[] = [
  {
    id: 'fuzz',
    family: 'fuzz',
    label: 'fuzz: random bytes, random frames, mutated HELLOs',
    seconds: (quick) => (quick ? 2 : 8),
    async run(ctx) {
      const seed = randomInt(1, 2 ** 31);
      const rnd = generator(seed);
      const counts = new Map<string, number>();
      await runLanes(8, ctx, async () => {
        const kind = KINDS[Math.floor(rnd() * KINDS.length)]!;
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
        const bytes = input(kind, rnd);
        const peer = await ctx.pool.open();
        // In random pieces, so that every split point of the decoder is met.
        for (let o = 0; o < bytes.length && !peer.closed; ) {
          const n = 1 + Math.floor(rnd() * 512);
          await peer.write(bytes.subarray(o, o + n));
          o += n;
        }
        await peer.waitClosed(300);
        peer.destroy();
        return true;
      });
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      ctx.note(
        `seed ${seed}: ${total} inputs (${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')}); attacker got ${ctx.pool.describeCodes()}`,
      );
    },
  },
];
