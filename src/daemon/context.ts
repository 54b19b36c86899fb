/**
 * What the daemon's parts share: the logger, counters, the frame loop and its queue, the current
 * configuration, events (frames, tracked objects, a new MQTT connection, a new engine, the cameras
 * changed), and the few things one part offers the others (the engine, the MQTT link, the cameras).
 */
import type { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import type { Camera } from './camera.js';
import type { CapturedFrame } from './capture/supervisor.js';
import type { Config, ModelConfig } from './config.js';
import type { FairQueue } from './fair-queue.js';
import type { FrameLoop, ProcessedFrame } from './frame-loop.js';
import type { Health } from './http.js';
import type { EngineInfo } from './mqtt/payloads.js';
import type { Publisher } from './mqtt/publisher.js';
import type { Topics } from './mqtt/topics.js';
import type { SdNotify } from './sdnotify.js';
import type { Telemetry } from './telemetry.js';
import type { TrackResult } from './track/tracker.js';

/** The daemon's MQTT connection and the topics of its device. */
export interface MqttLink {
  publisher: Publisher;
  topics: Topics;
  deviceId: string;
  /** The broker URL (the embedded broker's when none is configured). */
  url: string;
}

export interface DaemonEvents {
  /** A frame went through the detector. */
  frame: [ProcessedFrame];
  /** A camera's objects after a frame (or after its objects were ended: no frame). */
  track: [Camera, TrackResult, ProcessedFrame | undefined];
  /** Cameras were added, removed or retuned. */
  cameras: [];
  /** A snapshot of this camera is asked for (the snapshot button). */
  snapshot: [Camera];
  /** A camera went away: its retained topics are to be cleared. */
  'camera-removed': [Camera];
  /** A new MQTT connection was made (before it connects): parts put their retained state on it. */
  mqtt: [MqttLink];
  /** The engine in use was replaced. */
  engine: [Engine];
  /** A frame failed in the engine or in decoding (the loop goes on with the next). */
  failed: [Error];
}

export interface DaemonContext {
  readonly log: Logger;
  readonly telemetry: Telemetry;
  readonly sd: SdNotify;
  /** zeroq's version (Home Assistant's sw_version). */
  readonly version: string;
  /** Where --print writes. */
  readonly out: Writable;
  /** The frames waiting for the engine: one slot per camera. */
  readonly queue: FairQueue<CapturedFrame>;
  readonly loop: FrameLoop;
  readonly events: EventEmitter<DaemonEvents>;
  /** The configuration most recently loaded. */
  readonly config: Config;
  /** True once the daemon is stopping. */
  readonly stopping: boolean;
  /** Set by the MQTT part while a connection exists. */
  mqtt: MqttLink | undefined;
  /** The cameras, in configuration order (kept by the cameras part). */
  readonly cameras: Map<string, Camera>;
  /** Opens an engine for a model section (the one way every part opens engines). */
  openEngine(model: ModelConfig): Promise<Engine>;
  /** The engine in use, as the payloads describe it. */
  engineInfo(): EngineInfo;
  /** The live view's address as others reach it (http.public_url, or from http.host and port); undefined when the HTTP port is off. */
  publicUrl(): string | undefined;
  /** Publishes the retained status again (the source or the engine changed). */
  publishStatus(): void;
  health(): Health;
}
