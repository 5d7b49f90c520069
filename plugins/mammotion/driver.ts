/**
 * One mower as the hub drives it: frames in → entity states; actions → the command flows of
 * SPEC §6; polling by state (§7.1, §9). Commands are desired state: the entity shows them as
 * `pending_command` until a report confirms them, or until a timeout fires
 * `mammotion_command_timeout`.
 *
 * @module
 */
import { hubError, HubError } from '../../core/errors/index.js';
import type { Logger } from '../../core/log/index.js';
import type { EntityHandle } from '../../core/plugin.js';
import {
  CloudError,
  DeviceOfflineError,
  GatewayTimeoutError,
  isQuotaExempt,
  QuotaExceededError,
  RateLimitedError,
  ReauthRequiredError,
  type CloudDevice,
  type MowerTransport,
  type SendBudget,
} from './cloud/index.js';
import {
  ACTIVE_JOB_MODES,
  decodeLubaMsg,
  DO_NOT_POLL_MODES,
  encodeLubaMsg,
  MalformedFrameError,
  Mode,
  positionInDegrees,
  readFirmware,
  readRapidState,
  readReport,
  readUpdateBuffer,
  readWorkReport,
  SettingId,
  type CommandBuilder,
  type LubaMsg,
  type MowerActivity,
  type MowerModel,
  type MowerReport,
  type RtkOrigin,
} from './protocol/index.js';
import type { MowerIdentity, SessionTracker } from './sessions.js';

export interface MowerEntities {
  mower: EntityHandle;
  battery: EntityHandle;
  progress: EntityHandle;
  rtkFix: EntityHandle;
  online: EntityHandle;
}

export interface DriverTiming {
  /** How long to wait for a device's reply to one attempt. */
  replyMs: number;
  attempts: number;
  /** How long a command may stay pending before `mammotion_command_timeout`. */
  confirmMs: number;
  /** A poll is skipped when a report arrived this recently. */
  snapshotDebounceMs: number;
  /** Renewal period of the live report stream while a job runs. */
  streamRenewMs: number;
}

export const DEFAULT_TIMING: DriverTiming = { replyMs: 3000, attempts: 2, confirmMs: 120_000, snapshotDebounceMs: 15_000, streamRenewMs: 8000 };

/** Idle poll cadence in minutes (SPEC §9): firmware that still has the send quota polls less. */
const POLL_MINUTES = {
  quota: { active: 15, charging: 30, full: 60, idle: 15 },
  free: { active: 10, charging: 5, full: 60, idle: 10 },
} as const;

const CUTTER_MODES = ['standard', 'economic', 'performance'];
/** Modes from which the app sends a mower home (a working one is paused first). */
const DOCKABLE_MODES = new Set<number>([Mode.WORKING, Mode.PAUSE, Mode.READY]);

export interface DriverOptions {
  device: CloudDevice;
  identity: MowerIdentity & { name: string; model: MowerModel };
  transport: MowerTransport;
  budget: () => SendBudget | undefined;
  commands: CommandBuilder;
  entities: MowerEntities;
  sessions: SessionTracker;
  fire: (eventType: string, data: Record<string, unknown>) => void;
  log: Logger;
  timing?: Partial<DriverTiming>;
  /** Told the main firmware version when the device reports a new one. */
  onFirmware?: (version: string) => void;
}

/** What confirms a command: the report state it should lead to, named for events and logs. */
interface Outcome {
  label: string;
  reached(report: MowerReport): boolean;
}

const activity = (...wanted: MowerActivity[]): Outcome => ({
  label: wanted.join(' or '),
  reached: (report) => report.activity !== undefined && wanted.includes(report.activity),
});
/** A cancelled job: the mower stands ready with nothing left to resume. */
const JOB_ENDED: Outcome = { label: 'no job', reached: (report) => report.mode === Mode.READY && report.work?.resumable === false };

interface Waiter {
  match: (message: LubaMsg) => boolean;
  resolve: (message: LubaMsg) => void;
}

