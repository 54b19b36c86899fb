/**
 * Credentials in URLs (rtsp://user:password@camera, mqtt://user:password@broker) never leave the
 * process: every URL the daemon shows — logs, /healthz, the status topic, error messages — goes
 * through these first.
 */

/** scheme://userinfo@ anywhere in a string (userinfo: no slash, whitespace, quote or @). */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^/\s@'"<>]+@/gi;

/** The text with the user and password of every URL in it replaced by `***`. */
export function redact(text: string): string {
  return text.replace(USERINFO, '$1***@');
}

/** A copy of a JSON-like value with every string redacted. */
export function redactDeep<T>(v: T): T {
  if (typeof v === 'string') return redact(v) as T;
  if (Array.isArray(v)) return v.map((x) => redactDeep(x)) as T;
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = redactDeep(x);
    return out as T;
  }
  return v;
}

/** A URL with the password set (percent-encoded); the user stays as the URL has it. */
export function withPassword(url: string, password: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(?:([^/\s@:]*)(?::[^/\s@]*)?@)?(.*)$/is.exec(url);
  if (!m) return url;
  return `${m[1]}${m[2] ?? ''}:${encodeURIComponent(password)}@${m[3]}`;
}
