/**
 * Hub configuration: one zod schema over environment variables. Every variable has a default
 * that needs nothing else, so `npm start` works with an empty environment.
 *
 * @module
 */
import path from 'node:path';
import { z } from 'zod';
import { StartupError } from '../errors/index.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const port = (fallback: number) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(0, 'must be between 0 (any free port) and 65535')
    .max(65535, 'must be between 0 (any free port) and 65535')
    .default(fallback);

const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
    .default(fallback ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

const url = (protocols: string[]) =>
  z
    .url({ error: `must be a URL (${protocols.map((p) => `${p}//…`).join(' or ')})` })
    .refine((v) => protocols.includes(new URL(v).protocol), `must start with ${protocols.join(' or ')}//`)
    .optional();

const count = (fallback: number, min: number, max: number, what: string) =>
  z.coerce
    .number({ error: `must be a number of ${what}` })
    .int(`must be a whole number of ${what}`)
    .min(min, `must be between ${min} and ${max}`)
    .max(max, `must be between ${min} and ${max}`)
    .default(fallback);

/** `https://host[:port]` exactly as a browser sends it in `Origin` (no path, no trailing slash). */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value;
  } catch {
    return false;
  }
}

/** Environment variables the hub reads, with their defaults and what they allow. */
export const envSchema = z.object({
  PORT: port(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  HUB_DATA_DIR: z.string().min(1, 'must be a directory path').default('./data'),
  DATABASE_URL: url(['postgres:', 'postgresql:']),
  MQTT_URL: url(['mqtt:', 'mqtts:', 'ws:', 'wss:']),
  HUB_MQTT_DEVICE_URL: url(['mqtt:', 'mqtts:', 'ws:', 'wss:']),
  MQTT_PORT: port(1883),
  HUB_MQTT_ROOT: z
    .string()
    .regex(/^[a-z0-9_-]{1,64}$/i, 'must be one topic level: letters, digits, _ or -')
    .default('mowthos'),
  HUB_MQTT_MAX_PACKET_BYTES: count(256 * 1024, 1024, 268_435_455, 'bytes'),
  HUB_ADMIN_EMAIL: z.email({ pattern: z.regexes.html5Email, error: 'must be an email address' }).default('admin@localhost'),
  HUB_ADMIN_PASSWORD: z.string().min(8, 'must be at least 8 characters').optional(),
  HUB_OPEN_REGISTRATION: flag(false),
  HUB_TRUST_PROXY: flag(false),
  HUB_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  HUB_NODERED: flag(true),
  HUB_NODERED_PALETTE_INSTALL: flag(false),
  HUB_NODERED_UNSAFE_NODES: flag(false),
  HUB_NODERED_HTTP_AUTH: flag(false),
  HUB_SECRET_KEY: z.string().min(32, 'must be at least 32 characters (e.g. openssl rand -base64 32)').optional(),
  HUB_BODY_LIMIT: z.coerce
    .number({ error: 'must be a number of bytes' })
    .int('must be a whole number of bytes')
    .min(1024, 'must be at least 1024 bytes')
    .default(1024 * 1024),
  HUB_MAX_METRICS_PER_DEVICE: count(100, 1, 100_000, 'metrics'),
  HUB_MAX_ENTITIES_PER_HOME: count(5000, 1, 10_000_000, 'entities'),
  HUB_DISABLED_PLUGINS: z
    .string()
    .regex(/^[a-z0-9_,\s]*$/, 'must be plugin ids separated by commas')
    .default('')
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean)),
  HUB_WS_MAX_SUBSCRIPTIONS: count(300, 1, 100_000, 'subscriptions'),
  HUB_WS_MAX_CONNECTIONS_PER_USER: count(20, 1, 10_000, 'connections'),
  HUB_WS_COMMAND_RATE: count(20, 1, 100_000, 'commands a second'),
  HUB_WS_COMMAND_BURST: count(200, 1, 1_000_000, 'commands'),
  HUB_WS_AUTH_RECHECK_SECONDS: count(5, 1, 300, 'seconds'),
  HUB_CORS_ORIGINS: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .refine((origins) => origins.every(isOrigin), 'must be origins separated by commas, like https://app.example.com (scheme, host and port only)'),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  NODE_ENV: z.string().default('development'),
});

