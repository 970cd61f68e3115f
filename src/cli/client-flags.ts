/**
 * What the client commands (`connect`, `request`) share: the identity and TLS flags, the
 * HOST:PORT list, and opening the connection with the library's refusals as usage errors.
 */

import { type ClientConnection, type ClientOptions, connect } from '../client/client.js';
import { parseServerList } from '../client/servers.js';
import { InvalidArgumentError } from '../errors.js';
import { addressFlag, UsageError } from './args.js';
import { clientTls } from './tls-flags.js';

/** The flags every client command takes (besides its own). */
export const clientFlags = {
  'max-attempts': { type: 'string' },
  auth: { type: 'string' },
  'client-id': { type: 'string' },
  'trace-id': { type: 'string' },
  tls: { type: 'boolean', default: false },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-servername': { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

/** The values of {@link clientFlags} as parseFlags returns them. */
export interface ClientFlagValues {
  auth?: string | undefined;
  'client-id'?: string | undefined;
  'trace-id'?: string | undefined;
  tls?: boolean | undefined;
  'tls-ca'?: string | undefined;
  'tls-cert'?: string | undefined;
  'tls-key'?: string | undefined;
  'tls-servername'?: string | undefined;
}

/** HOST:PORT[,HOST:PORT...] as the server list of a client. */
export function serversArg(arg: string): ReturnType<typeof parseServerList> {
  try {
    return parseServerList(arg.split(',').map(addressFlag).join(','));
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * Connects with `options` plus the identity and TLS flags; an option the library
 * refuses is a usage error (exit 2 with one line). Also says whether TLS is on.
 */
export function openClient(
  options: ClientOptions,
  values: ClientFlagValues,
): { conn: ClientConnection; tls: boolean } {
  const tls = clientTls(values);
  const all: ClientOptions = {
    ...options,
    ...(values.auth !== undefined ? { auth: values.auth } : {}),
    ...(values['client-id'] !== undefined ? { clientId: values['client-id'] } : {}),
    ...(values['trace-id'] !== undefined ? { traceId: values['trace-id'] } : {}),
    ...(tls ? { tls } : {}),
  };
  try {
    return { conn: connect(all), tls: tls !== null && tls !== undefined };
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new UsageError(err.message);
    throw err;
  }
}
