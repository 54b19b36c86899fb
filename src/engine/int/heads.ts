import type { Network } from '../../model/ir.js';
import type { QNet } from '../../qnet/types.js';
import { ZeroqError } from '../../util/errors.js';
import type { Frame, HeadTensor } from '../engine.js';
import type { ITensor } from './tensor.js';

/** The frame as the network input tensor: CHW of the uint8 values (fraction 8). */
export function frameTensor(net: Network, frame: Frame): ITensor {
  const { c, h, w } = net.input;
  if (frame.width !== w || frame.height !== h || frame.rgb.length !== w * h * 3 || c !== 3) {
    throw new ZeroqError('FRAME_SIZE', `frame ${frame.width}x${frame.height} (${frame.rgb.length} bytes) does not match the network input ${w}x${h}x${c}`, net.name);
  }
  const data = new Int32Array(3 * h * w);
  for (let i = 0; i < h * w; i++) {
    data[i] = frame.rgb[3 * i];
    data[h * w + i] = frame.rgb[3 * i + 1];
    data[2 * h * w + i] = frame.rgb[3 * i + 2];
  }
  return { c: 3, h, w, data };
}

/** A head tensor from the integers of a yolo layer's input. */
export function headTensor(qnet: QNet, yolo: number, raw: Int32Array): HeadTensor {
  const src = qnet.net.layers[yolo].inputs[0];
  const { c, h, w } = qnet.net.layers[src].out;
  const frac = qnet.formats[src].frac;
  const scale = 2 ** -frac;
  const data = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) data[i] = raw[i] * scale;
  return { layer: yolo, c, h, w, data, raw, frac };
}
