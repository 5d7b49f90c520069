/**
 * Devices that talk MQTT to the hub, and their credentials: `/api/homes/{id}/devices`,
 * `/api/devices/{id}`. The MQTT password is shown once; only its SHA-256 is stored.
 *
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { mosquittoHash } from '../mqtt/index.js';
import { createRoute, z } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import { createRouter, errors, json, jsonBody } from '../api/rest/index.js';
import { generateSecret, hashSecret, homeRole, requireHomeRole, type Principal } from '../auth/index.js';
import { isUniqueViolation, type Database, type Device } from '../db/index.js';
import { hubError } from '../errors/index.js';
import { requireHome } from '../homes/index.js';
import type { DeviceIdentity } from '../mqtt/index.js';
import type { StateMachine } from '../states/index.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Checks a device's MQTT login: the username is the device id, the password its secret. */
export async function authenticateDevice(db: Kysely<Database>, username: string, password: string): Promise<DeviceIdentity | undefined> {
  if (!UUID.test(username)) return undefined;
  const device = await db.selectFrom('devices').select(['id', 'home_id', 'mqtt_secret_hash']).where('id', '=', username).executeTakeFirst();
  if (!device) return undefined;
  const given = Buffer.from(hashSecret(password));
  const stored = Buffer.from(device.mqtt_secret_hash);
  return given.length === stored.length && timingSafeEqual(given, stored) ? { deviceId: device.id, homeId: device.home_id } : undefined;
}

/**
 * The stored forms of a device's MQTT password: SHA-256 for the embedded broker, and the
 * `$7$` (PBKDF2-SHA512) form of Mosquitto's password_file for an external broker.
 */
function passwordHashes(password: string) {
  return { mqtt_secret_hash: hashSecret(password), broker_password_hash: mosquittoHash(password) };
}

/** A device of one of the caller's homes, or HUB_ERR_DEVICE_NOT_FOUND (also for other homes' devices). */
export async function requireVisibleDevice(db: Kysely<Database>, principal: Principal, id: string): Promise<Device> {
  const device = await db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
  if (!device || !homeRole(principal, device.home_id)) throw hubError('HUB_ERR_DEVICE_NOT_FOUND');
  return device;
}

/** `sensor.<slug>_<metric>`: a device name made fit for entity ids. */
export function slugify(name: string): string {
  const slug = name
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 48);
  return slug || 'device';
}

const DeviceInput = z
  .object({
    name: z.string().trim().min(1).max(100),
    kind: z.string().trim().min(1).max(50).describe('What it is: mower, weather_station, rain_sensor, …'),
    model: z.string().trim().max(100).optional(),
    firmware: z.string().trim().max(50).optional(),
  })
  .strict()
  .openapi('NewDevice');
const DeviceSchema = z
  .object({
    id: z.uuid(),
    home_id: z.uuid(),
    name: z.string(),
    slug: z.string().describe('Its entities are sensor.<slug>_<metric>'),
    kind: z.string(),
    model: z.string().nullable(),
    firmware: z.string().nullable(),
    online: z.boolean(),
    last_seen: z.iso.datetime().nullable(),
    created_at: z.iso.datetime(),
  })
  .openapi('Device');
const MqttCredentials = z
  .object({
    host: z.string(),
    port: z.number(),
    username: z.string(),
    password: z.string().describe('Shown once; store it in the device now'),
    telemetry_topic: z.string(),
    status_topic: z.string().describe('Publish online/offline here, and set offline as the last will'),
    command_topic: z.string(),
  })
  .openapi('DeviceMqttCredentials');
const DeviceWithCredentials = DeviceSchema.extend({ mqtt: MqttCredentials }).openapi('DeviceWithCredentials');

const tags = ['Devices'];
const HomeParam = z.object({ id: z.uuid() });
const routes = {
  create: createRoute({
    method: 'post',
    path: '/homes/{id}/devices',
    tags,
    summary: 'Add a device to a home (owner); answers its MQTT credentials once',
    request: { params: HomeParam, body: jsonBody(DeviceInput) },
    responses: { 201: json(DeviceWithCredentials, 'Created'), ...errors(400, 401, 403, 404, 415) },
  }),
  list: createRoute({
    method: 'get',
    path: '/homes/{id}/devices',
    tags,
    summary: "A home's devices",
    request: { params: HomeParam },
    responses: { 200: json(z.array(DeviceSchema), 'Devices by name'), ...errors(400, 401, 404) },
  }),
  get: createRoute({
    method: 'get',
    path: '/devices/{id}',
    tags,
    summary: 'One device',
    request: { params: HomeParam },
    responses: { 200: json(DeviceSchema, 'The device'), ...errors(400, 401, 404) },
  }),
  rotate: createRoute({
    method: 'post',
    path: '/devices/{id}/credentials',
    tags,
    summary: "Replace the MQTT password (owner); the old one stops working and the device's connections are closed",
    request: { params: HomeParam },
    responses: { 200: json(DeviceWithCredentials, 'New credentials, shown once'), ...errors(400, 401, 403, 404) },
  }),
  remove: createRoute({
    method: 'delete',
    path: '/devices/{id}',
    tags,
    summary: 'Remove a device and its entities and readings (owner); its connections are closed',
    request: { params: HomeParam },
    responses: { 204: { description: 'Removed' }, ...errors(400, 401, 403, 404) },
  }),
};

