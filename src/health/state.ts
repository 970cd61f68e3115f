/**
 * The explicit health state machine of one connection, modelled on grpc-js's
 * `ConnectivityState` and `Subchannel.transitionToState(oldStates, newState, reason)`
 * (https://github.com/grpc/grpc-node/blob/master/packages/grpc-js/src/subchannel.ts):
 * every move names the states it may start from, and a move that is not in the table
 * is refused instead of silently corrupting the state.
 */

import { InvalidArgumentError } from '../errors.js';

/**
 * Health of one connection.
 * - `connecting`: TCP connect or handshake in progress.
 * - `healthy`: handshake done and the peer heard within its budget.
 * - `suspect`: the peer is quieter than expected but not yet presumed dead.
 * - `dead`: the heartbeat timeout passed; the link is presumed broken.
 * - `disconnected`: no link; the session may still resume on a new one.
 * - `closed`: terminal; closed on purpose or given up.
 */
export type HealthState = 'connecting' | 'healthy' | 'suspect' | 'dead' | 'disconnected' | 'closed';

/** Every {@link HealthState}, in lifecycle order (for iteration, metrics labels and tests). */
export const HEALTH_STATES: readonly HealthState[] = Object.freeze([
  'connecting',
  'healthy',
  'suspect',
  'dead',
  'disconnected',
  'closed',
]);

/** One state change, as emitted to the listener. */
export interface StateChange {
  /** The state before the move. */
  from: HealthState;
  /** The state after the move. */
  to: HealthState;
  /** Why, in a few words (for logs and events; not a stable code). */
  reason: string;
}

/**
 * The legal moves, as `from -> allowed targets`. See {@link HealthMachine} for the table
 * with the meaning of each move.
 */
const TRANSITIONS: Readonly<Record<HealthState, readonly HealthState[]>> = Object.freeze({
  connecting: Object.freeze<HealthState[]>(['healthy', 'disconnected', 'closed']),
  healthy: Object.freeze<HealthState[]>(['suspect', 'dead', 'disconnected', 'closed']),
  suspect: Object.freeze<HealthState[]>(['healthy', 'dead', 'disconnected', 'closed']),
  dead: Object.freeze<HealthState[]>(['disconnected', 'closed']),
  disconnected: Object.freeze<HealthState[]>(['connecting', 'healthy', 'closed']),
  closed: Object.freeze<HealthState[]>([]),
});

/** Whether `from -> to` is one of the legal moves of {@link HealthMachine}. */
export function isLegalTransition(from: HealthState, to: HealthState): boolean {
  return TRANSITIONS[from].includes(to);
}

/**
 * Holds one connection's {@link HealthState} and moves it only along legal edges,
 * calling the listener with `(from, to, reason)` after each move.
 *
 * | from                      | to             | when                                          |
 * |---------------------------|----------------|-----------------------------------------------|
 * | connecting                | healthy        | handshake done                                |
 * | connecting                | disconnected   | connect or handshake failed; will retry       |
 * | healthy                   | suspect        | quieter than the suspect budget               |
 * | suspect                   | healthy        | heard again                                   |
 * | healthy, suspect          | dead           | heartbeat timeout                             |
 * | healthy, suspect, dead    | disconnected   | link lost; the session may resume             |
 * | disconnected              | connecting     | client retry                                  |
 * | disconnected              | healthy        | server: a resumed link attached               |
 * | any but closed            | closed         | closed on purpose or given up                 |
 *
 * `closed` is terminal. Every other move, self-moves included, returns `false` and emits
 * nothing. The state is updated before the listener runs, so a listener that reads
 * `state` or makes a further move sees the new state, and nested moves are emitted in
 * order. An exception from the listener propagates to the caller of `transition`.
 */
export class HealthMachine<This = undefined> {
  readonly #onChange: (this: This, change: StateChange) => void;
  readonly #thisArg: This;
  #state: HealthState;

  /**
   * @param onChange called synchronously after every move.
   * @param initial the starting state.
   * @param thisArg `this` for `onChange`: an owner with many machines (a server has one
   *   per connection) passes one shared function and itself instead of a closure each.
   * @throws InvalidArgumentError if `initial` is not a {@link HealthState}.
   */
  constructor(
    onChange: (this: This, change: StateChange) => void,
    initial: HealthState = 'connecting',
    thisArg?: This,
  ) {
    if (!Object.hasOwn(TRANSITIONS, initial)) {
      throw new InvalidArgumentError(`initial must be a health state, got ${String(initial)}`);
    }
    this.#onChange = onChange;
    this.#thisArg = thisArg as This;
    this.#state = initial;
  }

  /** The current state. */
  get state(): HealthState {
    return this.#state;
  }

  /**
   * Moves to `to` if the current state is in `allowedFrom` and the move is in the table;
   * emits (from, to, reason); returns whether it moved. `allowedFrom` states what the
   * caller expects (grpc-js style), so a move raced by another event is refused, not applied twice.
   */
  transition(allowedFrom: readonly HealthState[], to: HealthState, reason: string): boolean {
    const from = this.#state;
    if (!allowedFrom.includes(from) || !isLegalTransition(from, to)) return false;
    this.#state = to;
    this.#onChange.call(this.#thisArg, { from, to, reason });
    return true;
  }
}
