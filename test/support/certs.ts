/**
 * A throwaway PKI for TLS tests, made with openssl at test time in a temporary directory
 * that is removed afterwards (keys never touch the repository): a CA, a server
 * certificate for 127.0.0.1 and localhost, client certificates for "alice" and "bob"
 * signed by the CA, and a self-signed "mallory" certificate no CA vouches for. EC P-256
 * keys, so the whole set takes a few tens of milliseconds.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingTool } from './require.js';

/** A certificate with its private key, PEM. */
export interface KeyPair {
  cert: Buffer;
  key: Buffer;
  /** Paths of the PEM files (for the CLI). */
  certFile: string;
  keyFile: string;
}

/** Everything a TLS test needs. */
export interface TestPki {
  dir: string;
  ca: Buffer;
  caFile: string;
  server: KeyPair;
  alice: KeyPair;
  bob: KeyPair;
  mallory: KeyPair;
  /** Removes the directory. */
  remove(): void;
}

/** Why TLS tests cannot run here (openssl missing), or undefined. */
export function pkiUnavailable(): string | undefined {
  return missingTool('openssl', ['version']);
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function signed(dir: string, name: string, cn: string, ext: string): KeyPair {
  openssl(dir, [
    'req',
    ...EC,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${cn}`,
  ]);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    `${name}.crt`,
    '-extfile',
    `${name}.ext`,
  ]);
  return pair(dir, name);
}

function pair(dir: string, name: string): KeyPair {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  return { cert: readFileSync(certFile), key: readFileSync(keyFile), certFile, keyFile };
}

/** Creates the PKI; call `remove()` when done (t.after / after). */
export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'heartline-pki-'));
  try {
    openssl(
      dir,
      ['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2'].concat([
        '-subj',
        '/CN=heartline test CA',
      ]),
    );
    const server = signed(
      dir,
      'server',
      'localhost',
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
    );
    const client = 'extendedKeyUsage=clientAuth\n';
    const alice = signed(dir, 'alice', 'alice', client);
    const bob = signed(dir, 'bob', 'bob', client);
    openssl(
      dir,
      ['req', '-x509', ...EC, '-keyout', 'mallory.key', '-out', 'mallory.crt'].concat([
        '-days',
        '2',
        '-subj',
        '/CN=mallory',
      ]),
    );
    const caFile = join(dir, 'ca.crt');
    return {
      dir,
      ca: readFileSync(caFile),
      caFile,
      server,
      alice,
      bob,
      mallory: pair(dir, 'mallory'),
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
