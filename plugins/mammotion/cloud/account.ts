/**
 * The Mammotion account over HTTPS (SPEC §2.1–§2.3, §3.1): OAuth2 password login, token
 * refresh, device discovery, MQTT credentials and the command "invoke".
 *
 * Credential rules, from what Mammotion asked of community clients:
 * - the password is used for one login and never kept; a rejected refresh token puts the
 *   account in `reauth_required` and the user must sign in again (no silent re-login);
 * - network trouble (timeouts, 408/429/5xx) is retried with back-off and never reported as
 *   a bad password;
 * - a token refused on any bearer call is refreshed once (one refresh for all concurrent
 *   callers that saw the same stale token) and the call retried once.
 *
 * @module
 */
import { z } from 'zod';
import type { Logger } from '../../../core/log/index.js';
import { parseBrokerAddress, type BrokerAddress } from './broker-address.js';
import { mergeDeviceLists, rowsOf, type DiscoveredDevice } from './devices.js';
import {
  CloudError,
  CloudUnavailableError,
  DeviceOfflineError,
  GatewayTimeoutError,
  LoginRejectedError,
  RateLimitedError,
  ReauthRequiredError,
} from './errors.js';
import { delay, exchange, expectOk, isOkCode, isTokenRefusal, isTransientStatus, type CloudResponse, type Envelope } from './http.js';
import { decodeJwtPayload, iotBaseUrl, jwtExpiryMs } from './jwt.js';
import { TWELVE_HOURS_MS } from './quota.js';
import { OAUTH_TOKEN_PATH, newClientIdHeader, newRequestId, oauthSignature } from './signature.js';

/** Default id server (OAuth2). */
export const DEFAULT_ID_BASE_URL = 'https://id.mammotion.com';
/** Default "domestic" API server (device list). */
export const DEFAULT_DOMESTIC_BASE_URL = 'https://domestic.mammotion.com';
/** Invoke answers meaning "the device is offline". */
export const OFFLINE_CODES: ReadonlySet<number> = new Set([50103, 50104, 6205, 6221]);
/** Invoke answer meaning "the device did not answer the cloud in time". */
export const GATEWAY_TIMEOUT_CODE = 20056;

const USER_AGENT = 'okhttp/4.9.3';

/** How transient failures are retried. */
export interface RetryPolicy {
  /** Tries per call (login, reactive refresh, MQTT credentials), including the first. Default 3. */
  attempts?: number;
  /** First back-off; doubles per try. Default 1000 ms. */
  initialDelayMs?: number;
  /** Cap of the back-off, also for the scheduled refresh that never gives up on network trouble. Default 300 000 ms. */
  maxDelayMs?: number;
}

/** Options of {@link MammotionAccountClient}. */
export interface AccountClientOptions {
  /** OAuth2 client id, supplied by the user's configuration (never embedded in the hub). */
  clientId: string;
  /** OAuth2 client secret, supplied by the user's configuration. */
  clientSecret: string;
  /** Id server base URL. Default {@link DEFAULT_ID_BASE_URL}. */
  idBaseUrl?: string;
  /** Domestic API base URL. Default {@link DEFAULT_DOMESTIC_BASE_URL}. */
  domesticBaseUrl?: string;
  /** `App-Version` header. Default `NOT HA,2.3.18.21`. */
  appVersion?: string;
  log: Logger;
  /** Per-request timeout. Default 30 000 ms. */
  timeoutMs?: number;
  /** Refresh the access token this long before its `exp`. Default 300 000 ms (5 min). */
  refreshLeadMs?: number;
  retry?: RetryPolicy;
  /** Clock, epoch ms. Default `Date.now`. */
  now?: () => number;
}

/** Where the account stands. */
export type AccountState = 'signed_out' | 'signed_in' | 'reauth_required' | 'closed';

/** What the login says about the user (no secrets). */
export interface AccountSession {
  /** `userInformation.userAccount` as a number: `LubaMsg.subtype` of every command. */
  userAccount: number | undefined;
  userId: string | undefined;
  /** Country code, e.g. "SE". */
  domainAbbreviation: string | undefined;
  /** The IoT API base URL, from the access token's `iot` claim. */
  iotBaseUrl: string;
  /** Access token expiry, epoch ms. */
  accessTokenExpiresAt: number;
}

/** Credentials for the Mammotion MQTT broker (SPEC §2.3). */
export interface MqttCredentials {
  address: BrokerAddress;
  clientId: string;
  username: string;
  /** The MQTT password. Never log it. */
  jwt: string;
  /** From the JWT's `exp`, epoch ms, when it has one. */
  expiresAt: number | undefined;
}

