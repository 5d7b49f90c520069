/**
 * `createTestHub()`: the real hub on a database of its own — PGlite from the template by
 * default, or a fresh database on the PostgreSQL server named by `TEST_DATABASE_URL`.
 */
import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import postgres from 'postgres';
import { inject } from 'vitest';
import { loadConfig } from '../../core/config/index.js';
import { openDatabase, type HubDatabase, type Role } from '../../core/db/index.js';
import { createHub, type Hub } from '../../core/hub.js';
import type { PluginSource } from '../../core/plugins/index.js';

export const ADMIN = { email: 'admin@example.com', password: 'admin-password-1' };
/** Test hubs seal secrets with this key instead of writing a key file into ./data. */
export const TEST_SECRET_KEY = 'test-only-secret-key-0123456789abcdef';

/** Opens a database for one test: a PGlite copy of the template, or a new PostgreSQL database. */
export async function openTestDatabase(): Promise<{ database: HubDatabase; url?: string; drop(): Promise<void> }> {
  const serverUrl = process.env.TEST_DATABASE_URL;
  if (!serverUrl) {
    const template = new Blob([await readFile(inject('pgliteTemplate'))]);
    return { database: await openDatabase({ kind: 'pglite', template }), drop: async () => {} };
  }
  const name = `hub_test_${crypto.randomUUID().replaceAll('-', '')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const database = await openDatabase({ kind: 'postgres', url: url.toString() });
  return {
    database,
    url: url.toString(),
    async drop() {
      await database.close();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

/** A device as `POST /api/homes/:id/devices` answers it, with the MQTT login shown once. */
export interface AddedDevice {
  id: string;
  name: string;
  slug: string;
  kind: string;
  mqtt: { host: string; port: number; username: string; password: string; telemetry_topic: string; status_topic: string; command_topic: string };
}

export interface TestHub {
  hub: Hub;
  /** Every log line the hub wrote, parsed. */
  logs: Record<string, unknown>[];
  /** `hub.app.request` with a JSON body and a bearer token made easy. */
  request(path: string, init?: { method?: string; token?: string; json?: unknown; headers?: Record<string, string> }): Promise<Response>;
  /** Signs in and returns the session token. */
  login(email: string, password: string): Promise<string>;
  /** A session token of the first administrator. */
  adminToken(): Promise<string>;
  /** Creates a user through the admin API and returns a session token for them. */
  createUser(email: string, options?: { password?: string; isAdmin?: boolean }): Promise<{ id: string; email: string; token: string }>;
  /** Invites the user to the home as `ownerToken`'s holder and accepts as the user: membership the way people get it. */
  addMember(ownerToken: string, homeId: string, user: { email: string; token: string }, role: Role): Promise<void>;
  /** Creates a home as the given user and returns its id. */
  createHome(token: string, body?: Record<string, unknown>): Promise<string>;
  /** Adds a device to the home through the REST API as the token's holder; `kind` defaults to 'sensor'. */
  addDevice(token: string, homeId: string, name: string, kind?: string): Promise<AddedDevice>;
  stop(): Promise<void>;
}

/**
 * @param env environment variables on top of the test defaults
 * @param options.plugins plugins to load besides the kernel's own; default none
 * @param options.database a database to run on (see {@link reusableDatabase}); default a fresh one, dropped at stop
 */
export async function createTestHub(
  env: Record<string, string> = {},
  options: { plugins?: PluginSource[]; database?: HubDatabase } = {},
): Promise<TestHub> {
  const { database, drop } = options.database ? { database: options.database, drop: async () => {} } : await openTestDatabase();
  const logs: Record<string, unknown>[] = [];
  const logDestination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  const config = loadConfig({
    HUB_ADMIN_EMAIL: ADMIN.email,
    HUB_ADMIN_PASSWORD: ADMIN.password,
    PORT: '0',
    MQTT_PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    NODE_ENV: 'test',
    HUB_SECRET_KEY: TEST_SECRET_KEY,
    // Node-RED runs once per process; the suites that test it turn it on.
    HUB_NODERED: 'false',
    ...env,
  });
  const hub = await createHub(config, { database, logDestination, plugins: options.plugins ?? [] });

  const request: TestHub['request'] = async (path, init = {}) => {
    const headers: Record<string, string> = { ...init.headers };
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    if (init.json !== undefined) headers['content-type'] ??= 'application/json';
    return hub.app.request(path, {
      method: init.method ?? (init.json === undefined ? 'GET' : 'POST'),
      headers,
      body: init.json === undefined ? undefined : JSON.stringify(init.json),
    });
  };

  const login = async (email: string, password: string) => {
    const res = await request('/api/auth/login', { json: { email, password } });
    if (res.status !== 200) throw new Error(`login of ${email} failed: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { token: string }).token;
  };

  let adminToken: string | undefined;
  const getAdminToken = async () => (adminToken ??= await login(ADMIN.email, ADMIN.password));

  return {
    hub,
    logs,
    request,
    login,
    adminToken: getAdminToken,
    async createUser(email, options = {}) {
      const password = options.password ?? 'user-password-1';
      const res = await request('/api/users', {
        token: await getAdminToken(),
        json: { email, password, is_admin: options.isAdmin ?? false },
      });
      if (res.status !== 201) throw new Error(`creating ${email} failed: ${res.status} ${await res.text()}`);
      const { id } = (await res.json()) as { id: string };
      return { id, email, token: await login(email, password) };
    },
    async addMember(ownerToken, homeId, user, role) {
      const invited = await request(`/api/homes/${homeId}/members`, { token: ownerToken, json: { email: user.email, role } });
      if (invited.status !== 202) throw new Error(`inviting ${user.email} failed: ${invited.status} ${await invited.text()}`);
      const { id } = (await invited.json()) as { id: string };
      const accepted = await request(`/api/invitations/${id}/accept`, { token: user.token, method: 'POST' });
      if (accepted.status !== 200) throw new Error(`${user.email} could not accept: ${accepted.status} ${await accepted.text()}`);
    },
    async createHome(token, body = {}) {
      const res = await request('/api/homes', { token, json: { name: 'Home', ...body } });
      if (res.status !== 201) throw new Error(`creating a home failed: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { id: string }).id;
    },
    async addDevice(token, homeId, name, kind = 'sensor') {
      const res = await request(`/api/homes/${homeId}/devices`, { token, json: { name, kind } });
      if (res.status !== 201) throw new Error(`adding device ${name} failed: ${res.status} ${await res.text()}`);
      return (await res.json()) as AddedDevice;
    },
    async stop() {
      await hub.stop();
      await drop();
    },
  };
}

/**
 * A database that outlives the hubs run on it, for restart tests: pass `handle()` to each
 * `createTestHub`; their `stop()` leaves it open; `close()` ends it.
 */
export async function reusableDatabase(): Promise<{ handle(): HubDatabase; close(): Promise<void> }> {
  const { database, drop } = await openTestDatabase();
  return {
    handle: () => ({ ...database, close: async () => {} }),
    async close() {
      await drop();
      await database.close();
    },
  };
}
