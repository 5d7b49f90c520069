/**
 * `GET /metrics`: Prometheus text (prom-client). Open to hub administrators' sessions and to
 * the scrape token in `HUB_METRICS_TOKEN`.
 *
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Kysely } from 'kysely';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { HubEnv } from '../api/rest/index.js';
import type { Principal } from '../auth/index.js';
import type { Database, HubDatabase } from '../db/index.js';
import { hubError } from '../errors/index.js';
import type { MqttService } from '../mqtt/index.js';
import type { PluginManager } from '../plugins/index.js';
import type { StateMachine } from '../states/index.js';
import type { TelemetryIngest } from '../telemetry/index.js';

export interface MetricsSources {
  db: Kysely<Database>;
  database: Pick<HubDatabase, 'ping' | 'pool'>;
  states: StateMachine;
  mqtt: MqttService;
  telemetry: TelemetryIngest;
  plugins: PluginManager;
  websocketConnections(): number;
}

/** Sets a counter to a total kept elsewhere (prom-client counters only go up by `inc`). */
function setTotal(counter: Counter, value: number, labels: Record<string, string> = {}): void {
  counter.reset();
  counter.inc(labels, value);
}

export class Metrics {
  /** Every metric of the hub; plugins add theirs through `ctx.metrics` (see {@link pluginGauge}). */
  readonly registry: Registry;
  readonly #requests: Counter<'method' | 'route' | 'status'>;
  readonly #duration: Histogram<'method' | 'route'>;

