/**
 * Home Assistant MQTT discovery. One device per daemon; per camera an image entity (the annotated
 * snapshot), per class of homeassistant.classes a count sensor and an occupancy binary_sensor, and
 * the controls: detection on/off (switch), score threshold (number), take a snapshot (button);
 * device-wide a connectivity binary_sensor and diagnostic sensors. Every config carries
 * `default_entity_id` (object_id is deprecated since HA 2025.10), `origin` and availability.
 * Configs are retained; the daemon sends them again on every (re)connect and when Home Assistant
 * announces `online` on <discovery_prefix>/status.
 */
import { AVAILABILITY, cameraTopics, type Topics } from './topics.js';

export interface DiscoveryCamera {
  name: string;
  /** The camera's topic level (undefined: the single camera of the source: form). */
  topicLevel: string | undefined;
}

export interface DiscoveryInput {
  discoveryPrefix: string;
  deviceId: string;
  topics: Topics;
  classes: readonly string[];
  model: string;
  version: string;
  /** Default: the single camera of the source: form. */
  cameras?: readonly DiscoveryCamera[];
  /** The live view (device configuration_url), when the HTTP port is on. */
  configurationUrl?: string;
  /** Range of the threshold number. */
  threshold?: { min: number; max: number; step: number };
}

export const ORIGIN = { name: 'zeroq' };

export function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
}

export type DeviceInput = Pick<DiscoveryInput, 'discoveryPrefix' | 'deviceId' | 'topics' | 'model' | 'version' | 'configurationUrl'>;

/**
 * One entity's discovery topic and payload: the entity's own keys plus what every entity of the
 * device has (unique_id, default_entity_id, availability, device, origin).
 */
export function entityConfig(d: DeviceInput, component: string, object: string, cfg: Record<string, unknown>): [string, string] {
  const node = `zeroq_${slug(d.deviceId)}`;
  const device: Record<string, unknown> = {
    identifiers: [node],
    name: `zeroq ${d.deviceId}`,
    manufacturer: 'zeroq',
    model: d.model,
    sw_version: d.version,
  };
  if (d.configurationUrl) device.configuration_url = d.configurationUrl;
  const availability = [
    {
      topic: d.topics.availability,
      // `stopped` (clean exit) shows as unavailable too.
      value_template: `{{ '${AVAILABILITY.online}' if value == '${AVAILABILITY.online}' else '${AVAILABILITY.offline}' }}`,
    },
  ];
  const id = `${node}_${object}`;
  return [
    `${d.discoveryPrefix}/${component}/${node}/${object}/config`,
    JSON.stringify({ ...cfg, unique_id: id, default_entity_id: `${component}.${id}`, availability, device, origin: { ...ORIGIN, sw_version: d.version } }),
  ];
}

/** Discovery topic → config payload (JSON). */
export function discoveryConfigs(d: DiscoveryInput): Map<string, string> {
  const out = new Map<string, string>();
  const add = (component: string, object: string, cfg: Record<string, unknown>) => {
    const [topic, payload] = entityConfig(d, component, object, cfg);
    out.set(topic, payload);
  };
  const range = d.threshold ?? { min: 0.05, max: 0.95, step: 0.01 };
  const cams = d.cameras ?? [{ name: 'main', topicLevel: undefined }];
  for (const cam of cams) {
    const t = cameraTopics(d.topics.base, cam.topicLevel);
    // The single camera's entities keep the names they always had.
    const obj = (s: string) => (cam.topicLevel ? `${slug(cam.topicLevel)}_${s}` : s);
    const label = (s: string) => (cam.topicLevel ? `${cam.name} ${s}` : s);
    for (const c of d.classes) {
      const key = JSON.stringify(c).replace(/"/g, "'");
      add('sensor', obj(`${slug(c)}_count`), {
        name: label(`${c} count`),
        state_topic: t.counts,
        value_template: `{{ value_json.counts[${key}] | default(0) }}`,
        state_class: 'measurement',
        icon: 'mdi:counter',
      });
      add('binary_sensor', obj(`${slug(c)}_occupancy`), {
        name: label(`${c} occupancy`),
        state_topic: t.occupancy,
        value_template: `{{ value_json.occupancy[${key}] | default('OFF') }}`,
        payload_on: 'ON',
        payload_off: 'OFF',
        device_class: 'occupancy',
      });
    }
    add('image', obj('snapshot'), {
      name: label('snapshot'),
      image_topic: t.snapshot,
      content_type: 'image/jpeg',
    });
    add('switch', obj('detect'), {
      name: label('detection'),
      command_topic: t.detectSet,
      state_topic: t.detectState,
      payload_on: 'ON',
      payload_off: 'OFF',
      state_on: 'ON',
      state_off: 'OFF',
      icon: 'mdi:motion-sensor',
      entity_category: 'config',
    });
    add('number', obj('threshold'), {
      name: label('score threshold'),
      command_topic: t.thresholdSet,
      state_topic: t.thresholdState,
      min: range.min,
      max: range.max,
      step: range.step,
      mode: 'slider',
      icon: 'mdi:tune-vertical',
      entity_category: 'config',
    });
    add('button', obj('take_snapshot'), {
      name: label('take snapshot'),
      command_topic: t.snapshotSet,
      payload_press: 'PRESS',
      icon: 'mdi:camera',
    });
  }
  add('binary_sensor', 'online', {
    name: 'online',
    state_topic: d.topics.availability,
    value_template: `{{ 'ON' if value == '${AVAILABILITY.online}' else 'OFF' }}`,
    device_class: 'connectivity',
    entity_category: 'diagnostic',
  });
  add('sensor', 'processed_fps', {
    name: 'processed fps',
    state_topic: d.topics.stats,
    value_template: '{{ value_json.processed_fps }}',
    unit_of_measurement: 'fps',
    state_class: 'measurement',
    entity_category: 'diagnostic',
  });
  add('sensor', 'inference_ms', {
    name: 'inference time',
    state_topic: d.topics.stats,
    value_template: '{{ value_json.inference_ms.p50 if value_json.inference_ms else none }}',
    unit_of_measurement: 'ms',
    state_class: 'measurement',
    entity_category: 'diagnostic',
  });
  return out;
}
