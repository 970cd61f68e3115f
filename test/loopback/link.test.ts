/**
 * The Link over a real loopback socket pair, with a stub owner: frames in and out,
 * control frames ahead of paced DATA, write stalls, every way a link closes (and that the
 * owner hears of it exactly once), and the heartbeat and handshake deadlines it runs.
 * Timers run on a FakeClock unless a test says otherwise; socket I/O is real and awaited
 * in real time while fake time stands still.
 */

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect, createServer as netServer, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type HeartlineError, ProtocolError } from '../../src/errors.js';
import { fixedDetector } from '../../src/health/index.js';
import { RTT_REFRESH_INTERVALS } from '../../src/heartbeat.js';
import type { CloseInfo, Link, LinkOwner } from '../../src/link.js';
import { type CommonOptions, heartbeatSettings, resolveCommon } from '../../src/options.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import {
  Decoder,
  encodeAck,
  encodeClose,
  encodeData,
  encodePing,
  encodePong,
} from '../../src/protocol/codec.js';
import { type Frame, FrameType } from '../../src/protocol/frames.js';
import { TcpLink } from '../../src/tcp-link.js';
import { type Clock, systemClock } from '../../src/time/clock.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { TimingWheel } from '../../src/time/wheel.js';
import { waitFor } from '../support/wait.js';

const WRITE_TIMEOUT = 300;
const HANDSHAKE_TIMEOUT = 2000;
const TICK = 10;
/** Link's CLOSE_GRACE_MS: how long a closing link waits for the peer's FIN. */
const CLOSE_GRACE = 1000;
/**
 * How long a check that something did not happen waits in real time for a socket event
 * that would prove it wrong (fake time is advanced first; only I/O can still arrive).
 */
const QUIET_MS = 100;

/** Records everything a link tells its owner. */
class StubOwner implements LinkOwner {
  readonly frames: Frame[] = [];
  readonly liveness: string[] = [];
  readonly rtts: number[] = [];
  readonly closes: CloseInfo[] = [];
  writables = 0;

  onFrame(_link: Link, frame: Frame): void {
    this.frames.push(frame);
  }
  onLiveness(_link: Link, event: 'suspect' | 'alive' | 'dead'): void {
    this.liveness.push(event);
  }
  onRtt(_link: Link, sampleMs: number): void {
    this.rtts.push(sampleMs);
  }
  onWritable(_link: Link): void {
    this.writables++;
  }
  onClose(_link: Link, info: CloseInfo): void {
    this.closes.push(info);
  }
}

/** What the raw peer end of the pair received. */
interface PeerView {
  readonly frames: Frame[];
  bytes: number;
  ended: boolean;
  closed: boolean;
}

/** Decodes everything the peer reads (the peer flows from now on). */
function watch(peer: Socket): PeerView {
  const view: PeerView = { frames: [], bytes: 0, ended: false, closed: false };
  const decoder = new Decoder({ maxFrame: 16 * 1024 * 1024 });
  peer.on('data', (chunk: Buffer) => {
    view.bytes += chunk.length;
    view.frames.push(...decoder.push(chunk));
  });
  peer.on('end', () => {
    view.ended = true;
  });
  peer.on('close', () => {
    view.closed = true;
  });
  return view;
}

interface PairOptions {
  /** The peer keeps its side open after the link's FIN (it must end it itself). */
  peerHalfOpen?: boolean;
}

/** A connected loopback pair: `local` for the Link, `peer` for the test to drive by hand. */
async function socketPair(
  t: TestContext,
  { peerHalfOpen = false }: PairOptions = {},
): Promise<{ local: Socket; peer: Socket }> {
  const server = netServer({ allowHalfOpen: peerHalfOpen });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const local = netConnect({ host: '127.0.0.1', port: address.port });
  await once(local, 'connect');
  const [peer] = await accepted;
  server.close();
  peer.on('error', () => {});
  t.after(() => {
    local.destroy();
    peer.destroy();
  });
  return { local, peer };
}

interface Rig {
  clock: Clock;
  wheel: TimingWheel;
  owner: StubOwner;
  link: Link;
  local: Socket;
  peer: Socket;
}

/** A Link on `local` with a stub owner, timers on `clock` (a FakeClock by default). */
async function rig(
  t: TestContext,
  options: CommonOptions & PairOptions = {},
  clock: Clock = new FakeClock(),
): Promise<Rig> {
  const { local, peer } = await socketPair(t, options);
  const config = resolveCommon(
    {
      writeTimeout: WRITE_TIMEOUT,
      handshakeTimeout: HANDSHAKE_TIMEOUT,
      keepAliveDelay: 0,
      ...options,
      clock,
    },
    clock,
    fixedDetector(),
  );
  const wheel = new TimingWheel(clock, {
    onError: (err) => assert.fail(`a wheel callback threw: ${String(err)}`),
  });
  const owner = new StubOwner();
  const link = new TcpLink(local, config, wheel, owner);
  return { clock, wheel, owner, link, local, peer };
}

