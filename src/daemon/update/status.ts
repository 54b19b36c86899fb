/**
 * How the update part shows itself: the retained status on <base>/update (docs/updates.md; it is
 * also the state of Home Assistant's `update` entity), its discovery config, and the metrics.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { entityConfig } from '../mqtt/ha-discovery.js';
import { PAYLOAD_VERSION, type Topics } from '../mqtt/topics.js';

export type UpdateStateName = 'idle' | 'checking' | 'available' | 'downloading' | 'verifying' | 'selftest' | 'installing' | 'watching' | 'rolled_back' | 'failed';

export interface SetRef {
  version: number | null;
  sha256: string;
  id: string;
}

export interface UpdateStatus {
  state: UpdateStateName;
  running: SetRef | null;
  available: (SetRef & { size: number }) | null;
  progress: { bytes: number; size: number } | null;
  lastCheck: string | null;
  lastError: string | null;
  model: string;
  channel: string;
}

const label = (s: SetRef | null): string | null => (s ? (s.version !== null ? `v${s.version} ${s.id}` : s.id) : null);

export function updateTopics(t: Topics): { status: string; command: string } {
  return { status: `${t.base}/update`, command: `${t.base}/update/set` };
}

/** The retained status payload; its installed/latest/in_progress keys are what Home Assistant's update entity reads. */
export function statusPayload(s: UpdateStatus): string {
  const busy = ['downloading', 'verifying', 'selftest', 'installing', 'watching'].includes(s.state);
  return JSON.stringify({
    v: PAYLOAD_VERSION,
    time: new Date().toISOString(),
    state: s.state,
    model: s.model,
    channel: s.channel,
    running: s.running,
    available: s.available,
    progress: s.progress,
    last_check: s.lastCheck,
    last_error: s.lastError,
    installed_version: label(s.running),
    latest_version: label(s.available ?? s.running),
    in_progress: busy,
    update_percentage: s.state === 'downloading' && s.progress ? Math.floor((100 * s.progress.bytes) / s.progress.size) : null,
    title: `${s.model} weights (${s.channel})`,
  });
}

/** Home Assistant discovery of the `update` entity: topic → config. */
export function updateDiscovery(discoveryPrefix: string, deviceId: string, topics: Topics, model: string, version: string, configurationUrl?: string): [string, string] {
  const t = updateTopics(topics);
  return entityConfig({ discoveryPrefix, deviceId, topics, model, version, configurationUrl }, 'update', 'weights', {
    name: 'weight set',
    state_topic: t.status,
    command_topic: t.command,
    payload_install: 'install',
    entity_category: 'config',
  });
}

export class UpdateMetrics {
  readonly checks: Counter;
  readonly installs: Counter;
  readonly rollbacks: Counter;
  readonly failures: Counter<'reason'>;
  readonly bytes: Counter;
  readonly running: Gauge;
  readonly available: Gauge;
  readonly inProgress: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.checks = new Counter({ name: 'zeroq_update_checks_total', help: 'Update checks made', registers });
    this.installs = new Counter({ name: 'zeroq_update_installs_total', help: 'Weight sets installed (kept after their health window)', registers });
    this.rollbacks = new Counter({ name: 'zeroq_update_rollbacks_total', help: 'Weight sets rolled back by their health window', registers });
    this.failures = new Counter({ name: 'zeroq_update_failures_total', help: 'Update attempts that failed, by reason', labelNames: ['reason'] as const, registers });
    this.bytes = new Counter({ name: 'zeroq_update_download_bytes_total', help: 'Bytes of weight sets downloaded', registers });
    this.running = new Gauge({ name: 'zeroq_update_running_version', help: 'Server version of the running weight set (-1: not from the server)', registers });
    this.available = new Gauge({ name: 'zeroq_update_available_version', help: "Server version of the channel's current weight set (-1: unknown)", registers });
    this.inProgress = new Gauge({ name: 'zeroq_update_in_progress', help: '1 while an update downloads, verifies, installs or is watched', registers });
  }
}
