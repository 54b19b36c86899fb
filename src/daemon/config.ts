/**
 * The daemon's configuration: one zod schema gives the defaults, the validation (unknown keys are
 * errors) and the TypeScript type. Keys are snake_case as they appear in the YAML file; docs/config.md
 * documents every one of them.
 */
import { z } from 'zod';
import { MAX_THREADS } from '../util/limits.js';
import path from 'node:path';
import { engineKinds, engineModules } from '../engine/registry.js';
import { repoRoot } from '../util/paths.js';

const seconds = (def: number) => z.number().positive().default(def);

const backoff = z
  .strictObject({
    initial_ms: z.number().int().positive().default(500),
    max_ms: z.number().int().positive().default(30_000),
    factor: z.number().min(1).default(2),
  })
  .prefault({});

export const SOURCE_KINDS = ['auto', 'v4l2', 'stream', 'file', 'folder', 'lavfi'] as const;

const source = z
  .strictObject({
    /** /dev/videoN, rtsp://…, http://…, a video file, a folder of images, lavfi:<graph>, or "demo". */
    url: z.string().min(1).default('demo'),
    kind: z.enum(SOURCE_KINDS).default('auto'),
    /** Files and folders: start again at the end instead of stopping the daemon. */
    loop: z.boolean().default(false),
    /**
     * Frames per second the source delivers: ffmpeg drops or repeats to this rate; a folder is paced
     * at it (and then behaves like a camera: frames the detector cannot take are skipped).
     */
    fps: z.number().positive().optional(),
    /** Files and lavfi graphs: read at their native frame rate (as a camera would deliver them). */
    realtime: z.boolean().default(true),
    /** Who resizes to the network input: ffmpeg (default, small frames on the pipe) or the host. */
    scale: z.enum(['ffmpeg', 'host']).default('ffmpeg'),
    /** V4L2: capture size and pixel format asked of the device (e.g. 1280x720, mjpeg). */
    video_size: z.string().regex(/^\d+x\d+$/, 'expected WIDTHxHEIGHT, e.g. 1280x720').optional(),
    input_format: z.string().min(1).optional(),
    /** Extra ffmpeg arguments placed before -i (e.g. ["-rtsp_transport", "udp"]). */
    input_args: z.array(z.string()).default([]),
    /** Restart the source when no frame arrived for this long. */
    stall_timeout_s: seconds(10),
    /** Restart when this many consecutive frames are malformed. */
    max_bad_frames: z.number().int().positive().default(3),
    restart: backoff,
    /** A source that delivered frames for this long has its back-off reset. */
    stable_after_s: seconds(30),
    ffmpeg: z.string().min(1).default('ffmpeg'),
    /** A file holding the stream's password (first line); the URL names the user: rtsp://user@camera/... */
    password_file: z.string().min(1).optional(),
  })
  .prefault({});

/** The weight set `zeroq run` uses when none is configured: Yolo-Fastest-1.1 at 8 bits, shipped in deploy/weights/. */
export function defaultWeightSet(): string {
  return path.join(repoRoot, 'deploy', 'weights', 'yolo-fastest-1.1-w8.zqw');
}

/** Every registered engine's own keys (device, baud, isa, ...) sit beside engine, path and threads. */
function engineOptionShapes(): z.ZodRawShape {
  return Object.assign({}, ...engineModules().map((m) => m.options)) as z.ZodRawShape;
}

const model = z
  .strictObject({
    ...engineOptionShapes(),
    /** A registered engine kind (src/engine/registry.ts): int (default), float, ... */
    engine: z
      .string()
      .superRefine((kind, ctx) => {
        if (!engineKinds().includes(kind)) ctx.addIssue({ code: 'custom', message: `unknown engine "${kind}" (available: ${engineKinds().join(', ')})` });
      })
      .default('int'),
    /** darknet .cfg (weights beside it) for float, .zqw weight set for int. Default: Yolo-Fastest 1.1 (W8 weight set for int, the data folder's cfg for float). */
    path: z.string().min(1).optional(),
    threads: z.number().int().min(1).max(MAX_THREADS).default(1),
    /**
     * Trusted Ed25519 public keys (NAME.pub files or inline PEM): a weight set (.zqw) not signed by
     * one of them is refused, at start and on SIGHUP. Absent: signatures are not checked.
     */
    trust: z.array(z.string().min(1)).optional(),
  })
  .prefault({});

const detect = z
  .strictObject({
    threshold: z.number().gt(0).lt(1).default(0.25),
    nms: z.number().min(0).max(1).default(0.45),
    max_detections: z.number().int().positive().default(100),
    /** Publish only these class names (empty: all). */
    classes: z.array(z.string().min(1)).default([]),
  })
  .prefault({});