function present(device: Device): z.infer<typeof DeviceSchema> {
  return {
    id: device.id,
    home_id: device.home_id,
    name: device.name,
    slug: device.slug,
    kind: device.kind,
    model: device.model,
    firmware: device.firmware,
    online: device.online,
    last_seen: device.last_seen?.toISOString() ?? null,
    created_at: device.created_at.toISOString(),
  };
}

export interface DeviceRoutesOptions {
  db: Kysely<Database>;
  states: StateMachine;
  /**
   * Topic root, where devices reach the broker (the request's host for the embedded one), and
   * how to cut off a device's live connections when its credentials stop being valid.
   */
  mqtt: { root: string; address(requestHost: string): { host: string; port: number }; disconnect(deviceId: string): number };
  /** Called after a device is deleted (the ingest forgets it). */
  onDeleted(deviceId: string): void;
}

export function deviceRoutes({ db, states, mqtt, onDeleted }: DeviceRoutesOptions) {
  const router = createRouter();

  const credentials = (device: Device, password: string, requestHost: string) => {
    const base = `${mqtt.root}/${device.home_id}/${device.id}`;
    return {
      ...mqtt.address(requestHost),
      username: device.id,
      password,
      telemetry_topic: `${base}/telemetry`,
      status_topic: `${base}/status`,
      command_topic: `${base}/command`,
    };
  };

  const visibleDevice = (principal: Principal, id: string) => requireVisibleDevice(db, principal, id);

  router.openapi(routes.create, async (c) => {
    const { id: homeId } = c.req.valid('param');
    requireHomeRole(c.var.principal, homeId, 'owner');
    await requireHome(db, homeId);
    const input = c.req.valid('json');
    const password = generateSecret();
    const base = slugify(input.name);
    let device: Device | undefined;
    for (let n = 1; !device; n++) {
      const slug = n === 1 ? base : `${base}_${n}`;
      try {
        device = await db
          .insertInto('devices')
          .values({ ...input, home_id: homeId, slug, ...passwordHashes(password) })
          .returningAll()
          .executeTakeFirstOrThrow();
      } catch (error) {
        if (!isUniqueViolation(error) || n >= 100) throw error;
      }
    }
    c.var.log.info({ deviceId: device.id, homeId }, 'device added');
    return c.json({ ...present(device), mqtt: credentials(device, password, c.req.header('host') ?? '') }, 201);
  });

  router.openapi(routes.list, async (c) => {
    const { id: homeId } = c.req.valid('param');
    requireHomeRole(c.var.principal, homeId, 'viewer');
    const devices = await db.selectFrom('devices').selectAll().where('home_id', '=', homeId).orderBy('name').orderBy('id').execute();
    return c.json(devices.map(present), 200);
  });

  router.openapi(routes.get, async (c) => c.json(present(await visibleDevice(c.var.principal, c.req.valid('param').id)), 200));

  router.openapi(routes.rotate, async (c) => {
    const device = await visibleDevice(c.var.principal, c.req.valid('param').id);
    requireHomeRole(c.var.principal, device.home_id, 'owner');
    const password = generateSecret();
    await db.updateTable('devices').set(passwordHashes(password)).where('id', '=', device.id).execute();
    c.var.log.info({ deviceId: device.id, disconnected: mqtt.disconnect(device.id) }, 'device credentials rotated');
    return c.json({ ...present(device), mqtt: credentials(device, password, c.req.header('host') ?? '') }, 200);
  });

  router.openapi(routes.remove, async (c) => {
    const device = await visibleDevice(c.var.principal, c.req.valid('param').id);
    requireHomeRole(c.var.principal, device.home_id, 'owner');
    await db.deleteFrom('devices').where('id', '=', device.id).execute();
    onDeleted(device.id);
    for (const entry of [...states.entries()]) {
      if (entry.deviceId === device.id) states.remove(entry.state.entity_id);
    }
    c.var.log.info({ deviceId: device.id, disconnected: mqtt.disconnect(device.id) }, 'device removed');
    return c.body(null, 204);
  });

  return router;
}
