/**
 * Test peers: a server on a free loopback port, clients that close themselves after the
 * test, and a raw protocol peer that speaks frames by hand (to freeze it, make it send
 * garbage, or cut it with FIN or RST at a precise moment).
 */

import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { type ClientConnection, type ClientOptions, connect } from '../../src/client/client.js';
import { Decoder, encodeHello, encodeWelcome } from '../../src/protocol/codec.js';
import {
  DEFAULT_MAX_FRAME,
  type Frame,
  type HelloFrame,
  PROTOCOL_VERSION,
  type WelcomeFrame,
} from '../../src/protocol/frames.js';
import { createServer, type Server, type ServerOptions } from '../../src/server/server.js';
import { onceEvent, waitFor } from './wait.js';

/** A HELLO for a new session, with defaults a test overrides field by field. */
export function helloBytes(fields: Partial<Omit<HelloFrame, 'type'>> = {}): Buffer {
  return encodeHello({
    version: PROTOCOL_VERSION,
    interval: 0,
    timeout: 0,
    auth: new Uint8Array(0),
    resume: null,
    clientId: '',
    traceId: '',
    maxFrame: DEFAULT_MAX_FRAME,
    ...fields,
  });
}

/**
 * A WELCOME for a fresh session with a 1 s / 3 s heartbeat (random id and token), for
 * tests that play the server by hand; a test overrides fields as it needs.
 */
export function welcomeBytes(fields: Partial<Omit<WelcomeFrame, 'type'>> = {}): Buffer {
  return encodeWelcome({
    version: PROTOCOL_VERSION,
    resumed: false,
    sessionId: randomBytes(16),
    token: randomBytes(16),
    interval: 1000,
    timeout: 3000,
    lastReceived: 0,
    sessionTtl: 60_000,
    maxFrame: DEFAULT_MAX_FRAME,
    ...fields,
  });
}

/** Starts a server on 127.0.0.1 (a free port by default) and closes it when the test ends. */
export async function startServer(
  t: TestContext,
  options: ServerOptions = {},
  atPort = 0,
): Promise<{ server: Server; port: number }> {
  const server = createServer(options);
  const { port } = await server.listen(atPort, '127.0.0.1');
  t.after(() => server.close());
  return { server, port };
}

/** Connects a client and closes it when the test ends. */
export function startClient(t: TestContext, options: ClientOptions): ClientConnection {
  const conn = connect(options);
  t.after(() => conn.close());
  return conn;
}

/** Resolves once the client completed its handshake. */
export async function opened(conn: ClientConnection, timeout = 5000): Promise<void> {
  if (conn.state === 'healthy') return;
  await onceEvent(conn, 'open', { timeout });
}

/** A peer that speaks the wire protocol by hand. */
export class RawPeer {
  readonly frames: Frame[] = [];
  readonly decoder = new Decoder();
  ended = false;
  closed = false;
  error: Error | null = null;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      try {
        this.frames.push(...this.decoder.push(chunk));
      } catch {
        // a raw peer only records what it could parse
      }
    });
    socket.on('end', () => {
      this.ended = true;
    });
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('close', () => {
      this.closed = true;
    });
  }

  /** Opens a TCP connection; destroyed when the test ends. */
  static async connect(t: TestContext, port: number): Promise<RawPeer> {
    const socket = netConnect({ host: '127.0.0.1', port });
    t.after(() => {
      socket.destroy();
    });
    await onceEvent(socket, 'connect');
    return new RawPeer(socket);
  }

  /** Sends HELLO (optionally resuming a session) and waits for the WELCOME. */
  async handshake(hello: Partial<Omit<HelloFrame, 'type'>> = {}): Promise<Frame> {
    this.socket.write(helloBytes(hello));
    await waitFor(() => this.frames.length > 0, { message: 'no WELCOME' });
    return this.frames[0]!;
  }

  /** Stops reading and sending, leaving the socket open: a frozen peer. */
  freeze(): void {
    this.socket.pause();
  }
}
