/**
 * `createHub(config)`: the whole hub as one object. `main.ts`, the tests and the benchmarks
 * all start the hub through it.
 *
 * @module
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { getRequestListener } from '@hono/node-server';
import type pino from 'pino';
import pkg from '../package.json' with { type: 'json' };
import { createApp, healthRoutes, PUBLIC_HEALTH_ROUTES, type HubRouter } from './api/rest/index.js';
import {
  authenticate,
  authRoutes,
  deleteExpiredSessions,
  ensureFirstAdmin,
  PUBLIC_AUTH_ROUTES,
  userRoutes,
  type FirstRunAdmin,
} from './auth/index.js';
import type { HubConfig } from './config/index.js';
import { CORE_MIGRATIONS_DIR, migrate, openDatabase, type HubDatabase } from './db/index.js';
import { StartupError } from './errors/index.js';
import { homeRoutes } from './homes/index.js';
import { createLogger, type Logger } from './log/index.js';

export const HUB_VERSION: string = pkg.version;

/** How long `stop()` lets in-flight requests finish before it cuts their connections. */
const DRAIN_TIMEOUT_MS = 5_000;
const SESSION_SWEEP_INTERVAL_MS = 60 * 60_000;

export interface HubOptions {
  /** An already open database (tests pass one made from a template); default: from the config. */
  database?: HubDatabase;
  /** Where log lines go; default stdout. */
  logDestination?: pino.DestinationStream;
}

export interface Hub {
  readonly config: HubConfig;
  readonly log: Logger;
  readonly database: HubDatabase;
  /** The HTTP app; `hub.app.request('/api/health')` serves a request without a socket. */
  readonly app: HubRouter;
  /** Set when this start created the first administrator. */
  readonly firstRunAdmin: FirstRunAdmin | undefined;
  /** Starts listening on `config.host:config.port` (port 0 picks a free port). */
  listen(): Promise<{ url: string; port: number }>;
  /** Stops accepting connections, lets in-flight requests finish, closes the database. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Opens storage, applies migrations, creates the first admin if needed and builds the app.
 * Nothing listens until {@link Hub.listen}.
 */
export async function createHub(config: HubConfig, options: HubOptions = {}): Promise<Hub> {
  const startedAt = Date.now();
  const log = createLogger(config, options.logDestination);
  const database =
    options.database ??
    (await openDatabase(
      config.databaseUrl
        ? { kind: 'postgres', url: config.databaseUrl }
        : { kind: 'pglite', dataDir: path.join(config.dataDir, 'pglite') },
    ));
  const { db } = database;

  try {
    await migrate(db, [{ scope: 'core', dir: CORE_MIGRATIONS_DIR }], log);
  } catch (error) {
    await database.close();
    throw error;
  }
  const firstRunAdmin = await ensureFirstAdmin(db, config.admin);
  if (firstRunAdmin) log.info({ email: firstRunAdmin.email }, 'first administrator created');

  const app = createApp({
    log,
    bodyLimit: config.bodyLimit,
    authenticate: authenticate(db, config.trustProxy),
    publicRoutes: new Set([...PUBLIC_HEALTH_ROUTES, ...PUBLIC_AUTH_ROUTES, 'GET /api/openapi.json']),
  });
  app.route('/api', healthRoutes({ version: HUB_VERSION, startedAt, db: database }));
  app.route('/api', authRoutes({ db, config }));
  app.route('/api', userRoutes({ db }));
  app.route('/api', homeRoutes({ db }));
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  app.doc31('/api/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Mowthos Hub API', version: HUB_VERSION },
    security: [{ bearer: [] }],
  });

  const sessionSweep = setInterval(() => {
    deleteExpiredSessions(db).catch((error: unknown) => log.warn({ err: error }, 'expired session sweep failed'));
  }, SESSION_SWEEP_INTERVAL_MS).unref();

  let server: Server | undefined;
  const sockets = new Set<Socket>();
  let stopping: Promise<void> | undefined;

  async function listen() {
    const listener = getRequestListener(app.fetch);
    server = createServer(listener);
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server!.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          error.code === 'EADDRINUSE'
            ? new StartupError(`Port ${config.port} is already in use; set PORT to a free port`, { cause: error })
            : error,
        ),
      );
      server!.listen(config.port, config.host, resolve);
    });
    const { port } = server.address() as AddressInfo;
    const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    const url = `http://${host}:${port}`;
    log.info({ url, db: database.kind }, 'hub listening');
    return { url, port };
  }

  async function drainServer(): Promise<void> {
    if (!server?.listening) return;
    const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
    // Keep-alive connections turn idle as their last response goes out; close them as they do.
    const sweep = setInterval(() => server!.closeIdleConnections(), 50);
    server.closeIdleConnections();
    const deadline = setTimeout(() => {
      log.warn({ open: sockets.size }, 'requests still running at shutdown; closing their connections');
      for (const socket of sockets) socket.destroy();
    }, DRAIN_TIMEOUT_MS);
    await closed;
    clearInterval(sweep);
    clearTimeout(deadline);
  }

  function stop() {
    stopping ??= (async () => {
      log.info('hub stopping');
      clearInterval(sessionSweep);
      await drainServer();
      await database.close();
      log.info('hub stopped');
    })();
    return stopping;
  }

  return { config, log, database, app, firstRunAdmin, listen, stop };
}
