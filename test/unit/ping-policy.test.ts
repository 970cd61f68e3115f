/**
 * Heartbeat-flood policing (PROTOCOL.md 7.6) on a fake clock: the schedules a compliant
 * peer can produce (regular PINGs, quarter-interval probes while it suspects us, every
 * PING of a whole timeout delivered at once when a stalled path heals, the old schedule
 * just after SETTINGS) collect no strike, while PINGs faster than the grant allows
 * collect strikes and end in exactly one flood report at maxPingStrikes.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixedDetector } from '../../src/health/index.js';
import { Heartbeat, type HeartbeatHost } from '../../src/heartbeat.js';
import { heartbeatSettings, resolvePingPolicy } from '../../src/options.js';
import { FakeClock } from '../../src/time/fake-clock.js';
import { TimingWheel } from '../../src/time/wheel.js';
import { mulberry32 } from '../support/prng.js';

const INTERVAL = 1000;
const TIMEOUT = 3000;

/** A host whose peer never goes quiet: every PING received also counts as received bytes. */
class Host implements HeartbeatHost {
  lastSent = 0;
  lastReceived = 0;
  floods: Array<{ strikes: number; at: number }> = [];
  constructor(private readonly clock: FakeClock) {}
  sendPing(): void {
    this.lastSent = this.clock.now();
  }
  onLiveness(): void {}
  onRtt(): void {}
  onPingFlood(strikes: number): void {
    this.floods.push({ strikes, at: this.clock.now() });
  }
}

function setup(maxPingStrikes = 3, interval = INTERVAL, timeout = TIMEOUT) {
  const clock = new FakeClock(0);
  const wheel = new TimingWheel(clock, { tickMs: 10 });
  const host = new Host(clock);
  const settings = heartbeatSettings(interval, timeout);
  const hb = new Heartbeat(
    wheel,
    clock,
    settings,
    fixedDetector()(settings, 0),
    host,
    maxPingStrikes,
  );
  hb.start();
  /** The peer's PING arrives now. */
  const ping = (): void => {
    host.lastReceived = clock.now();
    hb.beat(clock.now(), true);
  };
  return { clock, host, hb, ping };
}

/** Every PING a compliant peer sends in one timeout: one regular, then probes. */
const STALL_BURST = 1 + Math.floor((TIMEOUT - 1.5 * INTERVAL) / (INTERVAL / 4)) + 1;
/** The allowance: a PING per quarter interval over a whole timeout, and two spare. */
const ALLOWANCE = Math.ceil(TIMEOUT / (INTERVAL / 4)) + 2;

