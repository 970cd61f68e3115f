/**
 * "Did you mean ...?" for commands, flags and config keys, as git and npm offer: the
 * closest candidate within two edits (insert, delete, substitute, or swap two neighbours:
 * "sever" -> serve, "prot" -> port), or nothing when none is that close.
 */

/** Optimal string alignment distance (Damerau-Levenshtein without repeated edits). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** Edits beyond which a suggestion is more noise than help. */
const MAX_DISTANCE = 2;

/** The candidate closest to `word` within two edits (first one on a tie), or undefined. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = MAX_DISTANCE + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    // A one-letter word is two edits from every two-letter name: suggest only real near-misses.
    if (d < bestDistance && d < Math.max(word.length, c.length)) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** ` (did you mean X?)` when a candidate is close, else the empty string. */
export function didYouMean(
  word: string,
  candidates: Iterable<string>,
  show = (s: string) => s,
): string {
  const c = closest(word, candidates);
  return c === undefined ? '' : ` (did you mean ${show(c)}?)`;
}
