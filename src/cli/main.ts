#!/usr/bin/env node
/**
 * The heartline command line: one file per command, dispatched here.
 * Exit codes: 0 ok, 1 failure, 2 usage error (docs/cli.md).
 */

import { readFileSync } from 'node:fs';
import { ExitCode, type FlagTable, UsageError } from './args.js';
import { bench, benchHelp } from './bench.js';
import { chaos, chaosFlags, chaosHelp } from './chaos.js';
import { withConfig } from './config.js';
import { conformance, conformanceFlags, conformanceHelp } from './conformance.js';
import { connect, connectFlags, connectHelp } from './connect.js';
import { demo, demoFlags, demoHelp } from './demo.js';
import { request, requestFlags, requestHelp } from './request.js';
import { serve, serveFlags, serveHelp } from './serve.js';
import { status, statusFlags, statusHelp } from './status.js';
import { didYouMean } from './suggest.js';

type Command = {
  run: (argv: string[]) => Promise<number>;
  help: string;
  summary: string;
  /** The flags config files and environment variables are checked against (none: bench). */
  flags?: FlagTable;
};

const commands: Record<string, Command> = {
  serve: { run: serve, flags: serveFlags, help: serveHelp, summary: 'run a server' },
  connect: {
    run: connect,
    flags: connectFlags,
    help: connectHelp,
    summary: 'connect, send stdin lines, print messages',
  },
  request: {
    run: request,
    flags: requestFlags,
    help: requestHelp,
    summary: 'send one request, print its reply',
  },
  demo: {
    run: demo,
    flags: demoFlags,
    help: demoHelp,
    summary: 'watch a frozen client turn suspect, then dead',
  },
  chaos: {
    run: chaos,
    flags: chaosFlags,
    help: chaosHelp,
    summary: 'a fault-injecting TCP proxy (latency, freeze, RST, FIN)',
  },
  status: {
    run: status,
    flags: statusFlags,
    help: statusHelp,
    summary: "a table of a running server's connections",
  },
  bench: { run: bench, help: benchHelp, summary: 'run the benchmark suite (from a clone)' },
  conformance: {
    run: conformance,
    flags: conformanceFlags,
    help: conformanceHelp,
    summary: 'check a server or client implementation against PROTOCOL.md',
  },
};

/** Width of the command names in the overview: the longest one. */
const COLUMN = Math.max(...Object.keys(commands).map((name) => name.length));

const mainHelp = `Usage: heartline <command> [options]

Heartbeats, health and resumable sessions for long-lived TCP connections.

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(COLUMN)} ${c.summary}`)
  .join('\n')}

Run "heartline <command> --help" for a command's options.

Every command also reads its flags from a JSON file (--config FILE or HEARTLINE_CONFIG,
one object per command) and from HEARTLINE_<COMMAND>_<FLAG> environment variables;
flags on the command line win over the environment, which wins over the file.

Examples:
  heartline serve --port 7000 --echo --json
  echo hello | heartline connect 127.0.0.1:7000
  heartline demo`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(`${mainHelp}\n`);
    return name === undefined ? ExitCode.USAGE : ExitCode.OK;
  }
  if (name === '-v' || name === '--version') {
    process.stdout.write(`${version()}\n`);
    return ExitCode.OK;
  }
  const command = commands[name];
  if (!command) {
    return usageError(
      'heartline',
      `unknown command "${name}"${didYouMean(name, Object.keys(commands))}`,
      'heartline --help',
    );
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(`${command.help}\n`);
    return ExitCode.OK;
  }
  try {
    const target = { command: name, flags: command.flags, commands: Object.keys(commands) };
    return await command.run(withConfig(target, rest));
  } catch (err) {
    if (err instanceof UsageError) {
      return usageError(`heartline ${name}`, err.message, `heartline ${name} --help`);
    }
    throw err;
  }
}

/**
 * The one way a usage error is told, as git and npm tell it: what is wrong on one line,
 * then where the help is (not the help itself, which would bury the line). Exit code 2.
 */
function usageError(who: string, message: string, help: string): number {
  process.stderr.write(`${who}: ${message}\nrun '${help}' for the options\n`);
  return ExitCode.USAGE;
}

/**
 * A reader that went away (`heartline serve | head`) closes stdout with EPIPE: a server
 * goes on serving (its clients do not depend on who reads its log), other commands end
 * quietly, as `cat` does on SIGPIPE. Any other output error is thrown as before.
 */
function onOutputClosed(command: string | undefined): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      if (command !== 'serve') process.exit(process.exitCode ?? ExitCode.OK);
    });
  }
}

onOutputClosed(process.argv[2]);
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // An unexpected failure: one line; the stack only when asked for (it helps a bug report).
    const detail = process.env.HEARTLINE_DEBUG ? (err as Error)?.stack : undefined;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`heartline: ${detail ?? message}\n`);
    if (!detail) process.stderr.write('set HEARTLINE_DEBUG=1 to see where it came from\n');
    process.exitCode = ExitCode.FAILURE;
  },
);
