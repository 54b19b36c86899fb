/**
 * What the update server tells devices about a weight set (docs/formats/update-protocol.md). Written
 * by src/server (its registry keeps more per version), read by the daemon's update client.
 */

/** The facts of one published weight set that devices are told. */
export interface SetFacts {
  model: string;
  /** 1, 2, … per model, in publishing order. */
  version: number;
  /** sha256 of the .zqw file. */
  sha256: string;
  size: number;
  /** The weight-set id (manifest.id) and the file's own digest (over everything but the signature). */
  id: string;
  digest: string;
  keyId: string;
  architecture: string;
  /** Average weight width. */
  bits: number;
  /** AP50 (fraction) on the server's validation list; null until scored. */
  ap50: number | null;
  /** The version this one was made from or replaces (null: the first). */
  parent: number | null;
  publisher: string;
  time: string;
}

/** A channel's current version (GET …/latest and the MQTT announcement). */
export interface Descriptor extends SetFacts {
  v: 1;
  channel: string;
  /** Where to download it, relative to the server's URL. */
  url: string;
}
