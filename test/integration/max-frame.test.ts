/**
 * Each end's announced maxFrame (PROTOCOL.md 2, 3.1, 3.2): a sender refuses a message the
 * peer cannot take when it is handed over (nothing enters the replay buffer); a client
 * holding such a message from before its first WELCOME ends for good and hands it back;
 * a frame over the server's maxFrame gets CLOSE(FRAME_TOO_LARGE), final, and its session
 * is gone; a peer announcing a small maxFrame never receives a larger frame, CLOSE included.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SessionLostEvent } from '../../src/connection.js';
import { HeartlineError, RequestError } from '../../src/errors.js';
import type { CloseInfo } from '../../src/link.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { encodeData, encodeRequest } from '../../src/protocol/codec.js';
import { type CloseFrame, FrameType, ReplyStatus } from '../../src/protocol/frames.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor, withTimeout } from '../support/wait.js';

const SERVER_MAX = 4096;
/** The largest DATA payload the server takes: maxFrame minus type and seq. */
const MAX_DATA = SERVER_MAX - 9;

function isCode(code: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof HeartlineError, `expected a HeartlineError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

function closeOf(peer: RawPeer): CloseFrame | undefined {
  return peer.frames.find((f): f is CloseFrame => f.type === FrameType.CLOSE);
}

test('after the handshake a message over the server maxFrame is refused at once; nothing is buffered', async (t) => {
  const { server, port } = await startServer(t, { maxFrame: SERVER_MAX });
  const received: number[] = [];
  server.on('connection', (conn) =>
    conn.on('message', (data, info) => {
      received.push(data.length);
      if (info.isRequest) info.reply('ok');
    }),
  );
  const client = startClient(t, { port });
  await opened(client);

  const before = client.unackedCount;
  const bytes = client.bufferedBytes;
  assert.throws(() => client.send(Buffer.alloc(MAX_DATA + 1)), isCode('HL_ERR_FRAME_TOO_LARGE'));
  assert.throws(
    () => client.send(Buffer.alloc(MAX_DATA + 1), () => assert.fail('callback of a refused send')),
    isCode('HL_ERR_FRAME_TOO_LARGE'),
  );
  await assert.rejects(
    client.sendAcked(Buffer.alloc(SERVER_MAX * 2)),
    isCode('HL_ERR_FRAME_TOO_LARGE'),
  );
  assert.equal(client.unackedCount, before, 'nothing entered the replay buffer');
  assert.equal(client.bufferedBytes, bytes);

  // A request's frame has its key in it too: 11 + key bytes of overhead.
  const key = 'k'.repeat(10);
  const tooLarge = await client
    .request(Buffer.alloc(SERVER_MAX - 11 - key.length + 1), { idempotencyKey: key })
    .catch((e: unknown) => e);
  assert.ok(tooLarge instanceof RequestError);
  assert.equal(tooLarge.code, 'HL_ERR_FRAME_TOO_LARGE');
  assert.equal(tooLarge.mayHaveBeenHandled, false);
  assert.equal(client.unackedCount, before);
  assert.equal(client.pendingRequests, 0);

  // Exactly at the limit both go through.
  client.send(Buffer.alloc(MAX_DATA));
  const reply = await client.request(Buffer.alloc(SERVER_MAX - 11 - key.length), {
    idempotencyKey: key,
  });
  assert.equal(reply.toString(), 'ok');
  await waitFor(() => received.length === 2);
  assert.deepEqual(received, [MAX_DATA, SERVER_MAX - 11 - key.length]);
  assert.equal(client.state, 'healthy');
  assert.equal(client.stats.links, 1);
});

test('a peer announcing a larger maxFrame does not raise our own: send() stays bounded by it', async (t) => {
  const { port } = await startServer(t); // announces the default, 1 MiB
  const client = startClient(t, { servers: `127.0.0.1:${port}`, maxFrame: 4096 });
  await opened(client);
  assert.throws(
    () => client.send(Buffer.alloc(4096)),
    (err: HeartlineError) => err.code === 'HL_ERR_FRAME_TOO_LARGE',
  );
  assert.equal(client.unackedCount, 0);
  assert.equal(client.send(Buffer.alloc(4096 - 9)), true, 'exactly at our own limit');
});

test("a reply too large for the requester's maxFrame comes back as HL_ERR_REMOTE saying so", async (t) => {
  const { server, port } = await startServer(t);
  server.on('connection', (conn) =>
    conn.on('message', (_data, info) => info.reply(Buffer.alloc(10_000))),
  );
  const client = startClient(t, { port, maxFrame: 1024 });
  await opened(client);
  const err = await client.request('big answer please').catch((e: unknown) => e);
  assert.ok(err instanceof RequestError);
  assert.equal(err.code, 'HL_ERR_REMOTE');
  assert.equal(err.mayHaveBeenHandled, true);
  assert.match(err.message, /10000 bytes exceeds/);
  assert.equal(client.state, 'healthy');
});

test('a message queued before the first WELCOME that the server cannot take ends the client: frame-too-large, final, handed back', async (t) => {
  const { server, port } = await startServer(t, { maxFrame: SERVER_MAX });
  let received = 0;
  server.on('connection', (conn) => conn.on('message', () => received++));
  const client = startClient(t, { port });
  const events: string[] = [];
  client.on('reconnecting', () => events.push('reconnecting'));
  client.on('open', () => events.push('open'));
  const lost = onceEvent(client, 'session-lost', { timeout: 10_000 });
  const closed = onceEvent(client, 'close', { timeout: 10_000 });
  // Checked against the client's own maxFrame (1 MiB) when queued: accepted for now.
  assert.equal(client.state, 'connecting');
  client.send('small first');
  client.send(Buffer.alloc(MAX_DATA + 100, 1));
  client.send('small after');

  const [event] = (await lost) as [SessionLostEvent];
  const [info] = (await closed) as [CloseInfo];
  assert.equal(info.reason, 'frame-too-large');
  assert.equal(info.error?.code, 'HL_ERR_FRAME_TOO_LARGE');
  assert.deepEqual(
    event.unacked.map((m) => m.length),
    [11, MAX_DATA + 100, 11],
    'every unsent message is handed back, in order',
  );
  assert.equal(client.closed, true);
  // Final: no reconnect, however long we look.
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(events, ['open']);
  assert.equal(client.stats.links, 1);
  assert.equal(received, 0, 'nothing was sent to the server');
  await waitFor(() => server.connections.size === 0, { message: 'the server kept the session' });
  await assert.rejects(
    client.ready().then(() => client.sendAcked('x')),
    isCode('HL_ERR_CONNECTION_CLOSED'),
  );
});

test('a raw peer sending a frame over the server maxFrame gets CLOSE(1004); its session is discarded', async (t) => {
  const { server, port } = await startServer(t, { maxFrame: SERVER_MAX, sessionTtl: 30_000 });
  const closes: CloseInfo[] = [];
  const disconnects: CloseInfo[] = [];
  server.on('connection', (conn: ServerConnection) => {
    conn.on('close', (info) => closes.push(info));
    conn.on('disconnect', (info) => disconnects.push(info));
  });
  const peer = await RawPeer.connect(t, port);
  const welcome = await peer.handshake();
  if (welcome.type !== FrameType.WELCOME) assert.fail(`got frame type ${welcome.type}`);
  assert.equal(welcome.maxFrame, SERVER_MAX, 'the WELCOME announces the server maxFrame');
  peer.socket.write(encodeData(1, Buffer.alloc(10)));
  // Only the length prefix of the big frame: it is refused before its body arrives.
  const header = encodeData(2, Buffer.alloc(SERVER_MAX)).subarray(0, 5);
  peer.socket.write(header);
  await waitFor(() => closeOf(peer) !== undefined, { message: 'no CLOSE' });
  assert.equal(closeOf(peer)!.code, CloseCode.FRAME_TOO_LARGE);
  await waitFor(() => peer.closed, { message: 'the server kept the socket' });
  await waitFor(() => closes.length === 1);
  assert.equal(closes[0]!.reason, 'frame-too-large');
  assert.deepEqual(disconnects, [], 'a final close, not a lost link');
  assert.equal(server.connections.size, 0);

  // Its token resumes nothing: a new session.
  const again = await RawPeer.connect(t, port);
  const answer = await again.handshake({
    resume: { sessionId: welcome.sessionId, token: welcome.token, lastReceived: 0 },
  });
  if (answer.type !== FrameType.WELCOME) assert.fail(`got frame type ${answer.type}`);
  assert.equal(answer.resumed, false);
  assert.notDeepEqual(Buffer.from(answer.sessionId), Buffer.from(welcome.sessionId));
});

test('a raw client announcing maxFrame 64 never receives a frame above 64 bytes, CLOSE included', async (t) => {
  const { server, port } = await startServer(t);
  const outcomes: string[] = [];
  const accepted = new Promise<ServerConnection>((resolve) =>
    server.once('connection', (conn) => {
      conn.on('message', (data, info) => {
        if (info.isRequest) {
          // Too large for the requester: answered with REPLY(ERROR), its message cut to fit.
          if (data.toString() === 'q') info.reply(Buffer.alloc(1000));
          else info.fail(`refusé: ${'é'.repeat(100)}`);
          return;
        }
        try {
          conn.send(Buffer.alloc(100));
          outcomes.push('sent');
        } catch (err) {
          outcomes.push((err as HeartlineError).code);
        }
        conn.send(data); // an echo of at most 55 bytes fits
      });
      resolve(conn);
    }),
  );
  const peer = await RawPeer.connect(t, port);
  const raw: Buffer[] = [];
  peer.socket.on('data', (chunk: Buffer) => raw.push(chunk));
  const welcome = await peer.handshake({ maxFrame: 64 });
  assert.equal(welcome.type, FrameType.WELCOME);
  const conn = await withTimeout(accepted);

  peer.socket.write(encodeData(1, Buffer.from('hi')));
  await waitFor(() => peer.frames.some((f) => f.type === FrameType.DATA));
  assert.deepEqual(outcomes, ['HL_ERR_FRAME_TOO_LARGE']);
  await assert.rejects(conn.request(Buffer.alloc(100)), isCode('HL_ERR_FRAME_TOO_LARGE'));

  peer.socket.write(encodeRequest(2, Buffer.alloc(0), Buffer.from('q')));
  await waitFor(() => peer.frames.some((f) => f.type === FrameType.REPLY));
  const reply = peer.frames.find((f) => f.type === FrameType.REPLY);
  assert.ok(reply?.type === FrameType.REPLY);
  assert.equal(reply.status, ReplyStatus.ERROR);
  assert.equal(reply.requestSeq, 2);
  assert.match(Buffer.from(reply.payload).toString(), /^the reply of 1000 bytes exceeds/);

  // A long failure message is cut too, at a character boundary (still valid UTF-8).
  peer.socket.write(encodeRequest(3, Buffer.alloc(0), Buffer.from('fail')));
  await waitFor(() => peer.frames.filter((f) => f.type === FrameType.REPLY).length === 2);
  const failed = peer.frames.filter((f) => f.type === FrameType.REPLY)[1];
  assert.ok(failed?.type === FrameType.REPLY);
  assert.equal(failed.status, ReplyStatus.ERROR);
  const text = new TextDecoder('utf-8', { fatal: true }).decode(failed.payload);
  assert.match(text, /^refusé: é+$/);
  assert.ok(failed.payload.length >= 64 - 18 - 1, `cut to ${failed.payload.length} bytes`);

  conn.close(CloseCode.NORMAL, `a very long goodbye: ${'é'.repeat(200)}`);
  await waitFor(() => closeOf(peer) !== undefined, { message: 'no CLOSE' });
  assert.equal(closeOf(peer)!.code, CloseCode.NORMAL);
  assert.match(closeOf(peer)!.reason, /^a very long goodbye: é+$/, 'cut at a character boundary');

  // Every frame on the wire, by its length prefix.
  const bytes = Buffer.concat(raw);
  const lengths: number[] = [];
  for (let at = 0; at + 4 <= bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    lengths.push(length);
    at += 4 + length;
  }
  assert.ok(lengths.length >= 4, `frames: ${lengths.join(', ')}`);
  assert.equal(
    lengths.reduce((sum, l) => sum + 4 + l, 0),
    bytes.length,
    'whole frames only',
  );
  for (const length of lengths) assert.ok(length <= 64, `a frame of length ${length}`);
  t.diagnostic(`frame lengths: ${lengths.join(', ')}`);
});
