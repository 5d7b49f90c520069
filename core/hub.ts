/**
 * `createHub(config)`: the whole hub as one object. `main.ts`, the tests and the benchmarks
 * all start the hub through it.
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { getRequestListener } from '@hono/node-server';
import type pino from 'pino';
import { Registry } from 'prom-client';
import pkg from '../package.json' with { type: 'json' };
import { actionRoutes, ActionRegistry } from './actions/index.js';
import { AlertEngine, alertRoutes } from './alerts/index.js';
import { cameOverTls, createApp, healthRoutes, PUBLIC_HEALTH_ROUTES, securityHeaders, type HubRouter } from './api/rest/index.js';
import { mountDocs, PUBLIC_DOCS_ROUTES } from './api/rest/docs.js';
import { WEBSOCKET_PATH, WebSocketApi } from './api/ws/index.js';
import { authenticate, authenticateToken, authRoutes, ensureFirstAdmin, PUBLIC_AUTH_ROUTES, userRoutes, type FirstRunAdmin } from './auth/index.js';
import { eventRoutes, EventBus } from './bus/index.js';
import type { HubConfig } from './config/index.js';
import { CORE_MIGRATIONS_DIR, migrate, openDatabase, type HubDatabase } from './db/index.js';
import { StartupError } from './errors/index.js';
import { homeRoutes } from './homes/index.js';
import { housekeeping } from './housekeeping/index.js';
import { createLogger, type Logger } from './log/index.js';
import { deviceRoutes, authenticateDevice } from './devices/index.js';
import { MqttService } from './mqtt/index.js';
import { maintenanceRoutes, raiseDueTasks } from './maintenance/index.js';
import { Metrics } from './metrics/index.js';
import { readingRoutes, TelemetryIngest } from './telemetry/index.js';
import { discoverPlugins, PluginManager, pluginRoutes, type PluginSource } from './plugins/index.js';
import { jobRoutes, Scheduler } from './scheduler/index.js';
import { loadSecretBox } from './secrets/index.js';
import { createBridge, EmbeddedNodeRed, NODERED_COMMS_PATH, NODERED_ROOT, noderedRoutes, PluginNodes } from './nodered/index.js';
import { stateRoutes, StateMachine } from './states/index.js';

export const HUB_VERSION: string = pkg.version;

/** Where `npm start` finds plugins. */
export const PLUGINS_DIR = fileURLToPath(new URL('../plugins', import.meta.url));

/** How long `stop()` lets in-flight requests finish before it cuts their connections. */
const DRAIN_TIMEOUT_MS = 5_000;

export interface HubOptions {
  /** An already open database (tests pass one made from a template); default: from the config. */
  database?: HubDatabase;
  /** Where log lines go; default stdout. */
  logDestination?: pino.DestinationStream;
  /** The plugins to load; default: every folder in `plugins/`. The kernel's own always load. */
  plugins?: PluginSource[];
}

