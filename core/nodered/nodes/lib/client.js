// @ts-check
'use strict';
/**
 * The hub client behind every hub node: the same interface in both modes of the `hub-server`
 * config node, so each node is written once.
 *
 * - "this hub" ({@link LocalClient}): the kernel's {@link HubBridge} (`RED.settings.hub`).
 * - "remote hub" ({@link RemoteClient}): another hub's Home-Assistant-shaped WebSocket API
 *   (`<url>/api/websocket`), with reconnect (1 s doubling to 30 s), heartbeat (`ping` every
 *   30 s, reconnect when no `pong` within 5 s), resubscription after a reconnect, and a state
 *   cache filled by `get_states` and `state_changed` events. Actions and history come from the
 *   remote hub's REST API (`/api/actions`, `/api/history/period`), with the same token.
 *
 * Both gate on readiness: no listener hears anything before `ready` (the ready barrier).
 */
const WebSocket = require('ws');

/**
 * @typedef {{ entity_id: string, state: string, attributes: Record<string, unknown>, last_changed: string, last_updated: string, context: unknown }} State
 * @typedef {{ entity_id: string, old_state: State | null, new_state: State | null }} StateChange
 * @typedef {{ event_type: string, data: Record<string, unknown>, origin?: string, time_fired?: string, context?: unknown, home_id?: string | null }} HubEvent
 * @typedef {{ domain: string, name: string, description: string, role: string, target: { domain?: string } | null, response: 'none' | 'optional' | 'only', fields: Record<string, unknown> }} ActionDescription
 * @typedef {'connecting' | 'connected' | 'disconnected'} Status
 * @typedef {{ entity_id?: string | string[] }} Target
 * @typedef {{ info(msg: string): void, warn(msg: string): void, error(msg: string): void }} Log
 *
 * @typedef {object} HubBridge what core/nodered/bridge.ts hands over as `RED.settings.hub`
 * @property {Promise<void>} ready
 * @property {(entityId: string) => State | undefined} state
 * @property {() => State[]} states
 * @property {(listener: (change: StateChange) => void) => () => void} onStateChanged
 * @property {(eventType: string, listener: (event: HubEvent) => void) => () => void} onEvent
 * @property {(eventType: string, data: Record<string, unknown>, homeId?: string) => void} fireEvent
 * @property {(domain: string, action: string, data: Record<string, unknown>, target?: Target) => Promise<{ response: unknown }>} callAction
 * @property {() => ActionDescription[]} actions
 * @property {(entityIds: string[], start: Date, end: Date) => Promise<unknown[][]>} history
 */

const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 30_000;
const HEARTBEAT_MS = 30_000;
const PONG_TIMEOUT_MS = 5000;
const REQUEST_TIMEOUT_MS = 30_000;

/** Status listeners, shared by both clients. */
class StatusSource {
  constructor() {
    /** @type {Status} */
    this.status = 'connecting';
    /** @type {Set<(status: Status) => void>} */
    this.statusListeners = new Set();
  }

  /** @param {(status: Status) => void} listener @returns {() => void} */
  onStatus(listener) {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  /** @param {Status} status */
  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    for (const listener of [...this.statusListeners]) {
      try {
        listener(status);
      } catch {
        // a node's status display must not break the client
      }
    }
  }
}

/** "This hub": the bridge, with the ready barrier applied to every listener. */
class LocalClient extends StatusSource {
  /** @param {HubBridge | undefined} bridge */
  constructor(bridge) {
    super();
    this.bridge = bridge;
    this.isReady = false;
    this.closed = false;
    if (!bridge) {
      // Node-RED is not running inside the hub: nothing will ever be ready.
      this.setStatus('disconnected');
      /** @type {Promise<void>} */
      this.ready = new Promise(() => {});
      return;
    }
    this.ready = Promise.resolve(bridge.ready).then(() => {
      this.isReady = true;
      if (!this.closed) this.setStatus('connected');
    });
  }

  /** @returns {HubBridge} */
  get hub() {
    if (!this.bridge) throw new Error('not running inside the hub (no hub setting)');
    return this.bridge;
  }

  /** @param {string} entityId */
  state(entityId) {
    return this.isReady ? this.hub.state(entityId) : undefined;
  }

  states() {
    return this.isReady ? this.hub.states() : [];
  }

  /** @param {(change: StateChange) => void} listener */
  onStateChanged(listener) {
    if (!this.bridge) return () => {};
    return this.bridge.onStateChanged((change) => {
      if (this.isReady && !this.closed) listener(change);
    });
  }

