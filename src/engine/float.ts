/**
 * The float engine: the network as an ONNX graph (model/onnx-builder) run by onnxruntime-node on
 * the CPU. Input planar [0, 1] (the frame's float image, or P/255), outputs the tensors feeding the
 * yolo layers.
 */
import * as ort from 'onnxruntime-node';
import type { FloatModel, Network, Shape } from '../model/ir.js';
import { buildOnnx, exposedLayers, headOutputNames, INPUT_NAME, layerTensorName } from '../model/onnx-builder.js';
import { ZeroqError } from '../util/errors.js';
import type { Engine, EngineOptions, Frame, HeadTensor } from './engine.js';

export interface FloatEngineOptions extends EngineOptions {
  /** Identifies the weights in logs and metrics (default: the network name). */
  modelId?: string;
  /** Also expose every layer's output (for calibration; see inferLayers). Slower. */
  allOutputs?: boolean;
}

/** One layer's output as computed by the float engine. */
export interface LayerOutput {
  layer: number;
  shape: Shape;
  data: Float32Array;
}

/** P/255 for every 8-bit value, rounded to float32 as darknet's (float)p/255. */
const PIXEL_SCALE = Float32Array.from({ length: 256 }, (_, p) => p / 255);

export class FloatEngine implements Engine {
  readonly kind = 'float' as const;
  private readonly input: Float32Array;
  private readonly inputTensor: ort.Tensor;
  private readonly headNames: string[];
  private closed = false;

  private constructor(
    readonly net: Network,
    readonly modelId: string,
    private readonly session: ort.InferenceSession,
    private readonly allOutputs: boolean,
  ) {
    const { c, h, w } = net.input;
    if (c !== 3) throw new ZeroqError('engine-input', `the float engine takes RGB input, the network has ${c} channels`, net.name);
    this.input = new Float32Array(c * h * w);
    this.inputTensor = new ort.Tensor('float32', this.input, [1, c, h, w]);
    this.headNames = headOutputNames(net);
  }

  static async create(model: FloatModel, opts: FloatEngineOptions = {}): Promise<FloatEngine> {
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new ZeroqError('engine-options', `threads must be a positive integer, got ${threads}`);
    const bytes = buildOnnx(model, { allOutputs: opts.allOutputs });
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        ...(opts.spin === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
      });
    } catch (err) {
      throw new ZeroqError('engine-load', `onnxruntime refused the graph: ${(err as Error).message}`, model.net.name, { cause: err });
    }
    return new FloatEngine(model.net, opts.modelId ?? model.net.name, session, opts.allOutputs ?? false);
  }

  /** Frame → the planar input buffer: its float image when it has one, else P/255 of its 8-bit RGB. */
  private fill(frame: Frame): void {
    const { h, w } = this.net.input;
    if (frame.width !== w || frame.height !== h || frame.rgb.length !== w * h * 3) {
      throw new ZeroqError(
        'engine-input',
        `frame is ${frame.width}x${frame.height} (${frame.rgb.length} bytes), the network takes ${w}x${h} RGB`,
        this.net.name,
      );
    }
    const plane = w * h;
    if (frame.planar) {
      if (frame.planar.length !== 3 * plane) {
        throw new ZeroqError('engine-input', `planar frame of ${frame.planar.length} values, the network takes ${3 * plane}`, this.net.name);
      }
      this.input.set(frame.planar);
      return;
    }
    const src = frame.rgb;
    const dst = this.input;
    for (let i = 0, s = 0; i < plane; i++, s += 3) {
      dst[i] = PIXEL_SCALE[src[s]];
      dst[plane + i] = PIXEL_SCALE[src[s + 1]];
      dst[2 * plane + i] = PIXEL_SCALE[src[s + 2]];
    }
  }

  private async run(frame: Frame): Promise<ort.InferenceSession.ReturnType> {
    if (this.closed) throw new ZeroqError('engine-closed', 'the float engine is closed', this.net.name);
    this.fill(frame);
    return this.session.run({ [INPUT_NAME]: this.inputTensor });
  }

  async infer(frame: Frame): Promise<HeadTensor[]> {
    const out = await this.run(frame);
    return this.net.heads.map((layer, k) => {
      const t = out[this.headNames[k]];
      const [, c, h, w] = t.dims;
      return { layer, c, h, w, data: t.data as Float32Array };
    });
  }

  /** Every non-yolo layer's output; only for an engine created with allOutputs. */
  async inferLayers(frame: Frame): Promise<LayerOutput[]> {
    if (!this.allOutputs) throw new ZeroqError('engine-options', 'inferLayers needs an engine created with allOutputs', this.net.name);
    const out = await this.run(frame);
    return exposedLayers(this.net).map((i) => ({
      layer: i,
      shape: this.net.layers[i].out,
      data: out[layerTensorName(i)].data as Float32Array,
    }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }
}