describe('ping policing', () => {
  it('regular PINGs, and quarter-interval probes for hours, earn no strike', () => {
    const { clock, host, hb, ping } = setup();
    for (let i = 0; i < 100; i++) {
      clock.advance(INTERVAL);
      ping();
    }
    for (let i = 0; i < 4 * 3600; i++) {
      clock.advance(INTERVAL / 4);
      ping();
    }
    assert.equal(hb.pingStrikes, 0);
    assert.deepEqual(host.floods, []);
  });

  it('probes with network jitter (each gap anywhere from 0 to half an interval) earn no strike', () => {
    const { clock, host, ping } = setup();
    const random = mulberry32(7);
    // Gaps average a quarter interval, the fastest a compliant peer pings, but bunch up.
    for (let i = 0; i < 20_000; i++) {
      clock.advance(Math.round(random() * (INTERVAL / 2)));
      ping();
    }
    assert.deepEqual(host.floods, []);
  });

  it('every PING of a stalled timeout delivered at once, repeatedly, earns no strike', () => {
    const { clock, host, hb, ping } = setup();
    for (let round = 0; round < 20; round++) {
      // The path stalls for (almost) a timeout, then delivers everything in one chunk.
      clock.advance(TIMEOUT - 1);
      for (let i = 0; i < STALL_BURST; i++) ping();
      assert.equal(hb.pingStrikes, 0, `round ${round}`);
      // Then the peer is healthy for a while, pinging on schedule.
      for (let i = 0; i < 3; i++) {
        clock.advance(INTERVAL);
        ping();
      }
    }
    assert.deepEqual(host.floods, []);
  });

  it('a flood collects strikes and is reported once, at maxPingStrikes', () => {
    const { clock, host, hb, ping } = setup(3);
    clock.advance(INTERVAL);
    let sent = 0;
    while (host.floods.length === 0 && sent < 1000) {
      ping();
      sent++;
    }
    assert.equal(host.floods.length, 1);
    assert.equal(host.floods[0]!.strikes, 3);
    assert.equal(hb.pingStrikes, 3);
    // The allowance (more than a stall burst), then 3 strikes.
    assert.ok(ALLOWANCE >= STALL_BURST);
    assert.equal(sent, ALLOWANCE + 3);
    // Further PINGs are not reported again: the host has closed the link.
    ping();
    assert.equal(host.floods.length, 1);
    // A steady flood (PINGs 10 ms apart) is caught too, within a few hundred ms.
    const steady = setup(3);
    let at = 0;
    while (steady.host.floods.length === 0 && at < 60_000) {
      steady.clock.advance(10);
      at += 10;
      steady.ping();
    }
    assert.equal(steady.host.floods.length, 1);
    assert.ok(at < 1000, `caught after ${at} ms`);
  });

  it('a PING every interval/8 is tolerated, a little faster is not', () => {
    const ok = setup();
    for (let i = 0; i < 10_000; i++) {
      ok.clock.advance(INTERVAL / 8);
      ok.ping();
    }
    assert.deepEqual(ok.host.floods, []);
    const fast = setup();
    for (let i = 0; i < 10_000 && fast.host.floods.length === 0; i++) {
      fast.clock.advance(INTERVAL / 10);
      fast.ping();
    }
    assert.equal(fast.host.floods.length, 1);
  });

  it('strikes are forgiven once healthy spacing has earned the allowance back', () => {
    const { clock, host, hb, ping } = setup(3);
    clock.advance(INTERVAL);
    for (let i = 0; i < ALLOWANCE + 2; i++) ping();
    assert.equal(hb.pingStrikes, 2);
    // Two timeouts of regular PINGs refill the allowance.
    for (let i = 0; i < 2 * (TIMEOUT / INTERVAL); i++) {
      clock.advance(INTERVAL);
      ping();
    }
    assert.equal(hb.pingStrikes, 0);
    assert.deepEqual(host.floods, []);
  });

  it('after a retune the old grant is honoured for one old timeout (the peer pings on it until SETTINGS arrives)', () => {
    const { clock, host, hb, ping } = setup(3, 100, 1000);
    clock.advance(100);
    // The server stretches the interval 50-fold with a tight timeout; the client, which
    // suspects the server, probes on the old schedule (every 25 ms) for a whole old
    // timeout before it learns.
    hb.retune(heartbeatSettings(5000, 10_000));
    for (let i = 0; i < 1000 / 25 - 1; i++) {
      clock.advance(25);
      ping();
    }
    assert.deepEqual(host.floods, []);
    // Past the old timeout, the same pace is a flood under the new grant.
    for (let i = 0; i < 100 && host.floods.length === 0; i++) {
      clock.advance(25);
      ping();
    }
    assert.equal(host.floods.length, 1);
  });

  it('maxPingStrikes 0 polices nothing; the option is validated', () => {
    const { host, hb, ping } = setup(0);
    for (let i = 0; i < 10_000; i++) ping();
    assert.equal(hb.pingStrikes, 0);
    assert.deepEqual(host.floods, []);
    assert.equal(resolvePingPolicy({}).maxPingStrikes, 3);
    assert.equal(resolvePingPolicy({ maxPingStrikes: 0 }).maxPingStrikes, 0);
    for (const bad of [-1, 1.5, Number.NaN, 1001]) {
      assert.throws(
        () => resolvePingPolicy({ maxPingStrikes: bad }),
        (e: Error & { code?: string }) =>
          e.code === 'HL_ERR_INVALID_ARGUMENT' && /maxPingStrikes/.test(e.message),
      );
    }
  });
});