  /** @param {string} eventType @param {(event: HubEvent) => void} listener */
  onEvent(eventType, listener) {
    if (!this.bridge) return () => {};
    return this.bridge.onEvent(eventType, (event) => {
      if (this.isReady && !this.closed) listener(event);
    });
  }

  /** @param {string} eventType @param {Record<string, unknown>} data @param {string} [homeId] */
  async fireEvent(eventType, data, homeId) {
    this.hub.fireEvent(eventType, data, homeId || undefined);
  }

  /** @param {string} domain @param {string} action @param {Record<string, unknown>} data @param {Target} [target] */
  async callAction(domain, action, data, target) {
    return this.hub.callAction(domain, action, data, target);
  }

  actions() {
    return this.bridge ? this.bridge.actions() : [];
  }

  /** @param {string[]} entityIds @param {Date} start @param {Date} end */
  async history(entityIds, start, end) {
    return this.hub.history(entityIds, start, end);
  }

  async close() {
    this.closed = true;
    this.statusListeners.clear();
  }
}

/**
 * "Remote hub": another hub over its WebSocket API.
 */
class RemoteClient extends StatusSource {
  /**
   * @param {{ url: string, token: string, log: Log, heartbeatMs?: number, pongTimeoutMs?: number }} options
   */
  constructor(options) {
    super();
    const base = String(options.url || '').trim().replace(/\/+$/, '').replace(/\/api\/websocket$/, '');
    this.httpUrl = base;
    this.wsUrl = `${base.replace(/^http/i, 'ws')}/api/websocket`;
    this.token = options.token || '';
    this.log = options.log;
    this.heartbeatMs = options.heartbeatMs || HEARTBEAT_MS;
    this.pongTimeoutMs = options.pongTimeoutMs || PONG_TIMEOUT_MS;

    /** @type {WebSocket | undefined} */
    this.ws = undefined;
    this.nextId = 1;
    /** @type {Map<number, { resolve(value: any): void, reject(error: Error): void, timer: NodeJS.Timeout }>} */
    this.pending = new Map();
    /** Event listeners by subscription key (an event type, or `*`). @type {Map<string, Set<(event: HubEvent) => void>>} */
    this.listeners = new Map();
    /** Subscriptions of the current connection: key → subscription id, and back. */
    this.subscriptionIds = new Map();
    /** @type {Map<number, string>} */
    this.subscriptionKeys = new Map();
    /** @type {Set<(change: StateChange) => void>} */
    this.stateListeners = new Set();
    /** @type {Map<string, State>} */
    this.cache = new Map();
    /** @type {ActionDescription[]} */
    this.actionList = [];
    this.authenticated = false;
    /** Whether the cache is in sync with the remote hub (after get_states on this connection). */
    this.synced = false;
    this.everSynced = false;
    this.attempt = 0;
    this.closed = false;
    /** @type {NodeJS.Timeout | undefined} */
    this.reconnectTimer = undefined;
    /** @type {NodeJS.Timeout | undefined} */
    this.heartbeatTimer = undefined;
    /** @type {string | undefined} */
    this.lastProblem = undefined;

    /** @type {() => void} */
    let resolveReady = () => {};
    /** @type {Promise<void>} */
    this.ready = new Promise((resolve) => (resolveReady = resolve));
    this.resolveReady = resolveReady;

    if (!base || !/^https?:\/\//i.test(base)) {
      this.setStatus('disconnected');
      this.lastProblem = 'the remote hub URL must start with http:// or https://';
      this.log.error(`remote hub: ${this.lastProblem}`);
      return;
    }
    this.connect();
  }

  connect() {
    if (this.closed) return;
    this.setStatus('connecting');
    const ws = new WebSocket(this.wsUrl, { handshakeTimeout: 10_000 });
    this.ws = ws;
    ws.on('message', (raw) => {
      /** @type {any} */
      let message;
      try {
        message = JSON.parse(String(raw));
      } catch {
        return;
      }
      for (const one of Array.isArray(message) ? message : [message]) this.receive(ws, one);
    });
    ws.on('error', (error) => {
      this.noteProblem(`connection error: ${error.message}`);
    });
    ws.on('close', () => this.disconnected(ws));
  }

  /** Logs a problem once until the next successful connection. @param {string} problem */
  noteProblem(problem) {
    if (this.lastProblem === problem) return;
    this.lastProblem = problem;
    this.log.warn(`remote hub ${this.httpUrl}: ${problem}`);
  }

