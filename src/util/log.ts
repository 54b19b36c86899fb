import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

/**
 * Process-wide logger. Logs go to stderr so that stdout stays clean for --json output: JSON lines
 * (for journald, log shippers), or readable lines (time, level, message, fields) when stderr is a
 * terminal. ZEROQ_LOG_FORMAT=json|pretty overrides the choice; ZEROQ_LOG_LEVEL sets the level.
 */
export function createLogger(opts: { stream?: NodeJS.WritableStream & { isTTY?: boolean }; format?: string; level?: string } = {}): Logger {
  const options = { level: opts.level ?? process.env.ZEROQ_LOG_LEVEL ?? 'info', base: undefined };
  const stream = opts.stream ?? process.stderr;
  const format = opts.format ?? process.env.ZEROQ_LOG_FORMAT ?? (stream.isTTY ? 'pretty' : 'json');
  if (format === 'pretty') {
    // Synchronous, on this thread: nothing is lost when the process exits right after a line.
    return pino(options, pretty({ destination: stream, sync: true, colorize: stream.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
  }
  return opts.stream ? pino(options, opts.stream) : pino(options, pino.destination({ dest: 2, sync: true }));
}

export const log: Logger = createLogger();
