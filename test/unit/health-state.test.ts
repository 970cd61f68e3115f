import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  HEALTH_STATES,
  HealthMachine,
  type HealthState,
  isLegalTransition,
  type StateChange,
} from '../../src/health/index.js';

/** The legal moves from the spec, written out independently of the implementation's table. */
const LEGAL: ReadonlyArray<readonly [HealthState, HealthState]> = [
  ['connecting', 'healthy'],
  ['connecting', 'disconnected'],
  ['healthy', 'suspect'],
  ['suspect', 'healthy'],
  ['healthy', 'dead'],
  ['suspect', 'dead'],
  ['healthy', 'disconnected'],
  ['suspect', 'disconnected'],
  ['dead', 'disconnected'],
  ['disconnected', 'connecting'],
  ['disconnected', 'healthy'],
  ['connecting', 'closed'],
  ['healthy', 'closed'],
  ['suspect', 'closed'],
  ['dead', 'closed'],
  ['disconnected', 'closed'],
];

const isLegal = (from: HealthState, to: HealthState) =>
  LEGAL.some(([f, t]) => f === from && t === to);

function machine(initial?: HealthState): { m: HealthMachine; changes: StateChange[] } {
  const changes: StateChange[] = [];
  const m = new HealthMachine((change) => changes.push(change), initial);
  return { m, changes };
}

describe('HealthMachine', () => {
  it('starts in connecting by default, or in the given state', () => {
    assert.equal(machine().m.state, 'connecting');
    assert.equal(machine('disconnected').m.state, 'disconnected');
  });

  it('lists six states', () => {
    assert.deepEqual([...HEALTH_STATES].sort(), [
      'closed',
      'connecting',
      'dead',
      'disconnected',
      'healthy',
      'suspect',
    ]);
  });

  for (const [from, to] of LEGAL) {
    it(`allows ${from} -> ${to} and emits (from, to, reason)`, () => {
      const { m, changes } = machine(from);
      assert.equal(m.transition([from], to, `why ${from}->${to}`), true);
      assert.equal(m.state, to);
      assert.deepEqual(changes, [{ from, to, reason: `why ${from}->${to}` }]);
      assert.equal(isLegalTransition(from, to), true);
    });
  }

  it('refuses every other move, self-moves included, without emitting', () => {
    let refused = 0;
    for (const from of HEALTH_STATES) {
      for (const to of HEALTH_STATES) {
        if (isLegal(from, to)) continue;
        const { m, changes } = machine(from);
        assert.equal(m.transition(HEALTH_STATES, to, 'nope'), false, `${from} -> ${to}`);
        assert.equal(m.state, from);
        assert.deepEqual(changes, []);
        assert.equal(isLegalTransition(from, to), false);
        refused++;
      }
    }
    assert.equal(refused, 36 - LEGAL.length);
  });

  it('refuses a legal move when the current state is not in allowedFrom', () => {
    const { m, changes } = machine('healthy');
    assert.equal(m.transition(['suspect'], 'dead', 'raced'), false);
    assert.equal(m.transition([], 'closed', 'empty'), false);
    assert.equal(m.state, 'healthy');
    assert.deepEqual(changes, []);
  });

  it('makes closed terminal', () => {
    const { m, changes } = machine('healthy');
    assert.equal(m.transition(HEALTH_STATES, 'closed', 'user close'), true);
    for (const to of HEALTH_STATES) assert.equal(m.transition(HEALTH_STATES, to, 'again'), false);
    assert.equal(m.state, 'closed');
    assert.deepEqual(changes, [{ from: 'healthy', to: 'closed', reason: 'user close' }]);
  });

  it('walks a whole client lifecycle', () => {
    const { m, changes } = machine();
    const steps: Array<[HealthState[], HealthState, string]> = [
      [['connecting'], 'healthy', 'handshake done'],
      [['healthy'], 'suspect', 'quiet'],
      [['suspect'], 'healthy', 'heard again'],
      [['healthy', 'suspect'], 'suspect', 'quiet'],
      [['healthy', 'suspect'], 'dead', 'heartbeat-timeout'],
      [['healthy', 'suspect', 'dead'], 'disconnected', 'link lost'],
      [['disconnected'], 'connecting', 'retry'],
      [['connecting'], 'disconnected', 'connect failed'],
      [['disconnected'], 'connecting', 'retry'],
      [['connecting'], 'healthy', 'handshake done'],
      [['healthy'], 'closed', 'user close'],
    ];
    for (const [allowed, to, reason] of steps)
      assert.equal(m.transition(allowed, to, reason), true);
    assert.deepEqual(
      changes.map((c) => `${c.from}>${c.to}`),
      [
        'connecting>healthy',
        'healthy>suspect',
        'suspect>healthy',
        'healthy>suspect',
        'suspect>dead',
        'dead>disconnected',
        'disconnected>connecting',
        'connecting>disconnected',
        'disconnected>connecting',
        'connecting>healthy',
        'healthy>closed',
      ],
    );
  });

  it('updates the state before calling the listener, and emits nested moves in order', () => {
    const seen: string[] = [];
    const m: HealthMachine = new HealthMachine((change) => {
      seen.push(`${change.from}>${change.to} (state ${m.state})`);
      if (change.to === 'dead') m.transition(['dead'], 'disconnected', 'nested');
    }, 'healthy');
    assert.equal(m.transition(['healthy'], 'dead', 'timeout'), true);
    assert.equal(m.state, 'disconnected');
    assert.deepEqual(seen, ['healthy>dead (state dead)', 'dead>disconnected (state disconnected)']);
  });

  it('calls one shared listener with each owner as `this` (no closure per machine)', () => {
    const seen: string[] = [];
    function listener(this: { name: string }, change: StateChange): void {
      seen.push(`${this.name}: ${change.from}>${change.to}`);
    }
    const a = new HealthMachine(listener, 'connecting', { name: 'a' });
    const b = new HealthMachine(listener, 'healthy', { name: 'b' });
    a.transition(['connecting'], 'healthy', 'x');
    b.transition(['healthy'], 'suspect', 'y');
    assert.deepEqual(seen, ['a: connecting>healthy', 'b: healthy>suspect']);
  });

  it('lets a listener exception reach the caller, with the move already made', () => {
    const m = new HealthMachine(() => {
      throw new Error('listener failed');
    });
    assert.throws(() => m.transition(['connecting'], 'healthy', 'x'), /listener failed/);
    assert.equal(m.state, 'healthy');
  });

  it('refuses an unknown initial state', () => {
    assert.throws(
      () => new HealthMachine(() => {}, 'open' as HealthState),
      (err: unknown) => err instanceof InvalidArgumentError && /initial/.test(err.message),
    );
  });
});
