import type { Command } from 'commander';

interface PublishOptions {
  server: string;
  channel: string;
  token?: string;
  tokenFile?: string;
  parent?: string;
  publisher?: string;
  json?: boolean;
}

/** `zeroq publish SET.zqw --server URL --channel C --token T`: a signed weight set to a channel. */
export function register(program: Command): void {
  program
    .command('publish')
    .description('publish a signed weight set to a channel of the retraining server (unsigned sets are refused)')
    .argument('<set>', '.zqw weight set, signed (embedded, or SET.zqw.sig beside it)')
    .requiredOption('--server <url>', 'the server, e.g. http://127.0.0.1:8470')
    .requiredOption('--channel <name>', 'channel, e.g. stable or canary')
    .option('--token <t>', 'admin token (default: $ZEROQ_ADMIN_TOKEN)')
    .option('--token-file <file>', 'file holding the admin token')
    .option('--parent <version>', 'the version this set was made from (default: the channel\'s current version)')
    .option('--publisher <name>', 'who publishes, as the version history shows it (default: user@host)')
    .option('--json', 'print the published version as JSON')
    .action(async (set: string, o: PublishOptions) => {
      const [{ readFile }, zqw, { call }, { readToken }, { ZeroqError }, os] = await Promise.all([
        import('node:fs/promises'),
        import('../qnet/zqw.js'),
        import('../server/client.js'),
        import('../server/server.js'),
        import('../util/errors.js'),
        import('node:os'),
      ]);
      const token = readToken(o.token ?? (process.env.ZEROQ_ADMIN_TOKEN || undefined), o.tokenFile, 'admin token');
      if (!token) throw new ZeroqError('bad-option', 'give the admin token (--token, --token-file or $ZEROQ_ADMIN_TOKEN)', '--token');
      let data: Buffer;
      try {
        data = await readFile(set);
      } catch (e) {
        throw new ZeroqError('zqw-read', `cannot read the weight set: ${(e as Error).message}`, set);
      }
      // Checked here first (against --trust / ZEROQ_TRUST when given), and again by the server.
      const f = await zqw.readZqw(data, { name: set, detachedSignature: await readFile(`${set}.sig`).catch(() => undefined) });
      if (!f.signature) throw new ZeroqError('zqw-signature', 'the weight set is not signed: sign it first (zeroq sign SET.zqw --key NAME.key)', set);
      // A detached signature travels inside the published file.
      if (zqw.parseZqw(data, { trust: null }).signature === undefined) {
        const sig = await readFile(`${set}.sig`);
        data = Buffer.concat([data.subarray(0, data.length - 4), sig]);
        zqw.parseZqw(data, { name: set });
      }
      const q = new URLSearchParams({ channel: o.channel });
      if (o.parent) q.set('parent', o.parent);
      const publisher = o.publisher ?? `${os.userInfo().username}@${os.hostname()}`;
      const r = await call<{ created: boolean; model: string; version: number; channel: string; sha256: string }>({ server: o.server, token, publisher }, 'POST', `v1/sets?${q}`, { bytes: data });
      const d = r.body;
      process.stdout.write(o.json ? JSON.stringify(d) + '\n' : `${d.created ? 'published' : 'already stored;'} ${d.model} version ${d.version} on channel ${d.channel} (sha256 ${d.sha256.slice(0, 16)}…)\n`);
    });
}
