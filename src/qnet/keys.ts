/**
 * Ed25519 keys for signing weight sets (docs/formats/weight-set.md, "Signature block"), and the
 * trust list a reader checks signatures against.
 *
 * Files: NAME.key is the private key, PKCS#8 PEM, mode 0600; NAME.pub the public key, SPKI PEM. A
 * trust entry is a path to a file holding one or more public keys (PEM blocks one after another),
 * or a PEM block given inline.
 *
 * The process-wide default trust (setDefaultTrust, or the ZEROQ_TRUST environment variable: entries
 * separated by commas) is what readZqw checks when its caller passes none: every command that reads
 * a weight set refuses the sets not signed by a trusted key once a trust list is set.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { ZeroqError } from '../util/errors.js';
import { syncDir } from '../util/atomic.js';
import path from 'node:path';
import { keyId } from './zqw.js';

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----[\s\S]*?-----END \1-----/g;

function isEd25519(k: KeyObject): boolean {
  return k.asymmetricKeyType === 'ed25519';
}

export interface KeyPairFiles {
  privatePath: string;
  publicPath: string;
  keyId: string;
}

/** Creates NAME.key (0600) and NAME.pub; refuses to overwrite either unless `force`. */
export async function writeKeyPair(name: string, force = false): Promise<KeyPairFiles> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const priv = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const pub = publicKey.export({ format: 'pem', type: 'spki' }) as string;
  const privatePath = `${name}.key`;
  const publicPath = `${name}.pub`;
  const flag = force ? 'w' : 'wx';
  const write = async (file: string, text: string, mode: number): Promise<void> => {
    if (force) await unlink(file).catch(() => undefined); // a new file gets `mode`; an old one would keep its own
    let h;
    try {
      h = await open(file, flag, mode);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ZeroqError('key-exists', code === 'EEXIST' ? 'already exists (use --force to replace it)' : (e as Error).message, file, { cause: e });
    }
    try {
      await h.writeFile(text);
      await h.chmod(mode);
      await h.sync();
    } finally {
      await h.close();
    }
  };
  await write(privatePath, priv, 0o600);
  await write(publicPath, pub, 0o644);
  await syncDir(path.dirname(path.resolve(privatePath)));
  return { privatePath, publicPath, keyId: keyId(publicKey) };
}

/** Reads an Ed25519 private key (PKCS#8 PEM). */
export function readPrivateKey(file: string): KeyObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ZeroqError('key-read', `cannot read the key: ${(e as Error).message}`, file, { cause: e });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch (e) {
    throw new ZeroqError('key-read', `not a private key: ${(e as Error).message}`, file, { cause: e });
  }
  if (!isEd25519(key)) throw new ZeroqError('key-read', `a ${key.asymmetricKeyType ?? 'unknown'} key; weight sets are signed with Ed25519 keys (zeroq keygen)`, file);
  return key;
}

/** The public keys in a PEM text (one or more blocks). */
export function parsePublicKeys(text: string, where: string): KeyObject[] {
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new ZeroqError('trust', 'no PEM public key in it', where);
  return blocks.map((b, i) => {
    if (/PRIVATE KEY/.test(b.slice(0, 40))) throw new ZeroqError('trust', 'holds a private key: trust lists take public keys (NAME.pub)', where);
    let k: KeyObject;
    try {
      k = createPublicKey(b);
    } catch (e) {
      throw new ZeroqError('trust', `key ${i + 1}: not a public key: ${(e as Error).message}`, where, { cause: e });
    }
    if (!isEd25519(k)) throw new ZeroqError('trust', `key ${i + 1} is a ${k.asymmetricKeyType ?? 'unknown'} key, not Ed25519`, where);
    return k;
  });
}

/** Public keys from trust entries: file paths or inline PEM blocks. */
export function loadTrust(entries: readonly string[], where = 'trust'): KeyObject[] {
  const keys: KeyObject[] = [];
  entries.forEach((e, i) => {
    const entry = e.trim();
    if (entry.startsWith('-----BEGIN')) {
      keys.push(...parsePublicKeys(entry, `${where}[${i}]`));
      return;
    }
    let text: string;
    try {
      text = readFileSync(entry, 'utf8');
    } catch (err) {
      throw new ZeroqError('trust', `cannot read the trusted key: ${(err as Error).message}`, entry, { cause: err });
    }
    keys.push(...parsePublicKeys(text, entry));
  });
  return keys;
}

/** Splits a ZEROQ_TRUST / --trust value: entries separated by commas. */
export function splitTrust(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

let explicitDefault: readonly KeyObject[] | undefined;

/** Sets the trust list readZqw checks by default in this process (undefined: back to ZEROQ_TRUST). */
export function setDefaultTrust(keys: readonly KeyObject[] | undefined): void {
  explicitDefault = keys;
}

/** Sets the default trust list from entries (files or PEM, commas allowed inside an entry). */
export function setDefaultTrustFrom(entries: readonly string[], where: string): KeyObject[] {
  const keys = loadTrust(entries.flatMap(splitTrust), where);
  setDefaultTrust(keys);
  return keys;
}

/** The default trust list: setDefaultTrust's, else ZEROQ_TRUST's keys, else undefined (no check). */
export function defaultTrust(env: NodeJS.ProcessEnv = process.env): readonly KeyObject[] | undefined {
  if (explicitDefault) return explicitDefault;
  const v = env.ZEROQ_TRUST;
  if (!v || v.trim() === '') return undefined;
  return loadTrust(splitTrust(v), 'ZEROQ_TRUST');
}

/** Short form of a key id for messages. */
export function shortKeyId(id: string): string {
  return id.slice(0, 16);
}
