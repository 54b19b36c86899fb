import type { Command } from 'commander';
import { intIn, opt } from '../cli/options.js';
import { MAX_BAUD, MAX_LINK_TIMEOUT_MS, MIN_BAUD, MIN_LINK_TIMEOUT_MS } from '../engine/kinds/fpga.js';

interface InfoOptions {
  device: string;
  baud?: number;
  fpgaLinkTimeout?: number;
  model?: string;
  json?: boolean;
}

/** `zeroq fpga info`: the bridge's handshake (capabilities, loaded image) and its counters. */
export function register(program: Command): void {
  const fpga = program.command('fpga').description('the serial-attached FPGA accelerator (docs/formats/serial-protocol.md)');
  fpga
    .command('info')
    .description("print the bridge's handshake: protocol, capabilities, the loaded weight set, counters")
    .requiredOption('--device <path>', "the bridge's serial port (e.g. /dev/ttyACM0, or the path of bridge-host --link)")
    .addOption(opt('--baud <n>', "the serial port's baud rate, for a UART", intIn(MIN_BAUD, MAX_BAUD)))
    .addOption(opt('--fpga-link-timeout <ms>', 'how long one request waits for its answer before it is sent again (default: 250)', intIn(MIN_LINK_TIMEOUT_MS, MAX_LINK_TIMEOUT_MS)))
    .option('--model <zqw>', 'also say whether the device can run this weight set, and whether it holds it')
    .option('--json', 'one JSON object on stdout')
    .action(async (o: InfoOptions) => {
      const [{ SerialLink }, { BridgeClient }, { deviceRefusal, encodeDeviceImage, imageDigest }] = await Promise.all([
        import('../engine/fpga/link.js'),
        import('../engine/fpga/client.js'),
        import('../engine/fpga/image.js'),
      ]);
      const baud = o.baud;
      const link = await SerialLink.open(o.device, baud ?? 115200);
      try {
        const client = new BridgeClient(link, { bytesPerSecond: baud ? baud / 10 : undefined, baseTimeoutMs: o.fpgaLinkTimeout });
        const caps = await client.hello(false);
        const stats = await client.stats();
        let model: Record<string, unknown> | undefined;
        if (o.model) {
          const { readZqw } = await import('../qnet/zqw.js');
          const { qnet, manifest } = await readZqw(o.model);
          const image = encodeDeviceImage(qnet, manifest.id);
          const digest = imageDigest(image);
          model = {
            id: manifest.id,
            imageBytes: image.length,
            digest,
            held: caps.imageState === 1 && caps.imageDigest === digest,
            refusal: deviceRefusal(qnet, caps, image.length) ?? null,
          };
        }
        if (o.json) {
          process.stdout.write(JSON.stringify({ device: o.device, ...caps, stats, ...(model ? { model } : {}) }) + '\n');
          return;
        }
        const kinds = ['conv', 'maxpool', 'route', 'shortcut', 'upsample', 'dropout', 'yolo'].filter((_, i) => caps.layerKinds & (1 << (i + 1)));
        const acts = ['linear', 'leaky', 'relu', 'mish', 'swish', 'logistic'].filter((_, i) => caps.activations & (1 << i));
        const bits = Array.from({ length: 7 }, (_, i) => i + 2).filter((b) => caps.weightBits & (1 << b));
        const mib = (v: number): string => `${(v / 2 ** 20).toFixed(1)} MiB`;
        const lines = [
          `${o.device}: ${caps.firmware}, protocol ${caps.version} (accepts ${caps.minVersion}..${caps.version}), boot ${caps.bootId.toString(16).padStart(8, '0')}`,
          `accelerator: interface ${caps.accelId & 0xff}, kernels up to ${caps.maxK}x${caps.maxK}, stride up to ${caps.maxStride}, ${caps.accelId >>> 16} multipliers, ${mib(caps.accelMem)} memory${caps.clockHz ? `, ${(caps.clockHz / 1e6).toFixed(1)} MHz` : ''}`,
          `runs: ${kinds.join(', ')}; activations ${acts.join(', ')}; weights ${bits.join('/')} bits; tensors ${caps.actBits & 2 ? '8 and 16' : '8'} bits`,
          `limits: ${caps.maxLayers} layers, ${caps.maxInputs} inputs per layer, tables of ${caps.maxLut} entries, input sides up to ${caps.maxSide}, images up to ${mib(caps.imageCapacity)}`,
          `link: packets up to ${caps.maxPayload} bytes, ${caps.window} requests and ${caps.slots} frames in flight`,
          caps.imageState === 1
            ? `weight set: ${caps.imageName} (${caps.imageBytes} bytes, sha256 ${caps.imageDigest}, ${mib(caps.memUsed)} of the accelerator memory)`
            : caps.imageState === 2
              ? 'weight set: stored but refused at load'
              : 'weight set: none',
          `counters: ${stats.framesRx} packets in, ${stats.framesTx} out, ${stats.crcErrors} CRC errors, ${stats.framingErrors} framing errors, ${stats.overruns} overruns, ${stats.inferred} frames, ${stats.accelErrors} accelerator errors, ${stats.uploads} uploads, up ${(stats.uptimeMs / 1000).toFixed(0)} s`,
        ];
        if (model) {
          lines.push(
            `${o.model}: ${model.id}, device image ${model.imageBytes} bytes, ${model.refusal ? `cannot run here: ${String(model.refusal)}` : 'can run here'}${model.held ? ', held by the device' : ''}`,
          );
        }
        process.stdout.write(lines.join('\n') + '\n');
      } finally {
        await link.close();
      }
    });
}