  /** @param {WebSocket} ws @param {any} message */
  receive(ws, message) {
    if (ws !== this.ws || !message || typeof message !== 'object') return;
    switch (message.type) {
      case 'auth_required':
        this.send({ type: 'auth', access_token: this.token });
        return;
      case 'auth_ok':
        this.authenticated = true;
        this.sync(ws).catch((error) => {
          this.noteProblem(`start-up failed: ${error.message}`);
          ws.terminate();
        });
        return;
      case 'auth_invalid':
        this.noteProblem(`authentication failed (${message.message || 'invalid token'})`);
        return;
      case 'result':
      case 'pong': {
        const waiting = this.pending.get(message.id);
        if (!waiting) return;
        this.pending.delete(message.id);
        clearTimeout(waiting.timer);
        if (message.type === 'pong' || message.success) waiting.resolve(message.result);
        else waiting.reject(remoteError(message.error));
        return;
      }
      case 'event': {
        const key = this.subscriptionKeys.get(message.id);
        if (key === undefined || !this.synced) return; // nothing reaches the nodes before the cache is in sync
        this.dispatch(key, message.event);
        return;
      }
      default:
    }
  }

  /**
   * After auth_ok: read the actions, subscribe (state changes for the cache, plus every event
   * type a node listens to), then load every state. A reconnect reports what changed meanwhile.
   * @param {WebSocket} ws
   */
  async sync(ws) {
    // Actions first: between get_states and the cache going live nothing may wait, or changes
    // in that gap would be lost (events before the snapshot are in it; events after it apply).
    await this.loadActions();
    if (ws !== this.ws) return;
    await this.subscribe('state_changed');
    await Promise.all([...this.listeners.keys()].map((key) => this.subscribe(key)));
    /** @type {State[]} */
    const states = await this.request({ type: 'get_states' });
    if (ws !== this.ws) return;
    const previous = this.cache;
    this.cache = new Map(states.map((state) => [state.entity_id, state]));
    this.synced = true;
    this.attempt = 0;
    if (this.lastProblem || this.everSynced) this.log.info(`remote hub ${this.httpUrl}: connected`);
    this.lastProblem = undefined;
    this.startHeartbeat(ws);
    this.setStatus('connected');
    if (!this.everSynced) {
      this.everSynced = true;
      this.resolveReady();
      return;
    }
    // Reconnected: what changed while the connection was down reaches the nodes as changes.
    for (const [entityId, state] of this.cache) {
      const old = previous.get(entityId);
      if (!old || old.last_updated !== state.last_updated || old.state !== state.state) this.emitStateChange({ entity_id: entityId, old_state: old ?? null, new_state: state });
    }
    for (const [entityId, old] of previous) {
      if (!this.cache.has(entityId)) this.emitStateChange({ entity_id: entityId, old_state: old, new_state: null });
    }
  }

  async loadActions() {
    try {
      const res = await fetch(`${this.httpUrl}/api/actions`, { headers: { authorization: `Bearer ${this.token}` } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      this.actionList = /** @type {ActionDescription[]} */ (await res.json());
    } catch (error) {
      // The nodes still work; only the action picker and validation lack the list.
      this.noteProblem(`could not read the action list: ${/** @type {Error} */ (error).message}`);
    }
  }

  /** @param {WebSocket} ws */
  startHeartbeat(ws) {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => {
      if (ws !== this.ws) return;
      this.request({ type: 'ping' }, this.pongTimeoutMs).catch(() => {
        this.noteProblem(`no pong within ${this.pongTimeoutMs} ms; reconnecting`);
        ws.terminate();
      });
    }, this.heartbeatMs);
  }

  /** @param {WebSocket} ws */
  disconnected(ws) {
    if (ws !== this.ws) return;
    const wasSynced = this.synced;
    this.ws = undefined;
    this.authenticated = false;
    this.synced = false;
    clearInterval(this.heartbeatTimer);
    this.subscriptionIds.clear();
    this.subscriptionKeys.clear();
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(new Error('connection to the remote hub lost'));
    }
    this.pending.clear();
    if (this.closed) return;
    this.setStatus('disconnected');
    const delay = Math.min(RECONNECT_MIN_MS * 2 ** this.attempt, RECONNECT_MAX_MS);
    if (wasSynced) this.noteProblem(`connection lost; reconnecting in ${delay / 1000} s`);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** @param {Record<string, unknown>} message */
  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  /**
   * Sends a command and waits for its result.
   * @param {Record<string, unknown>} command @param {number} [timeoutMs] @returns {Promise<any>}
   */
  request(command, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (!this.authenticated || this.ws?.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected to the remote hub'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${command.type} timed out`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ ...command, id });
    });
  }

