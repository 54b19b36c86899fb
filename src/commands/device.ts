import type { Command } from 'commander';

/** `zeroq device add ID`: registers a device on the retraining server and prints its token. */
export function register(program: Command): void {
  const device = program.command('device').description('devices known to the retraining server');
  const common = (c: Command) =>
    c
      .requiredOption('--server <url>', 'the server')
      .option('--token <t>', 'admin token (default: $ZEROQ_ADMIN_TOKEN)')
      .option('--token-file <file>', 'file holding the admin token');
  const admin = async (o: { token?: string; tokenFile?: string }) => {
    const [{ readToken }, { ZeroqError }] = await Promise.all([import('../server/server.js'), import('../util/errors.js')]);
    const t = readToken(o.token ?? (process.env.ZEROQ_ADMIN_TOKEN || undefined), o.tokenFile, 'admin token');
    if (!t) throw new ZeroqError('bad-option', 'give the admin token (--token, --token-file or $ZEROQ_ADMIN_TOKEN)', '--token');
    return t;
  };
  common(device.command('add').description('register a device (or give it a new token); prints the device token (update.token of the device)').argument('<id>', 'device id'))
    .action(async (id: string, o: { server: string; token?: string; tokenFile?: string }) => {
      const { call } = await import('../server/client.js');
      const r = await call<{ id: string; token: string }>({ server: o.server, token: await admin(o) }, 'POST', 'v1/devices', { json: { id } });
      process.stdout.write(`${r.body.token}\n`);
    });
  common(device.command('list').description('devices and what they last reported'))
    .action(async (o: { server: string; token?: string; tokenFile?: string }) => {
      const { call } = await import('../server/client.js');
      const r = await call<{ devices: unknown[] }>({ server: o.server, token: await admin(o) }, 'GET', 'v1/devices');
      process.stdout.write(JSON.stringify(r.body.devices, null, 1) + '\n');
    });
}
