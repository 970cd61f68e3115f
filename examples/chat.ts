/**
 * Chat with presence. Each client connects with its own `clientId` (seen by the server as
 * `conn.clientId`), joins with a display name and says things; the server tells everyone
 * who joined, who is away and back, who left, and what was said.
 *
 * Presence follows the connection's life:
 * - 'disconnect': the link was lost (reset, heartbeat timeout...) but the session may
 *   still resume: the member shows as away, and what is said meanwhile waits for them in
 *   the replay buffer.
 * - 'resumed': the same session is back on a new link: the member is back, and gets every
 *   message sent while away, exactly once and in order.
 * - 'close': the session ended for good (the client left, or did not come back within
 *   the session TTL): the member left.
 *
 * Messages are JSON. Client to server: {"type":"join","name":"ann"} or
 * {"type":"say","text":"hi"}. Server to client: {"type":"presence","event":"joined",
 * "name":"ann","online":["ann"]} (event: joined, away, back, left) and
 * {"type":"said","name":"ann","text":"hi"}. Anything else closes the connection with
 * application close code 4000.
 *
 *   node --import tsx examples/chat.ts --port 7001
 *   (npm run build first) node dist/cli/main.js connect 127.0.0.1:7001 --client-id ann
 *   then type: {"type":"join","name":"ann"}   and   {"type":"say","text":"hello"}
 *
 * `--demo` runs the server and three scripted clients in this process (one of them
 * through a fault-injecting proxy that cuts its link), prints the transcript, checks that
 * every client saw every line since it joined, in order, and exits 0 (1 on failure).
 */

import { parseArgs } from 'node:util';
import { createChaosProxy } from '../src/entries/chaos.js';
import {
  type ClientConnection,
  connect,
  createServer,
  HeartlineError,
  type Server,
  type ServerConnection,
} from '../src/index.js';

/** What a client sends. */
type ClientMessage = { type: 'join'; name: string } | { type: 'say'; text: string };

/** What the server sends to everyone. */
type ChatEvent =
  | { type: 'presence'; event: 'joined' | 'away' | 'back' | 'left'; name: string; online: string[] }
  | { type: 'said'; name: string; text: string };

/** Application close codes live in 4000-4999; heartline's own codes are below. */
const BAD_MESSAGE = 4000;
const ALREADY_ONLINE = 4001;
const REPLACED = 4002;
const TOO_FAR_BEHIND = 4003;

interface Member {
  name: string;
  conn: ServerConnection;
  away: boolean;
}

/** A chat server: presence keyed by clientId, every event broadcast to every member. */
function createChatServer(log: (line: string) => void): Server {
  // 1 s heartbeats find a dead link within 3 s; a member may come back within a minute.
  const server = createServer({ interval: 1_000, timeout: 3_000, sessionTtl: 60_000 });
  const members = new Map<string, Member>();

  const broadcast = (event: ChatEvent): void => {
    log(describe(event));
    const line = JSON.stringify(event);
    // Away members too: the message waits in their session's replay buffer.
    for (const member of members.values()) deliver(member, line);
  };
  const deliver = (member: Member, line: string): void => {
    try {
      member.conn.send(line);
    } catch (err) {
      if (!(err instanceof HeartlineError)) throw err;
      // Away so long that its replay buffer reached maxBufferedBytes: let it go. (The
      // other possible error, HL_ERR_CONNECTION_CLOSED, means it is closing anyway.)
      if (err.code === 'HL_ERR_BUFFER_FULL') member.conn.close(TOO_FAR_BEHIND, 'too far behind');
    }
  };
  const presence = (event: 'joined' | 'away' | 'back' | 'left', name: string): void => {
    const online = [...members.values()].filter((m) => !m.away).map((m) => m.name);
    broadcast({ type: 'presence', event, name, online });
  };

  server.on('connection', (conn) => {
    const id = conn.clientId || conn.id;
    let member: Member | undefined;

    conn.on('message', (data) => {
      const message = parseClientMessage(data);
      if (message === null) {
        conn.close(BAD_MESSAGE, 'expected {"type":"join","name"} or {"type":"say","text"}');
      } else if (message.type === 'join') {
        if (member) return;
        const earlier = members.get(id);
        if (earlier && !earlier.away) {
          conn.close(ALREADY_ONLINE, `clientId ${id} is already in the chat`);
          return;
        }
        // The same client came back with a new session (it restarted): the old one is over.
        earlier?.conn.close(REPLACED, 'replaced by a new session');
        member = { name: message.name, conn, away: false };
        members.set(id, member);
        presence('joined', member.name);
      } else if (!member) {
        conn.close(BAD_MESSAGE, 'join first');
      } else {
        broadcast({ type: 'said', name: member.name, text: message.text });
      }
    });

    conn.on('disconnect', () => {
      // Only a lost link that may still resume is a 'disconnect'; leaving is a 'close'.
      if (!member) return;
      member.away = true;
      presence('away', member.name);
    });
    conn.on('resumed', () => {
      if (!member?.away) return;
      member.away = false;
      presence('back', member.name);
    });
    conn.on('close', () => {
      if (!member || members.get(id) !== member) return;
      members.delete(id);
      presence('left', member.name);
    });
  });
  return server;
}

