/**
 * The Mammotion-direct cloud as a {@link MowerTransport}: frames in over MQTT, frames out
 * over the HTTPS invoke, with the device-side rules of SPEC §3.4 and §9 applied to every
 * send — a sync keep-alive first when the last one is older than 7 s, the 600-per-12-h budget
 * for old firmware, a 12 h block after HTTP 429, and no sends to a device the cloud reported
 * offline until it is heard from again.
 *
 * Frames are opaque bytes here; the codec lives elsewhere.
 *
 * @module
 */
import type { Logger } from '../../../core/log/index.js';
import type { MammotionAccountClient } from './account.js';
import { ALIYUN_NOT_SUPPORTED, isAliyunProductKey } from './aliyun.js';
import type { DiscoveredDevice } from './devices.js';
import {
  DeviceOfflineError,
  QuotaExceededError,
  RateLimitedError,
  ReauthRequiredError,
  TransportClosedError,
  UnsupportedDeviceError,
} from './errors.js';
import { deviceTopics, parseInbound } from './inbound.js';
import { BrokerLink, type LinkStatus } from './link.js';
import type { CloudDevice, MowerTransport, TransportState } from './index.js';
import { DEFAULT_SEND_LIMIT, SendQuota, TWELVE_HOURS_MS, isQuotaExempt, type SendBudget } from './quota.js';

/** Counters for metrics and tests. */
export interface TransportStats {
  framesIn: number;
  /** Inbound messages that could not be read (bad JSON, bad base64, bad status). */
  malformed: number;
  /** Inbound messages deliberately not used (other events, /sys/proto/, unknown topics). */
  ignored: number;
  /** Inbound messages for a device this account does not list. */
  unknownDevice: number;
  commandsSent: number;
  syncsSent: number;
  reconnects: number;
}

/** Options of {@link MammotionCloudTransport}. */
export interface CloudTransportOptions {
  /** A signed-in account. The transport uses it but does not close it. */
  account: MammotionAccountClient;
  log: Logger;
  /** Builds the sync keep-alive frame (`LubaMsg{msgtype ESP, net.todev_ble_sync 3}`), supplied by the codec. */
  syncFrame: () => Uint8Array;
  /** The device's main firmware version, when known; unknown counts as old (quota applies). */
  firmwareOf?: (iotId: string) => string | undefined;
  /** Send a sync first when the last one is older than this. Default 7000 ms. */
  syncIntervalMs?: number;
  /** Commands per window for old firmware. Default 600. */
  sendLimit?: number;
  /** Rolling quota window. Default 12 h. */
  sendWindowMs?: number;
  /** How long an HTTP 429 blocks a device. Default 12 h. */
  rateLimitBlockMs?: number;
  /** MQTT reconnect back-off. Defaults 1000 ms doubling to 120 000 ms. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Renew MQTT credentials this long before the JWT expires. Default 30 min. */
  credentialRefreshLeadMs?: number;
  /** MQTT connect timeout. Default 30 000 ms. */
  connectTimeoutMs?: number;
  /** Product keys of the Aliyun cloud; their devices are listed as unsupported. */
  aliyunProductKeys?: Iterable<string>;
  /** Clock for the sync, quota and block rules, epoch ms. Default `Date.now`. */
  now?: () => number;
}

const NO_PRODUCT_KEY =
  'The Mammotion cloud lists this mower without a product key, so it is probably on the older Aliyun cloud, which the hub does not support yet.';

/**
 * The Mammotion-direct cloud transport.
 *
 * @example
 * const account = new MammotionAccountClient({ clientId, clientSecret, log });
 * await account.login(email, password);
 * const transport = new MammotionCloudTransport({ account, log, syncFrame: () => codec.sync() });
 * transport.onFrame((iotId, frame) => driver.receive(iotId, codec.decode(frame)));
 * await transport.start();
 * const [mower] = await transport.devices();
 * await transport.send(mower, codec.startJob(mower));
 */
