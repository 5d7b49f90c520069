/**
 * Threshold alerts on telemetry: rules (per metric, per device or for a whole home, warning
 * and critical levels, above or below, a "for" duration against flapping, hysteresis for the
 * way back) raise alerts that go active → acknowledged → resolved, and fire
 * `alert_raised` / `alert_acknowledged` / `alert_resolved` on the bus.
 *
 * @module
 */
import type { Kysely } from 'kysely';
import { createContext, type EventBus } from '../bus/index.js';
import { isUniqueViolation, type Alert, type AlertRule, type Database, type MaintenanceTask } from '../db/index.js';
import type { Logger } from '../log/index.js';

export { alertRoutes } from './routes.js';

type Severity = 'warning' | 'critical';

interface Reading {
  deviceId: string;
  homeId: string;
  metric: string;
  value: number;
  at: Date;
}

/** The worst level a value breaches under a rule, with its threshold. */
export function breach(rule: Pick<AlertRule, 'direction' | 'warning' | 'critical'>, value: number): { severity: Severity; threshold: number } | undefined {
  const beyond = (threshold: number | null) => threshold !== null && (rule.direction === 'above' ? value > threshold : value < threshold);
  if (beyond(rule.critical)) return { severity: 'critical', threshold: rule.critical! };
  if (beyond(rule.warning)) return { severity: 'warning', threshold: rule.warning! };
  return undefined;
}

/** Whether a value is back on the good side of a threshold by at least the hysteresis. */
export function recovered(rule: Pick<AlertRule, 'direction' | 'hysteresis'>, threshold: number, value: number): boolean {
  return rule.direction === 'above' ? value <= threshold - rule.hysteresis : value >= threshold + rule.hysteresis;
}