  /** Subscribes this connection to a key (`*` = every event), once. @param {string} key */
  async subscribe(key) {
    if (!this.authenticated || this.subscriptionIds.has(key)) return;
    const id = this.nextId; // request() takes this id
    this.subscriptionIds.set(key, id);
    this.subscriptionKeys.set(id, key);
    await this.request(key === '*' ? { type: 'subscribe_events' } : { type: 'subscribe_events', event_type: key });
  }

  /** @param {string} key */
  unsubscribe(key) {
    const id = this.subscriptionIds.get(key);
    if (id === undefined) return;
    this.subscriptionIds.delete(key);
    this.subscriptionKeys.delete(id);
    this.request({ type: 'unsubscribe_events', subscription: id }).catch(() => {});
  }

  /** @param {string} key @param {any} event */
  dispatch(key, event) {
    if (key === 'state_changed') {
      const change = /** @type {StateChange} */ (event.data);
      if (change.new_state) this.cache.set(change.entity_id, change.new_state);
      else this.cache.delete(change.entity_id);
      for (const listener of [...this.stateListeners]) safely(() => listener(change));
    }
    for (const listener of [...(this.listeners.get(key) ?? [])]) safely(() => listener(event));
  }

  /** A change seen only by comparing states after a reconnect. @param {StateChange} change */
  emitStateChange(change) {
    for (const listener of [...this.stateListeners]) safely(() => listener(change));
  }

  /** @param {string} entityId */
  state(entityId) {
    return this.synced || this.everSynced ? this.cache.get(entityId) : undefined;
  }

  states() {
    return [...this.cache.values()];
  }

  /** @param {(change: StateChange) => void} listener */
  onStateChanged(listener) {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** @param {string} eventType @param {(event: HubEvent) => void} listener */
  onEvent(eventType, listener) {
    const key = eventType || '*';
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(listener);
    if (this.authenticated) this.subscribe(key).catch(() => {});
    return () => {
      set.delete(listener);
      if (set.size > 0 || this.listeners.get(key) !== set) return;
      this.listeners.delete(key);
      if (key !== 'state_changed') this.unsubscribe(key);
    };
  }

  /** @param {string} eventType @param {Record<string, unknown>} data @param {string} [homeId] */
  async fireEvent(eventType, data, homeId) {
    const eventData = homeId && data.home_id === undefined ? { ...data, home_id: homeId } : data;
    await this.request({ type: 'fire_event', event_type: eventType, event_data: eventData });
  }

  /** @param {string} domain @param {string} action @param {Record<string, unknown>} data @param {Target} [target] */
  async callAction(domain, action, data, target) {
    const known = this.actionList.find((a) => a.domain === domain && a.name === action);
    const wantResponse = !known || known.response !== 'none';
    const result = await this.request({
      type: 'call_service',
      domain,
      service: action,
      service_data: data,
      ...(target && { target }),
      return_response: wantResponse,
    });
    return { response: result?.response ?? null };
  }

  actions() {
    return this.actionList;
  }

  /** @param {string[]} entityIds @param {Date} start @param {Date} end */
  async history(entityIds, start, end) {
    const query = new URLSearchParams({ end_time: end.toISOString() });
    if (entityIds.length > 0) query.set('filter_entity_id', entityIds.join(','));
    const res = await fetch(`${this.httpUrl}/api/history/period/${encodeURIComponent(start.toISOString())}?${query}`, {
      headers: { authorization: `Bearer ${this.token}` },
    });
    const body = await res.json().catch(() => undefined);
    if (!res.ok) throw new Error(body?.error?.message ?? `history request failed: HTTP ${res.status}`);
    return /** @type {unknown[][]} */ (body);
  }

  async close() {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    this.statusListeners.clear();
    this.stateListeners.clear();
    this.listeners.clear();
    const ws = this.ws;
    if (!ws) return;
    await new Promise((resolve) => {
      const force = setTimeout(() => {
        ws.terminate();
        resolve(undefined);
      }, 2000);
      ws.once('close', () => {
        clearTimeout(force);
        resolve(undefined);
      });
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000, 'Node-RED flow stopped');
    });
  }
}

/** @param {{ code?: string, message?: string, hub_code?: string } | undefined} error */
function remoteError(error) {
  const failure = /** @type {Error & { code?: string }} */ (new Error(error?.message || 'remote hub error'));
  failure.code = error?.hub_code || error?.code;
  return failure;
}

/** @param {() => void} fn */
function safely(fn) {
  try {
    fn();
  } catch {
    // one node's failure must not keep an event from the others
  }
}

module.exports = { LocalClient, RemoteClient };
