/**
 * The official Mammotion Open API (SPEC §11): client-credentials OAuth2 and a small REST
 * surface on `api-open.mammotion.com`. Sanctioned by Mammotion, but with far less telemetry
 * than the app's cloud (no position).
 *
 * **Unverified.** Every path, field and answer shape here comes from third-party client
 * repositories as summarised in SPEC §11, not from Mammotion's documentation or a live
 * account: the token request format (standard OAuth2 form body), the envelope and the status
 * fields may differ. Check against developer.mammotion.com before relying on it.
 *
 * @experimental
 * @module
 */
import type { Logger } from '../../../core/log/index.js';
import { DEFAULT_ID_BASE_URL } from './account.js';
import { CloudError, CloudUnavailableError } from './errors.js';
import { rowsOf } from './devices.js';
import { exchange, expectOk, isTransientStatus } from './http.js';

/** Default Open API base URL. */
export const DEFAULT_OPEN_API_BASE_URL = 'https://api-open.mammotion.com';

/** Actions `POST /v1/mower/action` accepts (SPEC §11). */
export const OPEN_API_ACTIONS = ['START', 'PAUSE', 'RESUME', 'STOP', 'RETURN', 'CANCEL_RETURN'] as const;
/** One of {@link OPEN_API_ACTIONS}. */
export type OpenApiAction = (typeof OPEN_API_ACTIONS)[number];

/** Options of {@link MammotionOpenApiClient}. */
export interface OpenApiClientOptions {
  /** Developer client id from developer.mammotion.com (user configuration). */
  clientId: string;
  /** Developer client secret (user configuration). Never logged. */
  clientSecret: string;
  /** REST base URL. Default {@link DEFAULT_OPEN_API_BASE_URL}. */
  baseUrl?: string;
  /** Token server base URL. Default {@link DEFAULT_ID_BASE_URL}. */
  idBaseUrl?: string;
  log: Logger;
  /** Per-request timeout. Default 30 000 ms. */
  timeoutMs?: number;
  now?: () => number;
}

/** A mower as the Open API lists it; unknown fields are kept in `raw`. */
export interface OpenApiMower {
  id: string;
  name: string | undefined;
  raw: Record<string, unknown>;
}

/** A mower's status as the Open API reports it. */
export interface OpenApiStatus {
  /** Textual status: Standby, Working, Paused, Mapping, Updating, Offline, Returning, Abnormal. */
  status: string | undefined;
  batteryLevel: number | undefined;
  chargeStatus: unknown;
  raw: Record<string, unknown>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);
const obj = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/**
 * Client of the official Open API. Unverified against a live account — see the module notes.
 *
 * @experimental
 * @example
 * const api = new MammotionOpenApiClient({ clientId, clientSecret, log });
 * const [mower] = await api.listMowers();
 * await api.action(mower.id, 'START');
 */
export class MammotionOpenApiClient {
  readonly #o: Required<OpenApiClientOptions>;
  #token: { value: string; expiresAt: number } | undefined;
  #fetching: Promise<string> | undefined;

  constructor(options: OpenApiClientOptions) {
    if (!options.clientId || !options.clientSecret) throw new Error('Mammotion Open API client id and secret are required (from your configuration)');
    this.#o = {
      ...options,
      baseUrl: (options.baseUrl ?? DEFAULT_OPEN_API_BASE_URL).replace(/\/+$/, ''),
      idBaseUrl: (options.idBaseUrl ?? DEFAULT_ID_BASE_URL).replace(/\/+$/, ''),
      timeoutMs: options.timeoutMs ?? 30_000,
      now: options.now ?? Date.now,
    };
  }

  /** `GET /v1/mowers`. */
  async listMowers(): Promise<OpenApiMower[]> {
    const data = await this.#call('GET', '/v1/mowers');
    return rowsOf(data).flatMap((row) => {
      const id = str(row.deviceId) ?? str(row.id) ?? str(row.iotId);
      return id ? [{ id, name: str(row.deviceName) ?? str(row.name), raw: row }] : [];
    });
  }

  /** `GET /v1/mower/{id}`. */
  async status(id: string): Promise<OpenApiStatus> {
    const raw = obj(await this.#call('GET', `/v1/mower/${encodeURIComponent(id)}`));
    const battery = raw.batteryLevel;
    return { status: str(raw.status), batteryLevel: typeof battery === 'number' ? battery : undefined, chargeStatus: raw.chargeStatus, raw };
  }

  /** `POST /v1/mower/action {deviceId, action, params}`. */
  async action(id: string, action: OpenApiAction, params: Record<string, unknown> = {}): Promise<void> {
    if (!OPEN_API_ACTIONS.includes(action)) throw new CloudError(0, `Unknown Open API action ${String(action)}`);
    await this.#call('POST', '/v1/mower/action', { deviceId: id, action, params });
  }

  /** A bearer call; a refused token is fetched anew once. */
  async #call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.#accessToken(attempt > 0);
      const init: RequestInit = { method, headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) } };
      if (body !== undefined) init.body = JSON.stringify(body);
      const response = await exchange(`${this.#o.baseUrl}${path}`, init, this.#o.timeoutMs);
      const refused = response.status === 401 || response.body?.code === 401;
      if (refused && attempt === 0) continue;
      return expectOk(response, `Open API ${method} ${path}`);
    }
  }

  #accessToken(renew: boolean): Promise<string> {
    if (!renew && this.#token && this.#token.expiresAt - 60_000 > this.#o.now()) return Promise.resolve(this.#token.value);
    this.#fetching ??= this.#fetchToken().finally(() => {
      this.#fetching = undefined;
    });
    return this.#fetching;
  }

  /** Client-credentials grant as a standard OAuth2 form body (unverified, see the module notes). */
  async #fetchToken(): Promise<string> {
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: this.#o.clientId, client_secret: this.#o.clientSecret });
    const response = await exchange(`${this.#o.idBaseUrl}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    }, this.#o.timeoutMs);
    if (isTransientStatus(response.status)) throw new CloudUnavailableError(response.status, `Open API token: HTTP ${response.status}`, response.status);
    // Accept both a Mammotion envelope and a bare OAuth2 answer.
    const data = obj(response.body ? expectOk(response, 'Open API token') : response.json);
    const value = str(data.access_token);
    if (!value) throw new CloudError(response.body?.code ?? response.status, 'Open API token answer has no access_token', response.status);
    const expiresIn = Number(data.expires_in);
    this.#token = { value, expiresAt: this.#o.now() + (Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn * 1000 : 3600_000) };
    this.#o.log.info({ hasToken: true }, 'mammotion open api token obtained');
    return value;
  }
}
