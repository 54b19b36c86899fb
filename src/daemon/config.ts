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

/** A point of a polygon, as fractions of the picture's width and height (0,0 top left). */
const point = z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)], { error: 'expected [x, y] with 0 <= x, y <= 1' });
const polygon = z.array(point).min(3, 'a polygon needs at least 3 points');

const zone = z.strictObject({
  points: polygon,
  /** Tag only these classes (empty: all). */
  objects: z.array(z.string().min(1)).default([]),
});

/** Per-class settings of the object filter and tracker. */
const classFilter = z.strictObject({
  min_score: z.number().min(0).max(1).optional(),
  threshold: z.number().min(0).max(1).optional(),
  min_area: z.number().min(0).optional(),
  max_area: z.number().positive().optional(),
});

/** Objects: which detections count, and how they are followed from frame to frame. */
const objectsShape = {
  /** Detections below this score are ignored (besides detect.threshold). */
  min_score: z.number().min(0).max(1).default(0),
  /** An object is reported (events, counts, occupancy) once its best score reaches this. */
  threshold: z.number().min(0).max(1).default(0.4),
  /** Box area bounds in camera pixels² (max_area absent: no bound). */
  min_area: z.number().min(0).default(0),
  max_area: z.number().positive().optional(),
  /** Frames an object must be seen in before it is reported. */
  min_hits: z.number().int().min(1).default(2),
  /** Frames an object may go unseen (its box predicted) before its event ends. */
  max_misses: z.number().int().min(0).default(5),
  /** Least overlap (IoU) of a detection with an object's predicted box to be that object. */
  iou: z.number().gt(0).lt(1).default(0.3),
  /** Per class: min_score, threshold, min_area, max_area. */
  classes: z.record(z.string().min(1), classFilter).default({}),
};
const objects = z.strictObject(objectsShape).prefault({});
/** A camera's own object settings: each key, when given, replaces the device-wide one. */
const cameraObjects = z.strictObject(Object.fromEntries(Object.entries(objectsShape).map(([k, v]) => [k, v.optional()])) as { [K in keyof typeof objectsShape]: z.ZodOptional<(typeof objectsShape)[K]> }).optional();

/** The keys of a camera beyond its source: zones, masks, object settings, frame rate shown. */
const cameraExtras = {
  /** Named polygons: objects whose bottom centre is inside are tagged with the zone. */
  zones: z.record(z.string().regex(/^[a-z0-9_-]+$/, 'zone names: a-z, 0-9, _ and -'), zone).default({}),
  /** Polygons where detections are ignored (bottom centre inside). */
  masks: z.array(polygon).default([]),
  objects: cameraObjects,
};

const sourceObject = z
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
    /** Folders: deliver each image this many times in a row, a slideshow (demo: 10, i.e. 2 s at 5 frames/s). */
    hold: z.number().int().min(1).optional(),
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
    ...cameraExtras,
  });
const source = sourceObject.prefault({});

/** Names a camera may not have: they are topics of the device. */
export const RESERVED_CAMERA_NAMES = ['availability', 'status', 'stats', 'detections', 'counts', 'events', 'snapshot', 'occupancy', 'detect', 'threshold', 'set', 'state', 'cameras'];

const cameraName = z
  .string()
  .regex(/^[a-z0-9_-]+$/, 'camera names: a-z, 0-9, _ and - (they are part of MQTT topics, URLs and Home Assistant ids)')
  .refine((n) => !RESERVED_CAMERA_NAMES.includes(n), 'this name is a topic of the device');

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
    /** The retained annotated JPEG per camera (Home Assistant's image entity shows it). */
    enabled: z.boolean().default(true),
    interval_s: seconds(10),
    quality: z.number().int().min(1).max(100).default(80),
    /** Longest side of the published JPEG (the frame is scaled down to it, never up). */
    max_size: z.number().int().min(16).max(4096).default(640),
  })
  .prefault({});

const publish = z
  .strictObject({
    /** Publish a detections message per processed frame. */
    detections: z.boolean().default(true),
    /** Publish a detections message for frames where nothing was found. */
    empty_frames: z.boolean().default(true),
    counts: z.boolean().default(true),
    /** Publish object events (new, update, end). */
    events: z.boolean().default(true),
    /** An occupancy turns off this long after the last object of its class went. */
    occupancy_off_delay_s: z.number().min(0).default(5),
    /** Event updates of one object at most once per this interval. */
    event_update_interval_s: z.number().min(0).default(1),
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
    /**
     * The live view's address as Home Assistant and event consumers reach it (configuration_url,
     * snapshot URLs). Default: http://<host>:<port>, the host name when listening on all addresses.
     */
    public_url: z.url({ protocol: /^https?$/ }).optional(),
    /** The live view's MJPEG streams: pictures per second at most. */
    stream_fps: z.number().positive().max(30).default(5),
  })
  .prefault({});