const tokenData = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1),
  expires_in: z.coerce.number().optional(),
  userInformation: z
    .object({
      userAccount: z.union([z.string(), z.number()]).optional(),
      userId: z.union([z.string(), z.number()]).optional(),
      domainAbbreviation: z.string().optional(),
    })
    .loose()
    .optional(),
}).loose();

const mqttData = z.object({
  host: z.string().min(1),
  jwt: z.string().min(1),
  clientId: z.string().min(1),
  username: z.string().min(1),
}).loose();

/**
 * A Mammotion account. Sign in once with {@link login} (or {@link resume} a stored refresh
 * token); the client then keeps the access token fresh on its own until {@link close}.
 *
 * @example
 * const account = new MammotionAccountClient({ clientId, clientSecret, log });
 * await account.login('me@example.com', password);   // the password is not kept
 * const devices = await account.listDevices();
 */
export class MammotionAccountClient {
  readonly #options: Required<Omit<AccountClientOptions, 'retry'>> & { retry: Required<RetryPolicy> };
  readonly #log: Logger;
  /** Generated once per client, as the app does. */
  readonly #clientIdHeader: string;
  #state: AccountState = 'signed_out';
  #accessToken: string | undefined;
  #refreshToken: string | undefined;
  #session: AccountSession | undefined;
  #refreshing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #closing = new AbortController();
  readonly #listeners = new Set<(state: AccountState) => void>();
  readonly #tokenListeners = new Set<() => void>();

