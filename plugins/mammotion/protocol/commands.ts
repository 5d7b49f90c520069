/**
 * Builders for every command of SPEC §5, each wrapped in the LubaMsg envelope of §4.1.
 * A builder returns the message object; `encodeLubaMsg` turns it into bytes.
 *
 * @module
 */
import type { MowerModel } from './models.js';
import { MsgAttr, MsgCmdType, MsgDevice, ReportAction, ReportInfo, type DateTime, type Int64, type LubaMsg, type MctlDriver, type MctlNav, type MctlSys, type NavReqCoverPath, type PlanJob, type ReportConfig } from './messages.js';

/** `NavTaskCtrl` actions (type 1 = the mowing job). */
export const TaskAction = {
  START: 1,
  PAUSE: 2,
  RESUME: 3,
  CANCEL: 4,
  RETURN_TO_DOCK: 5,
  CONTINUE_FROM_BREAKPOINT: 7,
  CONTINUE_FROM_HERE: 9,
  CANCEL_RETURN_TO_DOCK: 12,
  MAPLESS_MOW: 16,
} as const;

/** Cutter (blade speed) modes. */
export const CutterMode = { STANDARD: 0, ECONOMIC: 1, PERFORMANCE: 2 } as const;

/** Setting ids of `bidire_comm_cmd` / `nav_sys_param_cmd`. */
export const SettingId = {
  RAIN_DETECTION: 3,
  QUERY: 5,
  TURNING_MODE: 6,
  RETURN_PATH: 7,
  BOUNDARY_RIDE: 10,
  COLLECT_GRASS: 11,
  ANIMAL_PROTECTION: 12,
  ANIMAL_PROTECTION_SCHEDULE: 13,
} as const;

/** Settings the navigation board keeps on models that have one; the others live on the main controller. */
const NAVIGATION_SETTINGS = new Set<number>([3, 6, 7, 8, 10, 11]);

/** The report parts a one-shot poll asks for (SPEC §7.1). */
export const SNAPSHOT_REPORT = [
  ReportInfo.DEV_STA,
  ReportInfo.DEV_LOCAL,
  ReportInfo.WORK,
  ReportInfo.MAINTAIN,
  ReportInfo.BASESTATION_INFO,
  ReportInfo.VIO,
  ReportInfo.CONNECT,
];

/** How a route is planned before a fresh start (SPEC §5, defaults from the vendor app). */
export interface RouteSettings {
  /** Area hashes to mow, in order. */
  zones: Int64[];
  jobMode?: number;
  edgeMode?: number;
  /** Blade height in mm; ignored on Yuka-family models, which always send −10. */
  bladeHeightMm?: number;
  /** Travel speed, m/s. */
  speed?: number;
  ultraWave?: number;
  /** Lane width, cm. */
  channelWidth?: number;
  channelMode?: number;
  toward?: number;
  towardMode?: number;
  /** Only sent when `channelMode` is 1. */
  towardIncludedAngle?: number;
  borderLaps?: number;
  obstacleLaps?: number;
  /** Start from this progress %, for a job resumed by replanning. */
  startProgress?: number;
  /** Yuka: mow/dump/edge combination (8, 10, 12, 14…). */
  yukaJobContent?: number;
  /** Grass collection frequency (non-Luba-1 models). */
  collectGrassFrequency?: number;
}

export interface CommandOptions {
  /** Used as `subtype` on every message: the account's numeric user id, 0 when unknown. */
  userAccount: number;
  /** Milliseconds since the epoch; default `Date.now`. */
  now?: () => number;
  /** The next sequence number; default a process-wide counter. */
  nextSeq?: () => number;
}

let processSequence = 0;

/** Builds the commands for one device; the envelope's routing follows its model. */
export class CommandBuilder {
  readonly #now: () => number;
  readonly #nextSeq: () => number;

  constructor(
    readonly model: MowerModel,
    private readonly options: CommandOptions,
  ) {
    this.#now = options.now ?? Date.now;
    this.#nextSeq = options.nextSeq ?? (() => ++processSequence);
  }