/** Weight-set updates from a retraining server (docs/updates.md). Off until `server` is set. */
const update = z
  .strictObject({
    /** The retraining server, e.g. http://updates.local:8470. Absent: no updates. */
    server: z.string().regex(/^https?:\/\/./, 'expected a URL such as http://host:8470').optional(),
    channel: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" and "-"').default('stable'),
    /** The model name on the server; default: the running network's name. */
    model: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/).optional(),
    /** The device token (zeroq device add ID): reports and hard-frame uploads need it. */
    token: z.string().min(1).optional(),
    token_file: z.string().min(1).optional(),
    /** Keys trusted for downloaded sets, besides model.trust (together they must name at least one). */
    trust: z.array(z.string().min(1)).default([]),
    check_interval_s: z.number().min(1).default(3600),
    /** Install a new version by itself; false: only report it (and install on the `install` command). */
    auto_install: z.boolean().default(true),
    /** Where installed sets and the update state are kept (default: $STATE_DIRECTORY/updates, else ~/.local/state/zeroq/updates). */
    dir: z.string().min(1).optional(),
    /** Earlier sets kept for rollback, besides the running one. */
    keep: z.number().int().min(1).max(20).default(2),
    /** Listen for the server's MQTT announcements on <announce_prefix>/updates/<model>/<channel>. */
    announce: z.boolean().default(true),
    /** Prefix of the announcement topic (the server's --mqtt-prefix); default: mqtt.prefix. */
    announce_prefix: z.string().min(1).regex(/^[^#+]+$/).optional(),
    /** An announcement is acted on after a random delay up to this (spreads a fleet's downloads). */
    announce_jitter_s: z.number().min(0).default(2),
    /** Refuse sets that carry no self-test frames. */
    require_selftest: z.boolean().default(true),
    /** Largest set downloaded, bytes; and how long one download may take. */
    max_bytes: z.number().int().positive().default(64 * 2 ** 20),
    download_timeout_s: z.number().positive().default(300),
    /** After a swap: frames watched before the new set is kept; what makes it fail. */
    health: z
      .strictObject({
        frames: z.number().int().min(1).default(30),
        /** Inference errors tolerated in the window. */
        max_errors: z.number().int().min(0).default(0),
        /** Detections per frame must stay within [min_ratio, max_ratio] × the previous set's rate... */
        min_ratio: z.number().min(0).default(0.3),
        max_ratio: z.number().min(1).default(5),
        /** ...judged only when the previous rate was at least this (an empty scene says nothing). */
        min_rate: z.number().min(0).default(0.2),
      })
      .prefault({}),
    /** Upload frames whose detections sit near the threshold to the server's pool (needs a token). */
    hard_frames: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** A frame is hard when a detection's score is below threshold + margin. */
        margin: z.number().gt(0).lt(1).default(0.1),
        per_hour: z.number().positive().default(6),
        max_size: z.number().int().min(64).max(4096).default(640),
        quality: z.number().int().min(1).max(100).default(85),
      })
      .prefault({}),
  })
  .prefault({});

export const configSchema = z.strictObject({
  /** Names the device in every topic; default: the host name. */
  device_id: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only (it is part of MQTT topics and Home Assistant ids)')
    .optional(),
  /** One camera (named `main`, topics without a camera level), or `cameras` below. */
  source,
  /** Several cameras: name → a source section (with zones, masks, objects); one engine serves all. */
  cameras: z.record(cameraName, sourceObject).optional(),
  objects,
  model,
  detect,
  mqtt,
  homeassistant,
  publish,
  http,
  update,
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
export type CameraConfig = SourceConfig;
export type ObjectsConfig = Config['objects'];

/** The name of the one camera of the `source:` form. */
export const SINGLE_CAMERA = 'main';

export interface CameraDef {
  name: string;
  cfg: CameraConfig;
  /**
   * The camera's level in topics: `<base>/<name>/…` in the `cameras:` form; none in the `source:`
   * form, whose topics stay `<base>/detections`, `<base>/counts`, ...
   */
  topicLevel: string | undefined;
  /** The device-wide object settings with the camera's own on top. */
  objects: ObjectsConfig;
}

/** The cameras of a configuration, in the order written. */
export function camerasOf(cfg: Config): CameraDef[] {
  const merge = (c: CameraConfig): ObjectsConfig => {
    const own = Object.fromEntries(Object.entries(c.objects ?? {}).filter(([, v]) => v !== undefined));
    return { ...cfg.objects, ...own, classes: { ...cfg.objects.classes, ...(c.objects?.classes ?? {}) } };
  };
  if (cfg.cameras) return Object.entries(cfg.cameras).map(([name, c]) => ({ name, cfg: c, topicLevel: name, objects: merge(c) }));
  return [{ name: SINGLE_CAMERA, cfg: cfg.source, topicLevel: undefined, objects: merge(cfg.source) }];
}
