/**
 * Unsolicited PONGs over real sockets (PROTOCOL.md 7.3): a PONG counts only when it
 * answers a PING its receiver sent, so a peer flooding PONGs with forged timestamps gets
 * no RTT sample, no 'rtt' event and no change to the RTT estimate, on the server and on
 * the client alike, while the connection stays up and its neighbours keep working.
 */

import assert from 'node:assert/strict';
import { createServer as createNetServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { Decoder, encodePing, encodePong } from '../../src/protocol/codec.js';
import { type Frame, FrameType } from '../../src/protocol/frames.js';
import type { ServerConnection } from '../../src/server/server-connection.js';
import { opened, RawPeer, startClient, startServer, welcomeBytes } from '../support/peers.js';
import { onceEvent, waitFor } from '../support/wait.js';

const FLOOD = 100_000;
/** PONGs per write in the bulk part of a flood (the rest go one per write). */
const BATCH = 1000;

/**
 * `FLOOD` PONGs that answer nothing the receiver sent: replays of `replay` (a PING it
 * did send and has had answered), seqs all over the range, and timestamps that claim
 * RTTs from 0 to days (1 µs, 12.6 s before `claimNowMicros`, the far future).
 */
function forgedPongs(replay: { seq: number; timestamp: number }, claimNowMicros: number): Buffer[] {
  const stamps = [1, Math.max(1, claimNowMicros - 12_600_000), claimNowMicros, 2 ** 40];
  const pongs: Buffer[] = [];
  for (let i = 0; i < FLOOD; i++) {
    pongs.push(
      i % 3 === 0
        ? encodePong(replay.seq, replay.timestamp)
        : encodePong((replay.seq + 1 + i) >>> 0, stamps[i % stamps.length]!),
    );
  }
  return pongs;
}

/** Writes the flood: most in batches (decoder path), the last 1000 one per write (fast path). */
async function flood(socket: Socket, pongs: Buffer[]): Promise<void> {
  const single = 1000;
  for (let i = 0; i < pongs.length - single; i += BATCH) {
    const batch = Buffer.concat(pongs.slice(i, Math.min(i + BATCH, pongs.length - single)));
    if (!socket.write(batch)) await onceEvent(socket, 'drain', { timeout: 30_000 });
  }
  for (const pong of pongs.slice(pongs.length - single)) {
    if (!socket.write(pong)) await onceEvent(socket, 'drain', { timeout: 30_000 });
    // Let most of them arrive alone, as a chunk of exactly one PONG.
    await new Promise((r) => setImmediate(r));
  }
}

test('a server ignores a flood of unsolicited PONGs: no rtt events, RTT unchanged, neighbours unaffected', async (t) => {
  const { server, port } = await startServer(t, { interval: 1000, timeout: 3000 });
  const conns: ServerConnection[] = [];
  server.on('connection', (c) => {
    conns.push(c);
    c.on('message', (m) => c.send(m));
  });
  const bystander = startClient(t, { port });
  await opened(bystander);

  const peer = await RawPeer.connect(t, port);
  await peer.handshake();
  await waitFor(() => conns.length === 2);
  const conn = conns[1]!;
  let rttEvents = 0;
  conn.on('rtt', () => rttEvents++);

  // One honest exchange: the server answers our PING and adds its own (the RTT refresh,
  // PROTOCOL.md 7.2), which we answer properly: one real sample.
  peer.socket.write(encodePing(1, 1));
  await waitFor(() => peer.frames.some((f) => f.type === FrameType.PING));
  const serverPing = peer.frames.find((f) => f.type === FrameType.PING)!;
  assert.ok(serverPing.type === FrameType.PING);
  peer.socket.write(encodePong(serverPing.seq, serverPing.timestamp));
  await waitFor(() => rttEvents === 1);
  const rttBefore = conn.rtt;
  assert.ok(rttBefore !== undefined && rttBefore >= 0 && rttBefore < 1000, `rtt ${rttBefore}`);

  await flood(peer.socket, forgedPongs(serverPing, serverPing.timestamp));
  // The server has read the whole flood once it answers the PING that follows it.
  peer.socket.write(encodePing(777, 777));
  await waitFor(() => peer.frames.some((f) => f.type === FrameType.PONG && f.seq === 777), {
    timeout: 30_000,
    message: 'the server did not answer a PING after the flood',
  });

  assert.equal(rttEvents, 1, 'no rtt event came from the flood');
  assert.equal(conn.rtt, rttBefore, 'the RTT estimate did not move');
  const stats = conn.heartbeatStats;
  // Only answers to the server's own PINGs count (it may ping once more while we flood).
  assert.ok(stats.pongsReceived <= stats.pingsSent, JSON.stringify(stats));
  assert.equal(conn.state, 'healthy');
  assert.equal(peer.closed, false);
  assert.ok(!peer.frames.some((f) => f.type === FrameType.CLOSE), 'no CLOSE for PONGs');

  // The bystander still gets its echo.
  const echoed = onceEvent(bystander, 'message', { timeout: 10_000 });
  bystander.send('still here');
  const [message] = (await echoed) as [Buffer];
  assert.equal(message.toString(), 'still here');
  assert.equal(bystander.state, 'healthy');
});

test('a client ignores a flood of unsolicited PONGs from its server, and still times the PONGs that answer its PINGs', async (t) => {
  // A server that speaks the protocol by hand: WELCOME, then the flood, while it answers
  // every PING of the client properly.
  let rawSocket: Socket | null = null;
  let floodDone = false;
  const raw = createNetServer((socket) => {
    rawSocket = socket;
    const decoder = new Decoder();
    let welcomed = false;
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const f of frames) {
        if (f.type === FrameType.HELLO && !welcomed) {
          welcomed = true;
          socket.write(welcomeBytes());
        } else if (f.type === FrameType.PING && floodDone) {
          socket.write(encodePong(f.seq, f.timestamp));
        }
      }
    });
  });
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    rawSocket?.destroy();
    raw.close();
  });
  const address = raw.address();
  assert.ok(address !== null && typeof address === 'object');

  const client = startClient(t, { port: address.port, reconnect: false });
  await opened(client);
  let rttEvents = 0;
  client.on('rtt', () => rttEvents++);
  assert.ok(rawSocket !== null);
  const socket = rawSocket as Socket;
  // Before the client's first PING (1 s after its last send), so that nothing is outstanding.
  await flood(socket, forgedPongs({ seq: 1, timestamp: 1 }, 1));
  assert.equal(rttEvents, 0, 'no rtt event came from the flood');
  assert.equal(client.rtt, undefined);
  assert.equal(client.heartbeatStats.pongsReceived, 0);
  assert.equal(client.state, 'healthy');

  // From now on the server answers PINGs: those PONGs are timed, one sample each.
  floodDone = true;
  await waitFor(() => rttEvents >= 1, { timeout: 10_000, message: 'no RTT sample' });
  assert.ok(client.rtt !== undefined && client.rtt >= 0 && client.rtt < 1000, `rtt ${client.rtt}`);
  assert.ok(rttEvents <= client.heartbeatStats.pingsSent);
  assert.equal(client.state, 'healthy');
});
