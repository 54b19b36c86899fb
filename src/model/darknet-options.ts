/**
 * Every section and option of darknet's cfg format (AlexeyAB's fork, which Yolo-Fastest and YOLOv4
 * use) that zeroq knows, with the type of its value and what zeroq does with it:
 * - use:    read by the importer;
 * - ignore: only matters for training or GPU scheduling, checked for its type and otherwise ignored;
 * - fixed:  changes inference in a way zeroq does not implement; accepted only at its neutral value;
 * - refuse: zeroq cannot honour it at any value.
 */

export type OptionType = 'int' | 'float' | 'flag' | 'word' | 'ints' | 'floats' | 'text';

export interface OptionSpec {
  type: OptionType;
  role: 'use' | 'ignore' | 'fixed' | 'refuse';
  /** For role 'fixed': the only value accepted. */
  fixed?: number | string;
  /** Accepted words (type 'word'). */
  choices?: readonly string[];
  /** Smallest accepted number (int/float, and each element of ints/floats). */
  min?: number;
  max?: number;
}

export type SectionKind = 'net' | 'convolutional' | 'maxpool' | 'route' | 'shortcut' | 'upsample' | 'dropout' | 'yolo';

/** Section names as darknet spells them, aliases included. */
export const SECTION_NAMES: Readonly<Record<string, SectionKind>> = {
  net: 'net',
  network: 'net',
  convolutional: 'convolutional',
  conv: 'convolutional',
  maxpool: 'maxpool',
  max: 'maxpool',
  route: 'route',
  shortcut: 'shortcut',
  upsample: 'upsample',
  dropout: 'dropout',
  yolo: 'yolo',
};

/** darknet layer types zeroq recognises but does not implement. */
export const UNSUPPORTED_SECTIONS: readonly string[] = [
  'local', 'activation', 'rnn', 'gru', 'lstm', 'conv_lstm', 'history', 'crnn', 'connected', 'conn', 'crop',
  'cost', 'region', 'Gaussian_yolo', 'detection', 'softmax', 'soft', 'contrastive', 'normalization', 'lrn',
  'batchnorm', 'local_avg', 'local_avgpool', 'reorg3d', 'reorg', 'avg', 'avgpool', 'empty', 'silence',
  'implicit', 'sam', 'scale_channels',
];

/** Every activation name darknet accepts. */
export const DARKNET_ACTIVATIONS: readonly string[] = [
  'logistic', 'swish', 'mish', 'hard_mish', 'normalize_channels', 'normalize_channels_softmax',
  'normalize_channels_softmax_maxval', 'loggy', 'relu', 'relu6', 'elu', 'selu', 'gelu', 'relie', 'plse',
  'hardtan', 'lhtan', 'linear', 'ramp', 'revleaky', 'leaky', 'tanh', 'stair',
];

const use = (type: OptionType, extra: Partial<OptionSpec> = {}): OptionSpec => ({ type, role: 'use', ...extra });
const ignore = (type: OptionType, extra: Partial<OptionSpec> = {}): OptionSpec => ({ type, role: 'ignore', ...extra });
const fixed = (type: OptionType, value: number | string, extra: Partial<OptionSpec> = {}): OptionSpec => ({
  type,
  role: 'fixed',
  fixed: value,
  ...extra,
});
const refuse = (type: OptionType): OptionSpec => ({ type, role: 'refuse' });

