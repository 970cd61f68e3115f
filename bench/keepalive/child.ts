/**
 * One side of the keepalive-probe benchmark, run inside a network namespace by
 * bench/keepalive.ts: `server HOST PORT INTERVAL TIMEOUT TCP` listens; `client HOST PORT
 * COUNT INTERVAL TIMEOUT TCP` opens COUNT heartline connections. TCP is a JSON `tcp`
 * option ('{}' for the derived defaults). Prints "ready" once listening or once every
 * connection is open, then holds until SIGTERM.
 */

import { connect } from '../../src/client/client.js';
import type { TcpOptions } from '../../src/options.js';
import { createServer } from '../../src/server/server.js';

const [role, host, portRaw, ...rest] = process.argv.slice(2);
const port = Number(portRaw);

if (role === 'server') {
  const [interval, timeout, tcp] = rest;
  const server = createServer({
    interval: Number(interval),
    timeout: Number(timeout),
    tcp: JSON.parse(tcp ?? '{}') as TcpOptions,
  });
  await server.listen(port, host);
  process.stdout.write('ready\n');
  process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
} else if (role === 'client') {
  const [count, interval, timeout, tcp] = rest;
  const n = Number(count);
  let open = 0;
  const clients = Array.from({ length: n }, () => {
    const c = connect({
      host,
      port,
      interval: Number(interval),
      timeout: Number(timeout),
      tcp: JSON.parse(tcp ?? '{}') as TcpOptions,
    });
    c.once('open', () => {
      if (++open === n) process.stdout.write('ready\n');
    });
    return c;
  });
  process.once('SIGTERM', () => {
    for (const c of clients) c.close();
    setTimeout(() => process.exit(0), 200);
  });
} else {
  process.stderr.write(`unknown role ${String(role)}\n`);
  process.exit(2);
}
