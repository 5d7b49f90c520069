/**
 * Telemetry ingest: devices publish JSON to `<root>/<home>/<device>/telemetry` and
 * `online`/`offline` to `…/status`. Each metric becomes an entity and a reading; readings
 * are written in batches. A message that is malformed, too large, from an unknown device or
 * with a value that is not a finite number, a short string or a boolean is dropped whole,
 * counted by reason and logged — never half written.
 *
 * Entity ids come from the state machine's registry: a device's metric asks for
 * `sensor.<slug>_<metric>` and keeps whatever id it got the first time (`…_2` when another
 * device or home held that one). A metric that would give its device more than
 * `maxMetricsPerDevice` entities, or its home more than the home's quota, is dropped alone
 * (counted by reason, logged): the device's known metrics in the same message still apply.
 *
 * @module
 */
import type { Kysely } from 'kysely';
import { bulkInsert, sqlState, type BulkColumns, type Database } from '../db/index.js';
import type { Logger } from '../log/index.js';
import type { MqttService } from '../mqtt/index.js';
import type { StateMachine } from '../states/index.js';

export { applyRetention, rollUpReadings, type Retention } from './rollups.js';
export { readingRoutes } from './routes.js';

/** Largest telemetry message accepted. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Metric names: lower-case words joined by single underscores (they end entity ids). */
const METRIC = /^[a-z0-9]+(?:_[a-z0-9]+)*$/;
const MAX_METRIC_LENGTH = 64;
const MAX_TEXT = 255;
const BATCH_SIZE = 500;
const FLUSH_INTERVAL_MS = 250;
/** Readings held while the database is away; beyond it the oldest are dropped (and counted). */
const MAX_PENDING_READINGS = 200_000;
// Writing last_seen on every message would double the writes.
const LAST_SEEN_PRECISION_MS = 30_000;

/** Units and device classes of well-known metric names. */
const KNOWN_METRICS: Record<string, { unit_of_measurement?: string; device_class?: string }> = {
  battery: { unit_of_measurement: '%', device_class: 'battery' },
  temperature: { unit_of_measurement: '°C', device_class: 'temperature' },
  humidity: { unit_of_measurement: '%', device_class: 'humidity' },
  voltage: { unit_of_measurement: 'V', device_class: 'voltage' },
  current: { unit_of_measurement: 'A', device_class: 'current' },
  power: { unit_of_measurement: 'W', device_class: 'power' },
  energy: { unit_of_measurement: 'kWh', device_class: 'energy' },
  rssi: { unit_of_measurement: 'dBm', device_class: 'signal_strength' },
  rain: { unit_of_measurement: 'mm', device_class: 'precipitation' },
  wind_speed: { unit_of_measurement: 'm/s', device_class: 'wind_speed' },
  blade_height: { unit_of_measurement: 'mm', device_class: 'distance' },
  progress: { unit_of_measurement: '%' },
  area_mowed: { unit_of_measurement: 'm²', device_class: 'area' },
};

export type DropReason = 'too_large' | 'malformed' | 'invalid_value' | 'unknown_device' | 'bad_topic' | 'failed';
/** Why single metrics of an accepted message were dropped: the device's cap, the home's quota. */
export type MetricDropReason = 'metric_cap' | 'entity_quota';

export interface TelemetryOptions {
  /** Entities one device may create (`HUB_MAX_METRICS_PER_DEVICE`); further metrics are dropped. */
  maxMetricsPerDevice?: number;
}

/** The owner of telemetry entities, and of their registry entries. */
const OWNER = 'telemetry';

interface KnownDevice {
  homeId: string;
  slug: string;
  name: string;
  lastSeenWritten: number;
}

interface Reading {
  device_id: string;
  metric: string;
  ts: Date;
  value: number | null;
  text_value: string | null;
}

const READING_COLUMNS: BulkColumns<Reading> = {
  device_id: 'uuid',
  metric: 'text',
  ts: 'timestamptz',
  value: 'double precision',
  text_value: 'text',
};