export class MammotionCloudTransport implements MowerTransport {
  readonly #account: MammotionAccountClient;
  readonly #log: Logger;
  readonly #syncFrame: () => Uint8Array;
  readonly #firmwareOf: (iotId: string) => string | undefined;
  readonly #syncIntervalMs: number;
  readonly #sendLimit: number;
  readonly #rateLimitBlockMs: number;
  readonly #aliyunProductKeys: ReadonlySet<string>;
  readonly #now: () => number;
  readonly #options: CloudTransportOptions;
  readonly #quota: SendQuota;
  #state: TransportState = 'connecting';
  #failureReason: string | undefined;
  #link: BrokerLink | undefined;
  readonly #devices = new Map<string, CloudDevice>();
  /** `productKey/deviceName` → iotId, for routing inbound topics. */
  readonly #routes = new Map<string, string>();
  readonly #offline = new Set<string>();
  readonly #lastSync = new Map<string, number>();
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #stats: TransportStats = { framesIn: 0, malformed: 0, ignored: 0, unknownDevice: 0, commandsSent: 0, syncsSent: 0, reconnects: 0 };
  readonly #stateListeners = new Set<(state: TransportState) => void>();
  readonly #frameListeners = new Set<(iotId: string, frame: Uint8Array) => void>();
  readonly #onlineListeners = new Set<(iotId: string, online: boolean) => void>();
  readonly #stopWatchingAccount: () => void;

  constructor(options: CloudTransportOptions) {
    this.#options = options;
    this.#account = options.account;
    this.#log = options.log;
    this.#syncFrame = options.syncFrame;
    this.#firmwareOf = options.firmwareOf ?? (() => undefined);
    this.#syncIntervalMs = options.syncIntervalMs ?? 7000;
    this.#sendLimit = options.sendLimit ?? DEFAULT_SEND_LIMIT;
    this.#rateLimitBlockMs = options.rateLimitBlockMs ?? TWELVE_HOURS_MS;
    this.#aliyunProductKeys = new Set(options.aliyunProductKeys ?? []);
    this.#now = options.now ?? Date.now;
    this.#quota = new SendQuota(this.#sendLimit, options.sendWindowMs ?? TWELVE_HOURS_MS, this.#now);
    this.#stopWatchingAccount = this.#account.onStateChange((state) => this.#onAccountState(state));
  }

  get state(): TransportState {
    return this.#state;
  }

  /** Why the transport is `failed` or `reauth_required`, in words for the user. */
  get failureReason(): string | undefined {
    return this.#failureReason;
  }

