/**
 * The hub's error table. Every failure a client can see has a stable `HUB_ERR_…` code from
 * this table and reaches the client in one JSON shape:
 * `{"error":{"code":"HUB_ERR_…","message":"…","details":…}}`.
 *
 * @module
 */

/** HTTP status and default message for each error code. */
export const ERRORS = {
  HUB_ERR_VALIDATION: { status: 400, message: 'The request is not valid' },
  HUB_ERR_MALFORMED_JSON: { status: 400, message: 'The request body is not valid JSON' },
  HUB_ERR_INVALID_ENTITY_ID: { status: 400, message: 'Entity ids look like domain.object_id, in a-z, 0-9 and _' },
  HUB_ERR_NO_RESPONSE: { status: 400, message: 'This action does not return a response' },
  HUB_ERR_UNAUTHENTICATED: { status: 401, message: 'Authentication required' },
  HUB_ERR_INVALID_CREDENTIALS: { status: 401, message: 'Wrong email or password' },
  HUB_ERR_FORBIDDEN: { status: 403, message: 'You do not have permission to do this' },
  HUB_ERR_ACCOUNT_DISABLED: { status: 403, message: 'This account is disabled' },
  HUB_ERR_CSRF: { status: 403, message: 'Cross-site request refused' },
  HUB_ERR_CORS_ORIGIN: { status: 403, message: "This origin may not call the hub's API from a browser" },
  HUB_ERR_REGISTRATION_CLOSED: { status: 403, message: 'Open registration is disabled on this hub' },
  HUB_ERR_NOT_FOUND: { status: 404, message: 'Not found' },
  HUB_ERR_HOME_NOT_FOUND: { status: 404, message: 'Home not found' },
  HUB_ERR_USER_NOT_FOUND: { status: 404, message: 'User not found' },
  HUB_ERR_TOKEN_NOT_FOUND: { status: 404, message: 'API token not found' },
  HUB_ERR_MEMBER_NOT_FOUND: { status: 404, message: 'This user is not a member of the home' },
  HUB_ERR_INVITATION_NOT_FOUND: { status: 404, message: 'Invitation not found, or it expired' },
  HUB_ERR_ENTITY_NOT_FOUND: { status: 404, message: 'Entity not found' },
  HUB_ERR_ACTION_NOT_FOUND: { status: 404, message: 'Action not found' },
  HUB_ERR_PLUGIN_NOT_FOUND: { status: 404, message: 'Plugin not found' },
  HUB_ERR_JOB_NOT_FOUND: { status: 404, message: 'Job not found' },
  HUB_ERR_DEVICE_NOT_FOUND: { status: 404, message: 'Device not found' },
  HUB_ERR_ALERT_NOT_FOUND: { status: 404, message: 'Alert not found' },
  HUB_ERR_VERSION_NOT_FOUND: { status: 404, message: 'Flow version not found' },
  HUB_ERR_ACCOUNT_NOT_FOUND: { status: 404, message: 'Linked account not found' },
  HUB_ERR_CLUSTER_NOT_FOUND: { status: 404, message: 'Cluster not found' },
  HUB_ERR_CLUSTER_MEMBER_NOT_FOUND: { status: 404, message: 'This yard is not in the cluster' },
  HUB_ERR_CLUSTER_PLAN_NOT_FOUND: { status: 404, message: 'Plan not found, or it expired; plan again' },
  HUB_ERR_ROAD_EXTRACT_NOT_FOUND: { status: 404, message: 'Road extract not found' },
  HUB_ERR_CLUSTER_RUN_NOT_FOUND: { status: 404, message: 'Cluster run not found' },
  HUB_ERR_EMAIL_TAKEN: { status: 409, message: 'A user with this email already exists' },
  HUB_ERR_ACCOUNT_LINKED: { status: 409, message: 'This account is already linked to the home' },
  HUB_ERR_LAST_OWNER: { status: 409, message: 'A home must keep at least one owner' },
  HUB_ERR_INVITATION_LIMIT: { status: 409, message: 'The home has as many pending invitations as allowed; revoke some or wait for them to expire' },
  HUB_ERR_ENTITY_OWNED: { status: 409, message: 'This entity is managed by a plugin' },
  HUB_ERR_ENTITY_ID_TAKEN: { status: 409, message: 'Another home uses this entity id; choose another' },
  HUB_ERR_ENTITY_QUOTA: { status: 409, message: 'The home holds as many entities as this hub allows (HUB_MAX_ENTITIES_PER_HOME)' },
  HUB_ERR_PLUGIN_DEPENDENCY: { status: 409, message: 'Other plugins depend on this one, or it depends on a plugin that is not running' },
  HUB_ERR_JOB_RUNNING: { status: 409, message: 'The job is running now' },
  HUB_ERR_ALERT_STATE: { status: 409, message: 'The alert is not in a state that allows this' },
  HUB_ERR_LAST_ADMIN: { status: 409, message: 'The hub must keep at least one active administrator' },
  HUB_ERR_DEVICE_STATE: { status: 409, message: 'The device cannot do this in its current state' },
  HUB_ERR_PLUGIN_NOT_CONFIGURED: { status: 409, message: 'The plugin needs configuration for this' },
  HUB_ERR_NODERED_OFF: { status: 409, message: 'Node-RED is not running on this hub instance' },
  HUB_ERR_RELINK_REQUIRED: { status: 409, message: 'The linked cloud account must be signed in again' },
  HUB_ERR_DEVICE_UNAVAILABLE: { status: 409, message: 'The device is offline or cannot be reached' },
  HUB_ERR_CLUSTER_EXISTS: { status: 409, message: 'This home already hosts a cluster; delete it first' },
  HUB_ERR_CLUSTER_HOST_YARD: { status: 409, message: "The host's own yard is always in its cluster; delete the cluster instead" },
  HUB_ERR_CLUSTER_RUN_ACTIVE: { status: 409, message: 'A run of this cluster is in progress; cancel it first' },
  HUB_ERR_CLUSTER_RUN_ENDED: { status: 409, message: 'The run has ended already' },
  HUB_ERR_CLUSTER_NO_MOWER: { status: 409, message: 'The host home has no mower to walk the route' },
  HUB_ERR_PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large' },
  HUB_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body must be application/json' },
  HUB_ERR_CLOUD_LOGIN_REFUSED: { status: 422, message: 'The cloud service refused these credentials' },
  HUB_ERR_CLUSTER_NO_ROAD_DATA: { status: 422, message: 'No road data covers this home; import an extract that covers it' },
  HUB_ERR_HOME_NO_LOCATION: { status: 422, message: 'The home has no coordinates; set its latitude and longitude' },
  HUB_ERR_CLUSTER_EMPTY: { status: 422, message: "The plan has no yards besides the host's; there is nothing to accept" },
  HUB_ERR_ROADS_UNUSABLE: { status: 422, message: 'The road data has no usable line features' },
  HUB_ERR_RATE_LIMITED: { status: 429, message: 'Too many attempts; try again later' },
  HUB_ERR_TOO_MANY_SUBSCRIPTIONS: { status: 429, message: 'This connection holds too many subscriptions; unsubscribe some first' },
  HUB_ERR_INTERNAL: { status: 500, message: 'Internal error' },
  HUB_ERR_UPSTREAM: { status: 502, message: 'A cloud service the hub depends on refused or failed the request' },
  HUB_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'The device did not answer in time' },
} as const satisfies Record<`HUB_ERR_${string}`, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** The JSON body of every error response. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

/** An error that carries a code from {@link ERRORS}; the REST layer turns it into {@link ErrorBody}. */
export class HubError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;
  /** Response headers the error requires, such as `Retry-After` on 429. */
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    message?: string,
    options: { details?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message ?? ERRORS[code].message, { cause: options.cause });
    this.name = 'HubError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = options.details;
    this.headers = options.headers ?? {};
  }

  toBody(): ErrorBody {
    const error: ErrorBody['error'] = { code: this.code, message: this.message };
    if (this.details !== undefined) error.details = this.details;
    return { error };
  }
}

/**
 * Creates a {@link HubError}.
 *
 * @example
 * throw hubError('HUB_ERR_HOME_NOT_FOUND');
 * throw hubError('HUB_ERR_RATE_LIMITED', undefined, { headers: { 'Retry-After': '30' } });
 */
export function hubError(code: ErrorCode, message?: string, options?: ConstructorParameters<typeof HubError>[2]): HubError {
  return new HubError(code, message, options);
}

/**
 * A problem that stops the hub from starting and that the operator can fix (a bad setting,
 * a port in use, a changed migration). `npm start` prints its message without a stack trace.
 */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}