  // ── Job control (NAV) ──

  startJob = () => this.#taskControl(TaskAction.START);
  pause = () => this.#taskControl(TaskAction.PAUSE);
  resume = () => this.#taskControl(TaskAction.RESUME);
  cancelJob = () => this.#taskControl(TaskAction.CANCEL);
  returnToDock = () => this.#taskControl(TaskAction.RETURN_TO_DOCK);
  cancelReturnToDock = () => this.#taskControl(TaskAction.CANCEL_RETURN_TO_DOCK);
  continueFromBreakpoint = () => this.#taskControl(TaskAction.CONTINUE_FROM_BREAKPOINT);
  continueFromCurrentPosition = () => this.#taskControl(TaskAction.CONTINUE_FROM_HERE);
  maplessMow = () => this.#taskControl(TaskAction.MAPLESS_MOW);
  /** Re-learns where the charging station is. */
  resetChargingStation = () => this.#nav({ todev_taskctrl: { type: 3, action: 1 } });
  leaveDock = () => this.#nav({ todev_one_touch_leave_pile: 1 });

  /** Plans the route of a fresh job (subCmd 0); the mower echoes it before a start. */
  planRoute(settings: RouteSettings): LubaMsg {
    return this.#nav({ bidire_reqconver_path: this.#coverPath(0, settings) });
  }

  /** Asks for the route of the current job (subCmd 2), e.g. before resuming from a breakpoint. */
  queryRoute(): LubaMsg {
    return this.#nav({ bidire_reqconver_path: { pver: 1, subCmd: 2 } });
  }

  /** Changes the route of the running job (subCmd 3). */
  modifyRoute(settings: RouteSettings): LubaMsg {
    return this.#nav({ bidire_reqconver_path: this.#coverPath(3, settings) });
  }

  // ── Blades, speed, driving (EMBED_DRIVER) ──

  setBladeHeight = (mm: number) => this.#driver({ todev_knife_height_set: { knifeHeight: Math.round(mm) } });
  setSpeed = (metresPerSecond: number) => this.#driver({ bidire_speed_read_set: { rw: 1, speed: metresPerSecond } });
  readSpeed = () => this.#driver({ bidire_speed_read_set: { rw: 0 } });
  setCutterMode = (mode: number) => this.#driver({ cutter_mode_ctrl_by_hand: { CutterMode: mode } });
  readCutterMode = () => this.#driver({ current_cutter_mode: {} });
  /** Manual driving; speeds in the device's integer units. */
  drive = (linear: number, angular: number) =>
    this.#driver({ todev_devmotion_ctrl: { setLinearSpeed: Math.round(linear), setAngularSpeed: Math.round(angular) } });

