import type { Command } from 'commander';
import { addEngineOptions } from '../cli/engine-options.js';
import { opt, parse } from '../cli/options.js';
import { engineKinds } from '../engine/registry.js';

interface RunOptions {
  config?: string;
  source?: string;
  model?: string;
  engine?: string;
  threads?: number;
  mqttUrl?: string;
  deviceId?: string;
  maxFrames?: number;
  httpPort?: number;
  print?: boolean;
  [engineFlag: string]: unknown;
}

/** `zeroq run`: the daemon — frames in, detections out over MQTT (docs/config.md, docs/mqtt.md). */
export function register(program: Command): void {
  const cmd = program
    .command('run')
    .description('run the detector on a camera, stream, video file or image folder and publish detections over MQTT')
    .option('--config <file>', 'YAML or JSON configuration file (default: $ZEROQ_CONFIG)')
    .option('--source <s>', '/dev/videoN, rtsp://..., a video file, an image folder, lavfi:<graph>, or demo')
    .option('--model <path>', '.zqw weight set (int, the default engine; default: Yolo-Fastest-1.1 W8) or darknet .cfg (float)')
    .option('--mqtt-url <url>', 'broker URL (default: an embedded broker on 127.0.0.1)')
    .option('--device-id <id>', 'device id used in the MQTT topics (default: the host name)')
    .addOption(opt('--max-frames <n>', 'stop cleanly after this many processed frames', parse.positiveInt))
    .addOption(opt('--http-port <port>', 'health and metrics port (0: off)', parse.port))
    .option('--print', 'print every message published, one line each, on stdout')
    .option('--update-server <url>', 'retraining server to take new weight sets from (docs/updates.md)')
    .option('--update-channel <name>', 'its channel (default: stable)')
    .option('--update-token <token>', 'the device token (zeroq device add ID)')
    .addOption(opt('--update-interval <s>', 'seconds between update checks (default: 3600; MQTT announcements come at once)', parse.positiveInt))
    .option('--no-update-install', 'only report new versions; install on the Home Assistant or MQTT install command')
    .option('--update-dir <dir>', 'where installed weight sets and the update state are kept');
  addEngineOptions(cmd, { engineHelp: `engine: ${engineKinds().join(', ')} (default: int)` });
  cmd.action(async (o: RunOptions, cmd: Command) => {
      const [{ Daemon }, { log }, { readFileSync }, path, { repoRoot }] = await Promise.all([
        import('../daemon/daemon.js'),
        import('../util/log.js'),
        import('node:fs'),
        import('node:path'),
        import('../util/paths.js'),
      ]);
      const version = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
      const file = o.config ?? (process.env.ZEROQ_CONFIG || undefined);
      const daemon = await Daemon.start({
        load: {
          file,
          env: process.env,
          flags: {
            ...o,
            source: o.source,
            model: o.model,
            engine: o.engine,
            threads: o.threads,
            mqttUrl: o.mqttUrl,
            deviceId: o.deviceId,
            maxFrames: o.maxFrames,
            httpPort: o.httpPort,
            print: o.print,
            trust: (cmd.optsWithGlobals() as { trust?: string[] }).trust,
            // commander defaults a --no- flag to true: only an explicit --no-update-install counts.
            updateInstall: cmd.getOptionValueSource('updateInstall') === 'cli' ? o.updateInstall : undefined,
          },
        },
        out: process.stdout,
        log,
        version,
      });
      let signals = 0;
      const onStop = (sig: NodeJS.Signals) => {
        signals++;
        if (signals > 1) {
          log.warn({ signal: sig }, 'second signal: exiting now');
          process.exit(1);
        }
        log.info({ signal: sig }, 'signal received');
        void daemon.stop(0);
      };
      process.on('SIGTERM', onStop);
      process.on('SIGINT', onStop);
      process.on('SIGHUP', () => {
        log.info('SIGHUP: reloading the configuration');
        void daemon.reload();
      });
      const code = await daemon.done;
      process.exitCode = code;
      // Everything was closed; should a library still hold the event loop, do not hang the unit.
      setTimeout(() => process.exit(code), 5000).unref();
    });
}
