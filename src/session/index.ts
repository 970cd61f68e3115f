/**
 * Session sequencing: the sender's replay buffer and the receiver's duplicate filter and
 * ack batching. Pure building blocks; the connection layer wires them to frames.
 */

export * from './budget.js';
export * from './inbound.js';
export * from './outbound.js';
