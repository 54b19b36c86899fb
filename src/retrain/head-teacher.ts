/**
 * A second network whose heads the student's heads are distilled towards (`zeroq retrain --teacher`):
 * a larger float model of the same task teaches the quantized student (knowledge distillation from a
 * stronger teacher, as in Mishra and Marr, "Apprentice", 2018). The inner feature distillation keeps
 * the student's own float model, whose layers match the student's.
 *
 * The heads must mean the same thing: same input, same number of heads with the same tensor shapes,
 * anchors, masks, classes and decoding.
 */
import type { Network, YoloLayer } from '../model/ir.js';
import { ZeroqError } from '../util/errors.js';
import type { ParamSet } from './sim.js';

export interface HeadTeacher {
  net: Network;
  params: ParamSet;
}

/** Throws, naming the first difference, when the teacher's heads cannot stand for the student's. */
export function checkHeadTeacher(student: Network, teacher: Network, where: string): void {
  const fail = (what: string): never => {
    throw new ZeroqError('retrain-teacher', `the teacher's heads differ from ${student.name}'s: ${what}`, where);
  };
  const si = student.input;
  const ti = teacher.input;
  if (si.c !== ti.c || si.h !== ti.h || si.w !== ti.w) fail(`input ${ti.c}x${ti.h}x${ti.w} against ${si.c}x${si.h}x${si.w}`);
  if (student.letterbox !== teacher.letterbox) fail('letterbox');
  if (student.heads.length !== teacher.heads.length) fail(`${teacher.heads.length} heads against ${student.heads.length}`);
  student.heads.forEach((h, k) => {
    const s = student.layers[h] as YoloLayer;
    const t = teacher.layers[teacher.heads[k]] as YoloLayer;
    const so = student.layers[s.inputs[0]].out;
    const to = teacher.layers[t.inputs[0]].out;
    if (so.c !== to.c || so.h !== to.h || so.w !== to.w) fail(`head ${k + 1}: tensor ${to.c}x${to.h}x${to.w} against ${so.c}x${so.h}x${so.w}`);
    const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
    if (s.classes !== t.classes) fail(`head ${k + 1}: ${t.classes} classes against ${s.classes}`);
    if (!same(s.mask, t.mask)) fail(`head ${k + 1}: mask ${t.mask.join(',')} against ${s.mask.join(',')}`);
    const used = (l: YoloLayer) => l.mask.flatMap((m) => [l.anchors[2 * m], l.anchors[2 * m + 1]]);
    if (!same(used(s), used(t))) fail(`head ${k + 1}: anchors ${used(t).join(',')} against ${used(s).join(',')}`);
    if (s.scaleXY !== t.scaleXY || s.newCoords !== t.newCoords) fail(`head ${k + 1}: decoding (scale_x_y, new_coords)`);
  });
}
