/**
 * Home Assistant MQTT discovery: one count sensor per configured class, a connectivity binary
 * sensor for availability, and sensors for the frame rate and inference time. Configs are retained;
 * the daemon sends them again on every (re)connect and when Home Assistant announces `online` on
 * <discovery_prefix>/status.
 */
import { AVAILABILITY, type Topics } from './topics.js';

export interface DiscoveryInput {
  discoveryPrefix: string;
  deviceId: string;
  topics: Topics;
  classes: readonly string[];
  model: string;
  version: string;
}

export function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
}

/** Discovery topic → config payload (JSON). */
export function discoveryConfigs(d: DiscoveryInput): Map<string, string> {
  const node = `zeroq_${slug(d.deviceId)}`;
  const device = {
    identifiers: [node],
    name: `zeroq ${d.deviceId}`,
    manufacturer: 'zeroq',
    model: d.model,
    sw_version: d.version,
  };
  const availability = [
    {
      topic: d.topics.availability,
      // `stopped` (clean exit) shows as unavailable too.
      value_template: `{{ '${AVAILABILITY.online}' if value == '${AVAILABILITY.online}' else '${AVAILABILITY.offline}' }}`,
    },
  ];
  const out = new Map<string, string>();
  const add = (component: string, object: string, cfg: Record<string, unknown>) => {
    out.set(
      `${d.discoveryPrefix}/${component}/${node}/${object}/config`,
      JSON.stringify({ ...cfg, unique_id: `${node}_${object}`, object_id: `${node}_${object}`, device }),
    );
  };
  for (const c of d.classes) {
    const key = JSON.stringify(c).replace(/"/g, "'");
    add('sensor', `${slug(c)}_count`, {
      name: `${c} count`,
      state_topic: d.topics.counts,
      value_template: `{{ value_json.counts[${key}] | default(0) }}`,
      state_class: 'measurement',
      icon: 'mdi:counter',
      availability,
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
    availability,
  });
  add('sensor', 'inference_ms', {
    name: 'inference time',
    state_topic: d.topics.stats,
    value_template: '{{ value_json.inference_ms.p50 if value_json.inference_ms else none }}',
    unit_of_measurement: 'ms',
    state_class: 'measurement',
    entity_category: 'diagnostic',
    availability,
  });
  return out;
}