/** The validated configuration, as every part of the hub sees it. */
export interface HubConfig {
  port: number;
  host: string;
  /** Absolute path of the directory for the embedded database and other local state. */
  dataDir: string;
  /** PostgreSQL connection string; unset means the embedded PGlite database under {@link dataDir}. */
  databaseUrl: string | undefined;
  mqttUrl: string | undefined;
  /** Where devices reach the broker (answered with their credentials), when not MQTT_URL's or the request's host. */
  mqttDeviceUrl: string | undefined;
  mqttPort: number;
  /** Whether `MQTT_PORT` was set: a port chosen on purpose must be free, the default may move. */
  mqttPortExplicit: boolean;
  /** First level of every hub topic: `<root>/<home>/<device>/telemetry`. */
  mqttRoot: string;
  /** Largest MQTT packet a client may send to the embedded broker (`HUB_MQTT_MAX_PACKET_BYTES`); also written into the generated mosquitto.conf. */
  mqttMaxPacketBytes: number;
  admin: { email: string; password: string | undefined };
  openRegistration: boolean;
  /** Take the client address from `X-Forwarded-For` (only behind a proxy you control). */
  trustProxy: boolean;
  /** Bearer token Prometheus scrapes `/metrics` with (administrators' sessions work too). */
  metricsToken: string | undefined;
  /** Run Node-RED at `/red` (`HUB_NODERED`). */
  nodered: boolean;
  /** Let the editor install nodes from npm (`HUB_NODERED_PALETTE_INSTALL`); off by default. */
  noderedPaletteInstall: boolean;
  /** Offer Node-RED's node types that reach the host: exec, file, watch, tcp, udp (`HUB_NODERED_UNSAFE_NODES`); off by default. */
  noderedUnsafeNodes: boolean;
  /** Flows' HTTP endpoints need a hub bearer token (`HUB_NODERED_HTTP_AUTH`); off: they are anonymous. */
  noderedHttpAuth: boolean;
  /** Key material for secrets at rest; unset: a key generated into {@link dataDir}. */
  secretKey: string | undefined;
  /** Largest accepted request body, in bytes. */
  bodyLimit: number;
  /** Metrics (entities) one telemetry device may create (`HUB_MAX_METRICS_PER_DEVICE`). */
  maxMetricsPerDevice: number;
  /** Entities one home may hold, from every source (`HUB_MAX_ENTITIES_PER_HOME`). */
  maxEntitiesPerHome: number;
  /** Plugins this deployment does not run (`HUB_DISABLED_PLUGINS`). */
  disabledPlugins: string[];
  /** Origins whose pages may call the API from a browser (`HUB_CORS_ORIGINS`); empty = CORS off. */
  corsOrigins: string[];
  /** WebSocket API limits (`HUB_WS_*`); see core/api/ws/limits.ts. */
  websocket: {
    maxSubscriptions: number;
    maxConnectionsPerUser: number;
    commandRate: number;
    commandBurst: number;
    recheckMs: number;
  };
  /** The `PLUGIN_<ID>_<KEY>` variables, read by each plugin's config schema. */
  pluginEnv: Record<string, string>;
  logLevel: (typeof LOG_LEVELS)[number];
  /** JSON logs always in production; pretty logs otherwise when stdout is a terminal. */
  production: boolean;
}

/** A configuration that cannot start the hub; the message names each bad variable. */
export class ConfigError extends StartupError {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Reads the configuration from environment variables.
 *
 * @throws {ConfigError} naming every variable whose value is not allowed.
 * @example
 * const config = loadConfig(process.env);
 */
export function loadConfig(env: Record<string, string | undefined>): HubConfig {
  // Treat empty variables as unset: `FOO= npm start` is how people clear a value.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = String(issue.path[0]);
        const secret = /PASSWORD|SECRET|TOKEN|_URL$/.test(name); // URLs may carry user:password@
        const got = secret ? '' : ` (got ${JSON.stringify(present[name])})`;
        return `${name} ${issue.message}${got}`;
      }),
    );
  }
  const e = parsed.data;
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir: path.resolve(e.HUB_DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    mqttUrl: e.MQTT_URL,
    mqttDeviceUrl: e.HUB_MQTT_DEVICE_URL,
    mqttPort: e.MQTT_PORT,
    mqttPortExplicit: present.MQTT_PORT !== undefined,
    mqttRoot: e.HUB_MQTT_ROOT,
    mqttMaxPacketBytes: e.HUB_MQTT_MAX_PACKET_BYTES,
    admin: { email: e.HUB_ADMIN_EMAIL.toLowerCase(), password: e.HUB_ADMIN_PASSWORD },
    openRegistration: e.HUB_OPEN_REGISTRATION,
    trustProxy: e.HUB_TRUST_PROXY,
    metricsToken: e.HUB_METRICS_TOKEN,
    secretKey: e.HUB_SECRET_KEY,
    nodered: e.HUB_NODERED,
    noderedPaletteInstall: e.HUB_NODERED_PALETTE_INSTALL,
    noderedUnsafeNodes: e.HUB_NODERED_UNSAFE_NODES,
    noderedHttpAuth: e.HUB_NODERED_HTTP_AUTH,
    bodyLimit: e.HUB_BODY_LIMIT,
    maxMetricsPerDevice: e.HUB_MAX_METRICS_PER_DEVICE,
    maxEntitiesPerHome: e.HUB_MAX_ENTITIES_PER_HOME,
    disabledPlugins: e.HUB_DISABLED_PLUGINS,
    corsOrigins: e.HUB_CORS_ORIGINS,
    websocket: {
      maxSubscriptions: e.HUB_WS_MAX_SUBSCRIPTIONS,
      maxConnectionsPerUser: e.HUB_WS_MAX_CONNECTIONS_PER_USER,
      commandRate: e.HUB_WS_COMMAND_RATE,
      commandBurst: e.HUB_WS_COMMAND_BURST,
      recheckMs: e.HUB_WS_AUTH_RECHECK_SECONDS * 1000,
    },
    pluginEnv: Object.fromEntries(Object.entries(present).filter(([key]) => key.startsWith('PLUGIN_'))) as Record<string, string>,
    logLevel: e.LOG_LEVEL,
    production: e.NODE_ENV === 'production',
  };
}
