/**
 * TypeScript shapes of the messages in `luba.proto`, and the enum values the hub uses.
 * Decoded 64-bit integers arrive as decimal strings; when building, a number or string is fine.
 *
 * @module
 */

/** A 64-bit integer: decimal string when decoded. */
export type Int64 = string | number;

export const MsgCmdType = { NAV: 240, EMBED_DRIVER: 243, EMBED_SYS: 244, ESP: 248 } as const;
export const MsgDevice = { COMM_ESP: 0, MAINCTL: 1, MOBILEAPP: 7, NAVIGATION: 17 } as const;
export const MsgAttr = { NONE: 0, REQ: 1, RESP: 2, REPORT: 3 } as const;

/** `report_info_cfg.act`. */
export const ReportAction = { START: 0, STOP: 1, KEEP: 2 } as const;
/** `report_info_cfg.sub`: which parts of `report_info_data` to send. */
export const ReportInfo = {
  CONNECT: 0,
  DEV_STA: 1,
  RTK: 2,
  DEV_LOCAL: 3,
  WORK: 4,
  FW_INFO: 5,
  MAINTAIN: 6,
  VISION_POINT: 7,
  VIO: 8,
  VISION_STATISTIC: 9,
  BASESTATION_INFO: 10,
  CUTTER_INFO: 11,
} as const;

export interface LubaMsg {
  msgtype?: number;
  sender?: number;
  rcver?: number;
  msgattr?: number;
  seqs?: number;
  version?: number;
  subtype?: number;
  timestamp?: Int64;
  net?: DevNet;
  sys?: MctlSys;
  nav?: MctlNav;
  driver?: MctlDriver;
  null?: Record<string, never>;
}

export interface DevNet {
  todev_ble_sync?: number;
  todev_devinfo_req?: { req_ids?: { id?: number; type?: number }[] };
  toapp_devinfo_resp?: { resp_ids?: { id?: number; type?: number; res?: number; info?: string }[] };
  toapp_wifi_iot_status?: { wifi_connected?: boolean; iot_connected?: boolean; productkey?: string; devicename?: string };
}

export interface NavTaskCtrl {
  type?: number;
  action?: number;
  result?: number;
  reserved?: string;
}

export interface NavReqCoverPath {
  pver?: number;
  jobId?: Int64;
  jobVer?: number;
  jobMode?: number;
  subCmd?: number;
  edgeMode?: number;
  knifeHeight?: number;
  channelWidth?: number;
  UltraWave?: number;
  channelMode?: number;
  toward?: number;
  speed?: number;
  zoneHashs?: Int64[];
  pathHash?: Int64;
  reserved?: string;
  result?: number;
  toward_mode?: number;
  toward_included_angle?: number;
}

export interface NavGetHashList {
  pver?: number;
  subCmd?: number;
  totalFrame?: number;
  currentFrame?: number;
  dataHash?: Int64;
  reserved?: string;
}

export interface NavGetCommData {
  pver?: number;
  subCmd?: number;
  action?: number;
  type?: number;
  hash?: Int64;
  paternalHashA?: Int64;
  paternalHashB?: Int64;
  totalFrame?: number;
  currentFrame?: number;
  dataHash?: Int64;
  reserved?: string;
}

/** A mowing schedule (`NavPlanJobSet`); the ids and times are strings on the wire. */
export interface PlanJob {
  pver?: number;
  subCmd?: number;
  area?: number;
  workTime?: number;
  version?: string;
  id?: string;
  userId?: string;
  deviceId?: string;
  planId?: string;
  taskId?: string;
  jobId?: string;
  startTime?: string;
  endTime?: string;
  week?: number;
  knifeHeight?: number;
  model?: number;
  edgeMode?: number;
  requiredTime?: number;
  routeAngle?: number;
  routeModel?: number;
  routeSpacing?: number;
  ultrasonicBarrier?: number;
  totalPlanNum?: number;
  PlanIndex?: number;
  result?: number;
  speed?: number;
  taskName?: string;
  jobName?: string;
  zoneHashs?: Int64[];
  reserved?: string;
  startDate?: string;
  endDate?: string;
  triggerType?: number;
  day?: number;
  weeks?: number[];
  remained_seconds?: Int64;
  towardMode?: number;
  towardIncludedAngle?: number;
}

export interface DoNotDisturb {
  subCmd?: number;
  deviceId?: string;
  unableStartTime?: string;
  unableEndTime?: string;
  result?: number;
  reserved?: string;
  trigger?: number;
}

/** End-of-job summary (`WorkReportInfoAck`). */
export interface WorkReport {
  interrupt_flag?: boolean;
  start_work_time?: Int64;
  end_work_time?: Int64;
  work_time_used?: number;
  work_ares?: number;
  work_progress?: number;
  height_of_knife?: number;
  work_type?: number;
  work_result?: number;
  total_ack_num?: number;
  current_ack_num?: number;
  job_content?: number;
}