function fake(r: Rig): FakeClock {
  assert.ok(r.clock instanceof FakeClock);
  return r.clock;
}

/** Starts the heartbeat with a 1 s / 3 s budget, as a finished handshake would. */
function startBeat(r: Rig): void {
  const settings = heartbeatSettings(1000, 3000);
  r.link.startHeartbeat(settings, fixedDetector()(settings, r.clock.now()));
}

/**
 * Waits for the owner's onClose, then lets every timer that could still fire (close
 * grace, stall, heartbeat) run out and checks that onClose came exactly once and that
 * the link left no timer behind.
 */
async function closedOnce(r: Rig): Promise<CloseInfo> {
  await waitFor(() => r.owner.closes.length > 0, { message: 'the owner never heard onClose' });
  if (r.clock instanceof FakeClock) await r.clock.advanceAsync(4 * CLOSE_GRACE, 50);
  await sleep(QUIET_MS);
  assert.equal(r.owner.closes.length, 1, 'onClose was called more than once');
  assert.equal(r.wheel.size, 0, 'the closed link left timers armed');
  assert.equal(r.link.open, false);
  return r.owner.closes[0]!;
}

/**
 * Writes `bytes` from the peer and waits until the link has read them: the next write
 * then reaches the link as a chunk of its own.
 */
async function writeApart(r: Rig, bytes: Buffer): Promise<void> {
  const target = r.link.stats.bytesIn + bytes.length;
  r.peer.write(bytes);
  await waitFor(() => r.link.stats.bytesIn === target, { message: 'the link never read it' });
}

/** A DATA frame with a payload of `size` bytes. */
function data(seq: number, size: number): Buffer {
  return encodeData(seq, Buffer.alloc(size, seq & 0xff));
}

/** Writes DATA until the socket holds at least `bytes` in user space (the peer not reading). */
async function fillSocket(link: Link, socket: Socket, bytes: number): Promise<number> {
  let seq = 0;
  // Loopback kernel buffers take several MB; past them writes queue in user space.
  while (socket.writableLength < bytes) {
    link.write(data(++seq, 256 * 1024));
    if (seq % 16 === 0) await sleep(1);
    assert.ok(seq < 2000, 'the socket never filled up');
  }
  return seq;
}

