import { pino, type Logger } from 'pino';

/** Process-wide logger. Logs go to stderr so that stdout stays clean for --json output. */
export const log: Logger = pino(
  { level: process.env.ZEROQ_LOG_LEVEL ?? 'info', base: undefined },
  pino.destination({ dest: 2, sync: true }),
);
