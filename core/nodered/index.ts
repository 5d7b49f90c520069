/**
 * Node-RED inside the hub: the editor and admin API at `/red`, flow HTTP endpoints at
 * `/red/api`, on the hub's own HTTP server. The editor uses the hub's sign-in: a hub session
 * (cookie or bearer) of an administrator, or of a user allowed to automate, opens it without a
 * second login; other users get 403, anonymous callers Node-RED's 401 and login prompt.
 *
 * Node-RED is a process-wide singleton that cannot be started again after a stop, so one hub
 * process runs it at most once (`HUB_NODERED=false` turns it off).
 *
 * @module
 */
import { mkdir, writeFile } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import type { Kysely } from 'kysely';
import RED from 'node-red';
import { headersSameOrigin, SESSION_COOKIE, type Principal } from '../auth/index.js';
import type { HubConfig } from '../config/index.js';
import type { Database } from '../db/index.js';
import { ERRORS, type ErrorCode } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { SecretBox } from '../secrets/index.js';
import type { HubBridge } from './bridge.js';
import type { PluginNodes } from './plugin-nodes.js';
import { mayAutomate } from './routes.js';
import { databaseStorage } from './storage.js';

export { createBridge, type HubBridge, type StateChange } from './bridge.js';
export { PluginNodes } from './plugin-nodes.js';
export { noderedRoutes } from './routes.js';

/** Where the editor lives; flows' own HTTP endpoints are under `<root>/api`. */
export const NODERED_ROOT = '/red';
/** The editor's live channel (a WebSocket Node-RED serves itself). */
export const NODERED_COMMS_PATH = `${NODERED_ROOT}/comms`;
/** Node-RED's log levels (numbers) as pino method names. */
const LEVELS: Record<number, 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'> = { 10: 'fatal', 20: 'error', 30: 'warn', 40: 'info', 50: 'debug', 60: 'trace' };

let startedInThisProcess = false;

export interface NodeRedOptions {
  config: HubConfig;
  db: Kysely<Database>;
  secrets: SecretBox;
  log: Logger;
  authenticateToken(token: string): Promise<Principal | undefined>;
  /** What the hub's nodes use in "this hub" mode (`RED.settings.hub`). */
  bridge: HubBridge;
  /** Node packages of plugins, loaded beside the hub's own. */
  pluginNodes: PluginNodes;
}

/** The hub's own Node-RED nodes (a Node-RED node package). */
export const HUB_NODES_DIR = fileURLToPath(new URL('./nodes', import.meta.url));

export class EmbeddedNodeRed {
  readonly #app = express();
  readonly #options: NodeRedOptions;

  private constructor(options: NodeRedOptions) {
    this.#options = options;
  }