export class MowerDriver {
  readonly #o: DriverOptions;
  readonly #timing: DriverTiming;
  #report: MowerReport = {};
  #online: boolean;
  #origin: RtkOrigin | undefined;
  #areas = new Map<string, string>();
  #zones: string[] = [];
  #firmware: string | undefined;
  #cutterMode: number | undefined;
  #lastReportAt = 0;
  #lastPollAt = 0;
  #pending: { command: string; outcome: Outcome; timer: NodeJS.Timeout } | undefined;
  /** Command flows run one at a time, so two cannot interleave their steps. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Set by `stop`: nothing is published any more (the entities may be gone). */
  #stopped = false;
  #lastError: string | undefined;
  #cloudStatus = 'connected';
  #stream: NodeJS.Timeout | undefined;
  readonly #waiters = new Set<Waiter>();
  /** Frames that did not decode. */
  malformed = 0;

  constructor(options: DriverOptions) {
    this.#o = options;
    this.#timing = { ...DEFAULT_TIMING, ...options.timing };
    this.#online = options.device.online !== false;
  }

  get iotId(): string {
    return this.#o.device.iotId;
  }

  /** The main firmware version, once the mower reported it (the send quota depends on it). */
  get firmware(): string | undefined {
    return this.#firmware;
  }

  get entityId(): string {
    return this.#o.identity.entityId;
  }

  get identity(): MowerIdentity {
    return this.#o.identity;
  }

  /** Cloud sends in the quota window and any block (429 or quota) on this mower. */
  get sendBudget(): SendBudget | undefined {
    return this.#o.budget();
  }

