/**
 * A Mammotion account linked to a home: its cloud session (sealed at rest), its transport and a
 * driver per mower. The password is used once, to sign in; afterwards only the refresh token is
 * kept, sealed with the hub's key, so a restart needs no password and a dead token asks the
 * owner to link the account again.
 *
 * @module
 */
import type { Logger } from '../../core/log/index.js';
import type { PluginContext } from '../../core/plugin.js';
import { slugify } from '../../core/devices/index.js';
import {
  CloudUnavailableError,
  MammotionAccountClient,
  ReauthRequiredError,
  MammotionCloudTransport,
  type AccountClientOptions,
  type CloudDevice,
  type TransportState,
} from './cloud/index.js';
import { MowerDriver, type DriverTiming } from './driver.js';
import { ALIYUN_PRODUCT_KEYS, CommandBuilder, detectModel, encodeLubaMsg } from './protocol/index.js';
import type { SessionTracker } from './sessions.js';
import type { MammotionDb } from './tables.js';

export interface AccountRow {
  id: string;
  home_id: string;
  email: string;
}

export interface LinkDependencies {
  ctx: PluginContext;
  db: MammotionDb;
  cloud: Omit<AccountClientOptions, 'log'>;
  sessions: SessionTracker;
  timing?: Partial<DriverTiming>;
  /** Called when a mower's driver is ready, so actions can find it by entity id. */
  onMower(entityId: string, driver: MowerDriver): void;
  onMowerGone(entityId: string): void;
  /** Whether another linked account already drives this mower (a mower shared with two accounts). */
  drivenElsewhere(iotId: string, accountId: string): boolean;
}

/** Device families that are not mowers: the RTK base station and pool robots share the account. */
const NOT_MOWERS = new Set(['rtk', 'pool']);
/** Back-off of reconnect attempts after the cloud could not be reached. */
const RETRY_DELAYS_MS = [30_000, 60_000, 120_000, 300_000, 600_000];

/** How a link signs in: with the password once, or with the sealed refresh token after a restart. */
export type SignIn = { password: string } | { refreshToken: string };

export class AccountLink {
  readonly drivers = new Map<string, MowerDriver>();
  readonly #client: MammotionAccountClient;
  #transport: MammotionCloudTransport | undefined;
  readonly #log: Logger;
  #status: TransportState = 'connecting';
  #closed = false;
  /** Refresh-token writes, one after another, so an older token never lands last. */
  #storing: Promise<void> = Promise.resolve();
  /** After a transient failure: when to try again, and how often it failed. */
  #retry: { at: number; failures: number } | undefined;

