/** The data of each event type the kernel fires. */
import type { State } from '../states/index.js';

export interface StateChangedData {
  entity_id: string;
  /** Absent when the entity first appears. */
  old_state: State | null;
  /** Null when the entity is removed. */
  new_state: State | null;
}

export interface AlertEventData {
  alert_id: string;
  rule_id: string | null;
  task_id: string | null;
  device_id: string;
  metric: string;
  severity: 'warning' | 'critical';
  value: number;
  threshold: number;
}

export interface CoreEvents {
  state_changed: StateChangedData;
  call_service: { domain: string; service: string; service_data: Record<string, unknown> };
  service_registered: { domain: string; service: string };
  service_removed: { domain: string; service: string };
  plugin_loaded: { plugin: string; version: string };
  plugin_failed: { plugin: string; error: string };
  plugin_stopped: { plugin: string };
  home_created: { home_id: string };
  /** `changed` names the fields the update set (name, address, latitude, …). */
  home_updated: { home_id: string; changed: string[] };
  home_deleted: { home_id: string };
  alert_raised: AlertEventData;
  alert_acknowledged: AlertEventData;
  alert_resolved: AlertEventData;
  hub_started: Record<string, never>;
  hub_stop: Record<string, never>;
}
