/**
 * `heartline/chaos`: a TCP proxy that injects faults (latency, a frozen or black-holed
 * direction, resets) between a client and a server, for testing how an application
 * rides them out. It needs no other package.
 * @packageDocumentation
 */

export {
  CHAOS_DEFAULTS,
  type ChaosFaults,
  type ChaosProxy,
  type ChaosProxyOptions,
  type ChaosStats,
  createChaosProxy,
  type Direction,
  type DirectionFaults,
} from '../chaos/proxy.js';
