/**
 * Logging: pino, JSON in production and pretty on a terminal. Children carry context
 * (`{reqId}` per request, `{plugin}` per plugin). Secrets are redacted wherever they appear
 * in a logged object, so a careless `log.info({ body })` cannot leak them.
 *
 * @module
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { HubConfig } from '../config/index.js';

export type { Logger };

const SECRET_KEYS = [
  'password',
  'newPassword',
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'secret',
  'clientSecret',
  'client_secret',
  'apiKey',
  'api_key',
  'authorization',
  'Authorization',
  'cookie',
  'Cookie',
  'set-cookie',
  'stripeKey',
  'stripeSecretKey',
  'stripe_secret_key',
  'webhookSecret',
  'databaseUrl',
];

/** Paths pino censors: each secret key at the top level and one or two levels deep. */
export const REDACT_PATHS = SECRET_KEYS.flatMap((key) => {
  const plain = /^[A-Za-z_$][\w$]*$/.test(key);
  const top = plain ? key : `["${key}"]`;
  const nested = plain ? `.${key}` : `["${key}"]`;
  return [top, `*${nested}`, `*.*${nested}`];
});

/**
 * Creates the hub's root logger.
 *
 * @param destination where lines go; defaults to stdout (tests pass a stream to read them).
 */
export function createLogger(
  config: Pick<HubConfig, 'logLevel' | 'production'>,
  destination?: pino.DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { name: 'hub' },
  };
  if (destination) return pino(options, destination);
  const prettyOutput = !config.production && process.stdout.isTTY;
  // pino-pretty as a synchronous stream rather than a transport: no worker thread to start
  // (and to keep the process alive) for a developer's terminal.
  return prettyOutput ? pino(options, pretty({ colorize: true, sync: true })) : pino(options);
}
