/** int: the CPU integer path (native kernels, or the readable reference when they are missing). */
import { z } from 'zod';
import { ZeroqError } from '../../util/errors.js';
import type { EngineModule } from '../registry.js';

export const intEngine: EngineModule = {
  kind: 'int',
  summary: 'CPU integer path (fixed point, native kernels; bit-exact with the reference)',
  modelFiles: 'a .zqw weight set (make one with zeroq quantize)',
  opens: (model) => /\.zqw$/i.test(model),
  options: {
    /** Instruction set of the native kernels (default: the best the CPU has). */
    isa: z.string().min(1).optional(),
  },
  flags: [
    {
      flags: '--isa <name>',
      description: 'int: instruction set (avx512-vbmi, avx512-vnni, avx2, neon-dotprod, scalar; default: the best the CPU has)',
      key: 'isa',
    },
  ],
  capabilities: { integer: true, threads: true },
  async open(model, opts) {
    if (!/\.zqw$/i.test(model)) {
      throw new ZeroqError('engine-model', 'the int engine runs a .zqw weight set (make one with: zeroq quantize <cfg>)', model);
    }
    const [{ readZqw }, { openIntEngine }] = await Promise.all([import('../../qnet/zqw.js'), import('../int.js')]);
    const { qnet, manifest } = await readZqw(model, { trust: opts.trust });
    return openIntEngine(qnet, { threads: opts.threads, isa: opts.isa as string | undefined, modelId: opts.modelId ?? manifest.id });
  },
};
