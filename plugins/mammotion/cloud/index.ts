/**
 * The Mammotion cloud transports: the Mammotion-direct cloud the app uses (account client +
 * MQTT/HTTPS transport) and the official Open API. Frames are opaque LubaMsg bytes here; the
 * protobuf codec lives in `../protocol`.
 *
 * @example
 * import { MammotionAccountClient, MammotionCloudTransport } from './cloud/index.js';
 * const account = new MammotionAccountClient({ clientId, clientSecret, log });
 * await account.login(email, password);
 * const transport = new MammotionCloudTransport({ account, log, syncFrame });
 * await transport.start();
 *
 * @module
 */
import type { DiscoveredDevice } from './devices.js';

export {
  DEFAULT_DOMESTIC_BASE_URL,
  DEFAULT_ID_BASE_URL,
  GATEWAY_TIMEOUT_CODE,
  MammotionAccountClient,
  OFFLINE_CODES,
  type AccountClientOptions,
  type AccountSession,
  type AccountState,
  type MqttCredentials,
  type RetryPolicy,
} from './account.js';
export { ALIYUN_NOT_SUPPORTED, isAliyunProductKey } from './aliyun.js';
export { parseBrokerAddress, type BrokerAddress } from './broker-address.js';
export type { DiscoveredDevice } from './devices.js';
export {
  CloudError,
  CloudUnavailableError,
  DeviceOfflineError,
  GatewayTimeoutError,
  LoginRejectedError,
  QuotaExceededError,
  RateLimitedError,
  ReauthRequiredError,
  TransportClosedError,
  UnsupportedDeviceError,
} from './errors.js';
export { FRAME_EVENT, decodeBase64, deviceTopics } from './inbound.js';
export { decodeJwtPayload, iotBaseUrl, jwtExpiryMs, type MammotionTokenClaims } from './jwt.js';
export {
  DEFAULT_OPEN_API_BASE_URL,
  MammotionOpenApiClient,
  OPEN_API_ACTIONS,
  type OpenApiAction,
  type OpenApiClientOptions,
  type OpenApiMower,
  type OpenApiStatus,
} from './open-api.js';
export { DEFAULT_SEND_LIMIT, RATE_LIMIT_REMOVED_VERSION, compareVersions, isQuotaExempt, type SendBudget } from './quota.js';
export { OAUTH_TOKEN_PATH, oauthSignature } from './signature.js';
export { MammotionCloudTransport, type CloudTransportOptions, type TransportStats } from './transport.js';

/** Where a transport stands. `reauth_required`, `failed` and `closed` need someone to act; the others heal by themselves. */
export type TransportState = 'connecting' | 'connected' | 'reconnecting' | 'reauth_required' | 'failed' | 'closed';

/** A mower as a transport knows it. */
export interface CloudDevice extends DiscoveredDevice {
  /** Which Mammotion cloud hosts it. */
  cloud: 'mammotion' | 'aliyun';
  /** False when this transport cannot drive it; {@link unsupportedReason} says why, in words for the user. */
  supported: boolean;
  unsupportedReason?: string;
}

/**
 * What the mower driver needs from any way of reaching a mower (cloud, simulator, later BLE).
 * Frames are raw LubaMsg bytes; the transport never looks inside them.
 */
export interface MowerTransport {
  /** The current state; changes are announced through {@link onStateChange}. */
  readonly state: TransportState;
  /** Calls `listener` on every state change; returns the disposer. */
  onStateChange(listener: (state: TransportState) => void): () => void;
  /** The account's devices, fetched anew (new ones are subscribed at once). */
  devices(): Promise<CloudDevice[]>;
  /**
   * Sends one frame to the device. Resolves when the cloud accepted it; the device's answer
   * arrives through {@link onFrame}.
   */
  send(device: CloudDevice, frame: Uint8Array): Promise<void>;
  /** Calls `listener` with every frame a device sends (exact bytes); returns the disposer. */
  onFrame(listener: (iotId: string, frame: Uint8Array) => void): () => void;
  /** Calls `listener` when a device is reported or found online/offline; returns the disposer. */
  onOnline(listener: (iotId: string, online: boolean) => void): () => void;
  /** Stops everything; the transport is unusable afterwards. */
  close(): Promise<void>;
}

