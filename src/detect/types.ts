/** A box in original-image pixels: top-left corner and size. */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** One detected object of one class (a darknet box above threshold for several classes gives several). */
export interface Detection {
  classId: number;
  className: string;
  score: number;
  box: Box;
}

/** Post-processing settings; defaults follow darknet `detector test`. */
export interface DecodeOptions {
  /** Keep a (box, class) when objectness × class probability exceeds this. */
  threshold: number;
  /** NMS threshold (for greedynms the DIoU-style test of darknet). */
  nms: number;
  /** Override the cfg's nms_kind, e.g. 'default' for plain IoU. */
  nmsKind?: 'default' | 'greedynms' | 'diounms';
  /** Keep at most this many detections per image (highest scores first). */
  maxDetections: number;
  /**
   * Coordinates the NMS test runs in (it matters for greedynms/diounms on non-square images):
   * 'pixels' (default) as darknet `detector valid`, 'relative' (0..1) as `detector test` and `map`.
   */
  nmsSpace?: 'pixels' | 'relative';
}
