/**
 * The WebSocket API at `/api/websocket`, speaking Home Assistant's protocol so that HA
 * clients can use the hub: auth phase, then commands with strictly increasing ids.
 * Everything is scoped to the caller's homes.
 *
 * @module
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import { servicesByDomain, type ActionRegistry } from '../../actions/index.js';
import { homeRole, type Principal } from '../../auth/index.js';
import { ALL_EVENTS, canSee, createContext, EVENT_TYPE, fireAsCaller, type EventBus, type HubEvent, type StateChangedData } from '../../bus/index.js';
import { HubError, hubError, type ErrorCode } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import type { StateMachine } from '../../states/index.js';
import { jsonProblem } from '../rest/index.js';
import { compressState, diffStates, type CompressedDiff, type CompressedState } from './compressed.js';
import { TokenBucket, type WebSocketLimits } from './limits.js';

export type { WebSocketLimits } from './limits.js';

/** The Home Assistant protocol level we speak; HA clients pick features by it. */
export const HA_VERSION = '2025.1.0';

export const WEBSOCKET_PATH = '/api/websocket';

const AUTH_TIMEOUT_MS = 10_000;
const HEARTBEAT_MS = 30_000;
/** A client that lets this much pile up unread is disconnected rather than buffered forever. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
const MAX_MESSAGE_BYTES = 1024 * 1024;
/** Messages one tick may queue for a coalescing client. */
const MAX_COALESCED = 10_000;

export interface WebSocketApiOptions {
  authenticateToken(token: string): Promise<Principal | undefined>;
  bus: EventBus;
  states: StateMachine;
  actions: ActionRegistry;
  log: Logger;
  hubVersion: string;
  /** `get_config` for a caller: location and time zone of their home. */
  homeConfig(principal: Principal): Promise<{ name: string; latitude: number; longitude: number; time_zone: string }>;
  /** Plugin ids and action domains, for `get_config.components`. */
  components(): string[];
  limits: WebSocketLimits;
}

const command = z.object({ id: z.number().int().positive(), type: z.string() }).passthrough();

/** Home Assistant's error codes for the hub's. */
function haErrorCode(code: ErrorCode): string {
  if (code === 'HUB_ERR_VALIDATION' || code === 'HUB_ERR_MALFORMED_JSON' || code === 'HUB_ERR_INVALID_ENTITY_ID') return 'invalid_format';
  if (code.endsWith('_NOT_FOUND')) return 'not_found';
  if (code === 'HUB_ERR_FORBIDDEN' || code === 'HUB_ERR_UNAUTHENTICATED') return 'unauthorized';
  if (code === 'HUB_ERR_RATE_LIMITED' || code === 'HUB_ERR_TOO_MANY_SUBSCRIPTIONS') return 'not_allowed';
  return 'home_assistant_error';
}

/** The JSON id of a message, echoed in an error about it when it is a number. */
function idOf(message: unknown): number | null {
  const id = (message as { id?: unknown } | null | undefined)?.id;
  return typeof id === 'number' ? id : null;
}

export class WebSocketApi {
  readonly #server = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  readonly #connections = new Set<Connection>();
  /** Authenticated connections per user id, and whose each one is, for the per-user cap. */
  readonly #perUser = new Map<string, number>();
  readonly #userOf = new Map<Connection, string>();
  readonly #heartbeat: NodeJS.Timeout;
  readonly #recheck: NodeJS.Timeout;
  #rechecking: Promise<void> | undefined;

  constructor(private readonly options: WebSocketApiOptions) {
    this.#heartbeat = setInterval(() => this.#checkAlive(), HEARTBEAT_MS).unref();
    this.#recheck = setInterval(() => void this.recheckCredentials(), options.limits.recheckMs).unref();
  }

  /** Takes over an HTTP upgrade for {@link WEBSOCKET_PATH}. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#server.handleUpgrade(request, socket, head, (ws) => {
      const connection: Connection = new Connection(ws, this.options, (userId: string): boolean => this.#admit(connection, userId));
      this.#connections.add(connection);
      ws.once('close', () => {
        this.#connections.delete(connection);
        this.#release(connection);
      });
    });
  }

  /**
   * Checks every open connection's credential again, one query per distinct token, so a logout,
   * an expired session, a revoked token, a disabled account or a changed membership reaches open
   * sockets within `limits.recheckMs`. Commands use the last result and cost no query. While a
   * check runs, further calls share it.
   */
  recheckCredentials(): Promise<void> {
    this.#rechecking ??= this.#recheckAll().finally(() => (this.#rechecking = undefined));
    return this.#rechecking;
  }

