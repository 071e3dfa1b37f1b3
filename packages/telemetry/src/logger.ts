import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** Component name, logged as `component`. */
  name?: string;
  /** Default: $LOG_LEVEL, else 'info'. */
  level?: LevelWithSilent;
  /** Where JSON lines go. Default: stderr, so stdout stays free for command output. */
  destination?: NodeJS.WritableStream;
}

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** The one structured logger: JSON lines on stderr, one field set for every process. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const envLevel = process.env.LOG_LEVEL;
  const level = opts.level ?? (envLevel && LEVELS.has(envLevel) ? (envLevel as LevelWithSilent) : 'info');
  const logger = pino(
    { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    opts.destination ?? pino.destination({ fd: 2, sync: true }),
  );
  return opts.name ? logger.child({ component: opts.name }) : logger;
}

/** A logger that drops everything: for library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
