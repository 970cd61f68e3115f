/**
 * TLS on both ends over loopback, with certificates made by openssl at test time: echo
 * over TLS, mutual TLS with the certificate as the identity, refused and untrusted
 * certificates (classified, final or retried as documented), mismatched plain/TLS ends,
 * and the single handshake deadline that covers TLS and HELLO together.
 */

import assert from 'node:assert/strict';
import {
  type AddressInfo,
  connect as netConnect,
  createServer as netServer,
  type Socket,
} from 'node:net';
import { after, before, describe, type TestContext, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { createChaosProxy } from '../../src/chaos/proxy.js';
import { connect } from '../../src/client/client.js';
import type { ReconnectingEvent } from '../../src/connection.js';
import { HeartlineError } from '../../src/errors.js';
import type { CloseInfo } from '../../src/link.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { Decoder } from '../../src/protocol/codec.js';
import { type Frame, FrameType } from '../../src/protocol/frames.js';
import type { PeerInfo, RejectEvent } from '../../src/server/server.js';
import { tlsFront } from '../../src/testing.js';
import { makePki, pkiUnavailable, type TestPki } from '../support/certs.js';
import { opened, startClient, startServer } from '../support/peers.js';
import { onceEvent, waitFor, withTimeout } from '../support/wait.js';

const FAST = { interval: 200, timeout: 600 };
/** The certificate subject's common name, the identity these tests use. */
const commonName = (peer: PeerInfo): string | false => {
  const cn = peer.tls?.peerCertificate?.subject.CN;
  return typeof cn === 'string' ? cn : false;
};
const FAST_BACKOFF = { initialDelay: 20, maxDelay: 100 };
const skip = pkiUnavailable();

describe('TLS', { skip }, () => {
  let pki: TestPki;
  before(() => {
    pki = makePki();
  });
  after(() => pki?.remove());

  const serverTls = () => ({ key: pki.server.key, cert: pki.server.cert });
  const mtls = () => ({ ...serverTls(), ca: pki.ca, requestCert: true });

  test('a TLS client and server exchange messages; the hook sees the TLS facts', async (t) => {
    const peers: PeerInfo[] = [];
    const { server, port } = await startServer(t, {
      ...FAST,
      tls: serverTls(),
      authenticate: (_hello, peer) => {
        peers.push(peer);
        return true;
      },
    });
    server.on('connection', (conn) => conn.on('message', (m) => conn.send(m)));
    const client = startClient(t, { port, tls: { ca: pki.ca }, backoff: FAST_BACKOFF });
    await opened(client);
    client.send('over tls');
    const [echo] = (await onceEvent(client, 'message')) as [Buffer];
    assert.equal(echo.toString(), 'over tls');
    assert.equal(peers.length, 1);
    const tls = peers[0]!.tls;
    assert.ok(tls, 'the hook sees TLS facts');
    assert.match(tls.protocol ?? '', /^TLSv1\.[23]$/);
    assert.equal(tls.peerCertificate, null, 'no client certificate without mutual TLS');
    assert.equal(tls.authorized, false);
    assert.equal((peers[0]!.socket as { encrypted?: boolean }).encrypted, true);
  });

  test('mutual TLS: the certificate subject becomes the identity; a missing or untrusted client certificate is refused with CLOSE(auth failed), and the client does not retry', async (t) => {
    const rejected: RejectEvent[] = [];
    const { server, port } = await startServer(t, {
      ...FAST,
      tls: mtls(),
      authenticate: (_hello, peer) => commonName(peer),
    });
    server.on('rejected', (e) => rejected.push(e));
    const identities: Array<string | null> = [];
    server.on('connection', (conn) => identities.push(conn.identity));

    const alice = startClient(t, {
      port,
      tls: { ca: pki.ca, cert: pki.alice.cert, key: pki.alice.key },
      backoff: FAST_BACKOFF,
    });
    await opened(alice);
    await waitFor(() => identities.length === 1);
    assert.deepEqual(identities, ['alice']);

    for (const [name, tls] of [
      ['no certificate', { ca: pki.ca }],
      ['self-signed certificate', { ca: pki.ca, cert: pki.mallory.cert, key: pki.mallory.key }],
    ] as const) {
      const before = rejected.length;
      const client = startClient(t, { port, tls, backoff: FAST_BACKOFF });
      const retries: ReconnectingEvent[] = [];
      client.on('reconnecting', (e) => retries.push(e));
      const [info] = (await onceEvent(client, 'close')) as [CloseInfo];
      assert.equal(info.reason, 'auth-failed', name);
      assert.equal(info.code, CloseCode.AUTH_FAILED, name);
      assert.equal(info.error?.code, 'HL_ERR_AUTH_FAILED', name);
      assert.equal(retries.length, 0, `${name}: auth-failed is final`);
      await waitFor(() => rejected.length === before + 1);
      const event = rejected.at(-1)!;
      assert.equal(event.info.reason, 'auth-failed', name);
      assert.match(event.info.message, /client certificate refused/);
      assert.ok(event.info.error instanceof HeartlineError);
    }
    assert.deepEqual(identities, ['alice'], 'no session was created for a refused certificate');
    assert.equal(server.connections.size, 1);
  });

  test('with rejectUnauthorized: false an untrusted client certificate reaches the authenticate hook', async (t) => {
    const seen: Array<{ cn: string | undefined; authorized: boolean; error: string | null }> = [];
    const { port } = await startServer(t, {
      ...FAST,
      tls: { ...mtls(), rejectUnauthorized: false },
      authenticate: (_hello, peer) => {
        const tls = peer.tls!;
        seen.push({
          cn: commonName(peer) || undefined,
          authorized: tls.authorized,
          error: tls.authorizationError,
        });
        return tls.authorized ? commonName(peer) : false;
      },
    });
    const mallory = startClient(t, {
      port,
      tls: { ca: pki.ca, cert: pki.mallory.cert, key: pki.mallory.key },
      backoff: FAST_BACKOFF,
    });
    const [info] = (await onceEvent(mallory, 'close')) as [CloseInfo];
    assert.equal(info.reason, 'auth-failed');
    const bob = startClient(t, {
      port,
      tls: { ca: pki.ca, cert: pki.bob.cert, key: pki.bob.key },
      backoff: FAST_BACKOFF,
    });
    await opened(bob);
    assert.equal(seen.length, 2);
    assert.deepEqual(seen[0]!.cn, 'mallory');
    assert.equal(seen[0]!.authorized, false);
    assert.ok(seen[0]!.error, 'the hook learns why the certificate did not verify');
    assert.deepEqual(seen[1], { cn: 'bob', authorized: true, error: null });
  });

  test('a client that does not trust the server certificate, or finds another name in it, retries with reason tls-error', async (t) => {
    const { port } = await startServer(t, { ...FAST, tls: serverTls() });
    for (const [name, tls, errno] of [
      ['unknown CA', {}, /CERT|UNABLE_TO/],
      ['wrong name', { ca: pki.ca, servername: 'wrong.example' }, /^ERR_TLS_CERT_ALTNAME_INVALID$/],
    ] as const) {
      const client = connect({ port, tls, backoff: FAST_BACKOFF, maxAttempts: 2 });
      t.after(() => client.close());
      const retries: ReconnectingEvent[] = [];
      client.on('reconnecting', (e) => retries.push(e));
      const [info] = (await onceEvent(client, 'close', { timeout: 10_000 })) as [CloseInfo];
      assert.equal(info.error?.code, 'HL_ERR_GAVE_UP', `${name}: retried until it gave up`);
      assert.equal(info.reason, 'tls-error', name);
      const cause = info.error?.cause as HeartlineError;
      assert.equal(cause.code, 'HL_ERR_TLS', name);
      assert.match(String((cause.cause as { code?: string }).code), errno, name);
      assert.ok(retries.length >= 1, `${name}: tls-error is not final`);
      assert.ok(
        retries.every((r) => r.reason === 'tls-error'),
        name,
      );
    }
  });

  test('mismatched ends are classified: plain to TLS is a tls-error on the server, TLS to plain a tls-error on the client', async (t) => {
    const secure = await startServer(t, { ...FAST, tls: serverTls() });
    const rejected: RejectEvent[] = [];
    secure.server.on('rejected', (e) => rejected.push(e));
    const plainClient = startClient(t, { port: secure.port, reconnect: false });
    await onceEvent(plainClient, 'close');
    await waitFor(() => rejected.length === 1);
    assert.equal(rejected[0]!.info.reason, 'tls-error');
    assert.equal(rejected[0]!.info.error?.code, 'HL_ERR_TLS');
    assert.match(rejected[0]!.info.errno ?? '', /^ERR_SSL_/);

    const plain = await startServer(t, FAST);
    const plainRejected: RejectEvent[] = [];
    plain.server.on('rejected', (e) => plainRejected.push(e));
    const tlsClient = startClient(t, { port: plain.port, tls: { ca: pki.ca }, reconnect: false });
    const [info] = (await onceEvent(tlsClient, 'close')) as [CloseInfo];
    assert.equal(info.reason, 'tls-error');
    assert.equal(info.error?.code, 'HL_ERR_TLS');
    // The ClientHello's record header reads as a frame length far above maxFrame.
    await waitFor(() => plainRejected.length === 1);
    assert.equal(plainRejected[0]!.info.reason, 'frame-too-large');
    assert.equal(plain.server.connections.size, 0);
  });

  test('one deadline covers the TLS handshake and the HELLO, measured from the TCP accept', async (t) => {
    const handshakeTimeout = 1500;
    const { server, port } = await startServer(t, { ...FAST, tls: serverTls(), handshakeTimeout });
    const rejected: Array<RejectEvent & { at: number }> = [];
    server.on('rejected', (e) => rejected.push({ ...e, at: performance.now() }));
    // 500 ms one way makes TLS take about a second; then the peer never sends HELLO.
    const proxy = await createChaosProxy({ target: { host: '127.0.0.1', port } });
    t.after(() => proxy.close());
    proxy.setLatency(500, 0, 'up');
    const started = performance.now();
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: proxy.port,
      ca: pki.ca,
      servername: 'localhost',
    });
    t.after(() => socket.destroy());
    socket.on('error', () => {});
    const frames: Frame[] = [];
    const decoder = new Decoder();
    socket.on('data', (chunk: Buffer) => frames.push(...decoder.push(chunk)));
    let securedAt = 0;
    socket.once('secureConnect', () => {
      securedAt = performance.now() - started;
    });
    await waitFor(() => rejected.length === 1, { timeout: 10_000 });
    const elapsed = rejected[0]!.at - started;
    assert.equal(rejected[0]!.info.reason, 'handshake-timeout');
    assert.equal(rejected[0]!.info.code, CloseCode.HANDSHAKE_TIMEOUT);
    assert.ok(securedAt >= 500, `TLS took ${securedAt} ms, the latency did not apply`);
    // A deadline restarted after TLS would fire near 1 s + 1.5 s = 2.5 s.
    assert.ok(
      elapsed >= handshakeTimeout - 50 && elapsed < handshakeTimeout + 700,
      `closed ${Math.round(elapsed)} ms after connecting`,
    );
    await waitFor(() => frames.length > 0 || socket.destroyed);
    if (frames.length > 0) {
      const close = frames[0]!;
      assert.equal(close.type, FrameType.CLOSE);
      if (close.type === FrameType.CLOSE) assert.equal(close.code, CloseCode.HANDSHAKE_TIMEOUT);
    }
  });

  test('a socket trickling a TLS record is closed at the handshake timeout, and server.close() does not wait for sockets in TLS', async (t) => {
    const handshakeTimeout = 1000;
    const { server, port } = await startServer(t, { ...FAST, tls: serverTls(), handshakeTimeout });
    const rejected: Array<RejectEvent & { at: number }> = [];
    server.on('rejected', (e) => rejected.push({ ...e, at: performance.now() }));
    const trickle = async (socket: Socket): Promise<void> => {
      // A handshake record announcing 512 bytes, then a byte every 100 ms: an idle timer
      // would never fire, the absolute deadline does.
      socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
      while (!socket.destroyed && !socket.readableEnded) {
        await new Promise((r) => setTimeout(r, 100));
        if (!socket.destroyed) socket.write(Buffer.from([0x01]));
      }
    };
    const open = (): Promise<Socket> =>
      new Promise((resolve) => {
        const s = netConnect({ host: '127.0.0.1', port }, () => resolve(s));
        s.on('error', () => {});
        t.after(() => s.destroy());
      });
    const slow = await open();
    const started = performance.now();
    // The server destroys it with trickled bytes unread, so the close may come as a reset
    // (ECONNRESET on this side): wait for 'close' whichever way it ends.
    const closed = withTimeout(new Promise((r) => slow.once('close', r)), { timeout: 10_000 });
    void trickle(slow);
    await closed;
    await waitFor(() => rejected.length === 1);
    const elapsed = rejected[0]!.at - started;
    assert.equal(rejected[0]!.info.reason, 'handshake-timeout');
    assert.equal(rejected[0]!.info.error?.code, 'HL_ERR_HANDSHAKE_TIMEOUT');
    assert.ok(elapsed >= handshakeTimeout - 50 && elapsed < handshakeTimeout + 1000, `${elapsed}`);

    // Sockets stuck in TLS do not hold up a server that is closing.
    const stuck = await Promise.all([open(), open(), open()]);
    for (const s of stuck) s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
    const front = tlsFront(server);
    await waitFor(() => front.pending() === 3);
    const t0 = performance.now();
    await server.close();
    assert.ok(performance.now() - t0 < 900, 'close() destroyed the sockets still in TLS');
  });

  test('admission runs at the TCP accept: a refused socket never reaches the TLS handshake (a plain close, no ServerHello); admitted ones and a bystander are served', async (t) => {
    const hello = await captureClientHello(t);
    const { server, port } = await startServer(t, {
      ...FAST,
      tls: serverTls(),
      maxConnectionsPerAddress: 2,
      acceptRate: Number.POSITIVE_INFINITY,
    });
    server.on('connection', (conn) => conn.on('message', (m) => conn.send(m)));
    const rejected: RejectEvent[] = [];
    server.on('rejected', (e) => rejected.push(e));
    // Sockets handed to the TLS server, the only place a handshake can start.
    const inner = tlsFront(server).tls;
    let intoTls = 0;
    inner.on('connection', () => intoTls++);

    const bystander = startClient(t, { port, tls: { ca: pki.ca }, backoff: FAST_BACKOFF });
    await opened(bystander);
    assert.equal(intoTls, 1);

    /** Sends a real ClientHello from 127.0.0.2 and records what comes back. */
    const flood = async () => {
      const socket = netConnect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
      t.after(() => {
        socket.destroy();
      });
      const peer = { socket, bytes: Buffer.alloc(0), ended: false, closed: false };
      socket.on('data', (c: Buffer) => {
        peer.bytes = Buffer.concat([peer.bytes, c]);
      });
      socket.on('end', () => {
        peer.ended = true;
      });
      socket.on('error', () => {});
      socket.on('close', () => {
        peer.closed = true;
      });
      await onceEvent(socket, 'connect');
      socket.write(hello);
      return peer;
    };
    const admitted = [await flood(), await flood()];
    for (const p of admitted) {
      // A TLS handshake record (0x16): the ServerHello.
      await waitFor(() => p.bytes.length > 0, { message: 'no ServerHello' });
      assert.equal(p.bytes[0], 0x16);
    }
    const refused = await flood();
    const remote = `127.0.0.2:${refused.socket.localPort}`;
    await waitFor(() => refused.closed, { message: 'the refused socket was not closed' });
    assert.equal(refused.bytes.length, 0, 'not one byte: no ServerHello, no CLOSE frame');
    assert.ok(refused.ended, 'a plain TCP close (FIN)');
    assert.equal(intoTls, 3, 'the refused socket never reached the TLS server');
    await waitFor(() => rejected.some((r) => r.remote === remote));
    const mine = rejected.filter((r) => r.remote === remote);
    assert.equal(mine.length, 1, 'reported once, by admission; no TLS failure follows');
    assert.equal(mine[0]!.limit, 'max-connections-per-address');
    assert.equal(mine[0]!.info.reason, 'overloaded');
    assert.equal(mine[0]!.info.code, undefined, 'no CLOSE frame was sent');
    assert.equal(server.admissionStats.refused['max-connections-per-address'], 1);
    // The two admitted sockets count while in their TLS handshake.
    assert.equal(server.admissionStats.connections, 3);

    bystander.send('still here');
    const [echo] = (await onceEvent(bystander, 'message')) as [Buffer];
    assert.equal(echo.toString(), 'still here');
    assert.equal(bystander.state, 'healthy');
  });

  test('tls options are validated: not an object, or together with createSocket', () => {
    assert.throws(
      () => connect({ port: 1, tls: 'yes' as never }),
      (e: HeartlineError) => e.code === 'HL_ERR_INVALID_ARGUMENT' && /"tls"/.test(e.message),
    );
    assert.throws(
      () => connect({ port: 1, tls: {}, createSocket: () => netConnect({ port: 1 }) }),
      (e: HeartlineError) => e.code === 'HL_ERR_INVALID_ARGUMENT' && /createSocket/.test(e.message),
    );
  });
});

/** A real TLS ClientHello, as a client sends it first: recorded by a plain TCP listener. */
async function captureClientHello(t: TestContext): Promise<Buffer> {
  const first = new Promise<Buffer>((resolve) => {
    const recorder = netServer((s) => {
      s.once('data', (c: Buffer) => {
        resolve(c);
        s.destroy();
      });
    });
    t.after(() => recorder.close());
    recorder.listen(0, '127.0.0.1', () => {
      const { port } = recorder.address() as AddressInfo;
      const c = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      c.on('error', () => {});
      t.after(() => c.destroy());
    });
  });
  return first;
}
