// The one way Tessera processes build their logger: structured JSON lines (pino) on stderr at a
// chosen level, with every field that can hold a secret redacted before it is written.
import pino from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Paths (pino redaction syntax) of anything that may carry a credential, at any depth we log. */
const SECRET_PATHS = [
  'secret', 'secretAccessKey', 'password', 'token', 'authorization', 'cookie',
  '*.secret', '*.secretAccessKey', '*.password', '*.token', '*.authorization', '*.cookie',
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["x-amz-security-token"]',
  'headers.authorization', 'headers.cookie', 'headers["x-amz-security-token"]',
];

export function parseLogLevel(text: string | undefined, fallback: LogLevel = 'warn'): LogLevel {
  if (text === undefined) return fallback;
  if (!(LOG_LEVELS as readonly string[]).includes(text)) throw new Error(`log level must be one of ${LOG_LEVELS.join(', ')}, got '${text}'`);
  return text as LogLevel;
}

export function createLogger(options: { name: string; level?: LogLevel; destination?: pino.DestinationStream }): pino.Logger {
  return pino({
    name: options.name,
    level: options.level ?? 'warn',
    redact: { paths: SECRET_PATHS, censor: '[REDACTED]' },
  }, options.destination ?? pino.destination(2));
}
