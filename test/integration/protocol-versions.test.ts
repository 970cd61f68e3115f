/**
 * Version negotiation (PROTOCOL.md 5.5): a version 2 server serves version 1 clients as
 * version 1 (WELCOME without maxFrame, no REQUEST or REPLY), a session keeps the version
 * it began with, and a version it does not speak is refused, final. The client's side:
 * a WELCOME naming another version than its HELLO ends it with HL_ERR_UNSUPPORTED_VERSION.
 */

import assert from 'node:assert/strict';
import { createServer as netServer, type Socket } from 'node:net';
import { test } from 'node:test';
import type { ReconnectingEvent } from '../../src/connection.js';
import { RequestError } from '../../src/errors.js';
import type { CloseInfo } from '../../src/link.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { encodeData, encodeRequest } from '../../src/protocol/codec.js';
import { type CloseFrame, type Frame, FrameType } from '../../src/protocol/frames.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { helloBytes, RawPeer, startClient, startServer, welcomeBytes } from '../support/peers.js';
import { onceEvent, waitFor, withTimeout } from '../support/wait.js';

function closeOf(peer: RawPeer): CloseFrame | undefined {
  return peer.frames.find((f): f is CloseFrame => f.type === FrameType.CLOSE);
}

const texts = (frames: Frame[]): string[] =>
  frames
    .filter((f) => f.type === FrameType.DATA)
    .map((f) => (f.type === FrameType.DATA ? Buffer.from(f.payload).toString() : ''));

/** A raw peer's first bytes as they came: the WELCOME's exact size on the wire. */
function firstFrameBytes(raw: Buffer[]): number {
  const bytes = Buffer.concat(raw);
  return 4 + bytes.readUInt32BE(0);
}

test('a version 1 client gets a version 1 WELCOME of 59 bytes and an echo of its DATA', async (t) => {
  const { server, port } = await startServer(t);
  const conns: ServerConnection[] = [];
  server.on('connection', (conn) => {
    conns.push(conn);
    conn.on('message', (m) => conn.send(m));
  });
  const peer = await RawPeer.connect(t, port);
  const raw: Buffer[] = [];
  peer.socket.on('data', (chunk: Buffer) => raw.push(chunk));
  const welcome = await peer.handshake({ version: 1 });
  if (welcome.type !== FrameType.WELCOME) assert.fail(`got frame type ${welcome.type}`);
  assert.equal(welcome.version, 1);
  assert.equal(firstFrameBytes(raw), 59, 'WELCOME of version 1: length 55, no maxFrame');
  assert.equal(Buffer.concat(raw).readUInt32BE(0), 55);
  assert.equal(conns[0]!.protocolVersion, 1);

  peer.socket.write(encodeData(1, Buffer.from('hello v1')));
  await waitFor(() => texts(peer.frames).length === 1, { message: 'no echo' });
  assert.deepEqual(texts(peer.frames), ['hello v1']);
  assert.equal(closeOf(peer), undefined);
});

test("on a version 1 connection the server's request() rejects HL_ERR_NOT_SUPPORTED, and a REQUEST frame is a protocol error", async (t) => {
  const { server, port } = await startServer(t);
  const accepted = new Promise<ServerConnection>((resolve) => server.once('connection', resolve));
  const delivered: string[] = [];
  server.on('connection', (conn) => conn.on('message', (m) => delivered.push(m.toString())));
  const peer = await RawPeer.connect(t, port);
  await peer.handshake({ version: 1 });
  const conn = await withTimeout(accepted);

  const err = await conn.request('status?').catch((e: unknown) => e);
  assert.ok(err instanceof RequestError, String(err));
  assert.equal(err.code, 'HL_ERR_NOT_SUPPORTED');
  assert.equal(err.mayHaveBeenHandled, false);
  assert.equal(conn.unackedCount, 0, 'nothing was queued');
  assert.equal(conn.pendingRequests, 0);

  const lost = onceEvent(conn, 'disconnect');
  // REQUEST is not a frame of version 1: an unknown frame.
  peer.socket.write(encodeRequest(1, Buffer.alloc(0), Buffer.from('q')));
  await waitFor(() => closeOf(peer) !== undefined, { message: 'no CLOSE' });
  assert.equal(closeOf(peer)!.code, CloseCode.PROTOCOL_ERROR);
  const [info] = (await lost) as [CloseInfo];
  assert.equal(info.error?.code, 'HL_ERR_UNKNOWN_FRAME');
  assert.deepEqual(delivered, []);
});

