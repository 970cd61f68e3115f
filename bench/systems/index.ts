/** Loads a system by name, lazily: a process only loads the code (and peers) it runs. */

import type { System, SystemName } from './types.js';

/** Every system, in the order the reports list them. */
export const SYSTEM_NAMES: readonly SystemName[] = [
  'heartline',
  'net',
  'naive',
  'ws',
  'socketio',
  'aedes',
];

export function isSystemName(name: string): name is SystemName {
  return (SYSTEM_NAMES as readonly string[]).includes(name);
}

export async function loadSystem(name: SystemName): Promise<System> {
  switch (name) {
    case 'heartline':
      return (await import('./heartline.js')).heartline;
    case 'net':
      return (await import('./net.js')).net;
    case 'naive':
      return (await import('./naive.js')).naive;
    case 'ws':
      return (await import('./ws.js')).ws;
    case 'socketio':
      return (await import('./socketio.js')).socketio;
    case 'aedes':
      return (await import('./aedes.js')).aedes;
  }
}