const NET: Record<string, OptionSpec> = {
  width: use('int', { min: 1 }),
  height: use('int', { min: 1 }),
  channels: use('int', { min: 1 }),
  letter_box: use('flag'),
  inputs: ignore('int', { min: 0 }),
  batch: ignore('int', { min: 0 }),
  subdivisions: ignore('int', { min: 1 }),
  max_batches: ignore('int', { min: 0 }),
  learning_rate: ignore('float'),
  learning_rate_min: ignore('float'),
  sgdr_cycle: ignore('int'),
  sgdr_mult: ignore('int'),
  momentum: ignore('float'),
  decay: ignore('float'),
  time_steps: ignore('int'),
  track: ignore('int'),
  augment_speed: ignore('int'),
  sequential_subdivisions: ignore('int'),
  try_fix_nan: ignore('int'),
  weights_reject_freq: ignore('int'),
  equidistant_point: ignore('int'),
  badlabels_rejection_percentage: ignore('float'),
  num_sigmas_reject_badlabels: ignore('float'),
  ema_alpha: ignore('float'),
  use_cuda_graph: ignore('int'),
  loss_scale: ignore('float'),
  dynamic_minibatch: ignore('int'),
  optimized_memory: ignore('int'),
  workspace_size_limit_MB: ignore('float'),
  adam: ignore('flag'),
  B1: ignore('float'),
  B2: ignore('float'),
  eps: ignore('float'),
  max_crop: ignore('int'),
  min_crop: ignore('int'),
  flip: ignore('int'),
  blur: ignore('int'),
  gaussian_noise: ignore('int'),
  mixup: ignore('int'),
  cutmix: ignore('int'),
  mosaic: ignore('int'),
  mosaic_bound: ignore('int'),
  contrastive: ignore('int'),
  contrastive_jit_flip: ignore('int'),
  contrastive_color: ignore('int'),
  unsupervised: ignore('int'),
  label_smooth_eps: ignore('float'),
  resize_step: ignore('float'),
  attention: ignore('int'),
  adversarial_lr: ignore('float'),
  max_chart_loss: ignore('float'),
  angle: ignore('float'),
  aspect: ignore('float'),
  saturation: ignore('float'),
  exposure: ignore('float'),
  hue: ignore('float'),
  power: ignore('float'),
  policy: ignore('word', { choices: ['random', 'poly', 'constant', 'step', 'exp', 'sigmoid', 'steps', 'sgdr'] }),
  burn_in: ignore('int'),
  step: ignore('int'),
  scale: ignore('float'),
  steps: ignore('floats'),
  scales: ignore('floats'),
  seq_scales: ignore('floats'),
  gamma: ignore('float'),
  show_receptive_field: ignore('int'),
};

/** Options darknet reads in every layer section. */
const EVERY_LAYER: Record<string, OptionSpec> = {
  clip: ignore('float'),
  onlyforward: ignore('int'),
  dont_update: ignore('int'),
  burnin_update: ignore('int'),
  stopbackward: ignore('int'),
  train_only_bn: ignore('int'),
  learning_rate: ignore('float'),
  // These change which numbers darknet reads from the .weights file.
  dontload: fixed('int', 0),
  dontloadscales: fixed('int', 0),
};

const STREAMS: Record<string, OptionSpec> = {
  stream: ignore('int'),
  wait_stream: ignore('int'),
};

const CONVOLUTIONAL: Record<string, OptionSpec> = {
  filters: use('int', { min: 1 }),
  size: use('int', { min: 1 }),
  stride: use('int', { min: 1 }),
  stride_x: use('int', { min: 1 }),
  stride_y: use('int', { min: 1 }),
  pad: use('flag'),
  padding: use('int', { min: 0 }),
  groups: use('int', { min: 1 }),
  activation: use('word', { choices: DARKNET_ACTIVATIONS }),
  batch_normalize: use('flag'),
  dilation: use('int', { min: 1 }),
  antialiasing: fixed('int', 0),
  share_index: refuse('int'),
  binary: fixed('flag', 0),
  xnor: fixed('flag', 0),
  bin_output: ignore('flag'),
  sway: fixed('flag', 0),
  rotate: fixed('flag', 0),
  stretch: fixed('flag', 0),
  stretch_sway: fixed('flag', 0),
  flipped: fixed('flag', 0),
  coordconv: fixed('flag', 0),
  cbn: ignore('flag'),
  assisted_excitation: ignore('float'),
  dot: ignore('float'),
  angle: ignore('float'),
  grad_centr: ignore('int'),
  reverse: ignore('float'),
  ...STREAMS,
};

