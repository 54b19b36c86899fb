import type { Command } from 'commander';

/**
 * `zeroq verify SET.zqw --trust NAME.pub...`: exit 0 when the set is intact and signed by a trusted
 * key, exit 2 with the reason otherwise.
 */
export function register(program: Command): void {
  program
    .command('verify')
    .description('check a weight set: intact (digest, structure) and signed by a trusted key (--trust, or $ZEROQ_TRUST); exit 0 or 2 with the reason')
    .argument('<set>', '.zqw weight set (a detached signature is read from SET.zqw.sig)')
    .option('--json', 'print the result as JSON')
    .action(async (set: string, o: { json?: boolean }) => {
      const [{ defaultTrust }, { readZqw }, { ZeroqError }] = await Promise.all([import('../qnet/keys.js'), import('../qnet/zqw.js'), import('../util/errors.js')]);
      const trust = defaultTrust();
      if (!trust) throw new ZeroqError('trust', 'no trusted keys: give --trust NAME.pub (or set ZEROQ_TRUST)', 'verify');
      const f = await readZqw(set, { trust });
      const r = {
        ok: true,
        set,
        id: f.manifest.id,
        model: f.manifest.network.name,
        architecture: f.manifest.architecture,
        digest: f.digest,
        keyId: f.signature!.keyId,
      };
      process.stdout.write(o.json ? JSON.stringify(r) + '\n' : `ok: ${set}: ${r.id}, digest ${r.digest.slice(0, 16)}…, signed by trusted key ${r.keyId.slice(0, 16)}…\n`);
    });
}
