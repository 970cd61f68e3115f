/**
 * Echo server: every message a client sends comes straight back, and every change in a
 * connection's health is printed as it happens (connected, healthy -> suspect -> dead,
 * link lost while the session waits for a resume, closed with a classified reason).
 *
 * Run it, then talk to it with the CLI (after `npm run build`):
 *
 *   node --import tsx examples/echo-server.ts --port 7000
 *   echo hello | node dist/cli/main.js connect 127.0.0.1:7000
 *
 * Freeze that client (Ctrl-Z) and watch the server turn it suspect, then dead. Ctrl-C
 * stops the server: every client gets CLOSE(going away).
 *
 * `--self-test` starts the server on a free port, connects a client, checks that the echo
 * comes back and exits 0 (1 on failure): what the test suite runs.
 */

import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { connect, createServer, type ServerConnection } from '../src/index.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '7000' },
    host: { type: 'string', default: '127.0.0.1' },
    'self-test': { type: 'boolean', default: false },
  },
});
const selfTest = values['self-test'];
const port = selfTest ? 0 : Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  console.error(`--port must be an integer from 0 to 65535, got ${values.port}`);
  process.exit(2);
}

// A PING after 2 s of silence; a peer silent for 6 s is dead. The defaults (10 s / 30 s)
// suit production; short values make the health events easy to watch.
const server = createServer({ interval: 2_000, timeout: 6_000 });

server.on('connection', (conn: ServerConnection) => {
  const name = conn.clientId ? `${conn.id} (${conn.clientId})` : conn.id;
  console.log(`${name} connected from ${conn.remote}`);
  conn.on('message', (data) => conn.send(data));
  conn.on('state', ({ from, to, reason }) => console.log(`${name} ${from} -> ${to}: ${reason}`));
  conn.on('rtt', () => console.log(`${name} rtt ${conn.rtt?.toFixed(2)} ms`));
  conn.on('disconnect', ({ reason }) => console.log(`${name} lost its link: ${reason}`));
  conn.on('resumed', ({ replayed }) => console.log(`${name} resumed, ${replayed} re-sent`));
  conn.on('close', ({ reason }) => console.log(`${name} closed: ${reason}`));
});
server.on('rejected', ({ remote, info }) => console.log(`refused ${remote}: ${info.reason}`));

const address = await server.listen(port, values.host);
console.log(`echo server listening on ${address.address}:${address.port}`);

if (selfTest) {
  process.exitCode = await runSelfTest(address.port);
  await server.close();
} else {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.log(`${signal}: closing`);
      void server.close();
    });
  }
}

/** Connects, sends one message, checks that the same bytes come back, then closes. */
async function runSelfTest(serverPort: number): Promise<number> {
  const accepted = once(server, 'connection') as Promise<[ServerConnection]>;
  const client = connect({ port: serverPort, clientId: 'self-test' });
  const sent = `hello heartline ${Date.now()}`;
  client.send(sent);
  const deadline = setTimeout(() => client.close(), 10_000);
  let echoed: string | undefined;
  for await (const message of client) {
    echoed = message.toString();
    break;
  }
  clearTimeout(deadline);
  if (echoed !== sent) {
    console.log(`self-test FAILED: sent "${sent}", got ${echoed ?? 'nothing'}`);
    client.close();
    return 1;
  }
  console.log(`self-test ok: echoed "${echoed}"`);
  // A clean goodbye: the server sees CLOSE(normal) from the client, reason 'remote'.
  const [conn] = await accepted;
  const serverSideClosed = once(conn, 'close');
  client.close();
  await serverSideClosed;
  return 0;
}
