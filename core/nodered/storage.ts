/**
 * Node-RED's storage module on the hub's database: every deploy is a row of
 * `nodered_deployments` (who, when), the newest one runs; settings, sessions and the library
 * live beside it. Node-RED encrypts credentials itself, under a key derived from the hub's.
 *
 * @module
 */
import type { Kysely } from 'kysely';
import { jsonb, type Database } from '../db/index.js';
import type { Logger } from '../log/index.js';

/** The user Node-RED passes to `saveFlows`: whoever deployed (see `adminAuth.tokens`). */
export interface DeployingUser {
  username: string;
  /** The hub user's id, carried through from the token check. */
  hubUserId?: string;
}

type FlowConfig = Record<string, unknown>[];

/** The object Node-RED's `storageModule` setting takes (its documented storage API). */
export interface NodeRedStorage {
  init(settings: unknown, runtime?: unknown): Promise<void>;
  getFlows(): Promise<FlowConfig>;
  saveFlows(flows: FlowConfig, user?: DeployingUser): Promise<void>;
  getCredentials(): Promise<Record<string, unknown>>;
  saveCredentials(credentials: Record<string, unknown>): Promise<void>;
  getSettings(): Promise<Record<string, unknown>>;
  saveSettings(settings: Record<string, unknown>): Promise<void>;
  getSessions(): Promise<Record<string, unknown>>;
  saveSessions(sessions: Record<string, unknown>): Promise<void>;
  getLibraryEntry(type: string, path: string): Promise<unknown>;
  saveLibraryEntry(type: string, path: string, meta: Record<string, unknown>, body: string): Promise<void>;
}

export function databaseStorage(db: Kysely<Database>, log: Logger): NodeRedStorage {
  // Node-RED saves credentials just before the flows of the same deploy: keep them for that row.
  let credentials: Record<string, unknown> | undefined;

  const latest = () => db.selectFrom('nodered_deployments').select(['flows', 'credentials']).orderBy('id', 'desc').limit(1).executeTakeFirst();
  const readStore = async (key: string) =>
    ((await db.selectFrom('nodered_store').select('value').where('key', '=', key).executeTakeFirst())?.value ?? {}) as Record<string, unknown>;
  const writeStore = async (key: string, value: Record<string, unknown>) => {
    await db
      .insertInto('nodered_store')
      .values({ key, value: jsonb(value) })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value: jsonb(value) }))
      .execute();
  };

  return {
    async init() {},
    async getFlows() {
      return ((await latest())?.flows ?? []) as FlowConfig;
    },
    async saveFlows(flows, user) {
      const deployedBy = user?.hubUserId ?? null;
      const previous = await latest();
      await db
        .insertInto('nodered_deployments')
        .values({ flows: jsonb(flows), credentials: jsonb(credentials ?? previous?.credentials ?? {}), deployed_by: deployedBy })
        .execute();
      credentials = undefined;
      log.info({ nodes: flows.length, deployedBy }, 'node-red flows deployed');
    },
    async getCredentials() {
      return ((await latest())?.credentials ?? {}) as Record<string, unknown>;
    },
    async saveCredentials(value) {
      credentials = value;
    },
    getSettings: () => readStore('settings'),
    saveSettings: (value) => writeStore('settings', value),
    getSessions: () => readStore('sessions'),
    saveSessions: (value) => writeStore('sessions', value),
    async getLibraryEntry(type, path) {
      const entry = await db.selectFrom('nodered_library').select(['meta', 'body']).where('type', '=', type).where('path', '=', path).executeTakeFirst();
      if (entry) return entry.body;
      // A folder: list what is under it, as Node-RED's file storage does.
      const prefix = path ? `${path.replace(/\/$/, '')}/` : '';
      const rows = await db.selectFrom('nodered_library').select(['path', 'meta']).where('type', '=', type).where('path', 'like', `${prefix}%`).execute();
      return rows.map((row) => ({ fn: row.path.slice(prefix.length), ...(row.meta as Record<string, unknown>) }));
    },
    async saveLibraryEntry(type, path, meta, body) {
      await db
        .insertInto('nodered_library')
        .values({ type, path, meta: jsonb(meta), body })
        .onConflict((oc) => oc.columns(['type', 'path']).doUpdateSet({ meta: jsonb(meta), body }))
        .execute();
    },
  };
}
