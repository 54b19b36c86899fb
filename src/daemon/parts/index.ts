/**
 * The daemon's parts, in start order (reloads go in this order too; stops in reverse). A new part
 * is one module implementing DaemonPart and one line here.
 */
import type { DaemonContext } from '../context.js';
import type { DaemonPart } from '../part.js';
import { DetectPart } from './detect.js';
import { HomeAssistantPart } from './homeassistant.js';
import { HttpPart } from './http.js';
import { ModelPart } from './model.js';
import { MqttPart } from './mqtt.js';
import { PublishPart } from './publish.js';
import { CamerasPart } from './cameras.js';
import { ControlsPart } from './controls.js';
import { UpdatePart } from '../update/part.js';

export function daemonParts(ctx: DaemonContext): DaemonPart[] {
  return [
    new ModelPart(ctx),
    new DetectPart(ctx),
    new MqttPart(ctx),
    new PublishPart(ctx),
    new HttpPart(ctx),
    new CamerasPart(ctx),
    new HomeAssistantPart(ctx),
    new ControlsPart(ctx),
    new UpdatePart(ctx),
  ];
}