  /** Initialises and starts Node-RED on `server`; undefined when this process already ran it. */
  static async start(server: Server, options: NodeRedOptions): Promise<EmbeddedNodeRed | undefined> {
    if (startedInThisProcess) {
      options.log.warn('Node-RED already ran in this process and cannot start again; the editor stays off');
      return undefined;
    }
    startedInThisProcess = true;
    const embedded = new EmbeddedNodeRed(options);
    const userDir = path.join(options.config.dataDir, 'nodered');
    await prepareUserDir(userDir);
    RED.init(server, embedded.#settings(userDir));
    embedded.#app.use(`${NODERED_ROOT}/api`, RED.httpNode);
    embedded.#app.use(NODERED_ROOT, RED.httpAdmin);
    await RED.start();
    options.pluginNodes.attach((module, enabled) => RED.runtime.nodes.setModuleState({ module, enabled }));
    options.log.info({ path: NODERED_ROOT }, 'node-red started');
    return embedded;
  }

  /** Whether a request (or WebSocket upgrade) path belongs to Node-RED. */
  static owns(pathname: string): boolean {
    return pathname === NODERED_ROOT || pathname.startsWith(`${NODERED_ROOT}/`);
  }

  /** Serves a request under `/red`, after checking who is asking. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const refusal = await this.#admit(req);
    if (refusal) return sendError(res, refusal);
    this.#app(req, res);
  }

  async stop(): Promise<void> {
    await RED.stop();
    this.#options.log.info('node-red stopped');
  }

  /**
   * Lets a hub session through as Node-RED's bearer token, so the editor needs no second login.
   * Returns the error to answer instead, if any.
   */
  async #admit(req: IncomingMessage): Promise<ErrorCode | undefined> {
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const cookie = bearer ? undefined : readCookie(req.headers.cookie, SESSION_COOKIE);
    const token = bearer ?? cookie;
    if (!token) return undefined; // anonymous: Node-RED answers 401, or shows its login prompt
    const principal = await this.#options.authenticateToken(token);
    if (!principal) return undefined; // Node-RED refuses the bearer token itself
    if (!mayAutomate(principal)) return 'HUB_ERR_FORBIDDEN';
    if (cookie) {
      const unsafe = !['GET', 'HEAD', 'OPTIONS'].includes(req.method ?? 'GET');
      const header = (name: string) => headerValue(req, name);
      if (unsafe && !headersSameOrigin(header, this.#options.config.trustProxy)) return 'HUB_ERR_CSRF';
      req.headers.authorization = `Bearer ${cookie}`;
    }
    return undefined;
  }

  #settings(userDir: string): Record<string, unknown> {
    const { config, db, secrets, log, authenticateToken } = this.#options;
    const nodeRedLog = log.child({ nodered: true });
    return {
      hub: this.#options.bridge,
      nodesDir: [HUB_NODES_DIR, ...this.#options.pluginNodes.dirs()],
      httpAdminRoot: NODERED_ROOT,
      httpNodeRoot: `${NODERED_ROOT}/api`,
      userDir,
      storageModule: databaseStorage(db, nodeRedLog),
      // Node-RED encrypts flow credentials itself; the key comes from the hub's secret key.
      credentialSecret: secrets.derive('nodered-credentials'),
      adminAuth: {
        type: 'credentials',
        // No Node-RED accounts: people sign in to the hub, and their hub token opens the editor.
        users: async () => null,
        authenticate: async () => null,
        tokens: async (token: string) => {
          const principal = await authenticateToken(token);
          return principal && mayAutomate(principal) ? { username: principal.user.email, permissions: '*', hubUserId: principal.user.id } : null;
        },
      },
      externalModules: { palette: { allowInstall: config.noderedPaletteInstall }, modules: { allowInstall: config.noderedPaletteInstall } },
      functionExternalModules: config.noderedPaletteInstall,
      editorTheme: { page: { title: 'Mowthos Hub · automations' }, header: { title: 'Mowthos Hub' }, tours: false },
      logging: {
        console: { level: 'off' },
        hub: {
          level: config.logLevel === 'silent' ? 'off' : 'info',
          metrics: false,
          audit: false,
          handler: () => (message: { level: number; msg: unknown }) => {
            const level = LEVELS[message.level] ?? 'info';
            nodeRedLog[level]({ msg: String(message.msg) });
          },
        },
      },
    };
  }
}

/** Node-RED expects a package.json in its user directory, even with the storage in the database. */
async function prepareUserDir(userDir: string): Promise<void> {
  await mkdir(userDir, { recursive: true });
  const manifest = JSON.stringify({ name: 'mowthos-hub-nodered', description: 'Node-RED inside Mowthos Hub', private: true }, null, 2);
  await writeFile(path.join(userDir, 'package.json'), `${manifest}\n`, { flag: 'wx' }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
}

function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(';') ?? []) {
    const [key, ...value] = part.trim().split('=');
    if (key !== name) continue;
    try {
      return decodeURIComponent(value.join('='));
    } catch {
      return undefined; // a mangled cookie is no cookie
    }
  }
  return undefined;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function sendError(res: ServerResponse, code: ErrorCode): void {
  const { status, message } = ERRORS[code];
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code, message } }));
}