describe('Link', () => {
  describe('frames', () => {
    it('answers PING with PONG at once and hands every other frame to the owner', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      startBeat(r);
      r.peer.write(
        Buffer.concat([encodePing(7, 123_456), encodeData(1, Buffer.from('hi')), encodeAck(0)]),
      );
      await waitFor(() => r.owner.frames.length === 2 && view.frames.length === 1);
      assert.deepEqual(
        r.owner.frames.map((f) => f.type),
        [FrameType.DATA, FrameType.ACK],
      );
      assert.deepEqual(view.frames[0], { type: FrameType.PONG, seq: 7, timestamp: 123_456 });
      assert.equal(r.link.stats.framesIn, 3);
      assert.equal(r.link.stats.framesOut, 1);
      assert.equal(r.link.beat?.stats.pingsReceived, 1);
    });

    it('as a server, the PONG it owes carries a PING for its RTT, once per RTT_REFRESH_INTERVALS intervals', async (t) => {
      const r = await rig(t);
      const clock = fake(r);
      const view = watch(r.peer);
      const settings = heartbeatSettings(1000, 3000);
      r.link.startHeartbeat(settings, fixedDetector()(settings, r.clock.now()), 'server');
      r.peer.write(encodePing(1, 5_000));
      await waitFor(() => view.frames.length === 2);
      assert.deepEqual(view.frames[0], { type: FrameType.PONG, seq: 1, timestamp: 5_000 });
      const ping = view.frames[1]!;
      assert.equal(ping.type, FrameType.PING);
      await clock.advanceAsync(30);
      if (ping.type === FrameType.PING) r.peer.write(encodePong(ping.seq, ping.timestamp));
      await waitFor(() => r.owner.rtts.length === 1);
      assert.equal(r.owner.rtts[0], 30);
      // The client keeps leading: PONGs alone until the refresh is due again.
      for (let i = 2; i <= RTT_REFRESH_INTERVALS + 1; i++) {
        await clock.advanceAsync(settings.interval, TICK);
        r.peer.write(encodePing(i, i));
        await waitFor(() => view.frames.length >= i + 1);
      }
      await waitFor(() => view.frames.length === RTT_REFRESH_INTERVALS + 3);
      assert.deepEqual(
        view.frames.map((f) => f.type),
        [
          FrameType.PONG,
          FrameType.PING,
          ...Array(RTT_REFRESH_INTERVALS).fill(FrameType.PONG),
          FrameType.PING,
        ],
      );
      assert.equal(r.link.beat?.stats.pingsSent, 2);
      assert.equal(r.link.beat?.stats.pingsReceived, RTT_REFRESH_INTERVALS + 1);
    });

    it('stamps lastSent and lastReceived with the injected clock', async (t) => {
      const r = await rig(t);
      const clock = fake(r);
      const view = watch(r.peer);
      assert.equal(r.link.lastSent, 0);
      await clock.advanceAsync(1234);
      r.link.write(encodeAck(0));
      assert.equal(r.link.lastSent, 1234);
      await clock.advanceAsync(100);
      r.peer.write(encodeAck(0));
      await waitFor(() => r.owner.frames.length === 1 && view.frames.length === 1);
      assert.equal(r.link.lastReceived, 1334);
      assert.equal(r.link.stats.bytesIn, encodeAck(0).length);
      assert.equal(r.link.stats.bytesOut, encodeAck(0).length);
    });

    it('a PONG gives an RTT sample measured on the clock', async (t) => {
      const r = await rig(t);
      const clock = fake(r);
      const view = watch(r.peer);
      startBeat(r);
      await clock.advanceAsync(1000 + TICK, TICK);
      await waitFor(() => view.frames.length === 1);
      const ping = view.frames[0]!;
      assert.equal(ping.type, FrameType.PING);
      const sentAt = r.link.lastSent;
      await clock.advanceAsync(40);
      if (ping.type === FrameType.PING) r.peer.write(encodePong(ping.seq, ping.timestamp));
      await waitFor(() => r.owner.rtts.length === 1);
      assert.equal(r.owner.rtts[0], clock.now() - sentAt);
      assert.equal(r.link.beat?.rtt.srtt, r.owner.rtts[0]);
    });

    it('a PING is answered the same whole, split across chunks or behind a partial frame', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      startBeat(r);
      // A timestamp above 2^32 exercises both words of the u64.
      const big = 2 ** 40 + 12_345;
      r.peer.write(encodePing(1, big));
      await waitFor(() => view.frames.length === 1);
      // Each part is written only once the link has read the one before, so the parts
      // reach it as separate chunks whatever the timing (a pause would not promise that).
      const split = encodePing(2, big + 1);
      await writeApart(r, split.subarray(0, 6));
      r.peer.write(split.subarray(6));
      await waitFor(() => view.frames.length === 2);
      const dataFrame = data(1, 10);
      await writeApart(r, dataFrame.subarray(0, 5));
      r.peer.write(Buffer.concat([dataFrame.subarray(5), encodePing(3, 7)]));
      await waitFor(() => view.frames.length === 3 && r.owner.frames.length === 1);
      assert.deepEqual(view.frames, [
        { type: FrameType.PONG, seq: 1, timestamp: big },
        { type: FrameType.PONG, seq: 2, timestamp: big + 1 },
        { type: FrameType.PONG, seq: 3, timestamp: 7 },
      ]);
      assert.equal(r.owner.frames[0]!.type, FrameType.DATA);
      assert.equal(r.link.stats.framesIn, 4);
      assert.equal(r.link.beat?.stats.pingsReceived, 3);
    });

    it('a lone PING with a timestamp above 2^53 - 1 is malformed, as any frame is', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      startBeat(r);
      const ping = encodePing(1, 0);
      ping.writeUInt32BE(0x20_0000, 9); // high word of the timestamp: 2^53
      r.peer.write(ping);
      const info = await closedOnce(r);
      assert.equal(info.reason, 'protocol-error');
      assert.ok(info.error instanceof ProtocolError);
      assert.equal(info.error.code, 'HL_ERR_MALFORMED_FRAME');
      await waitFor(() => view.closed);
      assert.deepEqual(
        view.frames.map((f) => f.type),
        [FrameType.CLOSE],
        'no PONG for a malformed PING',
      );
    });

    it('a PING before the heartbeat started is a protocol error', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      r.peer.write(encodePing(1, 1));
      const info = await closedOnce(r);
      assert.equal(info.reason, 'protocol-error');
      assert.equal(info.code, CloseCode.PROTOCOL_ERROR);
      assert.equal((info.error as ProtocolError).code, 'HL_ERR_UNEXPECTED_FRAME');
      await waitFor(() => view.frames.length > 0);
      assert.equal(view.frames[0]!.type, FrameType.CLOSE);
    });
  });

  describe('pacing', () => {
    it('control frames go out ahead of the DATA the owner still holds', async (t) => {
      const r = await rig(t);
      r.peer.pause();
      // An owner that paces DATA the way Connection does: write while writable, resume on onWritable.
      const queue: Buffer[] = [];
      for (let seq = 1; seq <= 400; seq++) queue.push(data(seq, 64 * 1024));
      let nextSeq = 1;
      const flush = (): void => {
        while (queue.length > 0 && r.link.writable) {
          r.link.write(queue.shift()!);
          nextSeq++;
        }
      };
      r.owner.onWritable = () => {
        r.owner.writables++;
        flush();
      };
      // With the peer not reading, keep writing (as onWritable does) until the kernel's
      // buffers are full and bytes queue in the socket itself.
      await waitFor(
        () => {
          flush();
          return !r.link.flushPending && r.local.writableLength >= 64 * 1024;
        },
        { timeout: 10_000, message: 'the socket never filled' },
      );
      flush();
      assert.equal(r.link.writable, false, 'still writable with the peer not reading');
      assert.ok(r.local.writableLength >= 64 * 1024, `${r.local.writableLength} bytes buffered`);
      assert.ok(queue.length > 0, 'the owner wrote everything: the socket never filled');
      const lastDataBeforeAck = nextSeq - 1;

      r.link.write(encodeAck(99));
      const view = watch(r.peer);
      r.peer.resume();
      await waitFor(() => view.frames.length === 401, { timeout: 10_000 });

      const order = view.frames.map((f) => (f.type === FrameType.DATA ? f.seq : 'ack'));
      const ackAt = order.indexOf('ack');
      assert.equal(
        order[ackAt - 1],
        lastDataBeforeAck,
        'the ACK is not right after the DATA written before it',
      );
      assert.equal(
        order[ackAt + 1],
        lastDataBeforeAck + 1,
        'DATA the owner held went out before the ACK',
      );
      assert.deepEqual(
        order.filter((s) => s !== 'ack'),
        Array.from({ length: 400 }, (_, i) => i + 1),
      );
      assert.ok(r.owner.writables >= 1, 'onWritable never called on drain');
      assert.equal(r.link.writable, true);
    });
  });

  describe('write batching', () => {
    /** Counts the writes the link hands to its socket. */
    function countWrites(socket: Socket): { writes: number } {
      const counter = { writes: 0 };
      const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
      socket.write = ((chunk: Buffer) => {
        counter.writes++;
        return write(chunk);
      }) as typeof socket.write;
      return counter;
    }

    const turn = () => new Promise((resolve) => setImmediate(resolve));

    it('frames written in one run of code reach the socket in one write, in order, after it', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      const counter = countWrites(r.local);
      r.link.write(encodeAck(3));
      for (let seq = 1; seq <= 50; seq++) r.link.writeData(seq, Buffer.from(`m${seq}`));
      r.link.write(encodePing(9, 99));
      assert.equal(counter.writes, 0, 'nothing written before the run of code ends');
      assert.equal(r.link.flushPending, true);
      assert.equal(r.link.stats.framesOut, 52, 'frames are counted when written');
      await turn();
      assert.equal(counter.writes, 1);
      assert.equal(r.link.flushPending, false);
      await waitFor(() => view.frames.length === 52);
      assert.deepEqual(view.frames[0], { type: FrameType.ACK, seq: 3 });
      assert.deepEqual(
        view.frames
          .slice(1, 51)
          .map((f) => (f.type === FrameType.DATA ? Buffer.from(f.payload).toString() : '?')),
        Array.from({ length: 50 }, (_, i) => `m${i + 1}`),
      );
      assert.equal(view.frames[51]!.type, FrameType.PING);
      assert.equal(view.bytes, r.link.stats.bytesOut);
    });

    it("replies to a chunk leave in one write at its end, behind the owner's cumulative ACK", async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      const counter = countWrites(r.local);
      let chunks = 0;
      r.local.on('data', () => chunks++);
      let received = 0;
      const asked: number[] = [];
      r.owner.onFrame = (link, frame) => {
        r.owner.frames.push(frame);
        if (frame.type === FrameType.DATA) link.writeData(++received, frame.payload);
      };
      (r.owner as LinkOwner).pendingAck = (link) => {
        assert.equal(link, r.link);
        asked.push(received);
        return received;
      };
      r.peer.write(Buffer.concat(Array.from({ length: 20 }, (_, i) => data(i + 1, 100))));
      await waitFor(() => view.frames.filter((f) => f.type === FrameType.DATA).length === 20);
      assert.equal(counter.writes, chunks, 'one write per chunk received');
      assert.equal(asked.length, chunks, 'the owner was asked for an ACK once per write');
      assert.equal(view.frames[0]!.type, FrameType.ACK, 'the ACK rides in front');
      const acks = view.frames
        .filter((f) => f.type === FrameType.ACK)
        .map((f) => (f as { seq: number }).seq);
      assert.equal(acks.length, chunks);
      assert.equal(acks.at(-1), 20);
      assert.deepEqual(
        view.frames.filter((f) => f.type === FrameType.DATA).map((f) => (f as { seq: number }).seq),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
    });

    it('an owner with no ACK to send leaves nothing in front; flushSoon() alone writes nothing then', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      const counter = countWrites(r.local);
      (r.owner as LinkOwner).pendingAck = () => -1;
      r.link.flushSoon();
      await turn();
      assert.equal(counter.writes, 0, 'an empty batch is not written');
      r.link.writeData(1, Buffer.from('x'));
      await turn();
      await waitFor(() => view.frames.length === 1);
      assert.equal(view.frames[0]!.type, FrameType.DATA);
      assert.equal(view.bytes, r.link.stats.bytesOut);
    });

    it('flushSoon() sends the pending ACK in a write of its own', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      let pending = 5;
      (r.owner as LinkOwner).pendingAck = () => {
        const seq = pending;
        pending = -1;
        return seq;
      };
      r.link.flushSoon();
      await waitFor(() => view.frames.length === 1);
      assert.deepEqual(view.frames, [{ type: FrameType.ACK, seq: 5 }]);
      assert.equal(r.link.stats.framesOut, 1);
    });

    it('frames written before close() leave ahead of the CLOSE, with the last ACK in front', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      (r.owner as LinkOwner).pendingAck = () => 8;
      r.link.writeData(1, Buffer.from('last'));
      r.link.close('local', CloseCode.NORMAL, 'bye');
      await waitFor(() => view.ended);
      assert.deepEqual(
        view.frames.map((f) => f.type),
        [FrameType.ACK, FrameType.DATA, FrameType.CLOSE],
      );
      assert.deepEqual(view.frames[0], { type: FrameType.ACK, seq: 8 });
    });

    it('writeData with a seq out of range throws and leaves nothing behind', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      r.link.writeData(1, Buffer.from('a'));
      assert.throws(() => r.link.writeData(-1, Buffer.from('bad')), /out of range/);
      r.link.writeData(2, Buffer.from('b'));
      await waitFor(() => view.frames.length === 2);
      assert.deepEqual(
        view.frames.map((f) => (f.type === FrameType.DATA ? f.seq : -1)),
        [1, 2],
      );
      assert.equal(r.link.stats.framesOut, 2);
      assert.equal(view.bytes, r.link.stats.bytesOut);
    });
  });

  describe('write stall', () => {
    it("a peer that never reads: 'write-stall' after writeTimeout, not before", async (t) => {
      const r = await rig(t);
      const clock = fake(r);
      r.peer.pause();
      const start = clock.now();
      await fillSocket(r.link, r.local, 1024 * 1024);
      // The last batch has reached the socket before fake time moves.
      await waitFor(() => !r.link.flushPending);
      await clock.advanceAsync(WRITE_TIMEOUT - 1, TICK);
      assert.equal(r.link.open, true, 'stalled before writeTimeout');
      await clock.advanceAsync(1 + TICK, TICK);
      assert.equal(r.link.open, false, 'not stalled one tick after writeTimeout');
      const info = await closedOnce(r);
      assert.equal(info.reason, 'write-stall');
      assert.equal(info.code, CloseCode.WRITE_STALL);
      assert.match(info.message, /no progress for 300 ms/);
      assert.ok(clock.now() >= start + WRITE_TIMEOUT);
    });

    it("a peer that never reads: 'write-stall' on the real clock too", async (t) => {
      const r = await rig(t, {}, systemClock);
      r.peer.pause();
      const start = performance.now();
      await fillSocket(r.link, r.local, 1024 * 1024);
      const info = await closedOnce(r);
      const elapsed = performance.now() - start;
      assert.equal(info.reason, 'write-stall');
      // Generous upper bound: one check at 300 ms, a second if the kernel took bytes meanwhile.
      assert.ok(elapsed >= WRITE_TIMEOUT - 1, `stalled after ${elapsed} ms`);
      assert.ok(elapsed < 2 * WRITE_TIMEOUT + 1000, `stalled only after ${elapsed} ms`);
    });

    it('a buffer that drains cancels the stall timer', async (t) => {
      const r = await rig(t);
      const clock = fake(r);
      r.peer.pause();
      await fillSocket(r.link, r.local, 256 * 1024);
      watch(r.peer);
      r.peer.resume();
      await waitFor(() => r.local.writableLength === 0 && r.owner.writables > 0);
      assert.equal(r.wheel.size, 0, 'the stall timer outlived the drain');
      await clock.advanceAsync(10 * WRITE_TIMEOUT, TICK);
      assert.equal(r.link.open, true);
    });
  });

  describe('closing', () => {
    const cases: Array<[code: number, reason: string, retryAfter: number, error?: string]> = [
      [CloseCode.NORMAL, 'remote', 0],
      [CloseCode.GOING_AWAY, 'going-away', 0],
      [CloseCode.OVERLOADED, 'overloaded', 1500, 'HL_ERR_OVERLOADED'],
      [CloseCode.SESSION_EXPIRED, 'session-expired', 0],
      [CloseCode.AUTH_FAILED, 'auth-failed', 0, 'HL_ERR_AUTH_FAILED'],
      [4321, 'remote', 0],
    ];
    for (const [code, reason, retryAfter, errorCode] of cases) {
      it(`a CLOSE(${code}) from the peer closes with reason '${reason}'`, async (t) => {
        const r = await rig(t);
        const view = watch(r.peer);
        startBeat(r);
        // A frame after the CLOSE in the same chunk is not delivered.
        r.peer.write(
          Buffer.concat([
            encodeClose(code, 'why not', retryAfter),
            encodeData(1, Buffer.from('x')),
          ]),
        );
        const { error, ...info } = await closedOnce(r);
        assert.deepEqual(info, {
          reason,
          code,
          message: 'why not',
          ...(retryAfter > 0 ? { retryAfter } : {}),
        });
        // Closes that are failures carry a typed error; the others none.
        assert.equal((error as HeartlineError | undefined)?.code, errorCode);
        assert.deepEqual(r.owner.frames, [], 'CLOSE or a frame after it reached the owner');
        // The link answered with FIN (and nothing else).
        await waitFor(() => view.ended);
        assert.deepEqual(view.frames, []);
      });
    }

    it('a peer that sends CLOSE but keeps its side open is cut after the grace period', async (t) => {
      const r = await rig(t, { peerHalfOpen: true });
      const clock = fake(r);
      const view = watch(r.peer);
      r.peer.write(encodeClose(CloseCode.GOING_AWAY, 'bye'));
      await waitFor(() => view.ended);
      await sleep(QUIET_MS);
      assert.equal(r.owner.closes.length, 0, 'closed before the peer ended or the grace ran out');
      await clock.advanceAsync(CLOSE_GRACE - 1, TICK);
      await sleep(QUIET_MS);
      assert.equal(r.owner.closes.length, 0, 'cut before the grace period');
      await clock.advanceAsync(1 + TICK, TICK);
      const info = await closedOnce(r);
      assert.equal(info.reason, 'going-away');
    });

    it('close() sends CLOSE, then FIN once the peer answered with its own (PROTOCOL.md 8)', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      const order: string[] = [];
      r.peer.on('data', () => {
        order.push('data');
        r.peer.end(); // a conforming peer answers CLOSE with FIN
      });
      r.peer.on('end', () => order.push('end'));
      startBeat(r);
      r.link.close('local', CloseCode.NORMAL, 'done');
      assert.equal(r.link.open, false);
      r.link.close('local', CloseCode.GOING_AWAY, 'again'); // ignored
      r.link.write(encodeAck(1)); // ignored: the link is closing
      const info = await closedOnce(r);
      assert.deepEqual(info, { reason: 'local', code: CloseCode.NORMAL, message: 'done' });
      assert.deepEqual(view.frames, [
        { type: FrameType.CLOSE, code: CloseCode.NORMAL, retryAfter: 0, reason: 'done' },
      ]);
      assert.deepEqual(order, ['data', 'end']);
    });

    it('close() without a code sends only FIN', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      r.link.close('going-away');
      const info = await closedOnce(r);
      assert.equal(info.reason, 'going-away');
      assert.equal(info.code, undefined);
      assert.ok(view.ended);
      assert.equal(view.bytes, 0);
    });

    it('a decoder error sends CLOSE(protocol error) to the peer', async (t) => {
      const r = await rig(t);
      const view = watch(r.peer);
      startBeat(r);
      // A frame whose length prefix is 0 cannot even hold its type byte.
      r.peer.write(Buffer.from([0, 0, 0, 0]));
      const info = await closedOnce(r);
      assert.equal(info.reason, 'protocol-error');
      assert.equal(info.code, CloseCode.PROTOCOL_ERROR);
      assert.ok(info.error instanceof ProtocolError);
      assert.equal(info.error.code, 'HL_ERR_MALFORMED_FRAME');
      await waitFor(() => view.closed);
      assert.equal(view.frames.length, 1);
      const close = view.frames[0]!;
      assert.equal(close.type, FrameType.CLOSE);
      assert.equal(close.type === FrameType.CLOSE && close.code, CloseCode.PROTOCOL_ERROR);
    });

    it('an unknown frame type and an oversized frame close with their own codes', async (t) => {
      const unknown = await rig(t);
      const unknownView = watch(unknown.peer);
      unknown.peer.write(Buffer.from([0, 0, 0, 1, 0x7f]));
      const a = await closedOnce(unknown);
      assert.equal(a.reason, 'protocol-error');
      assert.equal((a.error as ProtocolError).code, 'HL_ERR_UNKNOWN_FRAME');
      await waitFor(() => unknownView.frames.length === 1);

      const big = await rig(t, { maxFrame: 64 });
      const bigView = watch(big.peer);
      big.peer.write(encodeData(1, Buffer.alloc(100)));
      const b = await closedOnce(big);
      assert.equal(b.reason, 'frame-too-large');
      assert.equal(b.code, CloseCode.FRAME_TOO_LARGE);
      await waitFor(() => bigView.frames.length === 1);
      const close = bigView.frames[0]!;
      assert.equal(close.type === FrameType.CLOSE && close.code, CloseCode.FRAME_TOO_LARGE);
    });

    it("the peer's FIN closes with 'eof'", async (t) => {
      const r = await rig(t);
      startBeat(r);
      r.peer.end();
      const info = await closedOnce(r);
      assert.equal(info.reason, 'eof');
      assert.equal(info.code, undefined);
    });

    it("the peer's RST closes with 'reset'", async (t) => {
      const r = await rig(t);
      startBeat(r);
      r.peer.resetAndDestroy();
      const info = await closedOnce(r);
      assert.equal(info.reason, 'reset');
      assert.equal(info.errno, 'ECONNRESET');
      assert.equal((info.error as HeartlineError | undefined)?.code, 'HL_ERR_SOCKET');
    });

    it('a RST after close() still reports the local close, once', async (t) => {
      const r = await rig(t, { peerHalfOpen: true });
      r.link.close('local', CloseCode.NORMAL, 'bye');
      r.peer.resetAndDestroy();
      const info = await closedOnce(r);
      assert.equal(info.reason, 'local');
    });

    it('close() after a failure and fail() after close() change nothing', async (t) => {
      const r = await rig(t);
      r.link.fail('write-stall', 'stuck');
      r.link.close('local', CloseCode.NORMAL);
      r.link.fail('protocol-error', 'late');
      const info = await closedOnce(r);
      assert.equal(info.reason, 'write-stall');
    });
  });

  describe('deadlines', () => {
    it('no handshake within handshakeTimeout: CLOSE(handshake timeout)', async (t) => {
      const r = await rig(t);
      const clock = fake(r);
      const view = watch(r.peer);
      r.link.startHandshakeTimer();
      await clock.advanceAsync(HANDSHAKE_TIMEOUT - 1, TICK);
      assert.equal(r.link.open, true);
      await clock.advanceAsync(1 + TICK, TICK);
      const info = await closedOnce(r);
      assert.equal(info.reason, 'handshake-timeout');
      await waitFor(() => view.frames.length === 1);
      const close = view.frames[0]!;
      assert.equal(close.type === FrameType.CLOSE && close.code, CloseCode.HANDSHAKE_TIMEOUT);
    });

    it('starting the heartbeat cancels the handshake deadline', async (t) => {
      const r = await rig(t);
      const clock = fake(r);
      watch(r.peer);
      r.link.startHandshakeTimer();
      await clock.advanceAsync(HANDSHAKE_TIMEOUT / 2, TICK);
      startBeat(r);
      // Keep the heartbeat happy: the peer answers whatever it gets with traffic.
      r.peer.on('data', () => r.peer.write(encodeAck(0)));
      await clock.advanceAsync(2 * HANDSHAKE_TIMEOUT, TICK);
      assert.equal(r.link.open, true);
      assert.deepEqual(r.owner.liveness, []);
    });

    it('a silent peer: suspect, probes, dead, then CLOSE(heartbeat timeout)', async (t) => {
      const r = await rig(t);
      const clock = fake(r);
      const view = watch(r.peer);
      startBeat(r);
      await clock.advanceAsync(1500 + TICK, TICK);
      assert.deepEqual(r.owner.liveness, ['suspect']);
      await clock.advanceAsync(1500, TICK);
      assert.deepEqual(r.owner.liveness, ['suspect', 'dead']);
      const info = await closedOnce(r);
      assert.equal(info.reason, 'heartbeat-timeout');
      assert.equal(info.code, CloseCode.HEARTBEAT_TIMEOUT);
      await waitFor(() => view.closed);
      const types = view.frames.map((f) => f.type);
      assert.equal(types.at(-1), FrameType.CLOSE);
      // One regular PING, then probes every 250 ms from 1500 ms to 2750 ms, and possibly
      // one at 3000 ms while the DEAD verdict waits a loop turn for unread bytes.
      const pings = types.filter((x) => x === FrameType.PING).length;
      assert.ok(pings === 7 || pings === 8, `${pings} PINGs`);
    });

    it('a frame trickled one byte per 900 ms keeps the heartbeat alive but is cut at partialFrameTimeout: CLOSE(protocol error), HL_ERR_SLOW_FRAME', async (t) => {
      const r = await rig(t, { partialFrameTimeout: 5000, minDataRate: 1024 });
      const clock = fake(r);
      const view = watch(r.peer);
      startBeat(r);
      const frame = data(1, 995);
      const started = clock.now();
      let sent = 0;
      while (r.link.open && sent < frame.length) {
        r.peer.write(frame.subarray(sent, sent + 1));
        sent++;
        await waitFor(() => r.link.stats.bytesIn === sent || !r.link.open);
        if (clock.now() - started < 4900) {
          assert.equal(r.link.open, true, `cut early, at ${clock.now() - started} ms`);
        }
        await clock.advanceAsync(900, TICK);
      }
      const info = await closedOnce(r);
      const cutAt = clock.now() - started;
      assert.ok(sent <= 7, `cut after ${sent} bytes (about 5 s at one per 900 ms)`);
      assert.equal(info.reason, 'protocol-error');
      assert.equal(info.code, CloseCode.PROTOCOL_ERROR);
      assert.equal(info.error?.code, 'HL_ERR_SLOW_FRAME');
      assert.ok(info.error instanceof ProtocolError);
      assert.deepEqual(r.owner.liveness, [], 'the heartbeat never suspected the trickler');
      assert.deepEqual(r.owner.frames, []);
      await waitFor(() => view.frames.some((f) => f.type === FrameType.CLOSE));
      const close = view.frames.find((f) => f.type === FrameType.CLOSE)!;
      assert.equal(close.type === FrameType.CLOSE && close.code, CloseCode.PROTOCOL_ERROR);
      assert.ok(cutAt >= 5000, `${cutAt} ms`);
    });

    it('each frame has its own clock: frames that each complete in time are never cut', async (t) => {
      const r = await rig(t, { partialFrameTimeout: 5000, minDataRate: 1024 });
      const clock = fake(r);
      watch(r.peer);
      startBeat(r);
      // Three 29-byte frames sent 7 bytes a second: 13 s in all, each frame within 5 s, and
      // pieces that end one frame and start the next.
      const stream = Buffer.concat([data(1, 16), data(2, 16), data(3, 16)]);
      for (let at = 0; at < stream.length; at += 7) {
        r.peer.write(stream.subarray(at, at + 7));
        const upto = Math.min(stream.length, at + 7);
        await waitFor(() => r.link.stats.bytesIn === upto);
        await clock.advanceAsync(1000, TICK);
        assert.equal(r.link.open, true, `cut after ${upto} bytes`);
      }
      assert.equal(r.owner.frames.length, 3);
      assert.deepEqual(r.owner.liveness, []);
      assert.equal(r.link.open, true);
    });

    it('bytes from a suspected peer clear the suspicion at once', async (t) => {
      const r = await rig(t);
      const clock = fake(r);
      watch(r.peer);
      startBeat(r);
      await clock.advanceAsync(1600, TICK);
      assert.deepEqual(r.owner.liveness, ['suspect']);
      const before = clock.now();
      r.peer.write(encodeAck(0));
      await waitFor(() => r.owner.liveness.length === 2);
      assert.deepEqual(r.owner.liveness, ['suspect', 'alive']);
      assert.equal(clock.now(), before, 'alive needed fake time to pass');
      assert.equal(r.link.beat?.isSuspect, false);
    });
  });

  describe('pauseInput', () => {
    it('holds compose; while paused neither silence nor a half-read frame counts against the peer', async (t) => {
      const r = await rig(t, { partialFrameTimeout: 5000, minDataRate: 1024 });
      const clock = fake(r);
      watch(r.peer);
      startBeat(r);
      // Half a frame arrives, then the owner stops reading for two reasons.
      const frame = data(1, 64);
      r.peer.write(frame.subarray(0, 10));
      await waitFor(() => r.link.stats.bytesIn === 10);
      r.link.pauseInput('store', true);
      r.link.pauseInput('consumer', true);
      assert.equal(r.local.isPaused(), true);
      r.peer.write(frame.subarray(10));
      r.peer.write(data(2, 8));
      // Ten heartbeat timeouts and four partial-frame deadlines of not reading.
      await clock.advanceAsync(30_000, TICK);
      await sleep(30);
      assert.equal(r.link.open, true);
      assert.deepEqual(r.owner.liveness, [], 'our silence is not the peer being silent');
      assert.equal(r.link.stats.bytesIn, 10, 'nothing read while paused');
      // One reason gone: still paused; both gone: reading again.
      r.link.pauseInput('store', false);
      await sleep(30);
      assert.equal(r.link.stats.bytesIn, 10);
      r.link.pauseInput('consumer', false);
      await waitFor(() => r.owner.frames.length === 2, { message: 'the frames never came' });
      assert.deepEqual(
        r.owner.frames.map((f) => f.type === FrameType.DATA && f.seq),
        [1, 2],
      );
      assert.equal(r.link.open, true, 'the frame begun before the pause was not cut');
      assert.deepEqual(r.owner.liveness, []);
      // Silence after the resume counts again: dead one timeout later.
      await clock.advanceAsync(3000 + 2 * TICK, TICK);
      await waitFor(() => r.owner.liveness.includes('dead'));
      assert.deepEqual(r.owner.liveness, ['suspect', 'dead']);
    });
  });
});