export interface Hub {
  readonly config: HubConfig;
  readonly log: Logger;
  readonly database: HubDatabase;
  /** The HTTP app; `hub.app.request('/api/health')` serves a request without a socket. */
  readonly app: HubRouter;
  readonly bus: EventBus;
  readonly states: StateMachine;
  readonly actions: ActionRegistry;
  readonly scheduler: Scheduler;
  readonly plugins: PluginManager;
  readonly mqtt: MqttService;
  readonly telemetry: TelemetryIngest;
  readonly alerts: AlertEngine;
  /** Set when this start created the first administrator. */
  readonly firstRunAdmin: FirstRunAdmin | undefined;
  /**
   * Starts listening on `config.host:config.port` (port 0 picks a free port), then Node-RED on the
   * same server unless `HUB_NODERED=false`; `editor` is its URL when it runs.
   */
  listen(): Promise<{ url: string; port: number; editor: string | undefined }>;
  /** Stops plugins, connections and the database, letting requests in flight finish. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Opens storage, applies migrations, creates the first admin if needed, restores states,
 * starts the plugins and builds the app. Nothing listens until {@link Hub.listen}.
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
  try {
    return await assemble(config, options, log, database, startedAt);
  } catch (error) {
    await database.close();
    throw error;
  }
}

async function assemble(config: HubConfig, options: HubOptions, log: Logger, database: HubDatabase, startedAt: number): Promise<Hub> {
  const { db } = database;
  await migrate(db, [{ scope: 'core', dir: CORE_MIGRATIONS_DIR }], log);
  const firstRunAdmin = await ensureFirstAdmin(db, config.admin);
  if (firstRunAdmin) log.info({ email: firstRunAdmin.email }, 'first administrator created');

  const bus = new EventBus(log);
  const states = new StateMachine(db, bus, log, { maxEntitiesPerHome: config.maxEntitiesPerHome });
  log.info({ entities: await states.restore() }, 'states restored');
  bus.on('home_deleted', (event) => states.forgetHome(event.data.home_id));
  const actions = new ActionRegistry(bus, states, log);
  const mqtt = await MqttService.start({
    config,
    log: log.child({ mqtt: true }),
    authenticateDevice: (username, password) => authenticateDevice(db, username, password),
  });
  const telemetry = new TelemetryIngest(db, states, mqtt, log.child({ telemetry: true }), { maxMetricsPerDevice: config.maxMetricsPerDevice });
  const alerts = new AlertEngine(db, bus, log.child({ alerts: true }));
  await alerts.reload();
  telemetry.onReading((reading) => alerts.evaluate(reading));
  await telemetry.start();
  const scheduler = new Scheduler(db, log.child({ scheduler: true }));
  const secrets = await loadSecretBox({ secretKey: config.secretKey, dataDir: config.dataDir, sharedDatabase: database.kind === 'postgres' }, log);
  const registry = new Registry();
  const pluginNodes = new PluginNodes(log);
  const plugins = new PluginManager({
    db,
    secrets,
    metrics: registry,
    pluginNodes,
    bus,
    states,
    actions,
    scheduler,
    mqtt,
    log,
    hubVersion: HUB_VERSION,
    env: config.pluginEnv,
    disabledByConfig: new Set(config.disabledPlugins),
  });

  const ws = new WebSocketApi({
    authenticateToken: (token) => authenticateToken(db, token),
    bus,
    states,
    actions,
    log: log.child({ api: 'websocket' }),
    hubVersion: HUB_VERSION,
    homeConfig: async (principal) => {
      const homes = await db.selectFrom('homes').select(['id', 'name', 'latitude', 'longitude', 'timezone']).orderBy('created_at').execute();
      const home = homes.find((h) => principal.homes.has(h.id)) ?? (principal.isAdmin ? homes[0] : undefined);
      return {
        name: home?.name ?? 'Mowthos Hub',
        latitude: home?.latitude ?? 0,
        longitude: home?.longitude ?? 0,
        time_zone: home?.timezone ?? 'UTC',
      };
    },
    limits: config.websocket,
    components: () => [...new Set([...plugins.list().filter((p) => p.status === 'running').map((p) => p.id), ...actions.list(null).map((a) => a.domain)])].sort(),
  });
  const metrics = new Metrics({ db, database, states, mqtt, telemetry, plugins, websocketConnections: () => ws.connectionCount }, registry);
  const app = createApp({
    log,
    observe: metrics.middleware(),
    bodyLimit: config.bodyLimit,
    bodyLimitFor: (method, path) => plugins.bodyLimit(method, path),
    authenticate: authenticate(db, config.trustProxy),
    publicRoutes: new Set([...PUBLIC_HEALTH_ROUTES, ...PUBLIC_AUTH_ROUTES, 'GET /api/openapi.json', ...PUBLIC_DOCS_ROUTES]),
    trustProxy: config.trustProxy,
    corsOrigins: config.corsOrigins,
  });
  app.route('/api', healthRoutes({ version: HUB_VERSION, startedAt, db: database, mqtt, telemetry }));
  app.route('/api', authRoutes({ db, config }));
  app.route('/api', userRoutes({ db }));
  app.route('/api', homeRoutes({ db, bus }));
  app.route('/api', stateRoutes({ db, states }));
  app.route('/api', actionRoutes({ actions }));
  app.route('/api', eventRoutes({ bus }));
  app.route('/api', jobRoutes({ db, scheduler }));
  app.route('/api', readingRoutes({ db }));
  app.route('/api', alertRoutes({ db, engine: alerts }));
  app.route('/api', maintenanceRoutes({ db, alerts }));
  app.route(
    '/api',
    deviceRoutes({
      db,
      states,
      mqtt: {
        root: mqtt.root,
        address: (requestHost) => {
          if (config.mqttDeviceUrl) {
            const devices = new URL(config.mqttDeviceUrl);
            return { host: devices.hostname, port: Number(devices.port) || 1883 };
          }
          const broker = new URL(mqtt.broker.url);
          // Devices reach the embedded broker at the hub's own address.
          const host = mqtt.broker.kind === 'embedded' ? requestHost.replace(/:\d+$/, '') || 'localhost' : broker.hostname;
          return { host, port: Number(broker.port) || 1883 };
        },
        disconnect: (deviceId) => mqtt.disconnectDevice(deviceId),
      },
      onDeleted: (deviceId) => {
        telemetry.forgetDevice(deviceId);
        states.forgetDevice(deviceId);
      },
    }),
  );
  app.route('/api', pluginRoutes({ plugins }));
  let nodered: EmbeddedNodeRed | undefined;
  app.route('/api', noderedRoutes(db, () => nodered !== undefined));
  // Hono cannot remove routes, so every plugin's router sits behind this one stable entry.
  app.all('/api/plugins/:id/*', plugins.dispatcher());
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  app.doc31('/api/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Mowthos Hub API', version: HUB_VERSION },
    security: [{ bearer: [] }],
  });
  mountDocs(app);
  app.get('/metrics', metrics.handler({ scrapeToken: config.metricsToken, authenticateToken: (token) => authenticateToken(db, token) }));

  await scheduler.register({
    owner: 'hub',
    name: 'maintenance_due',
    schedule: { cron: '0 6 * * *' },
    run: async ({ log: jobLog }) => jobLog.info({ raised: await raiseDueTasks(db, alerts) }, 'due maintenance raised'),
  });
  await plugins.startAll([{ definition: housekeeping }, ...(options.plugins ?? (await discoverPlugins(PLUGINS_DIR, log)))]);

  bus.fire('hub_started', {});

  let server: Server | undefined;
  const sockets = new Set<Socket>();
  let stopping: Promise<void> | undefined;

  function handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer) {
    const { pathname } = new URL(request.url ?? '/', 'http://hub');
    if (pathname === WEBSOCKET_PATH) return ws.handleUpgrade(request, socket, head);
    if (nodered && pathname === NODERED_COMMS_PATH) return; // Node-RED's own upgrade listener takes it
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  }

  async function listen() {
    const hono = getRequestListener(app.fetch);
    server = createServer((request, response) => {
      const pathname = (request.url ?? '/').split('?')[0]!;
      if (!nodered || !EmbeddedNodeRed.owns(pathname)) return void hono(request, response);
      const header = (name: string) => [request.headers[name]].flat()[0];
      for (const [name, value] of Object.entries(securityHeaders('nodered', cameOverTls(header, '', config.trustProxy)))) response.setHeader(name, value);
      nodered.handle(request, response).catch((error: unknown) => {
        log.error({ err: error, path: pathname }, 'node-red request failed');
        if (!response.headersSent) response.writeHead(500).end();
      });
    });
    server.on('upgrade', handleUpgrade);
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
    if (config.nodered) {
      const bridge = createBridge({ db, bus, states, actions });
      nodered = await EmbeddedNodeRed.start(server, { config, db, secrets, log, bridge, pluginNodes, authenticateToken: (token) => authenticateToken(db, token) }).catch((error: unknown) => {
        log.error({ err: error }, 'node-red did not start; the hub runs without it');
        return undefined;
      });
    }
    const editor = nodered ? `${url}${NODERED_ROOT}/` : undefined;
    log.info({ url, db: database.kind, editor }, 'hub listening');
    return { url, port, editor };
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
      bus.fire('hub_stop', {});
      ws.close();
      await drainServer();
      await nodered?.stop().catch((error: unknown) => log.error({ err: error }, 'node-red shutdown failed'));
      await plugins.stopAll();
      await scheduler.stop();
      await telemetry.stop();
      await alerts.settled();
      await mqtt.stop().catch((error: unknown) => log.error({ err: error }, 'mqtt shutdown failed'));
      await states.stop().catch((error: unknown) => log.error({ err: error }, 'last state write failed'));
      await database.close();
      log.info('hub stopped');
    })();
    return stopping;
  }

  return { config, log, database, app, bus, states, actions, scheduler, plugins, mqtt, telemetry, alerts, firstRunAdmin, listen, stop };
}