  /** First contact: ask what the device is, where its RTK base is and what it is doing. */
  async start(): Promise<void> {
    this.#publish();
    if (!this.#o.device.supported) return;
    const { commands } = this.#o;
    for (const message of [commands.firmwareInfo(), commands.areaNames(this.iotId), commands.writeSetting(SettingId.QUERY, 1), commands.readCutterMode()]) {
      await this.#send(message).catch((error: unknown) => this.#noteFailure(error));
    }
    await this.refresh(true).catch((error: unknown) => this.#noteFailure(error));
  }

  /** Stops timers; `removeEntities` when the mower leaves the hub (account unlinked). */
  stop(removeEntities = false): void {
    this.#stopped = true;
    if (removeEntities) for (const entity of Object.values(this.#o.entities)) entity.remove();
    clearTimeout(this.#pending?.timer);
    clearInterval(this.#stream);
    this.#pending = undefined;
    this.#stream = undefined;
  }

  /** A frame from the device. */
  receive(frame: Uint8Array): void {
    let message: LubaMsg;
    try {
      message = decodeLubaMsg(frame);
    } catch (error) {
      if (!(error instanceof MalformedFrameError)) throw error;
      this.malformed++;
      this.#o.log.warn({ iotId: this.iotId, err: error.message }, 'mower frame dropped: not a LubaMsg');
      return;
    }
    this.#online = true;
    for (const waiter of this.#waiters) if (waiter.match(message)) waiter.resolve(message);
    this.#absorb(message);
    this.#publish();
  }

  setOnline(online: boolean): void {
    this.#online = online;
    this.#publish();
  }

  /** The account's cloud connection changed (connected, reconnecting, reauth_required, failed…). */
  setCloudStatus(status: string): void {
    this.#cloudStatus = status;
    this.#publish();
  }

  // ── Actions ──

  /** Starts mowing (all areas, or `zones`), following the app's flow for the current mode. */
  async startMowing(zones?: string[]): Promise<void> {
    await this.#command('start_mowing', activity('mowing'), async () => {
      await this.refresh(true);
      let mode = this.#mode();
      if (mode === Mode.WORKING) return;
      if (mode === Mode.RETURNING) {
        await this.#request(this.#o.commands.cancelReturnToDock(), (m) => m.nav?.todev_taskctrl_ack !== undefined);
        await this.refresh(true);
        mode = this.#mode();
      }
      const resumable = this.#report.work?.resumable ?? false;
      if ((mode === Mode.PAUSE || mode === Mode.CHARGING_PAUSE) && resumable && !zones) {
        await this.#send(this.#o.commands.resume());
        await this.#send(this.#o.commands.queryRoute());
        return;
      }
      if (mode !== Mode.READY && mode !== Mode.INITIALIZATION && mode !== Mode.PAUSE) {
        throw hubError('HUB_ERR_DEVICE_STATE', `The mower cannot start while ${this.#report.modeName ?? 'in this mode'}`);
      }
      if (resumable && !zones) {
        await this.#request(this.#o.commands.queryRoute(), (m) => m.nav?.bidire_reqconver_path !== undefined);
      } else {
        this.#zones = zones ?? (await this.#allAreas());
        if (this.#zones.length === 0) throw hubError('HUB_ERR_DEVICE_STATE', 'The mower has no mapped areas to mow');
        await this.#request(this.#o.commands.planRoute({ zones: this.#zones, bladeHeightMm: this.#report.work?.bladeHeightMm || undefined }), (m) =>
          m.nav?.bidire_reqconver_path !== undefined,
        );
      }
      await this.#request(this.#o.commands.startJob(), (m) => m.nav?.zone_start_precent !== undefined);
    });
  }

  async pause(): Promise<void> {
    await this.#command('pause', activity('paused'), async () => {
      await this.refresh();
      const mode = this.#mode();
      if (mode === Mode.WORKING) await this.#send(this.#o.commands.pause());
      else if (mode === Mode.RETURNING) await this.#send(this.#o.commands.cancelReturnToDock());
      else if (mode !== Mode.PAUSE) throw hubError('HUB_ERR_DEVICE_STATE', `Nothing to pause: the mower is ${this.#report.modeName ?? 'idle'}`);
    });
  }

  /**
   * Returns to the dock, pausing a running job first as the app does. A mower already on its
   * way home is left going: the app's dock button would cancel the return, but a dock command
   * here is the state the caller wants.
   */
  async dock(): Promise<void> {
    await this.#command('dock', activity('returning', 'docked'), async () => {
      await this.refresh();
      if (this.#report.charging) return;
      const mode = this.#mode();
      if (mode === Mode.RETURNING) return;
      if (mode === Mode.WORKING) await this.#send(this.#o.commands.pause());
      if (!DOCKABLE_MODES.has(mode)) {
        throw hubError('HUB_ERR_DEVICE_STATE', `The mower cannot dock while ${this.#report.modeName ?? 'in this mode'}`);
      }
      await this.#send(this.#o.commands.returnToDock());
    });
  }

  async resume(): Promise<void> {
    await this.#command('resume', activity('mowing'), async () => {
      await this.refresh();
      if (this.#mode() !== Mode.PAUSE && this.#mode() !== Mode.CHARGING_PAUSE) throw hubError('HUB_ERR_DEVICE_STATE', 'Only a paused job can be resumed');
      await this.#send(this.#o.commands.resume());
    });
  }

  /** Ends the job: pause or stop returning first, then cancel once paused (SPEC §6). */
  async cancel(): Promise<void> {
    await this.#command('cancel', JOB_ENDED, async () => {
      await this.refresh();
      const mode = this.#mode();
      if (!ACTIVE_JOB_MODES.has(mode)) throw hubError('HUB_ERR_DEVICE_STATE', 'There is no job to cancel');
      if (mode === Mode.WORKING) await this.#send(this.#o.commands.pause());
      else if (mode === Mode.RETURNING) await this.#request(this.#o.commands.cancelReturnToDock(), (m) => m.nav?.todev_taskctrl_ack !== undefined);
      if (!(await this.#reportsPaused())) throw hubError('HUB_ERR_DEVICE_STATE', `The mower did not pause (${this.#report.modeName ?? 'unknown'}); the job was not cancelled`);
      await this.#send(this.#o.commands.cancelJob());
    });
  }

  /**
   * Asks for reports until one shows the job paused: a report the mower sent before it took
   * the pause may still be on its way and answer the first request.
   */
  async #reportsPaused(): Promise<boolean> {
    for (let attempt = 1; attempt <= this.#timing.attempts; attempt++) {
      await this.refresh(true);
      if (this.#mode() === Mode.PAUSE || this.#mode() === Mode.CHARGING_PAUSE) return true;
    }
    return false;
  }

  leaveDock = () => this.#command('leave_dock', undefined, () => this.#send(this.#o.commands.leaveDock()));

  async setBladeHeight(mm: number): Promise<void> {
    if (!this.#o.identity.model.bladeHeightAdjustable) throw hubError('HUB_ERR_DEVICE_STATE', `${this.#o.identity.model.name} has no adjustable blade height`);
    await this.#command('set_blade_height', undefined, () => this.#send(this.#o.commands.setBladeHeight(mm)));
  }

  setSpeed = (metresPerSecond: number) => this.#command('set_speed', undefined, () => this.#send(this.#o.commands.setSpeed(metresPerSecond)));
  setCutterMode = (mode: number) => this.#command('set_cutter_mode', undefined, () => this.#send(this.#o.commands.setCutterMode(mode)));

  /** The `refresh` action: a report now, with failures mapped like every command's. */
  refreshNow = () => this.#command('refresh', undefined, () => this.refresh(true), { followUpReport: false });

  /** A report now, unless one arrived within the debounce window (`force` skips that check). */
  async refresh(force = false): Promise<void> {
    if (!force && Date.now() - this.#lastReportAt < this.#timing.snapshotDebounceMs) return;
    await this.#request(this.#o.commands.reportOnce(), (m) => m.sys?.toapp_report_data !== undefined);
  }

  /** Called by the polling job: polls when the cadence for the current state says so. */
  async poll(now = Date.now()): Promise<void> {
    const mode = this.#report.mode;
    if (!this.#o.device.supported || !this.#online || (mode !== undefined && DO_NOT_POLL_MODES.has(mode))) return;
    if (now - this.#lastPollAt < this.#pollMinutes() * 60_000) return;
    this.#lastPollAt = now;
    await this.refresh().catch((error: unknown) => this.#noteFailure(error));
  }

  // ── Frames ──

  #absorb(message: LubaMsg): void {
    const { sys, nav, driver } = message;
    if (sys?.toapp_report_data) return this.#takeReport(readReport(sys.toapp_report_data));
    if (sys?.systemUpdateBuf?.update_buf_data) {
      const buffer = readUpdateBuffer(sys.systemUpdateBuf.update_buf_data);
      if (buffer.kind === 'origin') this.#origin = buffer.origin;
      if (buffer.kind === 'errors' && buffer.errors[0]) this.#lastError = `device error ${buffer.errors[0].code}`;
      return;
    }
    if (sys?.systemTardStateTunnel?.tard_state_data) {
      const rapid = readRapidState(sys.systemTardStateTunnel.tard_state_data);
      this.#report.position = { ...this.#report.position, x: rapid.x, y: rapid.y, heading: rapid.heading, positionType: rapid.positionType, zoneHash: rapid.zoneHash, mapHash: this.#report.position?.mapHash ?? '0' };
      return;
    }
    if (sys?.toapp_dev_fw_info) return this.#noteFirmware(readFirmware(sys.toapp_dev_fw_info).version);
    if (sys?.mow_to_app_info?.type === 3) return this.#takeReport({ mode: Mode.POWER_OFF, modeName: 'MODE_POWER_OFF', activity: undefined });
    if (nav?.toapp_all_hash_name) {
      this.#areas = new Map((nav.toapp_all_hash_name.hashnames ?? []).map((a) => [String(a.hash ?? '0'), a.name ?? '']));
      return;
    }
    const summary = nav?.toapp_work_report_upload ?? nav?.toapp_work_report_ack;
    if (summary) {
      const work = readWorkReport(summary);
      this.#o.sessions.summary(this.#o.identity, { areaM2: work.areaM2, progressPercent: work.progressPercent });
      return;
    }
    if (driver?.current_cutter_mode) this.#cutterMode = driver.current_cutter_mode.current_cutter_mode ?? 0;
  }

  #takeReport(report: MowerReport): void {
    this.#report = { ...this.#report, ...report };
    this.#lastReportAt = Date.now();
    if (report.firmware) this.#noteFirmware(report.firmware);
    this.#confirmPending();
    this.#followJob();
    this.#o.sessions.observe(this.#o.identity, this.#report, this.#zones).catch((error: unknown) => this.#o.log.error({ err: error, iotId: this.iotId }, 'mowing session not recorded'));
  }

  #noteFirmware(version: string): void {
    if (!version || version === this.#firmware) return;
    this.#firmware = version;
    this.#o.onFirmware?.(version);
  }

  /** While a job runs, keep a live report stream (firmware without the send quota only). */
  #followJob(): void {
    const active = this.#report.mode !== undefined && ACTIVE_JOB_MODES.has(this.#report.mode);
    const canStream = this.#firmware !== undefined && isQuotaExempt(this.#firmware);
    if (active && canStream && !this.#stream) {
      const keep = () => void this.#send(this.#o.commands.reportKeep()).catch((error: unknown) => this.#noteFailure(error));
      void this.#send(this.#o.commands.reportSubscribe()).catch((error: unknown) => this.#noteFailure(error));
      this.#stream = setInterval(keep, this.#timing.streamRenewMs);
      this.#stream.unref();
    } else if (!active && this.#stream) {
      clearInterval(this.#stream);
      this.#stream = undefined;
      void this.#send(this.#o.commands.reportStop()).catch(() => {});
    }
  }

  // ── Sending ──

  /**
   * Runs a command flow after the ones before it; maps cloud failures to hub errors and, with an
   * `outcome`, keeps the command pending until a report shows it.
   */
  #command(name: string, outcome: Outcome | undefined, flow: () => Promise<unknown>, { followUpReport = true } = {}): Promise<void> {
    const run = this.#queue.then(async () => {
      if (!this.#o.device.supported) throw hubError('HUB_ERR_DEVICE_UNAVAILABLE', this.#o.device.unsupportedReason);
      if (!this.#online) throw hubError('HUB_ERR_DEVICE_UNAVAILABLE', 'The mower is offline');
      try {
        await flow();
        this.#lastError = undefined;
      } catch (error) {
        throw this.#noteFailure(error);
      } finally {
        this.#publish();
      }
      if (outcome && !outcome.reached(this.#report)) this.#expect(name, outcome);
      if (followUpReport) void this.refresh(true).catch(() => {}); // the app asks for a report after every command
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  #expect(command: string, outcome: Outcome): void {
    if (this.#stopped) return;
    clearTimeout(this.#pending?.timer);
    const timer = setTimeout(() => {
      this.#pending = undefined;
      this.#lastError = `${command} was not confirmed by the mower`;
      this.#o.fire('mammotion_command_timeout', { entity_id: this.#o.identity.entityId, command, expected: outcome.label, activity: this.#report.activity ?? null });
      this.#publish();
    }, this.#timing.confirmMs);
    timer.unref();
    this.#pending = { command, outcome, timer };
    this.#publish();
  }

  #confirmPending(): void {
    if (this.#pending?.outcome.reached(this.#report)) {
      clearTimeout(this.#pending.timer);
      this.#pending = undefined;
    }
  }

  #send(message: LubaMsg): Promise<void> {
    return this.#o.transport.send(this.#o.device, encodeLubaMsg(message));
  }

  /** Sends and waits for the reply `match` recognises; two attempts of `replyMs` each. */
  async #request(message: LubaMsg, match: (reply: LubaMsg) => boolean): Promise<LubaMsg> {
    for (let attempt = 1; ; attempt++) {
      let waiter!: Waiter;
      const reply = new Promise<LubaMsg>((resolve) => (waiter = { match, resolve }));
      this.#waiters.add(waiter);
      let timer: NodeJS.Timeout | undefined;
      try {
        await this.#send(message);
        const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), this.#timing.replyMs)));
        const answer = await Promise.race([reply, timeout]);
        if (answer) return answer;
      } catch (error) {
        // The cloud's own "device did not answer" gets the same second chance as our timeout.
        if (!(error instanceof GatewayTimeoutError) || attempt >= this.#timing.attempts) throw error;
        continue;
      } finally {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
      }
      if (attempt >= this.#timing.attempts) throw hubError('HUB_ERR_UPSTREAM_TIMEOUT', 'The mower did not answer');
    }
  }

  async #allAreas(): Promise<string[]> {
    if (this.#areas.size === 0) await this.#request(this.#o.commands.areaNames(this.iotId), (m) => m.nav?.toapp_all_hash_name !== undefined);
    return [...this.#areas.keys()];
  }

  /** Records a failure for the entity's `last_error` and returns it as a hub error. */
  #noteFailure(error: unknown): HubError {
    const mapped = toHubError(error);
    if (this.#stopped) return mapped;
    this.#lastError = mapped.message;
    if (error instanceof DeviceOfflineError) this.#online = false;
    if (!(error instanceof HubError)) this.#o.log.warn({ iotId: this.iotId, err: mapped.message }, 'mower command failed');
    this.#publish();
    return mapped;
  }

  #mode(): number {
    return this.#report.mode ?? -1;
  }

  #pollMinutes(): number {
    const cadence = this.#firmware && isQuotaExempt(this.#firmware) ? POLL_MINUTES.free : POLL_MINUTES.quota;
    const mode = this.#report.mode;
    if (mode !== undefined && ACTIVE_JOB_MODES.has(mode)) return cadence.active;
    if (this.#report.charging) return (this.#report.battery ?? 0) >= 100 ? cadence.full : cadence.charging;
    return cadence.idle;
  }

  // ── Entities ──

  #publish(): void {
    if (this.#stopped) return;
    const { entities, identity, device } = this.#o;
    const report = this.#report;
    const available = device.supported && this.#online && this.#cloudStatus !== 'reauth_required' && this.#cloudStatus !== 'failed';
    const where = positionInDegrees(this.#origin, report.position);
    const budget = this.#o.budget();
    entities.mower.set(available ? (report.activity ?? 'unknown') : 'unavailable', {
      friendly_name: identity.name,
      model: identity.model.name,
      device_name: device.deviceName,
      firmware: this.#firmware ?? null,
      work_mode: report.modeName ?? null,
      battery_level: report.battery ?? null,
      charging: report.charging ?? null,
      progress: report.work?.progressPercent ?? null,
      area_mowed_m2: report.work?.areaMowedM2 ?? null,
      total_minutes: report.work?.totalMinutes ?? null,
      elapsed_minutes: report.work?.elapsedMinutes ?? null,
      left_minutes: report.work?.leftMinutes ?? null,
      resumable: report.work?.resumable ?? null,
      blade_height_mm: report.work?.bladeHeightMm ?? null,
      speed_mps: report.work?.speedMps ?? null,
      cutter_mode: this.#cutterMode !== undefined ? (CUTTER_MODES[this.#cutterMode] ?? this.#cutterMode) : null,
      rtk: report.rtk?.label ?? null,
      satellites: report.rtk?.satellites ?? null,
      latitude: where?.latitude ?? null,
      longitude: where?.longitude ?? null,
      zone: report.position ? (this.#areas.get(report.position.zoneHash) ?? report.position.zoneHash) : null,
      areas: [...this.#areas].map(([hash, name]) => ({ hash, name })),
      pending_command: this.#pending?.command ?? null,
      last_error: this.#lastError ?? null,
      cloud_status: device.supported ? this.#cloudStatus : (device.unsupportedReason ?? 'not supported'),
      send_budget: budget ? { used: budget.used, limit: budget.limit, blocked_until: budget.blockedUntil ? new Date(budget.blockedUntil).toISOString() : null } : null,
    });
    const value = (v: number | undefined) => (available && v !== undefined ? String(v) : 'unavailable');
    entities.battery.set(value(report.battery), { friendly_name: `${identity.name} battery`, unit_of_measurement: '%', device_class: 'battery' });
    entities.progress.set(value(report.work?.progressPercent), { friendly_name: `${identity.name} progress`, unit_of_measurement: '%' });
    entities.rtkFix.set(available && report.rtk ? (report.rtk.status === 4 ? 'on' : 'off') : 'unavailable', { friendly_name: `${identity.name} RTK fix` });
    entities.online.set(this.#online && device.supported ? 'on' : 'off', { friendly_name: `${identity.name} online`, device_class: 'connectivity' });
  }
}

/** The hub error a cloud failure means for the caller. */
function toHubError(error: unknown): HubError {
  if (error instanceof HubError) return error;
  if (error instanceof DeviceOfflineError) return hubError('HUB_ERR_DEVICE_UNAVAILABLE', 'The mower is offline', { cause: error });
  if (error instanceof GatewayTimeoutError) return hubError('HUB_ERR_UPSTREAM_TIMEOUT', 'The mower did not answer the cloud in time', { cause: error });
  if (error instanceof RateLimitedError || error instanceof QuotaExceededError) {
    const seconds = Math.max(1, Math.ceil((error.blockedUntil - Date.now()) / 1000));
    return hubError('HUB_ERR_RATE_LIMITED', error.message, { headers: { 'retry-after': String(seconds) }, cause: error });
  }
  if (error instanceof ReauthRequiredError) return hubError('HUB_ERR_RELINK_REQUIRED', 'The Mammotion account must be linked again', { cause: error });
  if (error instanceof CloudError) return hubError('HUB_ERR_UPSTREAM', error.message, { cause: error });
  return hubError('HUB_ERR_INTERNAL', undefined, { cause: error });
}
