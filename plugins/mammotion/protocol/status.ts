/**
 * What the device tells us, with the derived values of SPEC §7: work mode and Home Assistant
 * activity, progress and area from packed fields, position in WGS84, zones, errors, firmware.
 *
 * @module
 */
import { localToWgs84, type RtkOrigin } from './geo.js';
import type { FirmwareInfo, Int64, ReportData, WorkReport } from './messages.js';

/** Work modes (`rpt_dev_status.sys_status`, SPEC §7.3). */
export const WORK_MODES: Record<number, string> = {
  0: 'MODE_NOT_ACTIVE',
  1: 'MODE_ONLINE',
  2: 'MODE_OFFLINE',
  3: 'MODE_POWER_OFF',
  8: 'MODE_DISABLE',
  10: 'MODE_INITIALIZATION',
  11: 'MODE_READY',
  12: 'MODE_UNCONNECTED',
  13: 'MODE_WORKING',
  14: 'MODE_RETURNING',
  15: 'MODE_CHARGING',
  16: 'MODE_UPDATING',
  17: 'MODE_LOCK',
  19: 'MODE_PAUSE',
  20: 'MODE_MANUAL_MOWING',
  22: 'MODE_UPDATE_SUCCESS',
  23: 'MODE_OTA_UPGRADE_FAIL',
  31: 'MODE_JOB_DRAW',
  32: 'MODE_OBSTACLE_DRAW',
  34: 'MODE_CHANNEL_DRAW',
  35: 'MODE_ERASER_DRAW',
  36: 'MODE_EDIT_BOUNDARY',
  37: 'MODE_LOCATION_ERROR',
  38: 'MODE_BOUNDARY_JUMP',
  39: 'MODE_CHARGING_PAUSE',
};

export const Mode = { POWER_OFF: 3, INITIALIZATION: 10, READY: 11, WORKING: 13, RETURNING: 14, LOCK: 17, PAUSE: 19, CHARGING_PAUSE: 39 } as const;

/** Modes of a job in progress. */
export const ACTIVE_JOB_MODES = new Set<number>([13, 14, 19, 39]);
/** Modes in which the device must not be polled (drawing a map, updating, locked, manual mowing). */
export const DO_NOT_POLL_MODES = new Set<number>([31, 32, 34, 35, 16, 36, 17, 20]);

/** Home Assistant's `lawn_mower` activities. */
export type MowerActivity = 'mowing' | 'docked' | 'paused' | 'returning' | 'error';

/** The Home Assistant activity of a mode (SPEC §7.3); undefined where HA shows "unknown". */
export function activityOf(mode: number, chargeState: number): MowerActivity | undefined {
  if (mode === Mode.PAUSE || mode === Mode.CHARGING_PAUSE) return 'paused';
  if (mode === Mode.READY) return chargeState === 0 ? 'paused' : 'docked';
  if (mode === Mode.WORKING) return 'mowing';
  if (mode === Mode.RETURNING) return 'returning';
  if (mode === Mode.LOCK) return 'error';
  return undefined;
}

export const RTK_STATUS: Record<number, string> = { 0: 'none', 1: 'single', 2: 'single', 4: 'fix', 5: 'float' };

/** A decoded `report_info_data`: only the parts the report carried are set. */
export interface MowerReport {
  mode?: number;
  modeName?: string;
  lastMode?: number;
  activity?: MowerActivity;
  battery?: number;
  charging?: boolean;
  work?: {
    progressPercent: number;
    areaMowedM2: number;
    totalMinutes: number;
    leftMinutes: number;
    elapsedMinutes: number;
    resumable: boolean;
    pathIndex: number;
    bladeHeightMm: number;
    speedMps: number;
  };
  rtk?: { status: number; label: string; satellites: number; positionLevel: number; baseLatitude?: number; baseLongitude?: number };
  position?: { x: number; y: number; heading: number; positionType: number; zoneHash: string; mapHash: string };
  connection?: { type: number; wifiRssi?: number; mobileRssi?: number; iotConnected: boolean };
  maintenance?: { mileageM: number; workSeconds: number; batteryCycles?: number; bladeSeconds?: number };
  firmware?: string;
}

