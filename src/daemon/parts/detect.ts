/** Decoding settings of the frame loop (threshold, NMS, classes kept), applied between two frames. */
import { COCO_NAMES } from '../../detect/names.js';
import type { Config } from '../config.js';
import type { DaemonContext } from '../context.js';
import type { DetectSettings } from '../frame-loop.js';
import type { DaemonPart } from '../part.js';

export class DetectPart implements DaemonPart {
  readonly name = 'detect';

  constructor(private readonly ctx: DaemonContext) {}

  section(cfg: Config): unknown {
    return cfg.detect;
  }

  private settings(cfg: Config): DetectSettings {
    const known = new Set(COCO_NAMES);
    for (const c of cfg.detect.classes) {
      if (!known.has(c)) this.ctx.log.warn({ class: c }, 'detect.classes names a class the COCO names do not have');
    }
    return {
      decode: { threshold: cfg.detect.threshold, nms: cfg.detect.nms, maxDetections: cfg.detect.max_detections, nmsSpace: 'relative' },
      classes: new Set(cfg.detect.classes),
    };
  }

  async start(cfg: Config): Promise<void> {
    this.ctx.loop.setSettings(this.settings(cfg));
  }

  async reload(cfg: Config): Promise<boolean> {
    this.ctx.loop.setSettings(this.settings(cfg));
    return true;
  }

  async stop(): Promise<void> {}
}