  constructor(
    readonly row: AccountRow,
    private readonly deps: LinkDependencies,
  ) {
    this.#log = deps.ctx.log.child({ account: row.id });
    this.#client = new MammotionAccountClient({ ...deps.cloud, log: this.#log });
    this.#client.onTokensChanged(() => {
      this.#storing = this.#storing.then(() => this.#storeSession()).catch((error: unknown) => this.#log.error({ err: error }, 'could not store the Mammotion session'));
    });
  }

  get status(): string {
    return this.#status;
  }

  /**
   * Signs in, connects the cloud transport and brings up every mower of the account. On failure
   * the link's status says why; a cloud that could not be reached is tried again by {@link poll}
   * (with the refresh token only: never the password).
   */
  async connect(signIn: SignIn): Promise<void> {
    try {
      await this.#connect(signIn);
      this.#retry = undefined;
    } catch (error) {
      await this.#transport?.close().catch(() => {});
      this.#transport = undefined;
      const reauth = error instanceof ReauthRequiredError || this.#client.state === 'reauth_required';
      if (!reauth && error instanceof CloudUnavailableError && !('password' in signIn)) {
        const failures = (this.#retry?.failures ?? 0) + 1;
        this.#retry = { at: Date.now() + RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length) - 1]!, failures };
      }
      await this.#setStatus(reauth ? 'reauth_required' : 'failed', (error as Error).message);
      throw error;
    }
  }

  async #connect(signIn: SignIn): Promise<void> {
    const session = 'password' in signIn ? await this.#client.login(this.row.email, signIn.password) : await this.#client.resume(signIn.refreshToken);
    if (this.#closed) return;
    const builderOptions = { userAccount: session.userAccount ?? 0 };
    // The sync keep-alive goes to the communication module, the same for every model.
    const syncBuilder = new CommandBuilder(detectModel(''), builderOptions);
    const syncFrame = () => encodeLubaMsg(syncBuilder.sync('cloud'));
    const transport = new MammotionCloudTransport({
      account: this.#client,
      log: this.#log,
      syncFrame,
      // The driver knows the firmware once the mower said it; unknown counts as old (quota on).
      firmwareOf: (iotId) => this.drivers.get(iotId)?.firmware,
      aliyunProductKeys: ALIYUN_PRODUCT_KEYS,
    });
    this.#transport = transport;
    transport.onStateChange((state) => void this.#setStatus(state));
    transport.onFrame((iotId, frame) => this.drivers.get(iotId)?.receive(frame));
    transport.onOnline((iotId, online) => this.drivers.get(iotId)?.setOnline(online));
    await transport.start();
    for (const device of await transport.devices()) {
      if (this.#closed) return;
      await this.#addMower(device, builderOptions);
    }
    await this.#setStatus(transport.state);
  }

  /** Polls each mower whose cadence is due; reconnects when a transient failure's back-off is over. */
  async poll(): Promise<void> {
    const refreshToken = this.#client.refreshTokenForStorage();
    if (this.#retry && Date.now() >= this.#retry.at && refreshToken) {
      await this.connect({ refreshToken }).catch((error: unknown) => this.#log.warn({ err: error }, 'Mammotion account still not reachable'));
    }
    for (const driver of this.drivers.values()) await driver.poll();
  }

  /**
   * Stops the link, also halfway through {@link connect}. `unlinked` (the account or its home
   * is gone) also removes the mowers' entities and ends their open sessions; a hub stop keeps them.
   */
  async close(unlinked = false): Promise<void> {
    this.#closed = true;
    for (const driver of this.drivers.values()) {
      driver.stop(unlinked);
      this.deps.onMowerGone(driver.entityId);
      if (unlinked) await this.deps.sessions.endOpen(driver.identity).catch((error: unknown) => this.#log.error({ err: error }, 'open session not ended'));
    }
    this.drivers.clear();
    await this.#transport?.close();
    this.#client.close();
    await this.#storing;
  }

  async #addMower(device: CloudDevice, builderOptions: { userAccount: number }): Promise<void> {
    const { ctx, db } = this.deps;
    const model = detectModel(device.deviceName, device.productKey);
    if (NOT_MOWERS.has(model.family)) return;
    if (this.deps.drivenElsewhere(device.iotId, this.row.id)) {
      this.#log.warn({ iotId: device.iotId, deviceName: device.deviceName }, 'mower already driven through another linked account; skipped');
      return;
    }
    const slug = slugify(device.deviceName);
    // Ids named after the mower, held by its cloud id: a name someone else holds (a telemetry
    // device, another home's mower) gets the next free id instead of failing the link.
    const register = (domain: string, suffix: string) =>
      ctx.entities.register({ entity_id: `${domain}.${slug}${suffix}`, unique_id: `${device.iotId}${suffix}`, home_id: this.row.home_id });
    const entities = {
      mower: await register('lawn_mower', ''),
      battery: await register('sensor', '_battery'),
      progress: await register('sensor', '_progress'),
      rtkFix: await register('binary_sensor', '_rtk_fix'),
      online: await register('binary_sensor', '_online'),
    };
    const entityId = entities.mower.entityId;
    const mower = { account_id: this.row.id, home_id: this.row.home_id, model: model.name, entity_id: entityId };
    await db
      .insertInto('mammotion_mowers')
      .values({ ...mower, iot_id: device.iotId, device_name: device.deviceName, product_key: device.productKey })
      .onConflict((oc) => oc.column('iot_id').doUpdateSet(mower))
      .execute();
    const identity = { iotId: device.iotId, homeId: this.row.home_id, entityId, name: device.deviceName, model };
    await this.deps.sessions.restore(device.iotId);
    const transport = this.#transport!;
    const driver = new MowerDriver({
      device,
      identity,
      transport,
      budget: () => transport.budget(device.iotId),
      commands: new CommandBuilder(model, builderOptions),
      entities,
      sessions: this.deps.sessions,
      fire: (eventType, data) => ctx.bus.fire(eventType, data, { homeId: this.row.home_id }),
      log: this.#log.child({ iotId: device.iotId }),
      timing: this.deps.timing,
      onFirmware: (version) => this.#noteFirmware(device.iotId, version),
    });
    if (this.#closed) return;
    this.drivers.set(device.iotId, driver);
    this.deps.onMower(entityId, driver);
    await driver.start();
  }

  /** Keeps the version the mower reported, for the account listing. */
  #noteFirmware(iotId: string, version: string): void {
    this.deps.db
      .updateTable('mammotion_mowers')
      .set({ firmware: version })
      .where('iot_id', '=', iotId)
      .execute()
      .catch((error: unknown) => this.#log.warn({ err: error, iotId }, 'firmware version not stored'));
  }

  /** Records the link's state on its mowers and in the database; never throws (the database may be away). */
  async #setStatus(state: TransportState, reason?: string): Promise<void> {
    this.#status = state;
    for (const driver of this.drivers.values()) driver.setCloudStatus(state);
    const detail = state === 'reauth_required' ? 'The Mammotion session ended; link the account again' : (reason ?? this.#transport?.failureReason ?? null);
    await this.deps.db
      .updateTable('mammotion_accounts')
      .set({ status: state, status_detail: detail })
      .where('id', '=', this.row.id)
      .execute()
      .catch((error: unknown) => this.#log.warn({ err: error, state }, 'account status not stored'));
  }

  /** Keeps the newest refresh token, sealed; the access token is never stored. */
  async #storeSession(): Promise<void> {
    const refreshToken = this.#client.refreshTokenForStorage();
    if (!refreshToken) return;
    const sealed = this.deps.ctx.secrets.seal(refreshToken, `account:${this.row.id}`);
    await this.deps.db.updateTable('mammotion_accounts').set({ sealed_session: sealed }).where('id', '=', this.row.id).execute();
  }
}
