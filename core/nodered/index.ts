/**
 * Node-RED inside the hub: the editor and admin API at `/red`, flow HTTP endpoints at
 * `/red/api`, on the hub's own HTTP server. The editor uses the hub's sign-in: a hub session
 * (cookie or bearer) of an administrator, or of a user allowed to automate, opens it without a
 * second login; other users get 403, anonymous callers Node-RED's 401 and login prompt.
 *
 * Flows' endpoints never see the hub's session: flows are written by users who automate, and a
 * page they serve is opened by others. They are anonymous, or (`HUB_NODERED_HTTP_AUTH`) need a
 * hub bearer token, which the hub checks and takes out before the flow runs.
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
import express, { type NextFunction, type Request } from 'express';
import type { Kysely } from 'kysely';
import RED from 'node-red';
import { headersSameOrigin, homeRole, SESSION_COOKIE, type Principal } from '../auth/index.js';
import type { HubConfig } from '../config/index.js';
import type { Database, Role } from '../db/index.js';
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
/** Where flows' own HTTP endpoints (`http in` nodes) live: Node-RED's `httpNodeRoot`. */
export const NODERED_FLOWS_ROOT = `${NODERED_ROOT}/api`;
/** The editor's live channel (a WebSocket Node-RED serves itself). */
export const NODERED_COMMS_PATH = `${NODERED_ROOT}/comms`;
/** Node-RED's log levels (numbers) as pino method names. */
const LEVELS: Record<number, 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'> = { 10: 'fatal', 20: 'error', 30: 'warn', 40: 'info', 50: 'debug', 60: 'trace' };

/**
 * Node-RED's core node files (`nodesExcludes`) left out unless `HUB_NODERED_UNSAFE_NODES`: they
 * run commands on the host (exec), read and write its files (file, file in) or watch them
 * (watch), or open raw sockets (tcp in/out/request, udp in/out: listening on the host's ports,
 * any bytes to services on its loopback such as the database). Left out, they are neither in
 * the palette nor loadable, so the editor cannot switch them back on.
 */
const HOST_NODE_FILES = ['90-exec.js', '10-file.js', '23-watch.js', '31-tcpin.js', '32-udp.js'];

/**
 * Who called a flow's endpoint, as the hub checked it (`msg.req.hub` in a flow), when
 * `HUB_NODERED_HTTP_AUTH` is on. The credential itself never reaches the flow.
 */
export interface FlowCaller {
  user_id: string;
  email: string;
  /** An administrator's session: every home. */
  admin: boolean;
  /** The caller's role in each home they can reach (an API token: its one home). */
  homes: Record<string, Role>;
}

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
    // The same Express mounts choose the app and the admission, so no path reaches one with the
    // other's; a path under the flows' root that no flow serves ends there, not in the editor.
    embedded.#app.use(NODERED_FLOWS_ROOT, admission((req) => embedded.#admitToFlows(req)), RED.httpNode, (_req: Request, res: ServerResponse) => sendError(res, 'HUB_ERR_NOT_FOUND'));
    embedded.#app.use(NODERED_ROOT, admission((req) => embedded.#admitToEditor(req)), RED.httpAdmin);
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
  async #admitToEditor(req: IncomingMessage): Promise<ErrorCode | undefined> {
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

  /**
   * Takes the hub's session out of a request to a flow (its author could read it), and when
   * `HUB_NODERED_HTTP_AUTH` is on, requires a hub bearer token, valid for the home a
   * `/homes/<id>/…` path names, and hands the flow who called instead of the token.
   */
  async #admitToFlows(req: Request): Promise<ErrorCode | undefined> {
    removeCookie(req, SESSION_COOKIE);
    if (!this.#options.config.noderedHttpAuth) return undefined;
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    removeHeader(req, 'authorization');
    const principal = bearer ? await this.#options.authenticateToken(bearer) : undefined;
    if (!principal) return 'HUB_ERR_UNAUTHENTICATED';
    const homeId = homeInPath(req.path);
    if (homeId !== undefined && !homeRole(principal, homeId)) return 'HUB_ERR_HOME_NOT_FOUND';
    (req as Request & { hub: FlowCaller }).hub = {
      user_id: principal.user.id,
      email: principal.user.email,
      admin: principal.isAdmin,
      homes: Object.fromEntries(principal.homes),
    };
    return undefined;
  }

  #settings(userDir: string): Record<string, unknown> {
    const { config, db, secrets, log, authenticateToken } = this.#options;
    const nodeRedLog = log.child({ nodered: true });
    return {
      hub: this.#options.bridge,
      nodesDir: [HUB_NODES_DIR, ...this.#options.pluginNodes.dirs()],
      httpAdminRoot: NODERED_ROOT,
      httpNodeRoot: NODERED_FLOWS_ROOT,
      nodesExcludes: config.noderedUnsafeNodes ? [] : HOST_NODE_FILES,
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

/** Express middleware answering a coded error when `admit` refuses the request. */
function admission(admit: (req: Request) => Promise<ErrorCode | undefined>) {
  return (req: Request, res: ServerResponse, next: NextFunction) => {
    admit(req).then((refusal) => (refusal ? sendError(res, refusal) : next()), next);
  };
}

/** Removes one cookie from a request, keeping the others. */
function removeCookie(req: IncomingMessage, name: string): void {
  rewriteHeader(req, 'cookie', (header) =>
    header
      .split(';')
      .filter((part) => part.split('=')[0]!.trim() !== name)
      .join(';')
      .trim(),
  );
}

/** Removes a header from a request. */
function removeHeader(req: IncomingMessage, name: string): void {
  rewriteHeader(req, name, () => '');
}

/**
 * Rewrites each value of a (lower-case) header everywhere a flow can read it: `headers`,
 * `headersDistinct` and `rawHeaders`; a value rewritten to nothing goes. Node builds the first
 * two lazily from `rawHeaders` by its original length, so they are built before it shrinks.
 */
function rewriteHeader(req: IncomingMessage, name: string, rewrite: (value: string) => string): void {
  const { headers, headersDistinct } = req;
  const joined = headers[name];
  const value = typeof joined === 'string' ? rewrite(joined) : '';
  if (value) headers[name] = value;
  else delete headers[name];
  const values = (headersDistinct[name] ?? []).map(rewrite).filter(Boolean);
  if (values.length > 0) headersDistinct[name] = values;
  else delete headersDistinct[name];
  const raw: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const [key, value] = [req.rawHeaders[i]!, req.rawHeaders[i + 1]!];
    if (key.toLowerCase() !== name) {
      raw.push(key, value);
      continue;
    }
    const rewritten = rewrite(value);
    if (rewritten) raw.push(key, rewritten);
  }
  req.rawHeaders.splice(0, req.rawHeaders.length, ...raw);
}

/** The home a flow endpoint's path names (`/homes/<id>/…`, matched as loosely as Express matches routes). */
function homeInPath(pathname: string): string | undefined {
  const segment = /^\/homes\/([^/]+)/i.exec(pathname)?.[1];
  if (segment === undefined) return undefined;
  try {
    return decodeURIComponent(segment); // what `msg.req.params` gives the flow
  } catch {
    return segment; // not a valid encoding: names no home
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function sendError(res: ServerResponse, code: ErrorCode): void {
  const { status, message } = ERRORS[code];
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code, message } }));
}
