#!/usr/bin/env node
/**
 * The heartline command line: one file per command, dispatched here.
 * Exit codes: 0 ok, 1 failure, 2 usage error (docs/cli.md).
 */

import { readFileSync } from 'node:fs';
import { ExitCode, UsageError } from './args.js';
import { bench, benchHelp } from './bench.js';
import { chaos, chaosHelp } from './chaos.js';
import { withConfig } from './config.js';
import { connect, connectHelp } from './connect.js';
import { demo, demoHelp } from './demo.js';
import { serve, serveHelp } from './serve.js';
import { status, statusHelp } from './status.js';

type Command = { run: (argv: string[]) => Promise<number>; help: string; summary: string };

const commands: Record<string, Command> = {
  serve: { run: serve, help: serveHelp, summary: 'run a server' },
  connect: {
    run: connect,
    help: connectHelp,
    summary: 'connect, send stdin lines, print messages',
  },
  demo: { run: demo, help: demoHelp, summary: 'watch a frozen client turn suspect, then dead' },
  chaos: {
    run: chaos,
    help: chaosHelp,
    summary: 'a fault-injecting TCP proxy (latency, freeze, RST, FIN)',
  },
  status: { run: status, help: statusHelp, summary: "a table of a running server's connections" },
  bench: { run: bench, help: benchHelp, summary: 'run the benchmark suite' },
};

const mainHelp = `Usage: heartline <command> [options]

Heartbeats, health and resumable sessions for long-lived TCP connections.

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
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
    process.stderr.write(`heartline: unknown command "${name}"\n\n${mainHelp}\n`);
    return ExitCode.USAGE;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    process.stdout.write(`${command.help}\n`);
    return ExitCode.OK;
  }
  try {
    return await command.run(withConfig(name, rest));
  } catch (err) {
    const usage =
      err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    if (usage) {
      process.stderr.write(`heartline ${name}: ${(err as Error).message}\n\n${command.help}\n`);
      return ExitCode.USAGE;
    }
    throw err;
  }
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
    process.stderr.write(`heartline: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = ExitCode.FAILURE;
  },
);