  /**
   * Discovers the devices and connects to the broker. Resolves once connected and subscribed;
   * rejects if the transport fails, needs a new sign-in or is closed first. A transient
   * broker outage does not reject: the transport keeps reconnecting (state `reconnecting`).
   */
  async start(): Promise<void> {
    if (this.#state === 'closed') throw new TransportClosedError();
    try {
      await this.devices();
    } catch (error) {
      this.#fail(error instanceof ReauthRequiredError ? 'reauth_required' : 'failed', `Device discovery failed: ${(error as Error).message}`);
      throw error;
    }
    const connected = this.#waitForConnected();
    this.#startLink();
    await connected;
  }

  onStateChange(listener: (state: TransportState) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  onFrame(listener: (iotId: string, frame: Uint8Array) => void): () => void {
    this.#frameListeners.add(listener);
    return () => this.#frameListeners.delete(listener);
  }

  onOnline(listener: (iotId: string, online: boolean) => void): () => void {
    this.#onlineListeners.add(listener);
    return () => this.#onlineListeners.delete(listener);
  }

  async devices(): Promise<CloudDevice[]> {
    const discovered = await this.#account.listDevices();
    const fresh: string[] = [];
    for (const found of discovered) {
      const device = this.#describe(found);
      if (!this.#devices.has(device.iotId) && device.supported) fresh.push(...deviceTopics(device.productKey, device.deviceName));
      this.#devices.set(device.iotId, device);
      if (device.supported) this.#routes.set(`${device.productKey}/${device.deviceName}`, device.iotId);
      else this.#log.info({ iotId: device.iotId, deviceName: device.deviceName }, 'mammotion device not supported by the cloud transport');
    }
    await this.#link?.subscribe(fresh).catch((error: unknown) => this.#log.warn({ err: (error as Error).message }, 'mammotion subscribe for new devices failed'));
    return [...this.#devices.values()];
  }

  /**
   * Sends one frame (SPEC §3.1), in order with the device's other sends.
   *
   * @throws DeviceOfflineError when the device is (reported) offline — no request is made until it is heard from.
   * @throws RateLimitedError while a 429 block lasts; QuotaExceededError when the old-firmware budget is spent.
   * @throws GatewayTimeoutError, CloudUnavailableError, CloudError from the cloud's answer.
   * @throws UnsupportedDeviceError for Aliyun devices; ReauthRequiredError / TransportClosedError by state.
   */
  async send(device: CloudDevice, frame: Uint8Array): Promise<void> {
    this.#assertUsable();
    const known = this.#devices.get(device.iotId) ?? this.#describe(device);
    if (!known.supported) throw new UnsupportedDeviceError(known.iotId, known.unsupportedReason ?? ALIYUN_NOT_SUPPORTED);
    return this.#serialise(known.iotId, () => this.#sendNow(known.iotId, frame));
  }

  /** The device's send budget (commands in the window, limit or `null` when exempt, block end). */
  budget(iotId: string): SendBudget {
    return this.#quota.budget(iotId, isQuotaExempt(this.#firmwareOf(iotId)));
  }

  /** True while sends to the device are held back because the cloud reported it offline. */
  isOffline(iotId: string): boolean {
    return this.#offline.has(iotId);
  }

  /** A copy of the counters. */
  stats(): TransportStats {
    return { ...this.#stats, reconnects: this.#stats.reconnects + (this.#link?.reconnects ?? 0) };
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('closed');
    this.#stopWatchingAccount();
    await this.#stopLink();
  }

  // ---------------------------------------------------------------- sending

  async #sendNow(iotId: string, frame: Uint8Array): Promise<void> {
    this.#assertUsable();
    if (this.#offline.has(iotId)) throw new DeviceOfflineError(iotId, 0, 'The cloud reported the mower offline; commands wait until it is heard from again');
    const blockedUntil = this.#quota.rateLimitedUntil(iotId);
    if (blockedUntil !== undefined) throw new RateLimitedError(iotId, blockedUntil);
    const budget = this.budget(iotId);
    if (budget.limit !== null && budget.used >= budget.limit) throw new QuotaExceededError(iotId, budget.limit, budget.blockedUntil ?? this.#now());
    if (this.#now() - (this.#lastSync.get(iotId) ?? -Infinity) > this.#syncIntervalMs) await this.#sync(iotId);
    this.#quota.record(iotId);
    await this.#invoke(iotId, frame);
    this.#stats.commandsSent++;
  }

  /** The device drops commands ~10 s after the last sync (SPEC §3.4); syncs are outside the quota. */
  async #sync(iotId: string): Promise<void> {
    const at = this.#now();
    await this.#invoke(iotId, this.#syncFrame());
    this.#lastSync.set(iotId, at);
    this.#stats.syncsSent++;
  }

  async #invoke(iotId: string, frame: Uint8Array): Promise<void> {
    try {
      await this.#account.invoke(iotId, frame);
    } catch (error) {
      if (error instanceof DeviceOfflineError) this.#setOnline(iotId, false);
      if (error instanceof RateLimitedError) {
        const until = this.#quota.block(iotId, this.#rateLimitBlockMs);
        this.#log.warn({ iotId, blockedUntil: new Date(until).toISOString() }, 'mammotion cloud rate-limited a device; sends paused');
        throw new RateLimitedError(iotId, until);
      }
      throw error;
    }
  }

  /** Runs sends to one device one after the other, so a sync always precedes its command. */
  #serialise<T>(iotId: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(iotId) ?? Promise.resolve();
    const run = previous.then(task);
    const settled = run.catch(() => undefined);
    this.#queues.set(iotId, settled);
    void settled.then(() => {
      if (this.#queues.get(iotId) === settled) this.#queues.delete(iotId);
    });
    return run;
  }

  // ---------------------------------------------------------------- receiving

  #onMessage(topic: string, payload: Buffer): void {
    const message = parseInbound(topic, payload);
    switch (message.kind) {
      case 'malformed':
        this.#stats.malformed++;
        this.#log.warn({ topic, reason: message.reason, bytes: payload.length }, 'mammotion mqtt message dropped');
        return;
      case 'ignored':
        this.#stats.ignored++;
        this.#log.debug({ topic, reason: message.reason }, 'mammotion mqtt message ignored');
        return;
      case 'event':
        this.#stats.ignored++;
        this.#log.debug({ topic, identifier: message.identifier }, 'mammotion device event not used');
        return;
      case 'status': {
        const iotId = this.#route(message.productKey, message.deviceName) ?? (message.iotId && this.#devices.has(message.iotId) ? message.iotId : undefined);
        if (!iotId) return this.#unknown(topic);
        this.#setOnline(iotId, message.online);
        return;
      }
      case 'frame': {
        const iotId = this.#route(message.productKey, message.deviceName);
        if (!iotId) return this.#unknown(topic);
        this.#stats.framesIn++;
        // Hearing from the device is the evidence that it is back (SPEC §9).
        this.#setOnline(iotId, true);
        for (const listener of [...this.#frameListeners]) this.#call(() => listener(iotId, message.frame), 'frame');
        return;
      }
    }
  }

  #route(productKey: string, deviceName: string): string | undefined {
    return this.#routes.get(`${productKey}/${deviceName}`);
  }

  #unknown(topic: string): void {
    this.#stats.unknownDevice++;
    this.#log.debug({ topic }, 'mammotion mqtt message for a device not on this account');
  }

  #setOnline(iotId: string, online: boolean): void {
    const wasOnline = !this.#offline.has(iotId);
    if (online) this.#offline.delete(iotId);
    else this.#offline.add(iotId);
    const device = this.#devices.get(iotId);
    if (device) device.online = online;
    if (wasOnline === online) return;
    this.#log.info({ iotId, online }, 'mammotion device online state changed');
    for (const listener of [...this.#onlineListeners]) this.#call(() => listener(iotId, online), 'online');
  }

  // ---------------------------------------------------------------- state

  #describe(found: DiscoveredDevice): CloudDevice {
    if (isAliyunProductKey(found.productKey, this.#aliyunProductKeys)) {
      return { ...found, cloud: 'aliyun', supported: false, unsupportedReason: ALIYUN_NOT_SUPPORTED };
    }
    if (!found.productKey || !found.deviceName) return { ...found, cloud: 'aliyun', supported: false, unsupportedReason: NO_PRODUCT_KEY };
    return { ...found, cloud: 'mammotion', supported: true };
  }

  #startLink(): void {
    const { reconnect, credentialRefreshLeadMs, connectTimeoutMs } = this.#options;
    this.#link = new BrokerLink({
      credentials: () => this.#account.mqttCredentials(),
      topics: () => [...this.#devices.values()].filter((d) => d.supported).flatMap((d) => deviceTopics(d.productKey, d.deviceName)),
      onMessage: (topic, payload) => this.#onMessage(topic, payload),
      onStatus: (status, reason) => this.#onLinkStatus(status, reason),
      log: this.#log,
      initialDelayMs: reconnect?.initialDelayMs ?? 1000,
      maxDelayMs: reconnect?.maxDelayMs ?? 120_000,
      refreshLeadMs: credentialRefreshLeadMs ?? 30 * 60_000,
      connectTimeoutMs: connectTimeoutMs ?? 30_000,
      now: this.#now,
    });
    this.#link.start();
  }

  async #stopLink(): Promise<void> {
    const link = this.#link;
    this.#link = undefined;
    if (!link) return;
    this.#stats.reconnects += link.reconnects;
    await link.stop();
  }

  #onLinkStatus(status: LinkStatus, reason?: string): void {
    if (this.#state === 'closed' || this.#state === 'reauth_required' || this.#state === 'failed') return;
    if (status === 'failed' || status === 'reauth_required') {
      this.#fail(status, reason ?? 'The MQTT connection gave up');
      void this.#stopLink();
      return;
    }
    if (status === 'connected') this.#failureReason = undefined;
    this.#setState(status);
  }

  #onAccountState(state: string): void {
    if (state === 'reauth_required' && this.#state !== 'closed') {
      this.#fail('reauth_required', 'The Mammotion session has expired; sign in again');
      void this.#stopLink();
    } else if (state === 'signed_in' && this.#state === 'reauth_required') {
      // The user signed in again on the same account client: pick up where we left off.
      this.#log.info('mammotion account signed in again; reconnecting');
      this.#failureReason = undefined;
      this.#setState('connecting');
      this.#startLink();
    }
  }

  #fail(state: 'failed' | 'reauth_required', reason: string): void {
    this.#failureReason = reason;
    this.#log.warn({ state, reason }, 'mammotion cloud transport stopped');
    this.#setState(state);
  }

  #assertUsable(): void {
    if (this.#state === 'closed') throw new TransportClosedError();
    if (this.#state === 'reauth_required') throw new ReauthRequiredError(401, this.#failureReason ?? 'The Mammotion session has expired; sign in again');
    if (this.#state === 'failed') throw new TransportClosedError(this.#failureReason ?? 'The Mammotion cloud transport has given up');
  }

  #waitForConnected(): Promise<void> {
    return new Promise((resolve, reject) => {
      const stop = this.onStateChange((state) => {
        if (state === 'connected') {
          stop();
          resolve();
        } else if (state === 'failed' || state === 'reauth_required' || state === 'closed') {
          stop();
          reject(state === 'reauth_required' ? new ReauthRequiredError(401, this.#failureReason ?? state) : new TransportClosedError(this.#failureReason ?? `Transport ${state}`));
        }
      });
    });
  }

  #setState(state: TransportState): void {
    if (this.#state === state) return;
    this.#state = state;
    for (const listener of [...this.#stateListeners]) this.#call(() => listener(state), 'state');
  }

  #call(fn: () => void, what: string): void {
    try {
      fn();
    } catch (error) {
      this.#log.error({ err: error }, `mammotion ${what} listener threw`);
    }
  }
}
