import type { Command } from 'commander';

interface SignOptions {
  key: string;
  detached?: boolean;
  output?: string;
  golden?: string[];
}

/** `zeroq sign SET.zqw --key NAME.key`: signs a weight set (embedded signature, or SET.zqw.sig). */
export function register(program: Command): void {
  program
    .command('sign')
    .description('sign a weight set with an Ed25519 key: the signature goes inside the file, or beside it as SET.zqw.sig')
    .argument('<set>', '.zqw weight set')
    .requiredOption('--key <file>', 'private key (NAME.key from zeroq keygen)')
    .option('--detached', 'write the signature to SET.zqw.sig and leave the weight set as it is')
    .option('--golden <images...>', 'first put self-test frames made from these images into the set (their expected head digests on the integer engine); devices run them before installing')
    .option('-o, --output <file>', 'where to write the signed set (default: in place), or the signature with --detached (default: SET.zqw.sig)')
    .action(async (set: string, o: SignOptions) => {
      const [{ readFile }, { createPublicKey }, { readPrivateKey }, zqw, { writeFileAtomic }, { ZeroqError }] = await Promise.all([
        import('node:fs/promises'),
        import('node:crypto'),
        import('../qnet/keys.js'),
        import('../qnet/zqw.js'),
        import('../util/atomic.js'),
        import('../util/errors.js'),
      ]);
      const key = readPrivateKey(o.key);
      const pub = createPublicKey(key);
      let buf: Buffer;
      try {
        buf = await readFile(set);
      } catch (e) {
        throw new ZeroqError('zqw-read', `cannot read the weight set: ${(e as Error).message}`, set);
      }
      // Checks the file first (a damaged set is never signed); no trust check: signing makes it trusted.
      let f = zqw.parseZqw(buf, { name: set });
      if (o.golden && o.golden.length > 0) {
        const { addGoldenFrames } = await import('../update/golden.js');
        buf = await addGoldenFrames(buf, o.golden, set);
        f = zqw.parseZqw(buf, { name: set });
      }
      let out: string;
      if (o.detached) {
        if (f.signature) throw new ZeroqError('zqw-signature', 'the set carries an embedded signature; a detached one is for unsigned files (sign without --detached to replace it)', set);
        out = o.output ?? `${set}.sig`;
        const sig = zqw.detachedSignature(buf, key);
        zqw.parseZqw(buf, { trust: [pub], detachedSignature: sig, name: set });
        // With new self-test frames the set itself changed: it is written first, then its signature.
        if (o.golden && o.golden.length > 0) await writeFileAtomic(set, buf);
        await writeFileAtomic(out, sig);
      } else {
        out = o.output ?? set;
        const signed = zqw.signZqw(buf, key);
        zqw.parseZqw(signed, { trust: [pub], name: out });
        await writeFileAtomic(out, signed);
      }
      const golden = o.golden?.length ? `, ${o.golden.length} self-test frame${o.golden.length > 1 ? 's' : ''}` : '';
      process.stdout.write(`signed ${f.manifest.id} (digest ${f.digest.slice(0, 16)}…${golden}) with key ${zqw.keyId(pub).slice(0, 16)}…: ${out}\n`);
    });
}