export function readReport(report: ReportData): MowerReport {
  const out: MowerReport = {};
  const { dev, work, rtk, connect, maintain } = report;
  if (dev) {
    const mode = dev.sys_status ?? 0;
    const charge = dev.charge_state ?? 0;
    Object.assign(out, {
      mode,
      modeName: WORK_MODES[mode] ?? `MODE_${mode}`,
      lastMode: dev.last_status ?? 0,
      activity: activityOf(mode, charge),
      battery: dev.battery_val ?? 0,
      charging: charge !== 0,
    });
  }
  if (work) {
    const progress = work.progress ?? 0;
    const area = work.area ?? 0;
    const total = progress & 0xffff;
    const left = progress >>> 16;
    out.work = {
      progressPercent: area >>> 16,
      areaMowedM2: area & 0xffff,
      totalMinutes: total,
      leftMinutes: left,
      elapsedMinutes: total - left,
      resumable: (work.bp_info ?? 0) !== 0,
      pathIndex: Number((BigInt(work.real_path_num ?? 0) & 0xffff00n) >> 8n),
      bladeHeightMm: work.knife_height ?? 0,
      speedMps: (work.man_run_speed ?? 0) / 100,
    };
  }
  if (rtk) {
    const status = rtk.status ?? 0;
    out.rtk = {
      status,
      label: RTK_STATUS[status] ?? 'unknown',
      satellites: rtk.gps_stars ?? 0,
      positionLevel: rtk.pos_level ?? 0,
      ...(rtk.mqtt_rtk_info?.latitude ? { baseLatitude: rtk.mqtt_rtk_info.latitude, baseLongitude: rtk.mqtt_rtk_info.longitude ?? 0 } : {}),
    };
  }
  const location = report.locations?.[0];
  if (location) {
    out.position = {
      x: (location.real_pos_x ?? 0) / 1e4,
      y: (location.real_pos_y ?? 0) / 1e4,
      heading: (location.real_toward ?? 0) / 1e4,
      positionType: location.pos_type ?? 0,
      zoneHash: String(location.zone_hash ?? '0'),
      mapHash: String(location.bol_hash ?? '0'),
    };
  }
  if (connect) {
    out.connection = {
      type: connect.connect_type ?? 0,
      ...(connect.wifi_rssi !== undefined ? { wifiRssi: connect.wifi_rssi } : {}),
      ...(connect.mnet_rssi !== undefined ? { mobileRssi: connect.mnet_rssi } : {}),
      iotConnected: (connect.iot_con_status ?? 0) === 1,
    };
  }
  if (maintain) {
    out.maintenance = {
      mileageM: Number(maintain.mileage ?? 0),
      workSeconds: maintain.work_time ?? 0,
      ...(maintain.bat_cycles !== undefined ? { batteryCycles: maintain.bat_cycles } : {}),
      ...(maintain.blade_used_time?.blade_used_time !== undefined ? { bladeSeconds: maintain.blade_used_time.blade_used_time } : {}),
    };
  }
  if (report.fw_info?.version) out.firmware = report.fw_info.version;
  return out;
}

/** WGS84 position of a report's local position, once the RTK origin is known. */
export function positionInDegrees(origin: RtkOrigin | undefined, position: MowerReport['position']) {
  return origin && position ? localToWgs84(origin, position.x, position.y) : undefined;
}

/** Per-zone job status values of `systemUpdateBuf` type 3. */
export const ZONE_STATUS: Record<number, string> = { 0: 'not_started', 1: 'waiting', 2: 'mowing', 3: 'complete', 5: 'aborted' };

/** What a `systemUpdateBuf` frame carries, by its first value (SPEC §7.4, §7.5). */
export type UpdateBuffer =
  | { kind: 'origin'; origin: RtkOrigin; dock: { x: number; y: number; heading: number } }
  | { kind: 'errors'; errors: { code: number; at: Date }[] }
  | { kind: 'zones'; zones: { hash: string; status: string }[] }
  | { kind: 'other'; type: number };

export function readUpdateBuffer(values: readonly Int64[]): UpdateBuffer {
  const n = (i: number) => Number(values[i] ?? 0);
  const type = n(0);
  if (type === 1) {
    return {
      kind: 'origin',
      origin: { lat: n(5) / 1e8, lon: n(6) / 1e8, yaw: values.length > 13 ? n(13) / 1e8 : 0 },
      dock: { x: n(7) / 1e4, y: n(8) / 1e4, heading: n(3) },
    };
  }
  if (type === 2) {
    const errors: { code: number; at: Date }[] = [];
    for (let i = 3; i <= 21 && i + 1 < values.length; i += 2) {
      const code = Math.abs(n(i));
      if (code !== 0) errors.push({ code, at: new Date(n(i + 1) * 1000) });
    }
    return { kind: 'errors', errors };
  }
  if (type === 3) {
    const zones: { hash: string; status: string }[] = [];
    for (let i = 3; i + 1 < values.length; i += 2) {
      zones.push({ hash: String(values[i]), status: ZONE_STATUS[n(i + 1)] ?? `status_${n(i + 1)}` });
    }
    return { kind: 'zones', zones };
  }
  return { kind: 'other', type };
}

/** The high-rate position frame `systemTardStateTunnel` (≈4 Hz while mowing). */
export function readRapidState(values: readonly Int64[]) {
  const n = (i: number) => Number(values[i] ?? 0);
  return {
    rtkStatus: n(0),
    positionLevel: n(1),
    satellites: n(2),
    x: n(7) / 1e4,
    y: n(8) / 1e4,
    heading: n(9) / 1e4,
    positionType: n(10),
    zoneHash: String(values[11] ?? '0'),
  };
}

/** Firmware of the main controller and of each module (SPEC §7.5). */
export function readFirmware(info: FirmwareInfo): { version: string; modules: { type: number; identify: string; version: string }[] } {
  return {
    version: info.version ?? '',
    modules: (info.mod ?? []).map((m) => ({ type: m.type ?? 0, identify: m.identify ?? '', version: m.version ?? '' })),
  };
}

/** The end-of-job summary (`toapp_work_report_*`). */
export function readWorkReport(report: WorkReport) {
  return {
    interrupted: report.interrupt_flag ?? false,
    startedAt: new Date(Number(report.start_work_time ?? 0) * 1000),
    endedAt: new Date(Number(report.end_work_time ?? 0) * 1000),
    minutes: report.work_time_used ?? 0,
    areaM2: report.work_ares ?? 0,
    progressPercent: report.work_progress ?? 0,
    bladeHeightMm: report.height_of_knife ?? 0,
    result: report.work_result ?? 0,
  };
}
