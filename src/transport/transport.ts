/**
 * What a link needs from a byte stream, and nothing more: the seam between the link (the
 * codec, the heartbeat, the close handshake) and whatever carries its bytes.
 *
 * A `net.Socket` or `tls.TLSSocket` satisfies it as it is, structurally: the link holds
 * the socket itself, with no wrapper object per connection (an idle connection's memory
 * is what the server scales by). Another transport (the in-memory pair of
 * `./memory.ts`, a WebSocket later) implements the same members with the same meaning.
 *
 * Tuning that belongs to one kind of stream (TCP's Nagle, keepalive and user timeout) is
 * not part of it: the link subclass made for that stream applies it (src/tcp-link.ts).
 */

/** The events a link listens to; each listener is called with the transport as `this`. */
export interface TransportEvents {
  /** Bytes arrived (while reading: not between pause() and resume()). */
  data: (chunk: Buffer) => void;
  /** The peer finished sending (TCP FIN); writing may go on until end(). */
  end: () => void;
  /** The stream failed; 'close' follows. The error's `code` is an errno (ECONNRESET...). */
  error: (err: Error) => void;
  /** The stream is gone for good, after end, error or destroy: emitted once. */
  close: () => void;
  /** Everything written was taken after write() had returned false. */
  drain: () => void;
  /**
   * A stream that was still connecting when the link took it is connected now (its
   * remote address is known). One that is connected from the start never emits it.
   */
  connect: () => void;
}

/**
 * A bidirectional byte stream as the link uses it. Writes are queued in order and never
 * call back into the writer synchronously: what the peer sends arrives on a later turn
 * as 'data'.
 */
export interface Transport {
  /**
   * Queues `bytes` for the peer, in order. The transport keeps the buffer until it has
   * sent it: the caller must not change it afterwards. False when the queue reached the
   * transport's high-water mark ('drain' follows once it is empty).
   */
  write(bytes: Uint8Array): boolean;
  /** Starts collecting writes to hand them on together at {@link uncork} (may do nothing). */
  cork(): void;
  /** Hands on what was written since {@link cork}. */
  uncork(): void;
  /** Sends the end of the stream after what is queued; the peer gets 'end'. */
  end(): unknown;
  /** Closes at once, dropping what is queued; 'close' follows. */
  destroy(): unknown;
  /** Stops emitting 'data'; the peer is pushed back on once the transport's buffers fill. */
  pause(): unknown;
  /** Emits 'data' again. */
  resume(): unknown;
  /** Lets the process exit while this transport is open (as `net.Socket.unref`). */
  unref(): unknown;
  /** Keeps the process alive while this transport is open again (as `net.Socket.ref`). */
  ref(): unknown;
  /** Bytes written and not yet taken by the network or the peer. */
  readonly writableLength: number;
  /** False once the stream ended or failed: a write would be lost. */
  readonly writable: boolean;
  /** True once destroyed or closed. */
  readonly destroyed: boolean;
  /**
   * The peer's address (undefined while connecting, and possibly once closed: read it
   * early). A transport without ports reports the name of its peer.
   */
  readonly remoteAddress?: string | undefined;
  /** The peer's port, where there is one. */
  readonly remotePort?: number | undefined;
  on<E extends keyof TransportEvents>(event: E, listener: TransportEvents[E]): unknown;
  once<E extends keyof TransportEvents>(event: E, listener: TransportEvents[E]): unknown;
}