  constructor(sources: MetricsSources, registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'hub_process_' });
    this.#requests = new Counter({ name: 'hub_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers });
    this.#duration = new Histogram({
      name: 'hub_http_request_duration_seconds',
      help: 'HTTP request latency',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    new Gauge({ name: 'hub_websocket_connections', help: 'Open WebSocket API connections', registers, collect() {
      this.set(sources.websocketConnections());
    } });
    const { telemetry, mqtt } = sources;
    new Counter({ name: 'hub_mqtt_messages_received_total', help: 'Device messages taken in', registers, collect() {
      setTotal(this, telemetry.counters.received);
    } });
    new Counter({ name: 'hub_mqtt_messages_dropped_total', help: 'Device messages dropped, by reason', labelNames: ['reason'], registers, collect() {
      this.reset();
      for (const [reason, n] of Object.entries(telemetry.counters.dropped)) this.inc({ reason }, n);
    } });
    new Counter({ name: 'hub_mqtt_metrics_dropped_total', help: 'Metrics dropped from accepted device messages, by reason (metric_cap, entity_quota)', labelNames: ['reason'], registers, collect() {
      this.reset();
      for (const [reason, n] of Object.entries(telemetry.counters.droppedMetrics)) this.inc({ reason }, n);
    } });
    new Counter({ name: 'hub_mqtt_refused_total', help: 'Clients, publishes and subscriptions the embedded broker refused', labelNames: ['kind'], registers, collect() {
      this.reset();
      for (const [kind, n] of Object.entries(mqtt.refused)) this.inc({ kind }, n);
    } });
    new Counter({ name: 'hub_readings_written_total', help: 'Readings queued for the database', registers, collect() {
      setTotal(this, telemetry.counters.readings);
    } });
    new Counter({ name: 'hub_readings_dropped_total', help: 'Readings lost because the database was unreachable too long', registers, collect() {
      setTotal(this, telemetry.counters.droppedReadings);
    } });
    new Gauge({ name: 'hub_ingest_pending_readings', help: 'Readings waiting to be written', registers, collect() {
      this.set(telemetry.pending);
    } });
    const batchSize = new Histogram({ name: 'hub_ingest_batch_size', help: 'Readings per database write', buckets: [1, 10, 50, 100, 250, 500, 1000], registers });
    const lag = new Histogram({ name: 'hub_ingest_write_lag_seconds', help: 'From a reading’s arrival to its batch being written', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers });
    telemetry.onBatchWritten = (size, lagMs) => {
      batchSize.observe(size);
      lag.observe(lagMs / 1000);
    };
    new Gauge({ name: 'hub_mqtt_connected', help: '1 when the hub is connected to its broker', registers, collect() {
      this.set(mqtt.connected ? 1 : 0);
    } });
    new Gauge({ name: 'hub_entities', help: 'Entities in the state machine', registers, collect() {
      this.set(sources.states.size);
    } });
    new Gauge({ name: 'hub_db_up', help: '1 when the database answers', registers, async collect() {
      this.set(await sources.database.ping().then(() => 1, () => 0));
    } });
    const { pool } = sources.database;
    new Gauge({ name: 'hub_db_pool_size', help: 'Connections the database pool may open', registers, collect() {
      this.set(pool.size);
    } });
    new Gauge({ name: 'hub_db_connections_in_use', help: 'Database connections handed out', registers, collect() {
      this.set(pool.inUse);
    } });
    new Gauge({ name: 'hub_db_connections_waiting', help: 'Callers waiting for a database connection', registers, collect() {
      this.set(pool.waiting);
    } });
    const acquire = new Histogram({ name: 'hub_db_acquire_seconds', help: 'Time spent waiting for a database connection', buckets: [0.001, 0.005, 0.025, 0.1, 0.5, 2.5], registers });
    pool.onAcquired = (seconds) => acquire.observe(seconds);
    new Gauge({ name: 'hub_plugin_running', help: '1 for each running plugin, 0 otherwise', labelNames: ['plugin', 'status'], registers, collect() {
      this.reset();
      for (const p of sources.plugins.list()) this.set({ plugin: p.id, status: p.status }, p.status === 'running' ? 1 : 0);
    } });
    // One query per scrape feeds the three job gauges; the first to be collected runs it.
    let jobs: Promise<{ id: string; run_count: number; last_error: string | null; last_duration_ms: number | null }[]> | undefined;
    const jobRows = () =>
      (jobs ??= sources.db
        .selectFrom('jobs')
        .select(['id', 'run_count', 'last_error', 'last_duration_ms'])
        .where('active', '=', true)
        .execute()
        .catch(() => [])
        .finally(() => setImmediate(() => (jobs = undefined))));
    const jobGauge = (name: string, help: string, value: (job: Awaited<ReturnType<typeof jobRows>>[number]) => number) =>
      new Gauge({ name, help, labelNames: ['job'], registers, async collect() {
        this.reset();
        for (const job of await jobRows()) this.set({ job: job.id }, value(job));
      } });
    jobGauge('hub_job_runs', 'Runs of each job (all instances)', (job) => job.run_count);
    jobGauge('hub_job_last_run_failed', '1 when the last run of the job failed', (job) => (job.last_error ? 1 : 0));
    jobGauge('hub_job_last_duration_seconds', 'Duration of the last run of each job', (job) => (job.last_duration_ms ?? 0) / 1000);
  }

  /** Counts and times every HTTP request by its route pattern (not its path: ids would explode the labels). */
  middleware(): MiddlewareHandler<HubEnv> {
    return async (c, next) => {
      const stop = this.#duration.startTimer();
      await next();
      const route = routePath(c, -1);
      stop({ method: c.req.method, route });
      this.#requests.inc({ method: c.req.method, route, status: String(c.res.status) });
    };
  }

  /** The `/metrics` handler: a scrape token or an administrator's session. */
  handler(options: { scrapeToken: string | undefined; authenticateToken(token: string): Promise<Principal | undefined> }): MiddlewareHandler<HubEnv> {
    return async (c) => {
      const bearer = /^Bearer (.+)$/i.exec(c.req.header('authorization') ?? '')?.[1];
      if (!bearer) throw hubError('HUB_ERR_UNAUTHENTICATED', 'Send the scrape token or an administrator session as Bearer');
      const scrape = options.scrapeToken !== undefined && safeEqual(bearer, options.scrapeToken);
      if (!scrape) {
        const principal = await options.authenticateToken(bearer);
        if (!principal) throw hubError('HUB_ERR_UNAUTHENTICATED');
        if (!principal.isAdmin) throw hubError('HUB_ERR_FORBIDDEN', 'Metrics are for hub administrators and the scrape token');
      }
      return c.body(await this.registry.metrics(), 200, { 'Content-Type': this.registry.contentType });
    };
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const METRIC_NAME = /^[a-z][a-z0-9_]*$/;

/**
 * A gauge a plugin owns, named `hub_<plugin>_<name>`, read from `collect` at each scrape.
 * Returns the function that removes it.
 */
export function pluginGauge(
  registry: Registry,
  plugin: string,
  spec: { name: string; help: string; labelNames?: string[]; collect: () => { labels?: Record<string, string>; value: number }[] },
  onError: (error: unknown) => void,
): () => void {
  if (!METRIC_NAME.test(spec.name)) throw new TypeError(`metric name ${spec.name} must match ${METRIC_NAME}`);
  const name = `hub_${plugin}_${spec.name}`;
  new Gauge({
    name,
    help: spec.help,
    labelNames: spec.labelNames ?? [],
    registers: [registry],
    collect() {
      this.reset();
      // A plugin's broken gauge must not take the whole scrape down: it reports nothing instead.
      try {
        for (const sample of spec.collect()) this.set(sample.labels ?? {}, sample.value);
      } catch (error) {
        this.reset();
        onError(error);
      }
    },
  });
  return () => registry.removeSingleMetric(name);
}