export class TelemetryIngest {
  // Promises, so that messages arriving while a device is looked up wait for the same lookup
  // and are applied in the order they came.
  readonly #devices = new Map<string, Promise<KnownDevice | undefined>>();
  #pending: Reading[] = [];
  /** When the oldest pending reading was queued: the write lag starts there. */
  #pendingSince = 0;
  /** Listeners of every numeric reading as it arrives (the alert rules). */
  readonly #readingListeners = new Set<(reading: { deviceId: string; homeId: string; metric: string; value: number; at: Date }) => void>();
  /** Called after each batch is written, with its size and how long its oldest reading waited. */
  onBatchWritten: ((size: number, lagMs: number) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  /** Size of the batch being written (it counts as pending until it is in the database). */
  #inFlight = 0;
  #unsubscribe: (() => Promise<void>)[] = [];
  /** Messages taken in, messages dropped by reason and metrics dropped by reason; the metrics endpoint reads these. */
  readonly counters = {
    received: 0,
    readings: 0,
    droppedReadings: 0,
    dropped: {} as Record<DropReason, number>,
    droppedMetrics: {} as Record<MetricDropReason, number>,
  };
  readonly #maxMetricsPerDevice: number;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly states: StateMachine,
    private readonly mqtt: MqttService,
    private readonly log: Logger,
    options: TelemetryOptions = {},
  ) {
    this.#maxMetricsPerDevice = options.maxMetricsPerDevice ?? 100;
  }