  constructor(options: AccountClientOptions) {
    if (!options.clientId || !options.clientSecret) throw new Error('Mammotion OAuth2 client id and secret are required (from your configuration)');
    const retry = options.retry ?? {};
    this.#options = {
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      idBaseUrl: (options.idBaseUrl ?? DEFAULT_ID_BASE_URL).replace(/\/+$/, ''),
      domesticBaseUrl: (options.domesticBaseUrl ?? DEFAULT_DOMESTIC_BASE_URL).replace(/\/+$/, ''),
      appVersion: options.appVersion ?? 'NOT HA,2.3.18.21',
      log: options.log,
      timeoutMs: options.timeoutMs ?? 30_000,
      refreshLeadMs: options.refreshLeadMs ?? 5 * 60_000,
      now: options.now ?? Date.now,
      retry: { attempts: retry.attempts ?? 3, initialDelayMs: retry.initialDelayMs ?? 1000, maxDelayMs: retry.maxDelayMs ?? 300_000 },
    };
    this.#log = options.log;
    this.#clientIdHeader = newClientIdHeader(this.#options.now());
  }

  /** The account's state. */
  get state(): AccountState {
    return this.#state;
  }

  /** The signed-in session, without secrets; `undefined` before the first login. */
  get session(): AccountSession | undefined {
    return this.#session;
  }

  /** The `Client-Id` header this client sends (IoT calls repeat it). */
  get clientIdHeader(): string {
    return this.#clientIdHeader;
  }

  /** Calls `listener` on every state change; returns the disposer. */
  onStateChange(listener: (state: AccountState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Calls `listener` whenever new tokens arrive (login or refresh): time to store {@link refreshTokenForStorage} again. */
  onTokensChanged(listener: () => void): () => void {
    this.#tokenListeners.add(listener);
    return () => this.#tokenListeners.delete(listener);
  }

  /**
   * Signs in with the user's password (SPEC §2.1). The password is sent once and not kept.
   *
   * @throws LoginRejectedError when the id server refuses the credentials (body code ≠ 0).
   * @throws CloudUnavailableError when the id server could not be reached after the retries.
   */
  async login(username: string, password: string): Promise<AccountSession> {
    this.#assertOpen();
    const params = {
      username,
      password: Buffer.from(password, 'utf8').toString('base64'),
      client_id: this.#options.clientId,
      grant_type: 'password',
      // Unverified whether the reference signs authType as "0" or 0; the query string carries it as text either way.
      authType: '0',
    };
    const body = await this.#withRetry('login', () => this.#tokenRequest(params));
    if (!isOkCode(body.code)) {
      this.#log.warn({ code: body.code, msg: body.msg }, 'mammotion login refused');
      throw new LoginRejectedError(body.code, `Mammotion login refused: ${body.msg || `code ${body.code}`}`);
    }
    this.#adopt(body.data);
    this.#log.info({ iot: this.#session?.iotBaseUrl, hasRefreshToken: true }, 'mammotion login ok');
    return this.#session as AccountSession;
  }

  /**
   * Signs in from a refresh token stored earlier (see {@link refreshTokenForStorage}), so a
   * restart needs no password.
   *
   * @throws ReauthRequiredError when the token is no longer accepted.
   */
  async resume(refreshToken: string): Promise<AccountSession> {
    this.#assertOpen();
    this.#refreshToken = refreshToken;
    await this.refresh();
    return this.#session as AccountSession;
  }

  /** The current refresh token, for the caller to store encrypted at rest. Never log it. */
  refreshTokenForStorage(): string | undefined {
    return this.#refreshToken;
  }

  /**
   * Renews the access token with the refresh token. Concurrent calls share one request.
   *
   * @throws ReauthRequiredError when the id server rejects the refresh token (terminal).
   * @throws CloudUnavailableError when the id server could not be reached after the retries.
   */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#doRefresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /**
   * Owned and Mammotion-direct devices, merged (SPEC §2.2).
   */
  async listDevices(): Promise<DiscoveredDevice[]> {
    const domestic = expectOk(await this.bearer('GET', `${this.#options.domesticBaseUrl}/device-server/v1/device/list`), 'device list');
    const pages: unknown[] = [];
    const pageSize = 100;
    // Bounded so a server that ignores paging cannot keep us looping.
    for (let pageNumber = 1; pageNumber <= 20; pageNumber++) {
      const page = expectOk(
        await this.bearer('POST', `${this.#iot()}/v1/user/device/page`, { iotId: '', pageNumber, pageSize }, this.#iotHeaders()),
        'device page',
      );
      pages.push(page);
      if (rowsOf(page).length < pageSize) break;
    }
    return mergeDeviceLists(domestic, pages);
  }

  /**
   * Fresh MQTT credentials (SPEC §2.3). Network trouble is retried (1 s, 2 s by default).
   */
  async mqttCredentials(): Promise<MqttCredentials> {
    const data = await this.#withRetry('mqtt credentials', async () =>
      expectOk(await this.bearer('POST', `${this.#iot()}/v1/mqtt/auth/jwt`, undefined, this.#iotHeaders()), 'mqtt credentials'),
    );
    const parsed = mqttData.safeParse(data);
    if (!parsed.success) throw new CloudError(0, 'MQTT credentials answer lacks host, jwt, clientId or username');
    const { host, jwt, clientId, username } = parsed.data;
    let address: BrokerAddress;
    try {
      address = parseBrokerAddress(host);
    } catch (error) {
      throw new CloudError(0, (error as Error).message);
    }
    return { address, clientId, username, jwt, expiresAt: jwtExpiryMs(jwt) };
  }

  /**
   * Sends one LubaMsg to a device through the thing-service invoke (SPEC §3.1). Resolves when
   * the cloud accepted it; the device's answer arrives later on MQTT.
   *
   * @throws DeviceOfflineError for codes 50103, 50104, 6205, 6221.
   * @throws GatewayTimeoutError for code 20056.
   * @throws RateLimitedError for HTTP 429 (blockedUntil = now + 12 h; the transport keeps its own block).
   * @throws CloudUnavailableError for timeouts, 408 and 5xx.
   * @throws CloudError for any other code.
   */
  async invoke(iotId: string, frame: Uint8Array): Promise<void> {
    const body = {
      args: { content: Buffer.from(frame).toString('base64') },
      deviceName: '',
      identifier: 'device_protobuf_sync_service',
      iotId,
      productKey: '',
    };
    const headers = {
      ...this.#iotHeaders(),
      'Request-Id': newRequestId(),
      'Accept-Language': 'en-US',
      'L-T-Z': `${Math.floor(this.#options.now() / 1000)}/0/0`,
    };
    const response = await this.bearer('POST', `${this.#iot()}/v1/mqtt/rpc/thing/service/invoke`, body, headers);
    throwInvokeError(iotId, response, this.#options.now());
  }

  /**
   * A bearer call. A refused token (HTTP 401, body 401 or 460) is refreshed once and the call
   * retried once; the HTTP status and envelope are returned for the caller to judge.
   *
   * @throws ReauthRequiredError when the account needs a new sign-in.
   */
  async bearer(method: 'GET' | 'POST', url: string, json?: unknown, headers: Record<string, string> = {}): Promise<CloudResponse> {
    const token = this.#requireToken();
    const first = await this.#send(method, url, token, json, headers);
    if (!isTokenRefusal(first)) return first;
    this.#log.info({ url: redactQuery(url) }, 'mammotion token refused; refreshing once');
    // Deduplicated by the stale token: callers that saw the same refusal share one refresh.
    if (this.#accessToken === token) await this.refresh();
    return this.#send(method, url, this.#requireToken(), json, headers);
  }

  /** Stops the refresh timer and forgets the tokens. */
  close(): void {
    clearTimeout(this.#timer);
    this.#closing.abort();
    this.#accessToken = undefined;
    this.#refreshToken = undefined;
    this.#setState('closed');
  }

  // ---------------------------------------------------------------- internals

  async #doRefresh(): Promise<void> {
    this.#assertOpen();
    const refreshToken = this.#refreshToken;
    if (!refreshToken || this.#state === 'reauth_required') throw this.#reauthError();
    const params = { client_id: this.#options.clientId, grant_type: 'refresh_token', refresh_token: refreshToken };
    const body = await this.#withRetry('token refresh', () => this.#tokenRequest(params));
    if (!isOkCode(body.code)) {
      // Terminal by design: Mammotion asked clients not to fall back to the password.
      this.#log.warn({ code: body.code, msg: body.msg }, 'mammotion refresh token rejected; the user must sign in again');
      this.#accessToken = undefined;
      this.#refreshToken = undefined;
      clearTimeout(this.#timer);
      this.#setState('reauth_required');
      throw this.#reauthError(body.code, body.msg);
    }
    this.#adopt(body.data);
    this.#log.info({ expiresAt: new Date(this.#session?.accessTokenExpiresAt ?? 0).toISOString() }, 'mammotion token refreshed');
  }

  /** One token request; transient statuses throw {@link CloudUnavailableError}. */
  async #tokenRequest(params: Record<string, string>): Promise<Envelope> {
    const { clientId, clientSecret, idBaseUrl, appVersion, timeoutMs } = this.#options;
    const timestamp = this.#options.now();
    const headers = {
      'User-Agent': USER_AGENT,
      'App-Version': appVersion,
      'Ma-App-Key': clientId,
      'Ma-Signature': oauthSignature(clientId, clientSecret, timestamp, params),
      'Ma-Timestamp': String(timestamp),
      'Client-Id': this.#clientIdHeader,
      'Client-Type': '1',
    };
    const url = `${idBaseUrl}${OAUTH_TOKEN_PATH}?${new URLSearchParams(params).toString()}`;
    const response = await exchange(url, { method: 'POST', headers }, timeoutMs);
    if (isTransientStatus(response.status)) throw new CloudUnavailableError(response.status, `Mammotion id server answered HTTP ${response.status}`, response.status);
    if (!response.body) throw new CloudError(response.status, `Mammotion id server answered HTTP ${response.status} without an envelope`, response.status);
    return response.body;
  }

  /** Takes the tokens of a login or refresh answer and schedules the next refresh. */
  #adopt(data: unknown): void {
    const parsed = tokenData.safeParse(data);
    if (!parsed.success) throw new CloudError(0, 'Mammotion token answer lacks access_token or refresh_token');
    const { access_token, refresh_token, expires_in, userInformation } = parsed.data;
    const claims = decodeJwtPayload(access_token);
    const iot = typeof claims?.iot === 'string' && claims.iot ? iotBaseUrl(claims.iot) : this.#session?.iotBaseUrl;
    if (!iot) throw new CloudError(0, 'Mammotion access token has no iot claim');
    const now = this.#options.now();
    const expiresAt = jwtExpiryMs(access_token) ?? (expires_in ? now + expires_in * 1000 : now + 3600_000);
    const account = userInformation?.userAccount;
    const previous = this.#session;
    this.#accessToken = access_token;
    this.#refreshToken = refresh_token;
    this.#session = {
      userAccount: account !== undefined && /^\d+$/.test(String(account)) ? Number(account) : previous?.userAccount,
      userId: userInformation?.userId !== undefined ? String(userInformation.userId) : previous?.userId,
      domainAbbreviation: userInformation?.domainAbbreviation ?? previous?.domainAbbreviation,
      iotBaseUrl: iot,
      accessTokenExpiresAt: expiresAt,
    };
    this.#schedule(expiresAt);
    this.#setState('signed_in');
    for (const listener of this.#tokenListeners) listener();
  }

  /** Refreshes `refreshLeadMs` before expiry; a token already inside the lead is refreshed at half its remaining life. */
  #schedule(expiresAt: number): void {
    clearTimeout(this.#timer);
    const remaining = expiresAt - this.#options.now();
    const wait = remaining - this.#options.refreshLeadMs > 0 ? remaining - this.#options.refreshLeadMs : Math.max(remaining / 2, 1000);
    this.#timer = setTimeout(() => void this.#scheduledRefresh(0), Math.min(wait, 2 ** 31 - 1));
    this.#timer.unref();
  }

  /** A scheduled refresh never gives up on network trouble; it only stops on a rejection or close. */
  async #scheduledRefresh(failures: number): Promise<void> {
    if (this.#state !== 'signed_in') return;
    try {
      await this.refresh();
    } catch (error) {
      if (!(error instanceof CloudUnavailableError) || this.#closing.signal.aborted) return;
      const { initialDelayMs, maxDelayMs } = this.#options.retry;
      const wait = Math.min(initialDelayMs * 2 ** failures, maxDelayMs);
      this.#log.warn({ err: error.message, retryInMs: wait }, 'mammotion token refresh failed; retrying');
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => void this.#scheduledRefresh(failures + 1), wait);
      this.#timer.unref();
    }
  }

  /** Retries transient failures with doubling back-off; other errors pass through at once. */
  async #withRetry<T>(what: string, call: () => Promise<T>): Promise<T> {
    const { attempts, initialDelayMs, maxDelayMs } = this.#options.retry;
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (!(error instanceof CloudUnavailableError) || attempt >= attempts || this.#closing.signal.aborted) throw error;
        const wait = Math.min(initialDelayMs * 2 ** (attempt - 1), maxDelayMs);
        this.#log.warn({ err: error.message, attempt, retryInMs: wait }, `mammotion ${what} failed; retrying`);
        await delay(wait, this.#closing.signal);
      }
    }
  }

  #send(method: string, url: string, token: string, json: unknown, headers: Record<string, string>): Promise<CloudResponse> {
    const init: RequestInit = {
      method,
      headers: {
        'User-Agent': USER_AGENT,
        ...headers,
        Authorization: `Bearer ${token}`,
        ...(json === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
    };
    if (json !== undefined) init.body = JSON.stringify(json);
    return exchange(url, init, this.#options.timeoutMs);
  }

  #iotHeaders(): Record<string, string> {
    return { 'Client-Id': this.#clientIdHeader, 'Client-Type': '1' };
  }

  #iot(): string {
    const iot = this.#session?.iotBaseUrl;
    if (!iot) throw this.#reauthError();
    return iot;
  }

  #requireToken(): string {
    this.#assertOpen();
    if (this.#state === 'reauth_required' || !this.#accessToken) throw this.#reauthError();
    return this.#accessToken;
  }

  #reauthError(code = 401, msg?: string): ReauthRequiredError {
    const reason = this.#state === 'signed_out' ? 'Not signed in to Mammotion' : 'The Mammotion session has expired; sign in again';
    return new ReauthRequiredError(code, msg ? `${reason} (${msg})` : reason);
  }

  #assertOpen(): void {
    if (this.#state === 'closed') throw new CloudError(0, 'The Mammotion account client is closed');
  }

  #setState(state: AccountState): void {
    if (this.#state === state) return;
    this.#state = state;
    for (const listener of [...this.#listeners]) {
      try {
        listener(state);
      } catch (error) {
        this.#log.error({ err: error }, 'mammotion account state listener threw');
      }
    }
  }
}

/** Maps an invoke answer to its typed error; returns when it is a success. */
function throwInvokeError(iotId: string, response: CloudResponse, now: number): void {
  const { status, body } = response;
  if (status === 429 || body?.code === 429) throw new RateLimitedError(iotId, now + TWELVE_HOURS_MS);
  if (isTransientStatus(status)) throw new CloudUnavailableError(status, `Mammotion invoke answered HTTP ${status}`, status);
  if (!body) throw new CloudError(status, `Mammotion invoke answered HTTP ${status} without an envelope`, status);
  if (isOkCode(body.code)) return;
  if (OFFLINE_CODES.has(body.code)) throw new DeviceOfflineError(iotId, body.code, body.msg || undefined);
  if (body.code === GATEWAY_TIMEOUT_CODE) throw new GatewayTimeoutError(iotId, body.msg || undefined);
  if (body.code === 401 || body.code === 460) throw new CloudError(body.code, 'Mammotion refused the token again after a refresh', status);
  throw new CloudError(body.code, `Mammotion invoke failed: ${body.msg || `code ${body.code}`}`, status);
}

/** URLs of token requests carry secrets in the query; logs get the path only. */
function redactQuery(url: string): string {
  const at = url.indexOf('?');
  return at === -1 ? url : `${url.slice(0, at)}?…`;
}
