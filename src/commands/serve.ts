import type { Command } from 'commander';
import { MAX_THREADS, numberIn, opt, parse } from '../cli/options.js';

interface ServeOptions {
  dataDir: string;
  listen: string;
  publicUrl?: string;
  adminTokenFile?: string;
  key?: string;
  mqttUrl?: string;
  mqttPrefix: string;
  mqttUsername?: string;
  mqttPassword?: string;
  validation?: string;
  validationLimit?: number;
  calib?: string;
  calibLimit?: number;
  modelsDir?: string;
  retrainArgs?: string;
  tolerance: number;
  golden?: string[];
  threads: number;
  retrainAfter: number;
  maxSetMb: number;
  maxFrameKb: number;
  poolMax: number;
  framesPerHour: number;
  frameBurst: number;
}

/** `zeroq serve`: the retraining server (docs/updates.md, docs/formats/update-protocol.md). */
export function register(program: Command): void {
  program
    .command('serve')
    .description('run the retraining server: weight-set registry with channels, signed downloads for devices, MQTT announcements, hard-frame pool, retraining jobs')
    .requiredOption('--data-dir <dir>', 'where weight sets, state, the frame pool and job logs are kept')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8470')
    .option('--public-url <url>', 'the URL devices reach this server at (default: http://LISTEN)')
    .option('--admin-token-file <file>', 'file holding the admin token (default: $ZEROQ_ADMIN_TOKEN, else DATA_DIR/admin-token, made at the first start)')
    .option('--key <file>', 'the server\'s private key (NAME.key): retrained sets are signed with it, and sets it signed are accepted')
    .option('--mqtt-url <url>', 'broker on which new versions are announced (retained)')
    .option('--mqtt-prefix <p>', 'topic prefix of announcements: <prefix>/updates/<model>/<channel>', 'zeroq')
    .option('--mqtt-username <u>', 'broker user name')
    .option('--mqtt-password <p>', 'broker password')
    .option('--validation <list>', 'image list (with instances.json beside it) every version is scored on (AP50)')
    .addOption(opt('--validation-limit <n>', 'only the first n images of the validation list', parse.positiveInt))
    .option('--calib <list>', 'training images of retraining jobs, besides the pool (default: $ZEROQ_DATA/coco-val/calib.txt)')
    .addOption(opt('--calib-limit <n>', 'only the first n images of the calibration list', parse.positiveInt))
    .option('--models-dir <dir>', 'where the float models named by weight sets are found (default: $ZEROQ_DATA/models)')
    .option('--retrain-args <args>', 'extra arguments of `zeroq retrain` in jobs (e.g. "--iterations 2 --epochs 1")')
    .addOption(opt('--tolerance <ap50>', 'publish a retrained set to canary when its AP50 >= the current one minus this (AP50 points)', numberIn(0, 100), 0.5))
    .option('--golden <images...>', 'images whose head digests retrained sets carry as their self-test (default: the first two validation images)')
    .addOption(opt('--threads <n>', `engine threads of jobs (1..${MAX_THREADS})`, parse.threads, 1))
    .addOption(opt('--retrain-after <n>', 'start a retraining job after this many new hard frames (0: only by hand)', parse.count, 0))
    .addOption(opt('--max-set-mb <n>', 'largest weight set accepted, MiB', numberIn(1, 1e6), 64))
    .addOption(opt('--max-frame-kb <n>', 'largest uploaded frame, KiB', numberIn(1, 1e7), 1024))
    .addOption(opt('--pool-max <n>', 'hard frames kept (oldest removed first)', parse.positiveInt, 5000))
    .addOption(opt('--frames-per-hour <n>', 'hard frames accepted per device per hour', numberIn(0.001, 1e9), 60))
    .addOption(opt('--frame-burst <n>', 'hard frames a device may send at once', parse.positiveInt, 10))
    .action(async (o: ServeOptions) => {
      const [{ startServer, parseListen, readToken }, { log }, { defaultJobPaths }, { defaultTrust }, { ZeroqError }, fs, path, { repoRoot }] = await Promise.all([
        import('../server/server.js'),
        import('../util/log.js'),
        import('../server/jobs.js'),
        import('../qnet/keys.js'),
        import('../util/errors.js'),
        import('node:fs'),
        import('node:path'),
        import('../util/paths.js'),
      ]);
      const { host, port } = parseListen(o.listen);
      const defaults = defaultJobPaths();
      let golden = o.golden ?? [];
      if (!o.golden && o.validation) {
        const lines = fs.readFileSync(o.validation, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
        golden = lines.slice(0, 2).map((l) => path.resolve(path.dirname(o.validation!), l));
      }
      const version = (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
      const server = await startServer({
        dataDir: o.dataDir,
        host,
        port,
        publicUrl: o.publicUrl,
        adminToken: readToken(process.env.ZEROQ_ADMIN_TOKEN || undefined, o.adminTokenFile, 'admin token'),
        trust: defaultTrust() ?? [],
        mqtt: o.mqttUrl ? { url: o.mqttUrl, prefix: o.mqttPrefix, username: o.mqttUsername, password: o.mqttPassword } : undefined,
        maxSetBytes: o.maxSetMb * 2 ** 20,
        pool: {
          maxFrameBytes: o.maxFrameKb * 1024,
          maxFrames: o.poolMax,
          perHour: o.framesPerHour,
          burst: o.frameBurst,
        },
        jobs: {
          validation: o.validation,
          validationLimit: o.validationLimit,
          calib: o.calib ?? defaults.calib,
          calibLimit: o.calibLimit,
          retrainArgs: o.retrainArgs ? o.retrainArgs.split(/\s+/).filter(Boolean) : [],
          tolerance: o.tolerance / 100,
          key: o.key,
          golden,
          modelsDir: o.modelsDir ?? defaults.modelsDir,
          threads: o.threads,
        },
        retrainAfter: o.retrainAfter,
        retrainChannels: { from: 'stable', to: 'canary' },
        log,
        version,
      });
      process.stdout.write(`listening on ${server.url}${server.adminTokenFile ? ` (admin token in ${server.adminTokenFile})` : ''}\n`);
      let closing = false;
      const stop = (sig: NodeJS.Signals) => {
        if (closing) process.exit(1);
        closing = true;
        log.info({ signal: sig }, 'stopping');
        void server.close().then(() => process.exit(0));
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
}
