/**
 * The chaos proxy's HTTP control port: a thin transport for the text commands.
 *
 *   POST /command   body = one command line  -> 200 {"ok":true,...} | 400 {"ok":false,...}
 *   GET  /status    same as the 'status' command
 *
 * Every request is answered through `proxy.command()`, so the text grammar stays the
 * single source of truth and HTTP adds no behaviour of its own.
 */

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HeartlineError } from '../errors.js';
import { intOption, stringOption } from '../options.js';
import type { ChaosProxy } from './proxy.js';

/** Control server defaults, declared once. */
export const CONTROL_DEFAULTS = Object.freeze({
  /** Loopback only: whoever reaches this port can cut every proxied connection. */
  host: '127.0.0.1',
  /** An ephemeral port. */
  port: 0,
  /** A command is one short line; anything longer is refused before it is buffered. */
  maxBodyBytes: 4096,
});

/** Options of {@link startControlServer}. */
export interface ControlServerOptions {
  /** Address to listen on. @default '127.0.0.1' */
  host?: string;
  /** Port to listen on; 0 picks a free one. @default 0 */
  port?: number;
}

/** A running control server. */
export interface ControlServer {
  /** The port it listens on. */
  readonly port: number;
  /** Stops listening and closes every open HTTP connection. */
  close(): Promise<void>;
}

/**
 * Serves `proxy`'s commands over HTTP; resolves once listening.
 * @throws InvalidArgumentError for a bad host or port.
 */
export function startControlServer(
  proxy: Pick<ChaosProxy, 'command'>,
  options: ControlServerOptions = {},
): Promise<ControlServer> {
  let host: string;
  let port: number;
  try {
    host = stringOption('host', options.host, CONTROL_DEFAULTS.host);
    port = intOption('port', options.port, CONTROL_DEFAULTS.port, 0, 65_535);
  } catch (err) {
    return Promise.reject(err);
  }

  const server = createServer((req, res) => {
    handle(proxy, req, res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      // Once listening, an 'error' is a failed accept (EMFILE): transient, the server keeps
      // listening and the client simply retries. Unhandled it would crash the process.
      server.on('error', () => {});
      const address = server.address() as AddressInfo;
      let closing: Promise<void> | undefined;
      resolve({
        port: address.port,
        close() {
          closing ??= new Promise<void>((done) => {
            server.close(() => done());
            // Keep-alive clients would otherwise hold the server open until they time out.
            server.closeAllConnections();
          });
          return closing;
        },
      });
    });
  });
}

function handle(
  proxy: Pick<ChaosProxy, 'command'>,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/status') {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      methodNotAllowed(req, res, 'GET');
      return;
    }
    req.resume();
    run(proxy, 'status', res);
    return;
  }
  if (path === '/command') {
    if (req.method !== 'POST') {
      methodNotAllowed(req, res, 'POST');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > CONTROL_DEFAULTS.maxBodyBytes) {
        reply(res, 413, { ok: false, error: 'command too long' });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!res.headersSent) run(proxy, Buffer.concat(chunks).toString('utf8'), res);
    });
    // A client that disconnects mid-body is its own problem; nothing to answer.
    req.on('error', () => {});
    return;
  }
  req.resume();
  reply(res, 404, { ok: false, error: 'not found; use POST /command or GET /status' });
}

function run(proxy: Pick<ChaosProxy, 'command'>, line: string, res: ServerResponse): void {
  let body: string;
  try {
    body = proxy.command(line);
  } catch (err) {
    if (err instanceof HeartlineError) {
      const status = err.code === 'HL_ERR_INVALID_ARGUMENT' ? 400 : 500;
      reply(res, status, { ok: false, code: err.code, error: err.message });
    } else {
      reply(res, 500, { ok: false, error: err instanceof Error ? err.message : String(err) });
    }
    return;
  }
  send(res, 200, body);
}

function methodNotAllowed(req: IncomingMessage, res: ServerResponse, allow: string): void {
  req.resume();
  res.setHeader('allow', allow);
  reply(res, 405, { ok: false, error: `method not allowed; use ${allow}` });
}

function reply(res: ServerResponse, status: number, value: Record<string, unknown>): void {
  send(res, status, JSON.stringify(value));
}

function send(res: ServerResponse, status: number, json: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${json}\n`);
}
