/**
 * The MQTT topic layout (interface version 1, docs/mqtt.md). Changing a topic or a payload field
 * is a versioned change: bump PAYLOAD_VERSION and document it.
 */
export const PAYLOAD_VERSION = 1;

export interface Topics {
  base: string;
  /** online | offline (last will) | stopped — retained. */
  availability: string;
  /** One message per processed frame. */
  detections: string;
  /** Objects per class in the latest frame — retained. */
  counts: string;
  /** Periodic statistics — retained. */
  stats: string;
  /** Source and engine state, on every change — retained. */
  status: string;
  /** Annotated JPEG — retained. */
  snapshot: string;
}

export function topicsFor(prefix: string, deviceId: string): Topics {
  const base = `${prefix}/${deviceId}`;
  return {
    base,
    availability: `${base}/availability`,
    detections: `${base}/detections`,
    counts: `${base}/counts`,
    stats: `${base}/stats`,
    status: `${base}/status`,
    snapshot: `${base}/snapshot`,
  };
}

export const AVAILABILITY = { online: 'online', offline: 'offline', stopped: 'stopped' } as const;
