/**
 * Turning a socket away before any link owns it: admission control, a refused client
 * certificate, the worker-pool primary. Apart from the link, this is the one place that
 * writes a frame to a socket, so every refusal closes the same way.
 */

import { closeReasonFor, encodeClose } from '../protocol/codec.js';
import { MIN_MAX_FRAME } from '../protocol/frames.js';
import type { TimingWheel } from '../time/wheel.js';

/** How long a refused socket may take to read its CLOSE and close its side (ms). */
export const REFUSE_GRACE_MS = 1000;

/** The CLOSE frame a refusal writes. */
export interface RefusalClose {
  code: number;
  reason: string;
  /** Retry-after hint in ms (CLOSE(overloaded)); 0 or absent for none. */
  retryAfter?: number;
}

/**
 * What a refusal needs of the stream it turns away: a `net.Socket` as it is, or any
 * transport a link could run on (src/transport/transport.ts, of the same layer, so named
 * here by shape).
 */
export interface RefusedStream {
  write(bytes: Uint8Array): boolean;
  end(): unknown;
  destroy(): unknown;
  resume(): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * Writes CLOSE(`close`) and half-closes (`close` null: the FIN alone, for a peer that
 * expects TLS and could not read a frame), reading and dropping whatever the peer still
 * sends so that its FIN is seen and the close is a FIN, not a reset that could destroy
 * the CLOSE in flight. The socket is destroyed if the peer has not closed within
 * {@link REFUSE_GRACE_MS}. Errors after this are the peer's (it may reset first): ignored.
 */
export function refuseSocket(
  socket: RefusedStream,
  wheel: TimingWheel,
  close: RefusalClose | null,
): void {
  socket.on('error', ignore);
  const grace = wheel.timer(() => socket.destroy());
  socket.once('close', () => grace.cancel());
  grace.arm(REFUSE_GRACE_MS);
  socket.resume();
  // write() then end() is what a socket's end(bytes) does.
  if (close !== null) {
    socket.write(encodeClose(close.code, fitReason(close.reason), close.retryAfter ?? 0));
  }
  socket.end();
}

/**
 * The peer's maxFrame is not known before its HELLO was read: a refusal's CLOSE fits the
 * smallest one (PROTOCOL.md 2), its reason cut at a character boundary.
 */
export function fitReason(reason: string): string {
  return closeReasonFor(reason, MIN_MAX_FRAME);
}

function ignore(): void {
  // the refusal has been reported already
}
