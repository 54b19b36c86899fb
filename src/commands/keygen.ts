import type { Command } from 'commander';

/** `zeroq keygen -o NAME`: an Ed25519 key pair for signing weight sets (NAME.key, NAME.pub). */
export function register(program: Command): void {
  program
    .command('keygen')
    .description('make an Ed25519 key pair for signing weight sets: NAME.key (private, mode 0600) and NAME.pub')
    .requiredOption('-o, --output <name>', 'file name without extension (NAME.key and NAME.pub are written)')
    .option('--force', 'replace existing key files')
    .action(async (o: { output: string; force?: boolean }) => {
      const { writeKeyPair } = await import('../qnet/keys.js');
      const k = await writeKeyPair(o.output, o.force ?? false);
      process.stdout.write(`private key: ${k.privatePath} (keep it secret)\npublic key:  ${k.publicPath} (give it to devices: model.trust)\nkey id:      ${k.keyId}\n`);
    });
}
