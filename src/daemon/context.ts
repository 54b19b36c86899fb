/**
 * What the daemon's parts share: the logger, counters, the frame loop and its mailbox, the current
 * configuration, events (frames, a new MQTT connection, a new engine), and the few things one part
 * offers the others (the engine, the MQTT link, the source's state).
 */
import type { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import type { ResolvedSource } from './capture/open.js';
import type { CapturedFrame, SupervisorStatus } from './capture/supervisor.js';
import type { Config, ModelConfig } from './config.js';
import type { FrameLoop, ProcessedFrame } from './frame-loop.js';
import type { Health } from './http.js';
import type { Mailbox } from './mailbox.js';
import type { EngineInfo } from './mqtt/payloads.js';
import type { Publisher } from './mqtt/publisher.js';
import type { Topics } from './mqtt/topics.js';
import type { SdNotify } from './sdnotify.js';
import type { Telemetry } from './telemetry.js';

/** The daemon's MQTT connection and the topics of its device. */
export interface MqttLink {
  publisher: Publisher;
  topics: Topics;
  deviceId: string;
  /** The broker URL (the embedded broker's when none is configured). */
  url: string;
}

export interface SourceView {
  readonly current: SupervisorStatus;
  readonly resolved: ResolvedSource | undefined;
  /** source.url as configured. */
  readonly url: string;
}

export interface DaemonEvents {
  /** A frame went through the detector. */
  frame: [ProcessedFrame];
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
  readonly mailbox: Mailbox<CapturedFrame>;
  readonly loop: FrameLoop;
  readonly events: EventEmitter<DaemonEvents>;
  /** The configuration most recently loaded. */
  readonly config: Config;
  /** True once the daemon is stopping. */
  readonly stopping: boolean;
  /** Set by the MQTT part while a connection exists. */
  mqtt: MqttLink | undefined;
  /** Set by the source part. */
  source: SourceView | undefined;
  /** Opens an engine for a model section (the one way every part opens engines). */
  openEngine(model: ModelConfig): Promise<Engine>;
  /** The engine in use, as the payloads describe it. */
  engineInfo(): EngineInfo;
  /** Publishes the retained status again (the source or the engine changed). */
  publishStatus(): void;
  health(): Health;
}
