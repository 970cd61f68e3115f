/**
 * The TLS flags of `serve` and `connect`: PEM files read up front, so that a missing or
 * unreadable file, or a certificate without its key, is a usage error (exit 2) naming the
 * flag, before anything listens or connects.
 */

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions, TlsOptions } from 'node:tls';
import { UsageError } from './args.js';

function readPem(flag: string, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`--${flag}: cannot read "${path}": ${(err as Error).message}`);
  }
}

/** The files a command was given. */
export interface TlsFlagValues {
  'tls-cert'?: string | undefined;
  'tls-key'?: string | undefined;
  'tls-ca'?: string | undefined;
}

/**
 * Parses the file as a certificate (the first of a chain), so that a wrong file is told
 * as such here rather than by OpenSSL ("PEM routines::no start line") at listen time.
 */
function certificate(flag: string, path: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new UsageError(`--${flag} ${path}: not a PEM certificate`);
  }
}

function certAndKey(values: TlsFlagValues): { cert?: Buffer; key?: Buffer } {
  const cert = readPem('tls-cert', values['tls-cert']);
  const key = readPem('tls-key', values['tls-key']);
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together');
  }
  if (!cert || !key) return {};
  const x509 = certificate('tls-cert', values['tls-cert']!, cert);
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new UsageError(
      `--tls-key ${values['tls-key']}: not a PEM private key (or one with a passphrase)`,
    );
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new UsageError(
      `--tls-key ${values['tls-key']}: key does not match certificate ${values['tls-cert']}`,
    );
  }
  return { cert, key };
}

/** The CA file, checked to hold a certificate. */
function caFile(values: TlsFlagValues): Buffer | undefined {
  const ca = readPem('tls-ca', values['tls-ca']);
  if (ca) certificate('tls-ca', values['tls-ca']!, ca);
  return ca;
}

/**
 * Server TLS from `--tls-cert`/`--tls-key`, and mutual TLS from `--tls-ca` (clients must
 * present a certificate that CA signed). Undefined without TLS flags.
 */
export function serverTls(values: TlsFlagValues): TlsOptions | undefined {
  const pair = certAndKey(values);
  const ca = caFile(values);
  if (pair.cert === undefined) {
    if (ca !== undefined) throw new UsageError('--tls-ca needs --tls-cert and --tls-key');
    return undefined;
  }
  return ca === undefined ? pair : { ...pair, ca, requestCert: true, rejectUnauthorized: true };
}

/**
 * Client TLS from `--tls` (system CAs), `--tls-ca` (trust this CA for the server),
 * `--tls-cert`/`--tls-key` (a client certificate for mutual TLS) and `--tls-servername`
 * (the name checked in the server certificate and sent as SNI). Any of them turns TLS on.
 */
export function clientTls(
  values: TlsFlagValues & { tls?: boolean | undefined; 'tls-servername'?: string | undefined },
): ConnectionOptions | undefined {
  const pair = certAndKey(values);
  const ca = caFile(values);
  const servername = values['tls-servername'];
  if (servername === '') throw new UsageError('--tls-servername must not be empty');
  const on = values.tls === true || pair.cert !== undefined || ca !== undefined || !!servername;
  if (!on) return undefined;
  return {
    ...pair,
    ...(ca !== undefined ? { ca } : {}),
    ...(servername !== undefined ? { servername } : {}),
  };
}
