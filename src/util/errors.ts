/**
 * One error type for everything a user can get wrong: a stable code for scripts, and the path of
 * what was wrong (a file and line, a config key, a layer) so the message can point at it.
 */
export class ZeroqError extends Error {
  readonly code: string;
  readonly where?: string;
  constructor(code: string, message: string, where?: string, options?: { cause?: unknown }) {
    // One line, always: a message quoting input (a JSON fragment, a YAML key) may hold line breaks.
    super((where ? `${where}: ${message}` : message).replace(/\s*[\r\n]+\s*/g, ' '), options);
    this.name = 'ZeroqError';
    this.code = code;
    this.where = where;
  }
}

export function isZeroqError(e: unknown): e is ZeroqError {
  return e instanceof ZeroqError;
}