const tls = z
  .strictObject({
    ca: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    reject_unauthorized: z.boolean().default(true),
  })
  .optional();

const qos = z.union([z.literal(0), z.literal(1), z.literal(2)], { error: 'expected 0, 1 or 2' });

const mqtt = z
  .strictObject({
    /** Broker URL (mqtt://, mqtts://, ws://, wss://). Absent: an embedded broker on localhost. */
    url: z.string().regex(/^(mqtts?|wss?|tcp|ssl):\/\/./, 'expected a URL such as mqtt://host:1883').optional(),
    prefix: z
      .string()
      .min(1)
      .regex(/^[^#+]+$/, 'no MQTT wildcards (# +) allowed')
      .refine((s) => !s.startsWith('/') && !s.endsWith('/'), 'no leading or trailing /')
      .default('zeroq'),
    /** QoS of the per-frame detection messages; state topics always use QoS 1. */
    qos: qos.default(1),
    client_id: z.string().min(1).optional(),
    username: z.string().optional(),
    password: z.string().optional(),
    /** A file holding the password (e.g. a systemd credential); wins over `password`. */
    password_file: z.string().min(1).optional(),
    tls,
    keepalive_s: z.number().int().min(0).max(65535).default(30),
    reconnect: z
      .strictObject({
        min_ms: z.number().int().positive().default(1000),
        max_ms: z.number().int().positive().default(30_000),
      })
      .prefault({}),
    /** Messages kept while the broker is unreachable; the oldest are dropped (and counted) beyond this. */
    buffer: z
      .strictObject({
        max_messages: z.number().int().min(0).default(1000),
        max_bytes: z.number().int().min(0).default(4 * 1024 * 1024),
      })
      .prefault({}),
    /** On stop: how long to wait for the broker to take what is buffered and in flight. */
    flush_timeout_s: z.number().min(0).max(60).default(5),
    /** QoS 1/2 messages handed to the client and not yet acknowledged, at most. */
    max_inflight: z.number().int().positive().default(100),
    embedded: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(1883),
        /** Every client but the daemon logs in with these; required when host is not a loopback address. */
        username: z.string().min(1).optional(),
        password: z.string().min(1).optional(),
        password_file: z.string().min(1).optional(),
        /** A larger message closes the client's connection. */
        max_message_bytes: z.number().int().min(1024).default(4 * 1024 * 1024),
        /** Retained messages of other clients, in all. */
        max_retained_bytes: z.number().int().min(0).default(32 * 1024 * 1024),
      })
      .prefault({}),
  })
  .prefault({});

const homeassistant = z
  .strictObject({
    enabled: z.boolean().default(true),
    discovery_prefix: z.string().min(1).default('homeassistant'),
    /** Classes that get a count sensor. */
    classes: z.array(z.string().min(1)).default(['person']),
    /** Discovery is sent again when Home Assistant says `online`, at most once per this interval. */
    resend_min_interval_s: z.number().min(0).default(10),
  })
  .prefault({});

const snapshot = z
  .strictObject({
    enabled: z.boolean().default(false),
    interval_s: seconds(10),
    quality: z.number().int().min(1).max(100).default(80),
    /** Longest side of the published JPEG (the frame is scaled down to it, never up). */
    max_size: z.number().int().min(16).max(4096).default(640),
  })
  .prefault({});

const publish = z
  .strictObject({
    /** Publish a detections message for frames where nothing was found. */
    empty_frames: z.boolean().default(true),
    counts: z.boolean().default(true),
    stats_interval_s: seconds(10),
    snapshot,
  })
  .prefault({});

const http = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    /** 0 switches the health/metrics server off. */
    port: z.number().int().min(0).max(65535).default(9464),
    /** /healthz turns 503 when no frame was processed for this long. */
    stale_after_s: seconds(30),
  })
  .prefault({});

export const configSchema = z.strictObject({
  /** Names the device in every topic; default: the host name. */
  device_id: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only (it is part of MQTT topics and Home Assistant ids)')
    .optional(),
  source,
  model,
  detect,
  mqtt,
  homeassistant,
  publish,
  http,
  /** Stop cleanly after this many processed frames (0: run until stopped). */
  max_frames: z.number().int().min(0).default(0),
  /** Print every message the daemon publishes (as a subscriber sees it) on stdout, one line each. */
  print: z.boolean().default(false),
});

/** The configuration as written (before defaults). */
export type ConfigInput = z.input<typeof configSchema>;
/** The validated configuration with defaults filled in. */
export type Config = z.output<typeof configSchema>;
export type SourceConfig = Config['source'];
export type MqttConfig = Config['mqtt'];
export type ModelConfig = Config['model'];