test('a session keeps its version: a version 2 resume of a version 1 session gets a new session', async (t) => {
  const { server, port } = await startServer(t, { sessionTtl: 30_000 });
  const conns: ServerConnection[] = [];
  server.on('connection', (conn) => {
    conns.push(conn);
    conn.on('message', (m) => conn.send(m));
  });
  const first = await RawPeer.connect(t, port);
  const welcome = await first.handshake({ version: 1 });
  if (welcome.type !== FrameType.WELCOME) assert.fail(`got frame type ${welcome.type}`);
  first.socket.write(encodeData(1, Buffer.from('one')));
  await waitFor(() => texts(first.frames).length === 1);
  const gone = onceEvent(conns[0]!, 'disconnect');
  first.socket.destroy();
  await gone;

  const upgraded = await RawPeer.connect(t, port);
  const answer = await upgraded.handshake({
    version: 2,
    resume: { sessionId: welcome.sessionId, token: welcome.token, lastReceived: 1 },
  });
  if (answer.type !== FrameType.WELCOME) assert.fail(`got frame type ${answer.type}`);
  assert.equal(answer.resumed, false);
  assert.equal(answer.version, 2);
  assert.notDeepEqual(Buffer.from(answer.sessionId), Buffer.from(welcome.sessionId));
  assert.equal(answer.lastReceived, 0);
  assert.equal(conns.length, 2);
  assert.equal(conns[1]!.protocolVersion, 2);

  // The version 1 session was left as it was: a version 1 resume still finds it.
  assert.equal(conns[0]!.closed, false);
  const back = await RawPeer.connect(t, port);
  const resumed = await back.handshake({
    version: 1,
    resume: { sessionId: welcome.sessionId, token: welcome.token, lastReceived: 1 },
  });
  if (resumed.type !== FrameType.WELCOME) assert.fail(`got frame type ${resumed.type}`);
  assert.equal(resumed.resumed, true);
  assert.equal(resumed.version, 1);
  assert.equal(resumed.lastReceived, 1);
});

test('HELLO of version 3 is answered CLOSE(UNSUPPORTED_VERSION) naming the versions spoken', async (t) => {
  const { server, port } = await startServer(t);
  let sessions = 0;
  server.on('connection', () => sessions++);
  const peer = await RawPeer.connect(t, port);
  peer.socket.write(helloBytes({ version: 3 }));
  await waitFor(() => closeOf(peer) !== undefined, { message: 'no CLOSE' });
  assert.equal(closeOf(peer)!.code, CloseCode.UNSUPPORTED_VERSION);
  assert.match(closeOf(peer)!.reason, /1.*2/);
  assert.deepEqual(
    peer.frames.map((f) => f.type),
    [FrameType.CLOSE],
  );
  await waitFor(() => peer.closed);
  assert.equal(sessions, 0);
});

/** A server played by hand that answers every HELLO with `welcome`; counts the HELLOs. */
async function fakeServer(
  t: Parameters<typeof startServer>[0],
  welcome: Buffer,
): Promise<{ port: number; hellos: () => number }> {
  const sockets: Socket[] = [];
  let hellos = 0;
  const fake = netServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    socket.once('data', () => {
      hellos++;
      socket.write(welcome);
    });
  });
  fake.listen(0, '127.0.0.1');
  await onceEvent(fake, 'listening');
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => fake.close(resolve));
  });
  const address = fake.address();
  assert.ok(address !== null && typeof address === 'object');
  return { port: address.port, hellos: () => hellos };
}

test('a WELCOME of another version than the HELLO asked for ends the client: unsupported-version, no retry', async (t) => {
  const fake = await fakeServer(t, welcomeBytes({ version: 1 }));
  const client = startClient(t, { port: fake.port, backoff: { initialDelay: 10 } });
  const retries: ReconnectingEvent[] = [];
  client.on('reconnecting', (e) => retries.push(e));
  const ready = client.ready().catch((e: unknown) => e);
  const [info] = (await onceEvent(client, 'close', { timeout: 10_000 })) as [CloseInfo];
  assert.equal(info.reason, 'unsupported-version');
  assert.equal(info.error?.code, 'HL_ERR_UNSUPPORTED_VERSION');
  const err = await ready;
  assert.equal((err as RequestError).code, 'HL_ERR_UNSUPPORTED_VERSION');
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(retries, []);
  assert.equal(fake.hellos(), 1);
});

test('a WELCOME with an invalid grant is a failed attempt: the client retries instead of hanging', async (t) => {
  const fake = await fakeServer(t, welcomeBytes({ interval: 1000, timeout: 500 }));
  const client = startClient(t, { port: fake.port, backoff: { initialDelay: 10, maxDelay: 20 } });
  const [event] = (await onceEvent(client, 'reconnecting', { timeout: 10_000 })) as [
    ReconnectingEvent,
  ];
  assert.equal(event.reason, 'protocol-error');
  assert.equal(event.info.error?.code, 'HL_ERR_UNEXPECTED_FRAME');
  await waitFor(() => fake.hellos() >= 2, { message: 'no second attempt' });
  assert.notEqual(client.state, 'healthy');
});