const MAXPOOL: Record<string, OptionSpec> = {
  size: use('int', { min: 1 }),
  stride: use('int', { min: 1 }),
  stride_x: use('int', { min: 1 }),
  stride_y: use('int', { min: 1 }),
  padding: use('int', { min: 0 }),
  maxpool_depth: fixed('int', 0),
  out_channels: ignore('int'),
  antialiasing: fixed('int', 0),
  maxpool_zero_nonmax: fixed('int', 0),
};

const ROUTE: Record<string, OptionSpec> = {
  layers: use('ints'),
  groups: use('int', { min: 1 }),
  group_id: use('int', { min: 0 }),
  ...STREAMS,
};

const SHORTCUT: Record<string, OptionSpec> = {
  from: use('ints'),
  activation: use('word', { choices: DARKNET_ACTIVATIONS }),
  weights_type: fixed('word', 'none', { choices: ['none', 'per_feature', 'per_layer', 'per_channel'] }),
  weights_normalization: fixed('word', 'none', { choices: ['none', 'relu', 'avg_relu', 'softmax'] }),
};

const UPSAMPLE: Record<string, OptionSpec> = {
  stride: use('int', { min: 1 }),
  scale: fixed('float', 1),
};

const DROPOUT: Record<string, OptionSpec> = {
  probability: use('float', { min: 0, max: 1 }),
  dropblock: ignore('int'),
  dropblock_size_rel: ignore('float'),
  dropblock_size_abs: ignore('float'),
};

const YOLO: Record<string, OptionSpec> = {
  classes: use('int', { min: 1 }),
  num: use('int', { min: 1 }),
  mask: use('ints', { min: 0 }),
  anchors: use('floats', { min: 0 }),
  scale_x_y: use('float', { min: 0 }),
  new_coords: use('flag'),
  nms_kind: use('word', { choices: ['default', 'greedynms', 'diounms', 'cornersnms'] }),
  beta_nms: use('float'),
  max: ignore('int'),
  show_details: ignore('int'),
  max_delta: ignore('float'),
  counters_per_class: ignore('ints'),
  label_smooth_eps: ignore('float'),
  objectness_smooth: ignore('int'),
  iou_normalizer: ignore('float'),
  obj_normalizer: ignore('float'),
  cls_normalizer: ignore('float'),
  delta_normalizer: ignore('float'),
  iou_loss: ignore('word', { choices: ['mse', 'iou', 'giou', 'diou', 'ciou'] }),
  iou_thresh_kind: ignore('word', { choices: ['iou', 'giou', 'diou', 'ciou'] }),
  jitter: ignore('float'),
  resize: ignore('float'),
  focal_loss: ignore('int'),
  ignore_thresh: ignore('float'),
  truth_thresh: ignore('float'),
  iou_thresh: ignore('float'),
  random: ignore('float'),
  track_history_size: ignore('int'),
  sim_thresh: ignore('float'),
  dets_for_track: ignore('int'),
  dets_for_show: ignore('int'),
  track_ciou_norm: ignore('float'),
  embedding_layer: refuse('int'),
  map: refuse('text'),
};

export const SECTION_OPTIONS: Readonly<Record<SectionKind, Readonly<Record<string, OptionSpec>>>> = {
  net: NET,
  convolutional: { ...EVERY_LAYER, ...CONVOLUTIONAL },
  maxpool: { ...EVERY_LAYER, ...MAXPOOL },
  route: { ...EVERY_LAYER, ...ROUTE },
  shortcut: { ...EVERY_LAYER, ...SHORTCUT },
  upsample: { ...EVERY_LAYER, ...UPSAMPLE },
  dropout: { ...EVERY_LAYER, ...DROPOUT },
  yolo: { ...EVERY_LAYER, ...YOLO },
};
