/**
 * The cameras' controls, by MQTT command topics (docs/mqtt.md): detection on/off
 * (`…/detect/set`: ON | OFF), the score threshold (`…/threshold/set`: a number in
 * [0.05, 0.95]), take a snapshot now (`…/snapshot/set`: PRESS). Each applied command is confirmed on
 * the retained `…/state` topic; anything else on a command topic is logged and ignored. Controls
 * last until the daemon restarts (the configuration gives the starting values).
 */
import type { Camera } from '../camera.js';
import type { Config } from '../config.js';
import type { DaemonContext, MqttLink } from '../context.js';
import type { DaemonPart } from '../part.js';

export const THRESHOLD_RANGE = { min: 0.05, max: 0.95, step: 0.01 };

/** The longest command payload taken (longer ones are garbage). */
const MAX_COMMAND = 32;

export type Command = { kind: 'detect'; on: boolean } | { kind: 'threshold'; value: number } | { kind: 'snapshot' };

/** A command topic's payload as a command, or why it is not one. */
export function parseCommand(kind: 'detect' | 'threshold' | 'snapshot', payload: Buffer): Command | string {
  if (payload.length > MAX_COMMAND) return `payload of ${payload.length} bytes`;
  const text = payload.toString('utf8').trim();
  switch (kind) {
    case 'detect':
      if (text === 'ON' || text === 'OFF') return { kind, on: text === 'ON' };
      return 'expected ON or OFF';
    case 'threshold': {
      const v = /^[0-9]*\.?[0-9]+$/.test(text) ? Number(text) : NaN;
      if (Number.isFinite(v) && v >= THRESHOLD_RANGE.min && v <= THRESHOLD_RANGE.max) return { kind, value: v };
      return `expected a number from ${THRESHOLD_RANGE.min} to ${THRESHOLD_RANGE.max}`;
    }
    case 'snapshot':
      if (text === 'PRESS') return { kind };
      return 'expected PRESS';
  }
}

export class ControlsPart implements DaemonPart {
  readonly name = 'controls';
  private readonly onLink = (link: MqttLink) => this.attach(link);
  private readonly onCameras = () => this.ctx.mqtt && this.attach(this.ctx.mqtt);
  /** Links already listening for messages. */
  private readonly listening = new WeakSet<MqttLink>();

  constructor(private readonly ctx: DaemonContext) {}

  section(cfg: Config): unknown {
    return cfg.detect.threshold;
  }

  async start(): Promise<void> {
    this.ctx.events.on('mqtt', this.onLink);
    this.ctx.events.on('cameras', this.onCameras);
    if (this.ctx.mqtt) this.attach(this.ctx.mqtt);
  }

  /** A new threshold in the configuration: cameras without their own follow it. */
  async reload(): Promise<boolean> {
    if (this.ctx.mqtt) this.states(this.ctx.mqtt);
    return false;
  }

  async stop(): Promise<void> {
    this.ctx.events.off('mqtt', this.onLink);
    this.ctx.events.off('cameras', this.onCameras);
  }

  private attach(link: MqttLink): void {
    for (const cam of this.ctx.cameras.values()) {
      const t = cam.topicsOn(link.topics.base);
      for (const topic of [t.detectSet, t.thresholdSet, t.snapshotSet]) link.publisher.subscribe(topic);
    }
    this.states(link);
    if (this.listening.has(link)) return;
    this.listening.add(link);
    link.publisher.on('message', (topic, payload) => this.message(link, topic, payload));
  }

  /** The retained state of every camera's controls. */
  private states(link: MqttLink): void {
    for (const cam of this.ctx.cameras.values()) {
      const t = cam.topicsOn(link.topics.base);
      link.publisher.setState(t.detectState, cam.detecting ? 'ON' : 'OFF');
      link.publisher.setState(t.thresholdState, String(cam.threshold ?? this.ctx.config.detect.threshold));
    }
  }

  private message(link: MqttLink, topic: string, payload: Buffer): void {
    if (this.ctx.mqtt !== link) return;
    for (const cam of this.ctx.cameras.values()) {
      const t = cam.topicsOn(link.topics.base);
      const kind = topic === t.detectSet ? 'detect' : topic === t.thresholdSet ? 'threshold' : topic === t.snapshotSet ? 'snapshot' : undefined;
      if (!kind) continue;
      const cmd = parseCommand(kind, payload);
      const log = this.ctx.log.child({ mod: 'controls', camera: cam.name });
      if (typeof cmd === 'string') {
        log.warn({ topic, payload: payload.subarray(0, MAX_COMMAND).toString('utf8'), why: cmd }, 'command ignored');
        return;
      }
      this.apply(cam, cmd, link);
      log.info({ command: cmd }, 'command applied');
      return;
    }
  }

  private apply(cam: Camera, cmd: Command, link: MqttLink): void {
    const t = cam.topicsOn(link.topics.base);
    switch (cmd.kind) {
      case 'detect':
        if (cam.detecting !== cmd.on) {
          cam.detecting = cmd.on;
          // Objects of a camera that no longer detects end now.
          if (!cmd.on) this.ctx.events.emit('track', cam, cam.clear(), undefined);
          this.ctx.publishStatus();
        }
        link.publisher.setState(t.detectState, cmd.on ? 'ON' : 'OFF');
        break;
      case 'threshold':
        cam.threshold = cmd.value;
        this.ctx.loop.cameraThreshold.set(cam.name, cmd.value);
        link.publisher.setState(t.thresholdState, String(cmd.value));
        break;
      case 'snapshot':
        this.ctx.events.emit('snapshot', cam);
        break;
    }
  }
}