export interface MctlNav {
  toapp_lat_up?: { lat?: number; lon?: number };
  todev_sustask?: number;
  todev_rechgcmd?: number;
  todev_edgecmd?: number;
  todev_one_touch_leave_pile?: number;
  todev_mow_task?: { jobId?: Int64; jobVer?: number; jobMode?: number; rainTactics?: number; knifeHeight?: number; speed?: number; channelWidth?: number; UltraWave?: number; channelMode?: number };
  todev_gethash?: NavGetHashList;
  toapp_gethash_ack?: NavGetHashList & { hashLen?: number; result?: number; dataCouple?: Int64[] };
  todev_get_commondata?: NavGetCommData;
  toapp_get_commondata_ack?: Omit<NavGetCommData, 'hash'> & { result?: number; Hash?: Int64; dataLen?: number; dataCouple?: { x?: number; y?: number }[] };
  bidire_reqconver_path?: NavReqCoverPath;
  todev_taskctrl?: NavTaskCtrl;
  toapp_bp?: { x?: number; y?: number; toward?: number; flag?: number; action?: number; zoneHash?: Int64 };
  todev_planjob_set?: PlanJob;
  todev_unable_time_set?: DoNotDisturb;
  toapp_work_report_ack?: WorkReport;
  toapp_work_report_upload?: WorkReport;
  zone_start_precent?: { dataHash?: Int64; x?: number; y?: number; index?: number };
  nav_sys_param_cmd?: SettingCommand;
  plan_task_execute?: { subCmd?: number; id?: string; name?: string; result?: number };
  all_plan_task?: { tasks?: { id?: string; name?: string }[] };
  todev_taskctrl_ack?: NavTaskCtrl & { nav_state?: number };
  toapp_map_name_msg?: { rw?: number; hash?: Int64; name?: string; result?: number; deviceId?: string };
  toapp_all_hash_name?: { deviceId?: string; hashnames?: { hash?: Int64; name?: string }[] };
}

/** `SysCommCmd` and `nav_sys_param_msg`: one setting read (rw 0) or written (rw 1). */
export interface SettingCommand {
  rw?: number;
  id?: number;
  context?: number;
}

export interface ReportConfig {
  act?: number;
  timeout?: number;
  period?: number;
  no_change_period?: number;
  count?: number;
  sub?: number[];
}

export interface ReportData {
  connect?: {
    connect_type?: number;
    ble_rssi?: number;
    wifi_rssi?: number;
    link_type?: number;
    mnet_rssi?: number;
    mnet_inet?: number;
    used_net?: number;
    iot_con_status?: number;
    wifi_con_status?: number;
    wifi_is_available?: number;
  };
  dev?: {
    sys_status?: number;
    charge_state?: number;
    battery_val?: number;
    sensor_status?: number;
    last_status?: number;
    sys_time_stamp?: Int64;
    vslam_status?: number;
    self_check_status?: number;
  };
  rtk?: {
    status?: number;
    pos_level?: number;
    gps_stars?: number;
    co_view_stars?: number;
    mqtt_rtk_info?: { latitude?: number; longitude?: number };
  };
  locations?: { real_pos_x?: number; real_pos_y?: number; real_toward?: number; pos_type?: number; zone_hash?: Int64; bol_hash?: Int64 }[];
  work?: {
    plan?: number;
    path_hash?: Int64;
    progress?: number;
    area?: number;
    bp_info?: number;
    bp_hash?: Int64;
    bp_pos_x?: number;
    bp_pos_y?: number;
    real_path_num?: Int64;
    nav_run_mode?: number;
    test_mode_status?: Int64;
    man_run_speed?: number;
    knife_height?: number;
  };
  fw_info?: FirmwareInfo;
  maintain?: { mileage?: Int64; work_time?: number; bat_cycles?: number; blade_used_time?: { blade_used_time?: number; blade_used_warn_time?: number } };
}

export interface FirmwareInfo {
  result?: number;
  version?: string;
  mod?: { type?: number; identify?: string; version?: string }[];
}

/** `SysSetDateTime`: local date and time, `timeZone` as minutes east of UTC. */
export interface DateTime {
  Year?: number;
  Month?: number;
  Date?: number;
  Week?: number;
  Hours?: number;
  Minutes?: number;
  Seconds?: number;
  timeZone?: number;
  daylight?: number;
}

export interface MctlSys {
  toapp_batinfo?: { batVal?: number };
  toapp_work_state?: { deviceState?: number; chargeState?: number; cmHash?: Int64; pathHash?: Int64 };
  todev_data_time?: DateTime;
  toapp_err_code?: { errorCode?: number };
  bidire_comm_cmd?: SettingCommand;
  todev_knife_ctrl?: { knife_status?: number; knife_height?: number };
  systemTardStateTunnel?: { tard_state_data?: Int64[] };
  systemUpdateBuf?: { update_buf_data?: Int64[] };
  todev_get_dev_fw_info?: number;
  toapp_dev_fw_info?: FirmwareInfo;
  mow_to_app_info?: { type?: number; cmd?: number; mow_data?: number[] };
  device_product_type_info?: { result?: number; main_product_type?: string; sub_product_type?: string };
  todev_report_cfg?: ReportConfig;
  toapp_report_data?: ReportData;
  todev_reset_blade_used_time?: number;
}

export interface MctlDriver {
  todev_devmotion_ctrl?: { setLinearSpeed?: number; setAngularSpeed?: number };
  todev_knife_height_set?: { knifeHeight?: number };
  bidire_speed_read_set?: { rw?: number; speed?: number };
  bidire_knife_height_report?: { knifeHeight?: number };
  toapp_knife_status?: { knife_status?: number };
  toapp_knife_status_change?: { is_start?: number; start_height?: number; end_height?: number; cur_height?: number };
  mow_ctrl_by_hand?: { main_ctrl?: number; cut_knife_ctrl?: number; cut_knife_height?: number; max_run_speed?: number };
  cutter_mode_ctrl_by_hand?: { CutterMode?: number; SetResult?: number };
  current_cutter_mode?: { current_cutter_mode?: number; current_cutter_rpm?: number; QueryResult?: number };
}
