/**
 * A channel's current version as the update server describes it to devices (GET …/latest and the
 * MQTT announcement; docs/formats/update-protocol.md). Written by src/server, read by the daemon's
 * update client.
 */
export interface Descriptor {
  v: 1;
  model: string;
  channel: string;
  version: number;
  /** sha256 of the .zqw file. */
  sha256: string;
  size: number;
  id: string;
  digest: string;
  keyId: string;
  architecture: string;
  bits: number;
  ap50: number | null;
  parent: number | null;
  publisher: string;
  time: string;
  /** Where to download it, relative to the server's URL. */
  url: string;
}
