/**
 * TLS: sockets that connect to a TLS server and never finish the TLS handshake (silent,
 * or with a ClientHello cut short). They must count against the admission limits from
 * the TCP accept, so that a server at `--max-connections` refuses more of them at once
 * instead of holding every one until its handshake deadline.
 *
 * The server's certificate is made with openssl for this run (a self-signed EC P-256
 * certificate for 127.0.0.1, in a temporary directory removed when the process exits).
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../lib/stats.js';
import type { Attack } from './harness.js';
import { type RawPeer, runLanes } from './raw.js';

/** The certificate and key of the TLS server, PEM, with their paths for the CLI. */
export interface ServerCertificate {
  cert: Buffer;
  certFile: string;
  keyFile: string;
}

let made: ServerCertificate | null = null;

/** A self-signed certificate for 127.0.0.1, made once per process. */
export function serverCertificate(): ServerCertificate {
  if (made) return made;
  const dir = mkdtempSync(join(tmpdir(), 'heartline-attack-tls-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'key.pem',
      '-out',
      'cert.pem',
      '-subj',
      '/CN=127.0.0.1',
      '-days',
      '2',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { cwd: dir, encoding: 'utf8' },
  );
  if (r.status !== 0)
    throw new Error(`openssl could not make a certificate: ${r.stderr ?? r.error}`);
  const certFile = join(dir, 'cert.pem');
  made = { cert: readFileSync(certFile), certFile, keyFile: join(dir, 'key.pem') };
  return made;
}

/** The admission limit of the TLS row's server. */
const MAX_CONNECTIONS = 50;
/** How long after connecting the silent sockets are counted (ms): well inside the 3 s deadline. */
const COUNT_AFTER_MS = 1500;
/** The start of a TLS record carrying a ClientHello that never comes (content type 22, TLS 1.0). */
const PARTIAL_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);

/** Every attack of this family. */
export const tlsAttacks: Attack[] = [
  {
    id: 'tls-admission',
    family: 'tls',
    label: 'TLS: 3 x max-connections sockets that never finish the TLS handshake',
    tls: true,
    serverArgs: ['--max-connections', String(MAX_CONNECTIONS)],
    seconds: () => 4,
    async run(ctx) {
      const count = 3 * MAX_CONNECTIONS;
      const peers: RawPeer[] = [];
      let next = 0;
      await runLanes(10, ctx, async () => {
        if (next >= count) return false;
        const i = next++;
        const peer = await ctx.pool.open({ decode: false });
        if (i % 2 === 1) await peer.write(PARTIAL_CLIENT_HELLO);
        peers.push(peer);
        return true;
      });
      await sleep(COUNT_AFTER_MS);
      const open = peers.filter((p) => !p.closed).length;
      ctx.note(
        `${peers.length} sockets (half with a cut ClientHello), ${open} still open after ${COUNT_AFTER_MS / 1000} s (max-connections ${MAX_CONNECTIONS}, the bystander holds one)`,
      );
      if (open > MAX_CONNECTIONS) {
        ctx.violation(
          `${open} sockets without a TLS handshake held open past max-connections ${MAX_CONNECTIONS}`,
        );
      }
    },
  },
];
