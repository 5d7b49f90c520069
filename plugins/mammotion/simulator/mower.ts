/**
 * One simulated mower: takes command frames as the real device does (SPEC §10) and emits the
 * frames a real one would, with believable physics — lanes over a rectangular yard, battery
 * drain while mowing and charge on the dock, return on low battery, progress and area growing.
 *
 * Time is explicit: the owner calls {@link SimulatedMower.tick} with the elapsed seconds, so the
 * simulation runs as fast as a test wants. Transitions the spec leaves unverified (which acks
 * the device sends) follow SPEC §10's suggestion.
 *
 * @module
 */
import {
  decodeLubaMsg,
  encodeLubaMsg,
  MalformedFrameError,
  Mode,
  MsgAttr,
  MsgCmdType,
  MsgDevice,
  ReportAction,
  TaskAction,
  type LubaMsg,
  type MowerModel,
  type ReportConfig,
  type ReportData,
} from '../protocol/index.js';

/** A device forgets the app ~10 s after the last sync and ignores its commands (SPEC §3.4). */
const SYNC_WINDOW_MS = 10_000;
const LOW_BATTERY = 15;

export interface MowerSpec {
  deviceName: string;
  model: MowerModel;
  /** The account whose `subtype` the device accepts. */
  userAccount: number;
  firmware: string;
  /** Yard size in metres; the dock is at (0, 0), the yard's corner. */
  yard?: { width: number; length: number };
  /** Named areas: hash (decimal string) → name. */
  zones?: Record<string, string>;
  /** Battery % lost per minute of mowing and gained per minute on the dock. */
  drainPerMinute?: number;
  chargePerMinute?: number;
  /** RTK base station position, radians. */
  origin?: { lat: number; lon: number };
}

interface Job {
  zones: string[];
  areaM2: number;
  mowedM2: number;
  laneWidth: number;
  lane: number;
  along: number;
  startedAt: number;
}

export class SimulatedMower {
  mode: number = Mode.READY;
  chargeState = 1;
  battery = 100;
  bladeHeightMm = 60;
  speedMps = 0.3;
  cutterMode = 0;
  x = 0;
  y = 0;
  heading = 0;
  /** Set when a job was interrupted and can be continued. */
  breakpoint = false;
  /** Commands ignored for want of a recent sync, or sent to the wrong board or account. */
  ignored = 0;
  readonly #spec: Required<Omit<MowerSpec, 'origin'>> & Pick<MowerSpec, 'origin'>;
  #seq = 0;
  #lastSyncAt = -Infinity;
  #plannedZones: string[] | undefined;
  #job: Job | undefined;
  #stream: { config: ReportConfig; until: number; nextAt: number } | undefined;
  #clock = 0;