function parseClientMessage(data: Buffer): ClientMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const m = value as Record<string, unknown>;
  if (m.type === 'join' && typeof m.name === 'string' && m.name.trim() !== '') {
    return { type: 'join', name: m.name.trim().slice(0, 32) };
  }
  if (m.type === 'say' && typeof m.text === 'string') {
    return { type: 'say', text: m.text.slice(0, 1000) };
  }
  return null;
}

/** One transcript line for an event. */
function describe(event: ChatEvent): string {
  if (event.type === 'said') return `<${event.name}> ${event.text}`;
  const verb = { joined: 'joined', away: 'is away', back: 'is back', left: 'left' }[event.event];
  return `* ${event.name} ${verb} (online: ${event.online.join(', ') || 'nobody'})`;
}

// ---- the demo ------------------------------------------------------------------------

/** A scripted chat client that keeps every line it receives. */
class ChatClient {
  readonly seen: string[] = [];
  readonly conn: ClientConnection;
  private waiters: Array<{ line: string; resolve: () => void }> = [];

  constructor(
    readonly name: string,
    port: number,
  ) {
    // Retry fast: the demo cuts a link on purpose and wants it back quickly.
    this.conn = connect({
      port,
      clientId: `${name}-laptop`,
      backoff: { initialDelay: 50, maxDelay: 200 },
    });
    this.conn.on('message', (data) => {
      const line = describe(JSON.parse(data.toString()) as ChatEvent);
      this.seen.push(line);
      for (const waiter of this.waiters) if (waiter.line === line) waiter.resolve();
      this.waiters = this.waiters.filter((waiter) => waiter.line !== line);
    });
    this.conn.send(JSON.stringify({ type: 'join', name }));
  }

  say(text: string): void {
    this.conn.send(JSON.stringify({ type: 'say', text }));
  }

  /** Resolves once this client has received `line` (now or earlier). */
  sees(line: string): Promise<void> {
    if (this.seen.includes(line)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ line, resolve }));
  }
}

async function demo(): Promise<number> {
  const transcript: string[] = [];
  const heard = new Map<string, () => void>();
  const server = createChatServer((line) => {
    transcript.push(line);
    console.log(line);
    heard.get(line)?.();
  });
  /** Resolves once the server has broadcast `line`. */
  const serverSays = (line: string): Promise<void> =>
    transcript.includes(line) ? Promise.resolve() : new Promise((r) => heard.set(line, r));
  const { port } = await server.listen(0, '127.0.0.1');
  // Carol's link goes through a fault-injecting proxy, so the demo can cut it.
  const proxy = await createChaosProxy({ target: { host: '127.0.0.1', port } });
  const watchdog = setTimeout(() => {
    console.log('demo FAILED: it did not finish within 20 s');
    process.exit(1);
  }, 20_000);

  const alice = new ChatClient('alice', port);
  await alice.sees('* alice joined (online: alice)');
  const bob = new ChatClient('bob', port);
  await alice.sees('* bob joined (online: alice, bob)');
  const carol = new ChatClient('carol', proxy.port);
  await alice.sees('* carol joined (online: alice, bob, carol)');

  alice.say('hi both');
  await bob.sees('<alice> hi both');
  bob.say('hey alice');
  await carol.sees('<bob> hey alice');

  // Cut carol's link with a TCP reset and keep her out for a moment: she shows as away,
  // and what bob says meanwhile waits for her in her session.
  proxy.refuseNew(true);
  proxy.reset();
  await alice.sees('* carol is away (online: alice, bob)');
  bob.say('carol dropped off?');
  await alice.sees('<bob> carol dropped off?');
  proxy.refuseNew(false);
  await alice.sees('* carol is back (online: alice, bob, carol)');
  await carol.sees('<bob> carol dropped off?');
  carol.say('back! my wifi blinked');
  await bob.sees('<carol> back! my wifi blinked');

  bob.conn.close();
  await alice.sees('* bob left (online: alice, carol)');
  await carol.sees('* bob left (online: alice, carol)');

  // Each client saw every line from its own join on (bob until he left), once each and
  // in order: carol too, although her link was cut in the middle.
  let ok = true;
  for (const client of [alice, bob, carol]) {
    const joined = transcript.findIndex((l) => l.startsWith(`* ${client.name} joined`));
    const expected = transcript.slice(joined, joined + client.seen.length);
    const same = joined !== -1 && client.seen.every((line, i) => line === expected[i]);
    const whole = client === bob || client.seen.length === transcript.length - joined;
    console.log(
      `${client.name} saw ${client.seen.length} lines${same && whole ? ', all in order' : ': MISMATCH'}`,
    );
    ok &&= same && whole;
  }
  console.log(`carol's session survived ${carol.conn.stats.links - 1} lost link(s)`);

  alice.conn.close();
  await serverSays('* alice left (online: carol)');
  carol.conn.close();
  await serverSays('* carol left (online: nobody)');
  await server.close();
  await proxy.close();
  clearTimeout(watchdog);
  console.log(ok ? 'demo ok' : 'demo FAILED');
  return ok ? 0 : 1;
}

// ---- entry point ---------------------------------------------------------------------

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '7001' },
    demo: { type: 'boolean', default: false },
  },
});

if (values.demo) {
  process.exitCode = await demo();
} else {
  const server = createChatServer((line) => console.log(line));
  const { address, port } = await server.listen(Number(values.port), '127.0.0.1');
  console.log(`chat server listening on ${address}:${port}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void server.close());
  }
}
