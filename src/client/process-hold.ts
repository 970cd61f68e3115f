/**
 * What keeps the process alive while a client still has work for the user. Every timer
 * of the library is unref'd (housekeeping must never hold a process open), so a client
 * waiting out its backoff between two attempts has no handle of its own: without this,
 * a script would exit 0 in the middle of a reconnect with its messages unacknowledged.
 * One ref'd handle serves every client of the process, counted, so that a thousand
 * clients cost one timer.
 */

let holders = 0;
let handle: NodeJS.Timeout | null = null;

/** The longest delay a Node timer takes (about 24.8 days): the handle almost never fires. */
const IDLE_MS = 2 ** 31 - 1;

function idle(): void {}

/** One more holder: the process stays alive until every holder has released. */
export function holdProcess(): void {
  if (holders++ === 0) handle = setInterval(idle, IDLE_MS);
}

/** One holder fewer: the last one lets the process exit (if nothing else holds it). */
export function releaseProcess(): void {
  if (holders === 0) return;
  if (--holders === 0 && handle !== null) {
    clearInterval(handle);
    handle = null;
  }
}

/** @internal How many clients hold the process (tests). */
export function processHolders(): number {
  return holders;
}