export class AlertEngine {
  /** Enabled rules by metric: every numeric reading looks its metric up here. */
  #rulesByMetric = new Map<string, AlertRule[]>();
  /** Since when each (rule, device) has been in breach at a level, for the "for" duration. */
  readonly #breachingSince = new Map<string, { severity: Severity; since: number }>();
  /** Serialises evaluation per (rule, device): readings come faster than the database answers. */
  readonly #chains = new Map<string, Promise<void>>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly bus: EventBus,
    private readonly log: Logger,
  ) {}

  /** Loads the rules; call again after they change. */
  async reload(): Promise<void> {
    const rules = await this.db.selectFrom('alert_rules').selectAll().where('enabled', '=', true).execute();
    const byMetric = new Map<string, AlertRule[]>();
    for (const rule of rules) byMetric.set(rule.metric, [...(byMetric.get(rule.metric) ?? []), rule]);
    this.#rulesByMetric = byMetric;
  }

  evaluate(reading: Reading): void {
    for (const rule of this.#rulesByMetric.get(reading.metric) ?? []) {
      if (rule.home_id !== reading.homeId) continue;
      if (rule.device_id !== null && rule.device_id !== reading.deviceId) continue;
      const key = `${rule.id}:${reading.deviceId}`;
      const next = (this.#chains.get(key) ?? Promise.resolve())
        .then(() => this.#apply(rule, reading))
        .catch((error: unknown) => this.log.error({ err: error, rule: rule.id }, 'alert evaluation failed'));
      this.#chains.set(key, next);
      void next.finally(() => this.#chains.get(key) === next && this.#chains.delete(key));
    }
  }

  /** Waits until every reading seen so far is evaluated (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#chains.size > 0) await Promise.all(this.#chains.values());
  }

  async #apply(rule: AlertRule, reading: Reading): Promise<void> {
    const key = `${rule.id}:${reading.deviceId}`;
    const open = await this.db
      .selectFrom('alerts')
      .selectAll()
      .where('rule_id', '=', rule.id)
      .where('device_id', '=', reading.deviceId)
      .where('status', '<>', 'resolved')
      .executeTakeFirst();
    const level = breach(rule, reading.value);

    if (open) {
      // The level it would have now, counting hysteresis from the open alert's threshold.
      const entry = rule.warning ?? rule.critical!;
      if (!level && recovered(rule, entry, reading.value)) {
        this.#breachingSince.delete(key);
        await this.#resolve(open, null);
      } else if (level && level.severity !== open.severity) {
        const escalate = level.severity === 'critical';
        if (escalate || recovered(rule, open.threshold, reading.value)) await this.#changeSeverity(open, level, reading.value, escalate);
      }
      return;
    }

    if (!level) {
      this.#breachingSince.delete(key);
      return;
    }
    const held = this.#breachingSince.get(key);
    const since = held && held.severity === level.severity ? held.since : reading.at.getTime();
    this.#breachingSince.set(key, { severity: level.severity, since });
    if (reading.at.getTime() - since < rule.for_seconds * 1000) return;
    this.#breachingSince.delete(key);
    try {
      const alert = await this.db
        .insertInto('alerts')
        .values({
          rule_id: rule.id,
          home_id: rule.home_id,
          device_id: reading.deviceId,
          metric: rule.metric,
          severity: level.severity,
          status: 'active',
          value: reading.value,
          threshold: level.threshold,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      this.#fire('alert_raised', alert);
    } catch (error) {
      // Another hub instance raised it first.
      if (!isUniqueViolation(error)) throw error;
    }
  }

  async #changeSeverity(open: Alert, level: { severity: Severity; threshold: number }, value: number, announce: boolean): Promise<void> {
    const changed = await this.db
      .updateTable('alerts')
      .set({ severity: level.severity, value, threshold: level.threshold })
      .where('id', '=', open.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    if (announce) this.#fire('alert_raised', changed);
  }

  /** Raises the alert of a maintenance task that is due (once while it stays open). */
  async raiseForTask(task: MaintenanceTask, value: number, threshold: number): Promise<Alert | undefined> {
    try {
      const alert = await this.db
        .insertInto('alerts')
        .values({
          rule_id: null,
          task_id: task.id,
          home_id: task.home_id,
          device_id: task.device_id,
          metric: task.due_metric ?? 'maintenance',
          severity: 'warning',
          status: 'active',
          value,
          threshold,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      this.#fire('alert_raised', alert);
      return alert;
    } catch (error) {
      if (isUniqueViolation(error)) return undefined; // already open
      throw error;
    }
  }

  /** Resolves the open alert of a task that was done or cancelled. */
  async resolveForTask(taskId: string, userId: string): Promise<void> {
    const open = await this.db.selectFrom('alerts').selectAll().where('task_id', '=', taskId).where('status', '<>', 'resolved').executeTakeFirst();
    if (open) await this.#resolve(open, userId);
  }

  /** Acknowledges an active alert; undefined when it is not active (or not found). */
  async acknowledge(id: string, userId: string): Promise<Alert | undefined> {
    const alert = await this.db
      .updateTable('alerts')
      .set({ status: 'acknowledged', acknowledged_at: new Date(), acknowledged_by: userId })
      .where('id', '=', id)
      .where('status', '=', 'active')
      .returningAll()
      .executeTakeFirst();
    if (alert) this.#fire('alert_acknowledged', alert, userId);
    return alert;
  }

  /** Resolves an open alert by hand (`userId`) or by itself (`null`, the value came back). */
  async resolveById(id: string, userId: string): Promise<Alert | undefined> {
    const open = await this.db.selectFrom('alerts').selectAll().where('id', '=', id).where('status', '<>', 'resolved').executeTakeFirst();
    return open && this.#resolve(open, userId);
  }

  async #resolve(open: Alert, userId: string | null): Promise<Alert | undefined> {
    const alert = await this.db
      .updateTable('alerts')
      .set({ status: 'resolved', resolved_at: new Date(), resolved_by: userId })
      .where('id', '=', open.id)
      .where('status', '<>', 'resolved')
      .returningAll()
      .executeTakeFirst();
    if (alert) this.#fire('alert_resolved', alert, userId);
    return alert;
  }

  #fire(type: 'alert_raised' | 'alert_acknowledged' | 'alert_resolved', alert: Alert, userId: string | null = null): void {
    this.bus.fire(
      type,
      { alert_id: alert.id, rule_id: alert.rule_id, task_id: alert.task_id, device_id: alert.device_id, metric: alert.metric, severity: alert.severity, value: alert.value, threshold: alert.threshold },
      { homeId: alert.home_id, context: createContext({ user_id: userId }) },
    );
  }
}
