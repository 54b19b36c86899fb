/**
 * Well-formed inputs of every decoder, which the mutators (mutate.ts) damage: weight sets of a small
 * network that has every layer kind, cfg texts (the data folder's and a small one), a .weights file
 * for the small cfg, config files, and small images in every format sharp reads.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Network } from '../../src/model/ir.js';
import { parseCfg } from '../../src/model/darknet-cfg.js';
import type { QNet } from '../../src/qnet/types.js';
import { writeZqw } from '../../src/qnet/zqw.js';
import { repoRoot } from '../../src/util/paths.js';
import { randomWeightsBuffer } from '../helpers/darknet-fixtures.js';
import { NetBuilder, randomQNet, rng } from '../helpers/random-qnet.js';
import { dataPath } from '../../src/util/paths.js';

/** A 3x16x16 network with every layer kind: convs (grouped, depthwise, mish by table), maxpool, route with groups, shortcut, upsample, dropout, two heads. */
export function smallNet(): Network {
  const b = new NetBuilder({ c: 3, h: 16, w: 16 }, 'fuzz-net');
  b.conv({ filters: 8, size: 3, stride: 2 }); // 0: 8x8x8
  b.conv({ filters: 8, size: 3, groups: 8 }); // 1: depthwise
  b.maxpool(2, 2); // 2: 8x4x4
  b.conv({ filters: 8, size: 1, activation: 'mish' }); // 3
  b.dropout(); // 4
  b.shortcut(2, 'leaky'); // 5
  b.route([5], 2, 1); // 6: 4x4x4
  b.conv({ filters: 12, size: 1, activation: 'linear' }); // 7
  b.yolo(); // 8
  b.upsample(2, 5); // 9: 8x8x8
  b.route([9, 1]); // 10: 16x8x8
  b.conv({ filters: 6, size: 3, groups: 2, activation: 'linear' }); // 11
  b.yolo(); // 12
  return b.build();
}

/** A random QNet of smallNet with tables for its mish layer and 16-bit heads. */
export function smallQNet(seed = 7): QNet {
  return randomQNet(smallNet(), rng(seed), { p16: 0.5 });
}

export function zqwSeeds(): Buffer[] {
  const q = smallQNet();
  return [
    writeZqw(q, { source: { model: 'fuzz' }, created: '2024-01-01T00:00:00Z' }),
    writeZqw(q, { source: { model: 'fuzz' }, created: '2024-01-01T00:00:00Z', deflate: false }),
  ];
}

/** The cfg text of a small network with every section kind zeroq reads. */
export const SMALL_CFG = `[net]
width=16
height=16
channels=3
letter_box=0

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
filters=8
size=3
groups=8
pad=1
activation=swish

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=8
size=1
activation=mish

[dropout]
probability=0.1

[shortcut]
from=-3
activation=linear

[route]
layers=-1
groups=2
group_id=1

[convolutional]
filters=12
size=1
activation=linear

[yolo]
mask=0,1
anchors=10,14, 23,27, 37,58
classes=1
num=3
scale_x_y=1.05
nms_kind=greedynms

[route]
layers=-4

[upsample]
stride=2

[route]
layers=-1, 1

[convolutional]
filters=6
size=1
activation=linear

[yolo]
mask=2
anchors=10,14, 23,27, 37,58
classes=1
num=3
`;

export function cfgSeeds(): string[] {
  const seeds = [SMALL_CFG];
  for (const f of ['yolo-fastest/yolo-fastest-1.1.cfg', 'cfg/yolov3-tiny.cfg', 'cfg/yolov4-tiny.cfg']) {
    const p = dataPath('models', ...f.split('/'));
    if (existsSync(p)) seeds.push(readFileSync(p, 'utf8'));
  }
  return seeds;
}

export function smallCfgNet(): Network {
  return parseCfg(SMALL_CFG, 'small.cfg');
}

/** .weights files for SMALL_CFG: version 0.2 (64-bit seen) and 0.1 (32-bit). */
export function weightsSeeds(): Buffer[] {
  const net = smallCfgNet();
  const v2 = randomWeightsBuffer(net, 3);
  const v1 = Buffer.concat([v2.subarray(0, 16), v2.subarray(20)]);
  v1.writeInt32LE(1, 4);
  return [v2, v1];
}

export const SMALL_CONFIG_JSON = JSON.stringify({
  device_id: 'fuzz',
  source: { url: 'demo', fps: 5, loop: true, restart: { initial_ms: 100, max_ms: 1000 } },
  model: { engine: 'int', path: 'x.zqw', threads: 2 },
  detect: { threshold: 0.3, classes: ['person', 'dog'] },
  mqtt: { url: 'mqtt://127.0.0.1:1883', reconnect: { min_ms: 100, max_ms: 2000 } },
});

/** Configs a daemon runs to the end on its own: the demo source, an embedded broker on a free port, no HTTP. */
export function runnableConfigSeeds(): string[] {
  return [
    JSON.stringify({
      device_id: 'fuzz',
      source: { url: 'demo', fps: 5, restart: { initial_ms: 100, max_ms: 1000 } },
      model: { threads: 2 },
      detect: { threshold: 0.3, classes: ['person', 'dog'] },
      mqtt: { embedded: { port: 0 }, reconnect: { min_ms: 100, max_ms: 2000 } },
      http: { port: 0 },
    }),
    'source:\n  url: demo\nmqtt:\n  embedded:\n    port: 0\nhttp:\n  port: 0\nmodel:\n  threads: 1\ndetect:\n  nms: 0.5\n',
  ];
}

export function configSeeds(): string[] {
  const seeds = [SMALL_CONFIG_JSON, 'model:\n  engine: float\n  threads: 1\nsource:\n  url: demo\n'];
  const example = path.join(repoRoot, 'deploy', 'zeroq.example.yaml');
  if (existsSync(example)) seeds.push(readFileSync(example, 'utf8'));
  return seeds;
}

/** Small images (24x17, random pixels) as JPEG, PNG, WebP, GIF and TIFF, and a grey PNG with alpha. */
export async function imageSeeds(): Promise<Buffer[]> {
  const r = rng(5);
  const raw = Buffer.from(Array.from({ length: 24 * 17 * 3 }, () => Math.floor(r() * 256)));
  const img = () => sharp(raw, { raw: { width: 24, height: 17, channels: 3 } });
  const grey = sharp(Buffer.from(Array.from({ length: 9 * 7 * 2 }, () => Math.floor(r() * 256))), { raw: { width: 9, height: 7, channels: 2 } });
  return Promise.all([
    img().jpeg({ quality: 80 }).toBuffer(),
    img().png().toBuffer(),
    img().webp().toBuffer(),
    img().gif().toBuffer(),
    img().tiff().toBuffer(),
    grey.png().toBuffer(),
  ]);
}
