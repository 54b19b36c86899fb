/**
 * fpga: a serial-attached accelerator through the bridge firmware (docs/formats/serial-protocol.md),
 * with the int engine as its bit-exact fallback while the device is missing or failing.
 */
import { z } from 'zod';
import { ZeroqError } from '../../util/errors.js';
import type { EngineModule } from '../registry.js';

export const MIN_BAUD = 300;
export const MAX_BAUD = 100_000_000;

function baudFlag(value: string, flag: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isInteger(v) || v < MIN_BAUD || v > MAX_BAUD) {
    throw new ZeroqError('bad-option', `"${value}" is not a baud rate in ${MIN_BAUD}..${MAX_BAUD}`, flag);
  }
  return v;
}

export const MIN_TIMEOUT_MS = 1000;
export const MAX_TIMEOUT_MS = 24 * 3600 * 1000;

export const MIN_LINK_TIMEOUT_MS = 50;
export const MAX_LINK_TIMEOUT_MS = 60_000;

function msFlag(min: number, max: number): (value: string, flag: string) => number {
  return (value, flag) => {
    const v = Number(value);
    if (value.trim() === '' || !Number.isInteger(v) || v < min || v > max) {
      throw new ZeroqError('bad-option', `"${value}" is not a time in ms in ${min}..${max}`, flag);
    }
    return v;
  };
}

export const fpgaEngine: EngineModule = {
  kind: 'fpga',
  summary: 'serial-attached FPGA accelerator through the bridge firmware (falls back to int)',
  modelFiles: 'a .zqw weight set, with --device',
  // A .zqw runs on int unless fpga is asked for.
  opens: () => false,
  options: {
    /** The bridge's serial port (a USB CDC/UART device, or the link bridge-host --link made). */
    device: z.string().min(1).optional(),
    /** A UART's baud rate (paces the deadlines; USB links ignore it). */
    baud: z.number().int().min(MIN_BAUD).max(MAX_BAUD).optional(),
    /**
     * How long the device may compute one frame before it is taken as stuck, ms (default: 10 times
     * the last frame's device time, at least 30 s). A simulated accelerator needs minutes.
     */
    fpga_timeout: z.number().int().min(MIN_TIMEOUT_MS).max(MAX_TIMEOUT_MS).optional(),
    /**
     * How long one request waits for its answer before it is sent again, ms, on top of its transfer
     * time at the link's rate (default 250; three tries). A loaded host or a slow USB hub needs more.
     */
    fpga_link_timeout: z.number().int().min(MIN_LINK_TIMEOUT_MS).max(MAX_LINK_TIMEOUT_MS).optional(),
  },
  flags: [
    { flags: '--device <path>', description: 'fpga: the bridge\'s serial port (e.g. /dev/ttyACM0, or the path of bridge-host --link)', key: 'device' },
    { flags: '--baud <n>', description: 'fpga: the serial port\'s baud rate, for a UART (default: the link is taken to carry 1 MB/s)', key: 'baud', parse: baudFlag, type: 'int' },
    {
      flags: '--fpga-timeout <ms>',
      description: 'fpga: the longest the device may compute one frame before it is taken as stuck (default: 10 times the last frame, at least 30000)',
      key: 'fpga_timeout',
      parse: msFlag(MIN_TIMEOUT_MS, MAX_TIMEOUT_MS),
      type: 'int',
    },
    {
      flags: '--fpga-link-timeout <ms>',
      description: 'fpga: how long one request waits for its answer before it is sent again, beside its transfer time (default: 250; three tries)',
      key: 'fpga_link_timeout',
      parse: msFlag(MIN_LINK_TIMEOUT_MS, MAX_LINK_TIMEOUT_MS),
      type: 'int',
    },
  ],
  capabilities: { integer: true, threads: true },
  async open(model, opts) {
    if (!/\.zqw$/i.test(model)) {
      throw new ZeroqError('engine-model', 'the fpga engine runs a .zqw weight set (make one with: zeroq quantize <cfg>)', model);
    }
    const device = opts.device as string | undefined;
    if (!device) throw new ZeroqError('bad-option', 'the fpga engine needs the bridge\'s port: --device PATH (config: model.device)', '--device');
    const [{ readZqw }, { openIntEngine }, { FpgaEngine }] = await Promise.all([
      import('../../qnet/zqw.js'),
      import('../int.js'),
      import('../fpga/engine.js'),
    ]);
    const { qnet, manifest } = await readZqw(model, { trust: opts.trust });
    const modelId = opts.modelId ?? manifest.id;
    return FpgaEngine.open(qnet, {
      device,
      baud: opts.baud as number | undefined,
      computeLimitMs: opts.fpga_timeout as number | undefined,
      baseTimeoutMs: opts.fpga_link_timeout as number | undefined,
      modelId,
      fallback: openIntEngine(qnet, { threads: opts.threads, modelId }),
    });
  },
};
