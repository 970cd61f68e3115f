/**
 * Hostile REQUEST and REPLY frames against a real server: an idempotency key past the
 * limit, a REPLY naming a request never sent, a flood of requests whose replies are never
 * acknowledged. Each ends the sender's connection only; a bystander's requests go on.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RequestError } from '../../src/errors.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { encodeReply, encodeRequest } from '../../src/protocol/codec.js';
import { type CloseFrame, FrameType } from '../../src/protocol/frames.js';
import { opened, RawPeer, startClient, startServer } from '../support/peers.js';
import { waitFor } from '../support/wait.js';

async function echoServer(t: Parameters<typeof startServer>[0], options = {}) {
  const { server, port } = await startServer(t, options);
  server.on('connection', (conn) => conn.on('message', (data, info) => info.reply(data)));
  const bystander = startClient(t, { servers: `127.0.0.1:${port}` });
  await opened(bystander);
  return { server, port, bystander };
}

function closeOf(peer: RawPeer): CloseFrame | undefined {
  return peer.frames.find((f): f is CloseFrame => f.type === FrameType.CLOSE);
}

test('an idempotency key over 256 bytes: CLOSE(policy violation), final; a bystander goes on', async (t) => {
  const { port, bystander } = await echoServer(t);
  const peer = await RawPeer.connect(t, port);
  assert.equal((await peer.handshake()).type, FrameType.WELCOME);
  // 256 bytes are fine; 257 are not.
  peer.socket.write(encodeRequest(1, Buffer.alloc(256, 0x61), Buffer.from('ok')));
  await waitFor(() => peer.frames.some((f) => f.type === FrameType.REPLY));
  peer.socket.write(encodeRequest(2, Buffer.alloc(257, 0x61), Buffer.from('no')));
  await waitFor(() => closeOf(peer) !== undefined && peer.ended, { timeout: 5000 });
  assert.equal(closeOf(peer)!.code, CloseCode.POLICY_VIOLATION);
  assert.equal((await bystander.request('still here')).toString(), 'still here');
});

test('a REPLY to a request never sent: CLOSE(protocol error)', async (t) => {
  const { port, bystander } = await echoServer(t);
  const peer = await RawPeer.connect(t, port);
  await peer.handshake();
  peer.socket.write(encodeReply(1, 7, 0, Buffer.from('forged')));
  await waitFor(() => closeOf(peer) !== undefined, { timeout: 5000 });
  assert.equal(closeOf(peer)!.code, CloseCode.PROTOCOL_ERROR);
  assert.equal((await bystander.request('x')).toString(), 'x');
});

test('requests whose replies are never acknowledged: closed at maxBufferedBytes', async (t) => {
  const maxBufferedBytes = 256 * 1024;
  const { server, port, bystander } = await echoServer(t, {
    maxBufferedBytes,
    highWaterMark: 64 * 1024,
  });
  const peer = await RawPeer.connect(t, port);
  await peer.handshake();
  // 4 KiB requests, never an ACK back: the echoed replies pile up in the replay buffer.
  const payload = Buffer.alloc(4096, 1);
  const burst = Buffer.concat(
    Array.from({ length: 200 }, (_, i) => encodeRequest(i + 1, Buffer.alloc(0), payload)),
  );
  peer.socket.write(burst);
  await waitFor(() => closeOf(peer) !== undefined, { timeout: 10_000 });
  assert.equal(closeOf(peer)!.code, CloseCode.POLICY_VIOLATION);
  const replies = peer.frames.filter((f) => f.type === FrameType.REPLY).length;
  assert.ok(replies * (4096 + 160) <= maxBufferedBytes + 4096 + 160, `${replies} replies held`);
  assert.equal((await bystander.request('fine')).toString(), 'fine');
  assert.ok(server.connections.size >= 1);
});

test('a request the replay buffer cannot take rejects unsent, and nothing waits for it', async (t) => {
  const { port } = await startServer(t);
  // Nothing is acknowledged before the handshake: what is queued stays in the buffer.
  const client = startClient(t, {
    servers: `127.0.0.1:${port}`,
    maxBufferedBytes: 8 * 1024,
    highWaterMark: 4 * 1024,
  });
  const first = client.request(Buffer.alloc(6 * 1024));
  await assert.rejects(client.request(Buffer.alloc(6 * 1024)), (err: RequestError) => {
    assert.equal(err.code, 'HL_ERR_BUFFER_FULL');
    assert.equal(err.mayHaveBeenHandled, false);
    return true;
  });
  assert.equal(client.pendingRequests, 1, 'only the first request waits');
  client.close();
  await assert.rejects(first);
});
