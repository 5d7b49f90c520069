/**
 * Typed failures of the Mammotion cloud. Callers branch on the class (`instanceof`), never on
 * message text: a {@link DeviceOfflineError} means "wait for the mower", a
 * {@link ReauthRequiredError} means "ask the user to sign in again", a
 * {@link CloudUnavailableError} means "try later".
 *
 * @module
 */

/** Any failure answered by (or on the way to) the Mammotion cloud. */
export class CloudError extends Error {
  /** The body `code` of the cloud's envelope, or the HTTP status when there was no body code (0 = no answer). */
  readonly code: number;
  /** The HTTP status, when an HTTP answer arrived. */
  readonly httpStatus: number | undefined;

  constructor(code: number, message: string, httpStatus?: number, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.httpStatus = httpStatus;
  }
}

/** No usable answer (network error, timeout, HTTP 408 or 5xx): transient, try again later. Never a bad password. */
export class CloudUnavailableError extends CloudError {}

/** The id server refused the user name or password (body code ≠ 0 on a password login). */
export class LoginRejectedError extends CloudError {}

/**
 * The session cannot be renewed (refresh token rejected, or a token refused right after a
 * refresh). The user must sign in again; the hub never retries with a stored password.
 */
export class ReauthRequiredError extends CloudError {}

/** The cloud says the device is offline (codes 50103, 50104, 6205, 6221), or reported it offline on MQTT. */
export class DeviceOfflineError extends CloudError {
  readonly iotId: string;
  constructor(iotId: string, code: number, message = 'The device is offline') {
    super(code, message);
    this.iotId = iotId;
  }
}

/** The cloud accepted the command but the device did not answer in time (code 20056). */
export class GatewayTimeoutError extends CloudError {
  readonly iotId: string;
  constructor(iotId: string, message = 'The device did not answer the cloud in time') {
    super(20056, message);
    this.iotId = iotId;
  }
}

/** The cloud answered HTTP 429; sends to the device are blocked until {@link blockedUntil} (epoch ms). */
export class RateLimitedError extends CloudError {
  readonly iotId: string;
  readonly blockedUntil: number;
  constructor(iotId: string, blockedUntil: number) {
    super(429, `The Mammotion cloud rate-limited this device; sends are paused until ${new Date(blockedUntil).toISOString()}`, 429);
    this.iotId = iotId;
    this.blockedUntil = blockedUntil;
  }
}

/** Our own send budget for pre-1.30.25.1 firmware is spent; sends resume at {@link blockedUntil} (epoch ms). */
export class QuotaExceededError extends CloudError {
  readonly iotId: string;
  readonly blockedUntil: number;
  constructor(iotId: string, limit: number, blockedUntil: number) {
    super(0, `Send quota of ${limit} commands per 12 h used up for this device; next send allowed at ${new Date(blockedUntil).toISOString()}`);
    this.iotId = iotId;
    this.blockedUntil = blockedUntil;
  }
}

/** The device cannot be reached through this transport (e.g. it lives on Mammotion's Aliyun cloud). */
export class UnsupportedDeviceError extends CloudError {
  readonly iotId: string;
  constructor(iotId: string, message: string) {
    super(0, message);
    this.iotId = iotId;
  }
}

/** The transport was closed, or has given up (see its state). */
export class TransportClosedError extends CloudError {
  constructor(message = 'The transport is closed') {
    super(0, message);
  }
}