  /** @param emit receives every frame the device sends */
  constructor(
    spec: MowerSpec,
    private readonly emit: (frame: Uint8Array) => void,
  ) {
    this.#spec = {
      yard: { width: 20, length: 15 },
      zones: { '1001': 'Front lawn', '1002': 'Back lawn' },
      drainPerMinute: 1,
      chargePerMinute: 2,
      ...spec,
    };
  }

  get deviceName(): string {
    return this.#spec.deviceName;
  }

  /** Takes a frame the cloud delivered; malformed frames are ignored, as a device does. */
  receive(frame: Uint8Array, now: number): void {
    this.#clock = now;
    let message: LubaMsg;
    try {
      message = decodeLubaMsg(frame);
    } catch (error) {
      if (error instanceof MalformedFrameError) return void this.ignored++;
      throw error;
    }
    if (message.net?.todev_ble_sync === 3) {
      this.#lastSyncAt = now;
      return;
    }
    if (now - this.#lastSyncAt > SYNC_WINDOW_MS || !this.#addressedToMe(message)) return void this.ignored++;
    this.#apply(message);
  }

  /** Advances the simulation by `seconds`; `now` is the wall-clock ms at the end. */
  tick(seconds: number, now: number): void {
    this.#clock = now;
    if (this.mode === Mode.WORKING) this.#mow(seconds);
    else if (this.mode === Mode.RETURNING) this.#driveHome(seconds);
    else if (this.chargeState !== 0) this.battery = Math.min(100, this.battery + (this.#spec.chargePerMinute * seconds) / 60);
    if (this.#stream && now >= this.#stream.nextAt) {
      if (now > this.#stream.until) this.#stream = undefined;
      else {
        this.#stream.nextAt = now + Math.max(this.#stream.config.period ?? 1000, 200);
        this.#sendReport();
      }
    }
  }

  /** The `report_info_data` the device would send now. */
  report(): ReportData {
    const job = this.#job;
    const progress = job ? Math.min(100, Math.floor((job.mowedM2 / job.areaM2) * 100)) : 0;
    const totalMinutes = job ? Math.ceil(job.areaM2 / (this.speedMps * job.laneWidth) / 60) : 0;
    const leftMinutes = job ? Math.ceil(((job.areaM2 - job.mowedM2) / (this.speedMps * job.laneWidth)) / 60) : 0;
    return {
      connect: { connect_type: 2, wifi_rssi: -60, iot_con_status: 1, wifi_con_status: 1, wifi_is_available: 1 },
      dev: { sys_status: this.mode, charge_state: this.chargeState, battery_val: Math.round(this.battery), sys_time_stamp: Math.floor(this.#clock / 1000) },
      rtk: { status: 4, pos_level: 1, gps_stars: 28 },
      locations: [
        {
          real_pos_x: Math.round(this.x * 1e4),
          real_pos_y: Math.round(this.y * 1e4),
          real_toward: Math.round(this.heading * 1e4),
          pos_type: this.chargeState !== 0 ? 5 : 1,
          zone_hash: job?.zones[0] ?? '0',
        },
      ],
      work: {
        progress: (leftMinutes << 16) | (totalMinutes & 0xffff),
        area: (progress << 16) | (Math.round(job?.mowedM2 ?? 0) & 0xffff),
        bp_info: this.breakpoint ? 1 : 0,
        knife_height: this.bladeHeightMm,
        man_run_speed: Math.round(this.speedMps * 100),
      },
      maintain: { mileage: 1000, work_time: 3600, bat_cycles: 12, blade_used_time: { blade_used_time: 7200 } },
    };
  }

  #addressedToMe(message: LubaMsg): boolean {
    if (message.subtype !== this.#spec.userAccount) return false;
    const expected = message.msgtype === MsgCmdType.NAV && this.#spec.model.navigationBoard ? MsgDevice.NAVIGATION : MsgDevice.MAINCTL;
    return message.msgtype === MsgCmdType.ESP || (message.rcver ?? 0) === expected;
  }

  #apply(message: LubaMsg): void {
    const { nav, sys, driver } = message;
    if (nav?.todev_taskctrl) return this.#taskControl(nav.todev_taskctrl.type ?? 0, nav.todev_taskctrl.action ?? 0);
    if (nav?.bidire_reqconver_path) {
      const route = nav.bidire_reqconver_path;
      if ((route.subCmd ?? 0) === 0) this.#plannedZones = (route.zoneHashs ?? []).map(String);
      return this.#reply({ nav: { bidire_reqconver_path: { ...route, result: 0 } } });
    }
    if (nav?.todev_one_touch_leave_pile) return void (this.chargeState = 0);
    if (nav?.toapp_map_name_msg) {
      const hashnames = Object.entries(this.#spec.zones).map(([hash, name]) => ({ hash, name }));
      return this.#reply({ nav: { toapp_all_hash_name: { deviceId: nav.toapp_map_name_msg.deviceId ?? '', hashnames } } });
    }
    if (driver?.todev_knife_height_set) return void (this.bladeHeightMm = driver.todev_knife_height_set.knifeHeight ?? this.bladeHeightMm);
    if (driver?.bidire_speed_read_set) {
      if (driver.bidire_speed_read_set.rw === 1) this.speedMps = driver.bidire_speed_read_set.speed ?? this.speedMps;
      return this.#reply({ driver: { bidire_speed_read_set: { rw: 0, speed: this.speedMps } } });
    }
    if (driver?.cutter_mode_ctrl_by_hand) {
      this.cutterMode = driver.cutter_mode_ctrl_by_hand.CutterMode ?? 0;
      return this.#reply({ driver: { current_cutter_mode: { current_cutter_mode: this.cutterMode, current_cutter_rpm: 3000 + 500 * this.cutterMode } } });
    }
    if (sys?.todev_report_cfg) return this.#reportConfig(sys.todev_report_cfg);
    if (sys?.todev_get_dev_fw_info) return this.#reply({ sys: { toapp_dev_fw_info: { result: 1, version: this.#spec.firmware, mod: [{ type: 1, identify: 'main', version: this.#spec.firmware }] } } });
    if (sys?.device_product_type_info) return this.#reply({ sys: { device_product_type_info: { result: 1, main_product_type: this.#spec.model.name, sub_product_type: this.#spec.deviceName.slice(0, 7) } } });
    if (sys?.bidire_comm_cmd?.id === 5 && sys.bidire_comm_cmd.context === 1 && this.#spec.origin) {
      const { lat, lon } = this.#spec.origin;
      return this.#reply({ sys: { systemUpdateBuf: { update_buf_data: [1, 0, 0, 0, 0, Math.round(lat * 1e8), Math.round(lon * 1e8), 0, 0] } } });
    }
  }

  #taskControl(type: number, action: number): void {
    if (type !== 1) return;
    switch (action) {
      case TaskAction.START:
        if (!this.#plannedZones && !this.breakpoint) return; // a bare start without a planned route does nothing
        this.#startJob();
        return this.#reply({ nav: { zone_start_precent: { dataHash: this.#job?.zones[0] ?? '0', x: this.x, y: this.y, index: 0 } } });
      case TaskAction.PAUSE:
        if (this.mode === Mode.WORKING) this.mode = Mode.PAUSE;
        return;
      case TaskAction.RESUME:
        if (this.mode === Mode.PAUSE && this.#job) [this.mode, this.chargeState, this.breakpoint] = [Mode.WORKING, 0, false];
        return;
      case TaskAction.CANCEL:
        // The app pauses first (SPEC §6); a job is only cancelled from a pause.
        if (this.mode === Mode.PAUSE) [this.mode, this.#job, this.breakpoint] = [Mode.READY, undefined, false];
        return;
      case TaskAction.RETURN_TO_DOCK:
        // From a pause or standing ready; a working mower is paused first by the app.
        if (this.chargeState === 0 && (this.mode === Mode.PAUSE || this.mode === Mode.READY)) this.mode = Mode.RETURNING;
        return;
      case TaskAction.CANCEL_RETURN_TO_DOCK:
        if (this.mode === Mode.RETURNING) this.mode = Mode.PAUSE;
        return this.#reply({ nav: { todev_taskctrl_ack: { type, action, result: 0, nav_state: this.mode } } });
    }
  }

  #startJob(): void {
    if (!this.#job || !this.breakpoint) {
      const zones = this.#plannedZones ?? Object.keys(this.#spec.zones);
      const { width, length } = this.#spec.yard;
      this.#job = { zones, areaM2: width * length, mowedM2: 0, laneWidth: 0.25, lane: 0, along: 0, startedAt: this.#clock };
    }
    [this.mode, this.chargeState, this.breakpoint, this.#plannedZones] = [Mode.WORKING, 0, false, undefined];
  }

  #mow(seconds: number): void {
    const job = this.#job!;
    const { width } = this.#spec.yard;
    const step = this.speedMps * seconds;
    job.mowedM2 = Math.min(job.areaM2, job.mowedM2 + step * job.laneWidth);
    job.along += step;
    while (job.along > width) [job.along, job.lane] = [job.along - width, job.lane + 1];
    // Boustrophedon lanes: even lanes go out along x, odd lanes come back.
    this.x = job.lane % 2 === 0 ? job.along : width - job.along;
    this.y = Math.min(job.lane * job.laneWidth, this.#spec.yard.length);
    this.heading = job.lane % 2 === 0 ? 0 : 180;
    this.battery = Math.max(0, this.battery - (this.#spec.drainPerMinute * seconds) / 60);
    if (job.mowedM2 >= job.areaM2) return this.#finishJob();
    if (this.battery <= LOW_BATTERY) [this.mode, this.breakpoint] = [Mode.RETURNING, true];
  }

  #driveHome(seconds: number): void {
    const distance = Math.hypot(this.x, this.y);
    const step = Math.max(this.speedMps, 0.3) * seconds;
    if (step >= distance) {
      [this.x, this.y, this.mode, this.chargeState] = [0, 0, Mode.READY, 1];
      return;
    }
    this.x -= (this.x / distance) * step;
    this.y -= (this.y / distance) * step;
  }

  #finishJob(): void {
    const job = this.#job!;
    this.#reply({
      nav: {
        toapp_work_report_upload: {
          start_work_time: Math.floor(job.startedAt / 1000),
          end_work_time: Math.floor(this.#clock / 1000),
          work_time_used: Math.round((this.#clock - job.startedAt) / 60_000),
          work_ares: job.areaM2,
          work_progress: 100,
          height_of_knife: this.bladeHeightMm,
        },
      },
    });
    [this.mode, this.#job] = [Mode.RETURNING, undefined];
  }

  #reportConfig(config: ReportConfig): void {
    if (config.act === ReportAction.STOP) return void (this.#stream = undefined);
    if ((config.count ?? 0) === 1) return this.#sendReport();
    const timeout = config.timeout ?? 10_000;
    this.#stream = { config, until: this.#clock + timeout, nextAt: this.#clock };
  }

  #sendReport(): void {
    this.#reply({ sys: { toapp_report_data: this.report() } }, MsgAttr.REPORT);
  }

  #reply(body: Pick<LubaMsg, 'nav' | 'sys' | 'driver'>, msgattr: number = MsgAttr.RESP): void {
    const msgtype = body.nav ? MsgCmdType.NAV : body.driver ? MsgCmdType.EMBED_DRIVER : MsgCmdType.EMBED_SYS;
    this.#seq = (this.#seq + 1) & 255;
    this.emit(encodeLubaMsg({ msgtype, sender: MsgDevice.MAINCTL, rcver: MsgDevice.MOBILEAPP, msgattr, seqs: this.#seq, version: 1, timestamp: this.#clock, ...body }));
  }
}