  /** Subscribes to every device's telemetry and status (shared among hub instances on an external broker). */
  async start(): Promise<void> {
    const share = this.mqtt.broker.kind === 'external' ? '$share/hub/' : '';
    for (const kind of ['telemetry', 'status'] as const) {
      const filter = `${share}${this.mqtt.root}/+/+/${kind}`;
      const receive = (topic: string, payload: Buffer) =>
        this.#receive(kind, topic, payload).catch((error: unknown) => {
          this.counters.dropped.failed = (this.counters.dropped.failed ?? 0) + 1;
          this.log.error({ err: error, topic }, 'telemetry message failed');
        });
      this.#unsubscribe.push(await this.mqtt.subscribe(filter, (topic, payload) => void receive(topic, payload)));
    }
  }

  /** Calls `listener` with each numeric reading; returns the function that stops it. */
  onReading(listener: (reading: { deviceId: string; homeId: string; metric: string; value: number; at: Date }) => void): () => void {
    this.#readingListeners.add(listener);
    return () => this.#readingListeners.delete(listener);
  }

  /** Readings waiting to be written, including a batch being written now. */
  get pending(): number {
    return this.#pending.length + this.#inFlight;
  }

  /** Writes pending readings now. */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing.catch(() => {});
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    const since = this.#pendingSince;
    this.#pending = [];
    this.#inFlight = batch.length;
    this.#writing = this.#write(batch)
      .catch(async (error: unknown) => {
        // A constraint violation means readings of a device deleted meanwhile: write the rest.
        if (!sqlState(error).startsWith('23')) throw error;
        const known = new Set((await this.db.selectFrom('devices').select('id').execute()).map((d) => d.id));
        const kept = batch.filter((r) => known.has(r.device_id));
        this.counters.droppedReadings += batch.length - kept.length;
        await this.#write(kept);
      })
      .then(() => this.onBatchWritten?.(batch.length, Date.now() - since))
      .catch((error: unknown) => {
        this.#inFlight = 0;
        this.#requeue(batch);
        throw error;
      })
      .finally(() => {
        this.#writing = undefined;
        this.#inFlight = 0;
      });
    await this.#writing;
  }

  async stop(): Promise<void> {
    for (const unsubscribe of this.#unsubscribe) await unsubscribe().catch(() => {});
    clearTimeout(this.#timer);
    await this.flush().catch((error: unknown) => this.log.error({ err: error, lost: this.#pending.length }, 'readings not written at shutdown'));
  }

  /** Forgets a device's cached identity (after it was removed or moved). */
  forgetDevice(deviceId: string): void {
    this.#devices.delete(deviceId);
  }

  async #receive(kind: 'telemetry' | 'status', topic: string, payload: Buffer): Promise<void> {
    this.counters.received++;
    const [, homeId, deviceId] = topic.split('/');
    if (!homeId || !deviceId) return this.#drop('bad_topic', topic);
    if (payload.length > MAX_MESSAGE_BYTES) return this.#drop('too_large', topic, { bytes: payload.length });
    const device = await this.#device(deviceId).catch(() => undefined);
    if (!device || device.homeId !== homeId) return this.#drop('unknown_device', topic);
    if (kind === 'status') return this.#status(deviceId, device, payload.toString().trim(), topic);

    let message: unknown;
    try {
      message = JSON.parse(payload.toString());
    } catch {
      return this.#drop('malformed', topic, { why: 'not JSON' });
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      return this.#drop('malformed', topic, { why: 'not a JSON object' });
    }
    const { ts, ...metrics } = message as Record<string, unknown>;
    const at = timestamp(ts);
    if (!at) return this.#drop('malformed', topic, { why: 'ts must be epoch milliseconds or an ISO date' });
    const values = Object.entries(metrics).map(([metric, value]) => ({ metric: metric.toLowerCase(), value }));
    if (values.length === 0) return this.#drop('malformed', topic, { why: 'no metrics' });
    const bad = values.find(({ metric, value }) => metric.length > MAX_METRIC_LENGTH || !METRIC.test(metric) || !acceptable(value));
    if (bad) return this.#drop('invalid_value', topic, { metric: bad.metric });

    const dropped: Partial<Record<MetricDropReason, string[]>> = {};
    for (const { metric, value } of values as { metric: string; value: number | string | boolean }[]) {
      const entityId = this.#entityFor(deviceId, device, metric, typeof value === 'boolean' ? 'binary_sensor' : 'sensor');
      if (isDropReason(entityId)) (dropped[entityId] ??= []).push(metric);
      else this.#apply(entityId, deviceId, device, metric, value, at);
    }
    this.#dropMetrics(dropped, topic, deviceId);
    this.#touch(deviceId, device, true);
  }

  /**
   * The entity id of a device's metric: the one it holds, or a new one when the device and its
   * home have room; otherwise the reason it has none.
   */
  #entityFor(deviceId: string, device: KnownDevice, metric: string, domain: 'sensor' | 'binary_sensor'): string | MetricDropReason {
    const claim = { owner: OWNER, homeId: device.homeId, deviceId, uniqueId: metric, preferredId: `${domain}.${device.slug}_${metric}` };
    const held = this.states.claimed(claim);
    if (held) return held;
    if (this.states.claimedFor(OWNER, deviceId) >= this.#maxMetricsPerDevice) return 'metric_cap';
    if (!this.states.hasRoomIn(device.homeId)) return 'entity_quota';
    return this.states.claim(claim);
  }

  #apply(entityId: string, deviceId: string, device: KnownDevice, metric: string, value: number | string | boolean, at: Date): void {
    const options = { homeId: device.homeId, owner: OWNER, deviceId };
    const friendly_name = `${device.name} ${metric.replaceAll('_', ' ')}`;
    if (typeof value === 'boolean') {
      this.states.set(entityId, value ? 'on' : 'off', { friendly_name }, options);
    } else {
      this.states.set(entityId, String(value), { ...KNOWN_METRICS[metric], friendly_name }, options);
    }
    if (typeof value === 'number') {
      for (const listener of this.#readingListeners) {
        try {
          listener({ deviceId, homeId: device.homeId, metric, value, at });
        } catch (error) {
          this.log.error({ err: error, deviceId, metric }, 'reading listener failed');
        }
      }
    }
    this.#queue({
      device_id: deviceId,
      metric,
      ts: at,
      value: typeof value === 'string' ? null : Number(value),
      text_value: typeof value === 'string' ? value : null,
    });
  }

  #status(deviceId: string, device: KnownDevice, text: string, topic: string): void {
    if (text !== 'online' && text !== 'offline') return this.#drop('invalid_value', topic, { why: 'status must be online or offline' });
    const online = text === 'online';
    // The same entity as a boolean metric named `online`.
    const entityId = this.#entityFor(deviceId, device, 'online', 'binary_sensor');
    if (isDropReason(entityId)) {
      this.#dropMetrics({ [entityId]: ['online'] }, topic, deviceId);
    } else {
      this.states.set(
        entityId,
        online ? 'on' : 'off',
        { device_class: 'connectivity', friendly_name: `${device.name} online` },
        { homeId: device.homeId, owner: OWNER, deviceId },
      );
    }
    this.#touch(deviceId, device, online, true);
  }

  /** Notes that the device was heard from (at most every 30 s, or at once when online changes). */
  #touch(deviceId: string, device: KnownDevice, online: boolean, force = false): void {
    const now = Date.now();
    if (!force && now - device.lastSeenWritten < LAST_SEEN_PRECISION_MS) return;
    device.lastSeenWritten = now;
    this.db
      .updateTable('devices')
      .set({ online, last_seen: new Date(now) })
      .where('id', '=', deviceId)
      .execute()
      .catch((error: unknown) => this.log.warn({ err: error, deviceId }, 'could not record that the device was seen'));
  }

  #device(deviceId: string): Promise<KnownDevice | undefined> {
    let lookup = this.#devices.get(deviceId);
    if (lookup) return lookup;
    if (!/^[0-9a-f-]{36}$/i.test(deviceId)) return Promise.resolve(undefined);
    lookup = this.db
      .selectFrom('devices')
      .select(['home_id', 'slug', 'name'])
      .where('id', '=', deviceId)
      .executeTakeFirst()
      .then((row) => {
        // Unknown ids are not remembered: the device may be added a moment later.
        if (!row) this.#devices.delete(deviceId);
        return row && { homeId: row.home_id, slug: row.slug, name: row.name, lastSeenWritten: 0 };
      });
    lookup.catch(() => this.#devices.delete(deviceId));
    this.#devices.set(deviceId, lookup);
    return lookup;
  }

  #drop(reason: DropReason, topic: string, detail: Record<string, unknown> = {}): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
    this.log.warn({ reason, topic, ...detail }, 'telemetry message dropped');
  }

  /** Counts each metric dropped from a message, with one log line per reason. */
  #dropMetrics(dropped: Partial<Record<MetricDropReason, string[]>>, topic: string, deviceId: string): void {
    for (const [reason, metrics] of Object.entries(dropped) as [MetricDropReason, string[]][]) {
      this.counters.droppedMetrics[reason] = (this.counters.droppedMetrics[reason] ?? 0) + metrics.length;
      const limit = reason === 'metric_cap' ? { maxMetricsPerDevice: this.#maxMetricsPerDevice } : {};
      this.log.warn({ reason, topic, deviceId, count: metrics.length, metrics: metrics.slice(0, 10), ...limit }, 'telemetry metrics dropped');
    }
  }

  #queue(reading: Reading): void {
    if (this.#pending.length === 0) this.#pendingSince = Date.now();
    this.#pending.push(reading);
    this.counters.readings++;
    if (this.#pending.length >= BATCH_SIZE) this.#flushSoon(0);
    else this.#flushSoon(FLUSH_INTERVAL_MS);
  }

  #flushSoon(delayMs: number): void {
    if (this.#timer && delayMs > 0) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush().catch((error: unknown) => {
        this.log.warn({ err: error, pending: this.#pending.length }, 'readings write failed; retrying');
        this.#flushSoon(1000);
      });
    }, delayMs);
    this.#timer.unref();
  }

  #requeue(batch: Reading[]): void {
    const all = [...batch, ...this.#pending];
    const overflow = all.length - MAX_PENDING_READINGS;
    if (overflow > 0) {
      this.counters.droppedReadings += overflow;
      this.log.error({ dropped: overflow }, 'readings dropped: the database has been unreachable too long');
    }
    this.#pending = overflow > 0 ? all.slice(overflow) : all;
  }

  async #write(batch: Reading[]): Promise<void> {
    await bulkInsert(this.db, 'readings', READING_COLUMNS, batch);
  }
}

function isDropReason(value: string): value is MetricDropReason {
  return value === 'metric_cap' || value === 'entity_quota';
}

function acceptable(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value);
  if (typeof value === 'string') return value.length <= MAX_TEXT && !value.includes('\0') && value.isWellFormed();
  return typeof value === 'boolean';
}

/** The message's time: `ts` in epoch milliseconds or ISO 8601, else now; undefined when unusable. */
function timestamp(ts: unknown): Date | undefined {
  if (ts === undefined) return new Date();
  const date = typeof ts === 'number' || typeof ts === 'string' ? new Date(ts) : undefined;
  const ms = date?.getTime();
  // Within a day of now: a device with a broken clock must not write into the far past or future.
  return ms !== undefined && Number.isFinite(ms) && Math.abs(ms - Date.now()) < 86_400_000 ? date : undefined;
}