  /** Blades on or off outside a job. Luba 1 takes it on the main controller. */
  blades(on: boolean, heightMm = 0): LubaMsg {
    if (this.model.family === 'luba1') return this.#sys({ todev_knife_ctrl: { knife_status: on ? 1 : 0 } });
    const height = this.model.family === 'yuka' ? 0 : Math.round(heightMm);
    return this.#driver({
      mow_ctrl_by_hand: on ? { main_ctrl: 1, cut_knife_ctrl: 1, cut_knife_height: height, max_run_speed: 1.2 } : { main_ctrl: 0, cut_knife_ctrl: 0 },
    });
  }

  // ── Reports and device information (EMBED_SYS, ESP) ──

  /** One report now (`count` 1). */
  reportOnce = (parts: number[] = SNAPSHOT_REPORT) =>
    this.#reportConfig({ act: ReportAction.START, sub: parts, timeout: 10_000, period: 1000, no_change_period: 1000, count: 1 });

  /** Reports every `periodMs` until `timeoutMs` passes without a renewal ({@link reportKeep}). */
  reportSubscribe = (parts: number[] = SNAPSHOT_REPORT, periodMs = 1000, timeoutMs = 10_000) =>
    this.#reportConfig({ act: ReportAction.START, sub: parts, timeout: timeoutMs, period: periodMs, no_change_period: 4000, count: 0 });

  reportKeep = (parts: number[] = SNAPSHOT_REPORT, periodMs = 1000, timeoutMs = 10_000) =>
    this.#reportConfig({ act: ReportAction.KEEP, sub: parts, timeout: timeoutMs, period: periodMs, no_change_period: 4000, count: 0 });

  reportStop = () => this.#reportConfig({ act: ReportAction.STOP });
  firmwareInfo = () => this.#sys({ todev_get_dev_fw_info: 1 });
  productType = () => this.#sys({ device_product_type_info: { result: 1 } });
  mainSoftwareVersion = () => this.#esp({ todev_devinfo_req: { req_ids: [{ id: 1, type: 6 }] } });
  resetBladeTime = () => this.#sys({ todev_reset_blade_used_time: 1 });

  /** Keeps the device listening to the cloud (`3`) or to Bluetooth (`2`); see SPEC §3.4. */
  sync = (over: 'cloud' | 'ble' = 'cloud') => this.#esp({ todev_ble_sync: over === 'cloud' ? 3 : 2 });

  /** Sets the device clock (local time of `date` in the zone `utcOffsetMinutes` east of UTC). */
  setDateTime(date: Date, utcOffsetMinutes: number, daylight = false): LubaMsg {
    const local = new Date(date.getTime() + utcOffsetMinutes * 60_000);
    const time: DateTime = {
      Year: local.getUTCFullYear(),
      Month: local.getUTCMonth() + 1,
      Date: local.getUTCDate(),
      Week: local.getUTCDay() === 0 ? 7 : local.getUTCDay(), // ISO: Monday 1 … Sunday 7
      Hours: local.getUTCHours(),
      Minutes: local.getUTCMinutes(),
      Seconds: local.getUTCSeconds(),
      timeZone: utcOffsetMinutes,
      daylight: daylight ? 1 : 0,
    };
    return this.#sys({ todev_data_time: time });
  }

  // ── Settings ──

  readSetting = (id: number, context = 0) => this.#setting(0, id, context);
  writeSetting = (id: number, context: number) => this.#setting(1, id, context);

  // ── Map: area names and element hashes (NAV) ──

  /** Asks for the names of the areas; `deviceId` is the cloud iotId. */
  areaNames = (deviceId: string) => this.#nav({ toapp_map_name_msg: { rw: 0, hash: 0, result: 0, deviceId } });
  renameArea = (deviceId: string, hash: Int64, name: string) => this.#nav({ toapp_map_name_msg: { rw: 1, hash, name, deviceId } });
  /** The list of map element hashes; `subCmd` 3 asks for the areas of a route plan. */
  hashList = (subCmd = 0) => this.#nav({ todev_gethash: { pver: 1, subCmd } });
  hashListAck = (totalFrame: number, currentFrame: number) => this.#nav({ todev_gethash: { pver: 1, subCmd: 2, totalFrame, currentFrame } });
  elementGeometry = (hash: Int64, action = 8) => this.#nav({ todev_get_commondata: { pver: 1, action, subCmd: 1, hash } });
  elementGeometryAck = (frame: { action: number; type: number; hash: Int64; totalFrame: number; currentFrame: number }) =>
    this.#nav({ todev_get_commondata: { pver: 1, subCmd: 2, ...frame } });

  // ── Schedules and do-not-disturb (NAV) ──

  createSchedule = (plan: PlanJob) => this.#nav({ todev_planjob_set: { ...plan, subCmd: 1 } });
  deleteSchedule = (planId: string) => this.#nav({ todev_planjob_set: { subCmd: 3, planId } });
  editSchedule = (plan: PlanJob) => this.#nav({ todev_planjob_set: { ...plan, subCmd: 4 } });
  readSchedule = (subCmd: number, planIndex: number) => this.#nav({ todev_planjob_set: { subCmd, PlanIndex: planIndex } });
  runScheduleNow = (id: string) => this.#nav({ plan_task_execute: { subCmd: 1, id } });
  /** Do not mow between `start` and `end` (`HH:MM`). */
  setDoNotDisturb = (deviceId: string, start: string, end: string) =>
    this.#nav({ todev_unable_time_set: { subCmd: 1, deviceId, trigger: 1, unableStartTime: start, unableEndTime: end } });
  clearDoNotDisturb = (deviceId: string) => this.#nav({ todev_unable_time_set: { subCmd: 1, deviceId, trigger: 0 } });
  readDoNotDisturb = (deviceId: string) => this.#nav({ todev_unable_time_set: { subCmd: 2, deviceId } });

  // ── Envelope ──

  #taskControl(action: number): LubaMsg {
    return this.#nav({ todev_taskctrl: { type: 1, action } });
  }

  #setting(rw: 0 | 1, id: number, context: number): LubaMsg {
    const command = { rw, id, context };
    return this.model.navigationBoard && NAVIGATION_SETTINGS.has(id) ? this.#nav({ nav_sys_param_cmd: command }) : this.#sys({ bidire_comm_cmd: command });
  }

  #reportConfig(config: ReportConfig): LubaMsg {
    // Reports come from the main controller on every model.
    return this.#sys({ todev_report_cfg: config });
  }

  #coverPath(subCmd: number, settings: RouteSettings): NavReqCoverPath {
    const channelMode = settings.channelMode ?? 0;
    return {
      pver: 1,
      subCmd,
      zoneHashs: settings.zones,
      jobMode: settings.jobMode ?? 4,
      edgeMode: settings.edgeMode ?? 1,
      knifeHeight: this.model.family === 'yuka' ? -10 : (settings.bladeHeightMm ?? 60),
      speed: settings.speed ?? 0.3,
      UltraWave: settings.ultraWave ?? 2,
      channelWidth: settings.channelWidth ?? 25,
      channelMode,
      toward: settings.toward ?? 0,
      toward_mode: settings.towardMode ?? 0,
      toward_included_angle: channelMode === 1 ? (settings.towardIncludedAngle ?? 0) : 0,
      reserved: this.#pathOrder(settings),
    };
  }

  /** The 8-byte path-order string the vendor app sends in `NavReqCoverPath.reserved`. */
  #pathOrder(settings: RouteSettings): string {
    const luba1 = this.model.family === 'luba1';
    const jobContent = this.model.family === 'yuka' ? (settings.yukaJobContent ?? 8) : luba1 ? 0 : 8;
    const bytes = [
      settings.borderLaps ?? 1,
      settings.obstacleLaps ?? 1,
      0,
      settings.startProgress ?? 0,
      luba1 ? (settings.towardMode ?? 0) : 0,
      jobContent,
      luba1 ? 0 : (settings.collectGrassFrequency ?? 10),
      0,
    ];
    // Each value must stay one byte in UTF-8, or the string would grow past 8 bytes.
    return String.fromCharCode(...bytes.map((value) => Math.max(0, Math.min(127, Math.round(value)))));
  }

  #nav(nav: MctlNav): LubaMsg {
    return this.#envelope(MsgCmdType.NAV, this.model.navigationBoard ? MsgDevice.NAVIGATION : MsgDevice.MAINCTL, { nav });
  }

  #sys(sys: MctlSys): LubaMsg {
    return this.#envelope(MsgCmdType.EMBED_SYS, MsgDevice.MAINCTL, { sys });
  }

  #driver(driver: MctlDriver): LubaMsg {
    return this.#envelope(MsgCmdType.EMBED_DRIVER, MsgDevice.MAINCTL, { driver });
  }

  #esp(net: LubaMsg['net']): LubaMsg {
    return this.#envelope(MsgCmdType.ESP, MsgDevice.COMM_ESP, { net });
  }

  #envelope(msgtype: number, rcver: number, body: Pick<LubaMsg, 'nav' | 'sys' | 'driver' | 'net'>): LubaMsg {
    return {
      msgtype,
      sender: MsgDevice.MOBILEAPP,
      rcver,
      msgattr: MsgAttr.REQ,
      seqs: this.#nextSeq() & 255,
      version: 1,
      subtype: this.options.userAccount,
      timestamp: this.#now(),
      ...body,
    };
  }
}
