import type { Command } from 'commander';

interface JobOptions {
  server: string;
  model: string;
  from: string;
  to: string;
  token?: string;
  tokenFile?: string;
  wait?: boolean;
}

/** `zeroq job retrain`: asks the retraining server for a retraining job (and follows it with --wait). */
export function register(program: Command): void {
  const job = program.command('job').description('jobs of the retraining server');
  job
    .command('retrain')
    .description("retrain a channel's current set on the calibration images plus the hard-frame pool; the result goes to the canary channel when its AP50 is not lower than the current one's minus the tolerance")
    .requiredOption('--server <url>', 'the server')
    .requiredOption('--model <name>', 'model name (e.g. yolo-fastest-1.1)')
    .option('--from <channel>', 'channel whose current set is retrained', 'stable')
    .option('--to <channel>', 'channel a good result is published to', 'canary')
    .option('--token <t>', 'admin token (default: $ZEROQ_ADMIN_TOKEN)')
    .option('--token-file <file>', 'file holding the admin token')
    .option('--wait', 'wait for the job to end and print its log; exit 2 when it failed')
    .action(async (o: JobOptions) => {
      const [{ call }, { readToken }, { ZeroqError }] = await Promise.all([import('../server/client.js'), import('../server/server.js'), import('../util/errors.js')]);
      const token = readToken(o.token ?? (process.env.ZEROQ_ADMIN_TOKEN || undefined), o.tokenFile, 'admin token');
      if (!token) throw new ZeroqError('bad-option', 'give the admin token (--token, --token-file or $ZEROQ_ADMIN_TOKEN)', '--token');
      const c = { server: o.server, token };
      const r = await call<{ id: string }>(c, 'POST', 'v1/jobs', { json: { kind: 'retrain', model: o.model, from: o.from, to: o.to } });
      process.stdout.write(`job ${r.body.id} queued\n`);
      if (!o.wait) return;
      for (;;) {
        const j = await call<{ state: string; result?: string; log: string }>(c, 'GET', `v1/jobs/${r.body.id}`);
        if (j.body.state === 'done' || j.body.state === 'failed') {
          process.stdout.write(j.body.log);
          if (j.body.state === 'failed') throw new ZeroqError('job-failed', j.body.result ?? 'failed', r.body.id);
          return;
        }
        await new Promise((res) => setTimeout(res, 1000));
      }
    });
}
