/** An integer tensor of the readable reference, CHW. */
export interface ITensor {
  c: number;
  h: number;
  w: number;
  data: Int32Array;
}

export function tensor(c: number, h: number, w: number): ITensor {
  return { c, h, w, data: new Int32Array(c * h * w) };
}
