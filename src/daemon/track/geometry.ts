/** Boxes and polygons for the tracker: overlap, centres, point in polygon. */
import type { Box } from '../../detect/types.js';

export function area(b: Box): number {
  return Math.max(0, b.w) * Math.max(0, b.h);
}

/** Intersection over union of two boxes (0 when either is empty). */
export function iou(a: Box, b: Box): number {
  const x0 = Math.max(a.x, b.x);
  const y0 = Math.max(a.y, b.y);
  const x1 = Math.min(a.x + a.w, b.x + b.w);
  const y1 = Math.min(a.y + a.h, b.y + b.h);
  const inter = Math.max(0, x1 - x0) * Math.max(0, y1 - y0);
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}

export function centre(b: Box): [number, number] {
  return [b.x + b.w / 2, b.y + b.h / 2];
}

/** Where an object stands: the middle of its box's bottom edge. */
export function bottomCentre(b: Box): [number, number] {
  return [b.x + b.w / 2, b.y + b.h];
}

/** Ray casting; points on the boundary may go either way. */
export function inPolygon(p: readonly [number, number], poly: readonly (readonly [number, number])[]): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i];
    const [xj, yj] = poly[j];
    if (yi > p[1] !== yj > p[1] && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}
