import type { Command } from 'commander';
import { opt, parse } from '../cli/options.js';

/** `zeroq rollback --server URL --model M --channel C [--to V]`: a channel back to an earlier version. */
export function register(program: Command): void {
  program
    .command('rollback')
    .description('point a channel of the retraining server back at an earlier version (default: the one before the current)')
    .requiredOption('--server <url>', 'the server')
    .requiredOption('--model <name>', 'model name (as the weight sets call it, e.g. yolo-fastest-1.1)')
    .requiredOption('--channel <name>', 'channel')
    .addOption(opt('--to <version>', 'the version to go back to', parse.positiveInt))
    .option('--token <t>', 'admin token (default: $ZEROQ_ADMIN_TOKEN)')
    .option('--token-file <file>', 'file holding the admin token')
    .action(async (o: { server: string; model: string; channel: string; to?: number; token?: string; tokenFile?: string }) => {
      const [{ call }, { readToken }, { ZeroqError }] = await Promise.all([import('../server/client.js'), import('../server/server.js'), import('../util/errors.js')]);
      const token = readToken(o.token ?? (process.env.ZEROQ_ADMIN_TOKEN || undefined), o.tokenFile, 'admin token');
      if (!token) throw new ZeroqError('bad-option', 'give the admin token (--token, --token-file or $ZEROQ_ADMIN_TOKEN)', '--token');
      const to = o.to;
      const r = await call<{ version: number }>({ server: o.server, token }, 'POST', `v1/models/${encodeURIComponent(o.model)}/channels/${encodeURIComponent(o.channel)}/rollback`, { json: to === undefined ? {} : { to } });
      process.stdout.write(`${o.model} channel ${o.channel} now at version ${r.body.version}\n`);
    });
}
