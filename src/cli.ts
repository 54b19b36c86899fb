#!/usr/bin/env node
/**
 * zeroq: one CLI. Every file in ./commands/ exports `register(program)` adding one subcommand;
 * command modules import their heavy dependencies inside the action so `--help` stays fast.
 * Options are parsed by ./cli/options.ts. Every error is one line on stderr; exit codes: 0 success
 * (also when stdout is closed early, as by `| head`), 2 usage error or bad input, 1 unexpected failure.
 */
import { Command, CommanderError } from 'commander';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isZeroqError } from './util/errors.js';
import { repoRoot } from './util/paths.js';
import { checkMissing, collectMissing, UsageError } from './cli/options.js';

export interface CommandModule {
  register(program: Command): void;
}

// A reader that stops reading (`zeroq detect ... | head -1`) is not an error: end quietly.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

let program: Command | undefined;

async function main(argv: string[]): Promise<void> {
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  program = new Command('zeroq')
    .description('Fixed-point YOLO detection: import, quantize, evaluate, benchmark, run.')
    .version(pkg.version)
    .exitOverride()
    // Errors are printed on one line by the handler below, not by commander.
    .configureOutput({ outputError: () => {} })
    // Any command that reads a weight set refuses sets not signed by one of these (src/qnet/keys.ts).
    .option('--trust <keys...>', 'trusted public keys (NAME.pub, also comma-separated): weight sets not signed by one are refused (default: $ZEROQ_TRUST)')
    .hook('preAction', async (cmd, action) => {
      checkMissing(action);
      const trust = cmd.opts().trust as string[] | undefined;
      if (trust) (await import('./qnet/keys.js')).setDefaultTrustFrom(trust, '--trust');
    });
  // Engine modules named in ZEROQ_ENGINE_MODULES join the registry before commands list the engines.
  const { loadEngineModules } = await import('./engine/registry.js');
  await loadEngineModules();
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'commands');
  const files = readdirSync(dir)
    .filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith('.d.ts') && !f.endsWith('.map'))
    .sort();
  for (const f of files) {
    const mod = (await import(pathToFileURL(path.join(dir, f)).href)) as Partial<CommandModule>;
    if (typeof mod.register === 'function') mod.register(program);
  }
  collectMissing(program);
  await program.parseAsync(argv);
}

/** The subcommand named on the command line, for the --help pointer of a usage error. */
function commandOf(argv: string[]): string | undefined {
  const names = new Set(program?.commands.map((c) => c.name()));
  return argv.slice(2).find((a) => names.has(a));
}

const oneLine = (s: string): string => s.replace(/\s*[\r\n]+\s*/g, ' ').trim();

function usage(message: string, command?: string): void {
  const help = command ? `zeroq ${command} --help` : 'zeroq --help';
  process.stderr.write(`zeroq: ${oneLine(message)} (${help} lists the options) [usage]\n`);
  process.exitCode = 2;
}

main(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // --help and --version end with 0; `zeroq` alone printed the help on stderr: a usage error.
    if (err.exitCode === 0) return;
    if (err.code === 'commander.help' || err.code === 'commander.helpDisplayed') {
      process.exitCode = 2;
      return;
    }
    usage(err.message.replace(/^error: /, ''), commandOf(process.argv));
    return;
  }
  if (err instanceof UsageError) {
    usage(err.message, err.command);
    return;
  }
  if (isZeroqError(err)) {
    process.stderr.write(`zeroq: ${oneLine(err.message)} [${err.code}]\n`);
    process.exitCode = 2;
    return;
  }
  // A bug: one line for the user, the stack with ZEROQ_DEBUG=1.
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(
    process.env.ZEROQ_DEBUG ? `zeroq: unexpected failure: ${e.stack ?? e.message}\n` : `zeroq: unexpected failure: ${oneLine(e.message)} (ZEROQ_DEBUG=1 shows where) [unexpected]\n`,
  );
  process.exitCode = 1;
});
