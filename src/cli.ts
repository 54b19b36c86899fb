#!/usr/bin/env node
/**
 * zeroq: one CLI. Every file in ./commands/ exports `register(program)` adding one subcommand;
 * command modules import their heavy dependencies inside the action so `--help` stays fast.
 */
import { Command, CommanderError } from 'commander';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isZeroqError } from './util/errors.js';
import { repoRoot } from './util/paths.js';

export interface CommandModule {
  register(program: Command): void;
}

async function main(argv: string[]): Promise<void> {
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  const program = new Command('zeroq')
    .description('Fixed-point YOLO detection: import, quantize, evaluate, benchmark, run.')
    .version(pkg.version)
    .showHelpAfterError()
    .exitOverride()
    // Any command that reads a weight set refuses sets not signed by one of these (src/qnet/keys.ts).
    .option('--trust <keys...>', 'trusted public keys (NAME.pub, also comma-separated): weight sets not signed by one are refused (default: $ZEROQ_TRUST)')
    .hook('preAction', async (cmd) => {
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
  await program.parseAsync(argv);
}

main(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
    return;
  }
  if (isZeroqError(err)) {
    process.stderr.write(`zeroq: ${err.message} [${err.code}]\n`);
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`zeroq: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