  async #recheckAll(): Promise<void> {
    const byToken = new Map<string, Connection[]>();
    for (const connection of this.#connections) {
      const token = connection.token;
      if (!token) continue;
      const sharing = byToken.get(token);
      if (sharing) sharing.push(connection);
      else byToken.set(token, [connection]);
    }
    await Promise.all(
      [...byToken].map(async ([token, connections]) => {
        let principal: Principal | undefined;
        try {
          principal = await this.options.authenticateToken(token);
        } catch (error) {
          // The database is away: keep serving the last known principal rather than drop everyone.
          this.options.log.warn({ err: error }, 'websocket credential check failed; trying again at the next one');
          return;
        }
        for (const connection of connections) connection.credentialChecked(principal);
      }),
    );
  }

  #admit(connection: Connection, userId: string): boolean {
    const held = this.#perUser.get(userId) ?? 0;
    if (held >= this.options.limits.maxConnectionsPerUser) return false;
    this.#perUser.set(userId, held + 1);
    this.#userOf.set(connection, userId);
    return true;
  }

  #release(connection: Connection): void {
    const userId = this.#userOf.get(connection);
    if (userId === undefined) return;
    this.#userOf.delete(connection);
    const held = this.#perUser.get(userId)! - 1;
    if (held > 0) this.#perUser.set(userId, held);
    else this.#perUser.delete(userId);
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Closes every connection (code 1001, going away). */
  close(): void {
    clearInterval(this.#heartbeat);
    clearInterval(this.#recheck);
    for (const ws of this.#server.clients) ws.close(1001, 'Hub stopping');
    this.#server.close();
  }

  #checkAlive(): void {
    for (const ws of this.#server.clients as Set<WebSocket & { alive?: boolean }>) {
      if (ws.alive === false) {
        ws.terminate();
        continue;
      }
      ws.alive = false;
      ws.ping();
    }
  }
}

class Connection {
  #principal: Principal | undefined;
  #authenticating: Promise<void> | undefined;
  #token: string | undefined;
  #lastId = 0;
  #coalesce = false;
  #outbox: unknown[] = [];
  readonly #subscriptions = new Map<number, () => void>();
  readonly #commands: TokenBucket;
  readonly #log: Logger;
  #authTimer: NodeJS.Timeout;

  /**
   * @param admit takes one of the user's connection slots; false when they hold them all
   */
  constructor(
    private readonly ws: WebSocket & { alive?: boolean },
    private readonly options: WebSocketApiOptions,
    private readonly admit: (userId: string) => boolean,
  ) {
    this.#log = options.log.child({ ws: createContext().id });
    this.#commands = new TokenBucket(options.limits.commandBurst, options.limits.commandRate);
    ws.alive = true;
    ws.on('pong', () => (ws.alive = true));
    this.#authTimer = setTimeout(() => ws.close(4001, 'Authentication timed out'), AUTH_TIMEOUT_MS);
    ws.on('message', (raw, isBinary) => {
      this.#receive(isBinary ? '' : raw.toString()).catch((error: unknown) => this.#log.error({ err: error }, 'websocket message failed'));
    });
    ws.on('close', () => {
      clearTimeout(this.#authTimer);
      this.#unsubscribeAll();
    });
    ws.on('error', (error) => this.#log.warn({ err: error }, 'websocket error'));
    this.#send({ type: 'auth_required', ha_version: HA_VERSION });
  }

  /** The credential this connection authenticated with, once it has. */
  get token(): string | undefined {
    return this.#token;
  }

  /** Takes the result of a credential re-check: the caller as they are now, or gone. */
  credentialChecked(principal: Principal | undefined): void {
    if (principal) {
      this.#principal = principal;
      return;
    }
    this.#log.info('websocket credential no longer valid; closing');
    // Nothing more reaches or runs for this caller, even in the moments the close handshake takes.
    this.#principal = undefined;
    this.#token = undefined;
    this.#unsubscribeAll();
    this.ws.close(4001, 'Credential no longer valid');
  }

  #unsubscribeAll(): void {
    for (const unsubscribe of this.#subscriptions.values()) unsubscribe();
    this.#subscriptions.clear();
  }

  async #receive(text: string): Promise<void> {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      message = undefined;
    }
    // A command sent right behind the auth message waits for the auth to finish.
    if (this.#authenticating) await this.#authenticating;
    if (this.ws.readyState !== this.ws.OPEN) return; // closed meanwhile (a revoked credential): run nothing more
    if (!this.#principal) {
      this.#authenticating = this.#authenticate(message).finally(() => (this.#authenticating = undefined));
      return this.#authenticating;
    }
    // Refused commands leave their id unused, so a client may send it again after a pause.
    if (!this.#commands.take()) {
      return this.#error(idOf(message), 'not_allowed', `Too many commands (at most ${this.options.limits.commandRate} a second); slow down`, 'HUB_ERR_RATE_LIMITED');
    }
    // Such data would break the events that carry it on (JSON.stringify recurses) or the writer.
    const problem = jsonProblem(message);
    if (problem) return this.#error(idOf(message), 'invalid_format', problem.message);
    const parsed = command.safeParse(message);
    if (!parsed.success) return this.#error(idOf(message), 'invalid_format', 'Message needs an integer id and a type');
    // Ids are checked in arrival order, before anything waits; commands then run concurrently.
    const { id, type } = parsed.data;
    if (id <= this.#lastId) return this.#error(id, 'id_reuse', 'Identifier values have to increase.');
    this.#lastId = id;
    try {
      await this.#handle(id, type, parsed.data);
    } catch (error) {
      if (error instanceof HubError) return this.#error(id, haErrorCode(error.code), error.message, error.code);
      if (error instanceof z.ZodError) {
        return this.#error(id, 'invalid_format', error.issues.map((i) => `${i.path.join('.') || type}: ${i.message}`).join('; '));
      }
      this.#log.error({ err: error, type }, 'websocket command failed');
      this.#error(id, 'unknown_error', 'Internal error');
    }
  }

  async #authenticate(message: unknown): Promise<void> {
    const auth = z.object({ type: z.literal('auth'), access_token: z.string().min(1).max(512) }).safeParse(message);
    const principal = auth.success ? await this.options.authenticateToken(auth.data.access_token) : undefined;
    if (this.ws.readyState !== this.ws.OPEN) return; // gave up while we checked: hold no slot
    if (!principal) {
      this.#send({ type: 'auth_invalid', message: auth.success ? 'Invalid access token or password' : 'Expected {"type":"auth","access_token":…}' });
      this.#flush();
      this.ws.close(4001, 'Authentication failed');
      return;
    }
    clearTimeout(this.#authTimer);
    if (!this.admit(principal.user.id)) {
      const { maxConnectionsPerUser } = this.options.limits;
      this.#log.info({ userId: principal.user.id, maxConnectionsPerUser }, 'websocket refused: too many connections for the user');
      this.#send({ type: 'auth_invalid', message: `Too many connections for this user (at most ${maxConnectionsPerUser}); close one first` });
      this.#flush();
      this.ws.close(1008, 'Too many connections');
      return;
    }
    this.#principal = principal;
    this.#token = auth.data!.access_token;
    this.#log.info({ userId: principal.user.id }, 'websocket authenticated');
    this.#send({ type: 'auth_ok', ha_version: HA_VERSION });
  }

  async #handle(id: number, type: string, msg: Record<string, unknown>): Promise<void> {
    const principal = this.#principal!;
    const { states, actions, bus } = this.options;
    switch (type) {
      case 'ping':
        return this.#send({ id, type: 'pong' });
      case 'supported_features':
        this.#coalesce = z.object({ features: z.object({ coalesce_messages: z.number().optional() }) }).parse(msg).features.coalesce_messages === 1;
        return this.#result(id, null);
      case 'get_states':
        return this.#result(id, states.visibleTo(principal));
      case 'get_services':
        return this.#result(id, servicesByDomain(actions.list(principal)));
      case 'get_config':
        return this.#result(id, await this.#config(principal));
      case 'subscribe_events': {
        const { event_type } = z.object({ event_type: z.string().max(64).optional() }).parse(msg);
        this.#subscribe(id, () => bus.on(event_type ?? ALL_EVENTS, (event) => this.#forward(id, event)));
        return this.#result(id, null);
      }
      case 'unsubscribe_events': {
        const { subscription } = z.object({ subscription: z.number().int() }).parse(msg);
        const unsubscribe = this.#subscriptions.get(subscription);
        if (!unsubscribe) return this.#error(id, 'not_found', 'Subscription not found.');
        unsubscribe();
        this.#subscriptions.delete(subscription);
        return this.#result(id, null);
      }
      case 'subscribe_entities': {
        const { entity_ids } = z.object({ entity_ids: z.array(z.string().max(255)).optional() }).parse(msg);
        return this.#subscribeEntities(id, entity_ids && new Set(entity_ids));
      }
      case 'call_service': {
        const call = z
          .object({
            domain: z.string(),
            service: z.string(),
            service_data: z.record(z.string(), z.unknown()).optional(),
            target: z.object({ entity_id: z.union([z.string(), z.array(z.string())]).optional() }).optional(),
            return_response: z.boolean().optional(),
          })
          .parse(msg);
        const result = await actions.call(call.domain, call.service, call.service_data ?? {}, {
          principal,
          target: call.target,
          returnResponse: call.return_response,
        });
        return this.#result(id, { context: result.context, response: call.return_response ? result.response : null });
      }
      case 'fire_event': {
        const { event_type, event_data } = z
          .object({ event_type: z.string().regex(EVENT_TYPE), event_data: z.record(z.string(), z.unknown()).optional() })
          .parse(msg);
        return this.#result(id, { context: fireAsCaller(bus, principal, event_type, event_data ?? {}).context });
      }
      default:
        return this.#error(id, 'unknown_command', `Unknown command ${type}.`);
    }
  }

  /** Registers a subscription under its command's id, within the per-connection cap. */
  #subscribe(id: number, listen: () => () => void): void {
    const { maxSubscriptions } = this.options.limits;
    if (this.#subscriptions.size >= maxSubscriptions) {
      throw hubError('HUB_ERR_TOO_MANY_SUBSCRIPTIONS', `This connection holds ${maxSubscriptions} subscriptions, the most it may; unsubscribe some first`);
    }
    this.#subscriptions.set(id, listen());
  }

  #forward(id: number, event: HubEvent): void {
    if (!this.#principal || !canSee(event, this.#principal)) return;
    this.#send({ id, type: 'event', event });
  }

  #subscribeEntities(id: number, only: ReadonlySet<string> | undefined): void {
    // The current principal, not the one at subscribe time: a re-check may have taken a home away.
    const wanted = (entityId: string, homeId: string) =>
      (!only || only.has(entityId)) && this.#principal !== undefined && homeRole(this.#principal, homeId) !== undefined;
    this.#subscribe(id, () =>
      this.options.bus.on('state_changed', (event: HubEvent<StateChangedData>) => {
        const { entity_id, old_state, new_state } = event.data;
        if (event.home_id === null || !wanted(entity_id, event.home_id)) return;
        let update: { a?: Record<string, CompressedState>; c?: Record<string, CompressedDiff>; r?: string[] };
        if (!new_state) update = { r: [entity_id] };
        else if (!old_state) update = { a: { [entity_id]: compressState(new_state) } };
        else update = { c: { [entity_id]: diffStates(old_state, new_state) } };
        this.#send({ id, type: 'event', event: update });
      }),
    );
    const initial: Record<string, CompressedState> = {};
    for (const entry of this.options.states.entries()) {
      if (wanted(entry.state.entity_id, entry.homeId)) initial[entry.state.entity_id] = compressState(entry.state);
    }
    this.#result(id, null);
    this.#send({ id, type: 'event', event: { a: initial } });
  }

  async #config(principal: Principal) {
    const home = await this.options.homeConfig(principal);
    return {
      location_name: home.name,
      latitude: home.latitude,
      longitude: home.longitude,
      elevation: 0,
      unit_system: { length: 'km', accumulated_precipitation: 'mm', mass: 'kg', pressure: 'Pa', temperature: '°C', volume: 'L', wind_speed: 'm/s' },
      time_zone: home.time_zone,
      components: this.options.components(),
      version: HA_VERSION,
      hub_version: this.options.hubVersion,
      config_dir: '',
      config_source: 'storage',
      allowlist_external_dirs: [],
      allowlist_external_urls: [],
      whitelist_external_dirs: [],
      recovery_mode: false,
      safe_mode: false,
      state: 'RUNNING',
      external_url: null,
      internal_url: null,
      currency: 'EUR',
      country: null,
      language: 'en',
    };
  }

  #result(id: number, result: unknown): void {
    this.#send({ id, type: 'result', success: true, result });
  }

  #error(id: number | null, code: string, message: string, hubCode?: ErrorCode): void {
    this.#send({ id, type: 'result', success: false, error: { code, message, ...(hubCode && { hub_code: hubCode }) } });
  }

  /**
   * Queues a message; with `coalesce_messages` everything queued in one tick goes out as one
   * JSON array. A client that does not read (the socket's buffer grows past the bound) is cut off.
   */
  #send(message: unknown): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.#log.warn({ buffered: this.ws.bufferedAmount }, 'websocket client too slow; disconnecting');
      this.ws.terminate();
      return;
    }
    if (!this.#coalesce) {
      this.ws.send(JSON.stringify(message));
      return;
    }
    this.#outbox.push(message);
    if (this.#outbox.length === 1) setImmediate(() => this.#flush());
    if (this.#outbox.length > MAX_COALESCED) {
      this.#log.warn({ queued: this.#outbox.length }, 'websocket client cannot keep up; disconnecting');
      this.#outbox = [];
      this.ws.terminate();
    }
  }

  #flush(): void {
    if (this.#outbox.length === 0 || this.ws.readyState !== this.ws.OPEN) return;
    const batch = this.#outbox;
    this.#outbox = [];
    this.ws.send(JSON.stringify(batch.length === 1 ? batch[0] : batch));
  }
}
