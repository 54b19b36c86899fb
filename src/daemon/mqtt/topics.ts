/**
 * The MQTT topic layout (interface version 2, docs/mqtt.md). Changing a topic or a payload field
 * is a versioned change: bump PAYLOAD_VERSION and document it.
 */
export const PAYLOAD_VERSION = 2;

export interface Topics {
  base: string;
  /** online | offline (last will) | stopped — retained. */
  availability: string;
  /** The single camera's (source: form): one message per processed frame. */
  detections: string;
  /** The single camera's: objects per class — retained. */
  counts: string;
  /** Periodic statistics — retained. */
  stats: string;
  /** Sources and engine state, on every change — retained. */
  status: string;
  /** The single camera's annotated JPEG — retained. */
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

/** A camera's topics: below `<base>/<camera>` (cameras: form) or `<base>` (source: form). */
export interface CameraTopics {
  base: string;
  detections: string;
  counts: string;
  events: string;
  occupancy: string;
  snapshot: string;
  /** Controls: `…/state` retained by the daemon, `…/set` written by clients. */
  detectState: string;
  detectSet: string;
  thresholdState: string;
  thresholdSet: string;
  snapshotSet: string;
}

export function cameraTopics(deviceBase: string, level: string | undefined): CameraTopics {
  const base = level ? `${deviceBase}/${level}` : deviceBase;
  return {
    base,
    detections: `${base}/detections`,
    counts: `${base}/counts`,
    events: `${base}/events`,
    occupancy: `${base}/occupancy`,
    snapshot: `${base}/snapshot`,
    detectState: `${base}/detect/state`,
    detectSet: `${base}/detect/set`,
    thresholdState: `${base}/threshold/state`,
    thresholdSet: `${base}/threshold/set`,
    snapshotSet: `${base}/snapshot/set`,
  };
}

export const AVAILABILITY = { online: 'online', offline: 'offline', stopped: 'stopped' } as const;
