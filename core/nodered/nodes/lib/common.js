// @ts-check
'use strict';
/**
 * What the hub nodes share: finding their server, showing its connection status, cleaning up
 * on close, entity filters, conditions, the state trigger (filters, unknown/unavailable, "for")
 * and the structural check of action data against an action's JSON Schema.
 */

/**
 * @typedef {import('./client.js').LocalClient | import('./client.js').RemoteClient} HubClient
 * @typedef {import('./client.js').StateChange} StateChange
 * @typedef {import('./client.js').State} State
 * @typedef {{ status(s: object): void, on(event: string, fn: (...args: any[]) => void): void, error(e: unknown, msg?: object): void, warn(w: unknown): void }} RedNode
 * @typedef {(msg: any, send: (out: any) => void, client: HubClient) => void | Promise<void>} InputHandler
 */

const STATUS = {
  connecting: { fill: 'yellow', shape: 'ring', text: 'connecting' },
  connected: { fill: 'green', shape: 'dot', text: 'connected' },
  disconnected: { fill: 'red', shape: 'ring', text: 'disconnected' },
};

/** States that mean "we do not know": transitions from or to them are ignored by default. */
const UNAVAILABLE = new Set(['unknown', 'unavailable']);

/** A time for status texts. */
const clock = () => new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

/**
 * Binds a node to its `hub-server`: shows the connection status on the node, and runs every
 * registered cleanup on close.
 * @param {any} RED
 * @param {RedNode} node
 * @param {{ server?: string }} config
 * @returns {{ client: HubClient | undefined, onClose(fn: () => void): void, whenReady(fn: () => void): void, onInput(handler: InputHandler): void, showed(text: string, fill?: string): void, failed(text: string): void, closed(): boolean }}
 */
function useServer(RED, node, config) {
  /** @type {(() => void)[]} */
  const cleanups = [];
  let isClosed = false;
  node.on('close', (/** @type {boolean} */ _removed, /** @type {() => void} */ done) => {
    isClosed = true;
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        cleanup();
      } catch (error) {
        node.warn(`cleanup failed: ${/** @type {Error} */ (error).message}`);
      }
    }
    done();
  });
  const server = config.server ? RED.nodes.getNode(config.server) : undefined;
  /** @type {HubClient | undefined} */
  const client = server?.client;
  const helpers = {
    client,
    /** @param {() => void} fn */
    onClose: (fn) => void cleanups.push(fn),
    /** @param {() => void} fn */
    whenReady(fn) {
      client?.ready.then(() => {
        if (!isClosed) fn();
      });
    },
    /** A short result on the node while connected (e.g. the last state it sent). */
    showed(/** @type {string} */ text, fill = 'green') {
      if (client?.status === 'connected') node.status({ fill, shape: 'dot', text: `${text} · ${clock()}` });
    },
    failed(/** @type {string} */ text) {
      node.status({ fill: 'red', shape: 'dot', text });
    },
    /**
     * Handles input messages once the server is ready: a message that arrives earlier waits for
     * it (the ready barrier); one still waiting when the node closes is dropped. A failure goes
     * to `done(error)`, so Catch nodes see it, and nothing is sent.
     * @param {InputHandler} handler
     */
    onInput(handler) {
      /** @type {Set<() => void>} */
      const waiting = new Set();
      cleanups.push(() => {
        for (const finish of waiting) finish();
        waiting.clear();
      });
      node.on('input', (/** @type {any} */ msg, /** @type {(out: any) => void} */ send, /** @type {(error?: unknown) => void} */ done) => {
        if (!client) return done(new Error('no hub server configured'));
        const finish = () => done();
        waiting.add(finish);
        client.ready
          .then(async () => {
            if (!waiting.delete(finish)) return; // closed while waiting
            await handler(msg, send, client);
            done();
          })
          .catch((/** @type {unknown} */ error) => {
            const failure = error instanceof Error ? error : new Error(String(error));
            const code = /** @type {{ code?: string }} */ (failure).code;
            done(code && !failure.message.includes(code) ? Object.assign(new Error(`${failure.message} (${code})`), { code }) : failure);
          });
      });
    },
    closed: () => isClosed,
  };
  if (!client) {
    node.status({ fill: 'red', shape: 'ring', text: 'no hub server' });
    return helpers;
  }
  const show = (/** @type {keyof typeof STATUS} */ status) => node.status(STATUS[status] ?? {});
  show(client.status);
  if (client.status === 'disconnected' && !server.remote && !RED.settings.hub) node.status({ fill: 'red', shape: 'ring', text: 'not inside the hub' });
  cleanups.push(client.onStatus(show));
  return helpers;
}

/**
 * An entity filter: exact id, comma list, prefix or regular expression.
 * @param {string} type @param {string} filter
 * @returns {(entityId: string) => boolean}
 * @throws on an invalid regular expression
 */
function entityMatcher(type, filter) {
  const text = String(filter ?? '').trim();
  switch (type) {
    case 'list': {
      const ids = new Set(text.split(',').map((s) => s.trim()).filter(Boolean));
      return (entityId) => ids.has(entityId);
    }
    case 'prefix':
      return (entityId) => entityId.startsWith(text);
    case 'regex': {
      const regex = new RegExp(text);
      return (entityId) => regex.test(entityId);
    }
    default:
      return (entityId) => entityId === text;
  }
}

/** @param {unknown} value */
function toBoolean(value) {
  if (typeof value === 'boolean') return value;
  return ['true', 'on', 'yes', 'y', 'home', 'open', '1'].includes(String(value).trim().toLowerCase());
}

/**
 * Compares an entity's value with a condition's value.
 * `includes`: the condition's value is a comma list that holds the actual value, or the actual
 * value is a list (or text) that holds the condition's value.
 * @param {unknown} actual @param {string} op @param {unknown} expected @param {string} [valueType] str | num | bool
 */
function compare(actual, op, expected, valueType = 'str') {
  const equal = () => {
    if (valueType === 'num') return actual !== undefined && actual !== null && actual !== '' && Number(actual) === Number(expected);
    if (valueType === 'bool') return toBoolean(actual) === toBoolean(expected);
    return String(actual) === String(expected);
  };
  const ordered = (/** @type {(a: number, b: number) => boolean} */ test) => {
    const a = typeof actual === 'number' ? actual : actual === null || actual === undefined || actual === '' ? NaN : Number(actual);
    const b = Number(expected);
    return Number.isFinite(a) && Number.isFinite(b) && test(a, b);
  };
  switch (op) {
    case '==':
      return equal();
    case '!=':
      return !equal();
    case '<':
      return ordered((a, b) => a < b);
    case '<=':
      return ordered((a, b) => a <= b);
    case '>':
      return ordered((a, b) => a > b);
    case '>=':
      return ordered((a, b) => a >= b);
    case 'includes': {
      if (Array.isArray(actual)) return actual.map(String).includes(String(expected));
      const list = String(expected).split(',').map((s) => s.trim());
      return list.includes(String(actual)) || (typeof actual === 'string' && String(expected) !== '' && actual.includes(String(expected)));
    }
    default:
      return false;
  }
}

/**
 * @typedef {{ property?: string, attribute?: string, op?: string, value?: unknown, valueType?: string }} Condition
 */

/** The value a condition looks at. @param {State | null | undefined} state @param {Condition} condition */
function conditionValue(state, condition) {
  if (!state) return undefined;
  return condition.property === 'attribute' ? state.attributes?.[String(condition.attribute ?? '')] : state.state;
}

/** @param {State | null | undefined} state @param {Condition} condition */
function conditionHolds(state, condition) {
  return state !== null && state !== undefined && compare(conditionValue(state, condition), condition.op || '==', condition.value, condition.valueType);
}

/**
 * The state trigger of `hub-state-changed` and `hub-trigger-state`: the entity filter, the
 * unknown/unavailable filter, attribute changes or not, and the "for" duration (the new state
 * must hold that long; a change of the state cancels the wait).
 * @param {HubClient} client
 * @param {{ entityType?: string, entity?: string, ignoreUnavailable?: boolean, attributeChanges?: boolean, forSeconds?: number | string }} config
 * @param {(change: StateChange) => void} onMatch
 * @returns {() => void} stops watching and clears every timer
 */
function watchStates(client, config, onMatch) {
  const matches = entityMatcher(config.entityType || 'exact', config.entity || '');
  const ignoreUnavailable = config.ignoreUnavailable !== false;
  const forMs = Math.max(0, Number(config.forSeconds) || 0) * 1000;
  /** @type {Map<string, { state: string, timer: NodeJS.Timeout }>} */
  const waiting = new Map();
  const stop = client.onStateChanged((change) => {
    const { entity_id: entityId, old_state: oldState, new_state: newState } = change;
    if (!matches(entityId)) return;
    const wait = waiting.get(entityId);
    if (wait && (!newState || newState.state !== wait.state)) {
      clearTimeout(wait.timer);
      waiting.delete(entityId);
    }
    if (!newState) return; // removed
    const stateChanged = !oldState || oldState.state !== newState.state;
    if (!stateChanged && !config.attributeChanges) return;
    if (ignoreUnavailable && (UNAVAILABLE.has(newState.state) || (oldState && UNAVAILABLE.has(oldState.state)))) return;
    if (forMs === 0) return onMatch(change);
    if (waiting.has(entityId)) return; // already waiting out this state
    const timer = setTimeout(() => {
      waiting.delete(entityId);
      const current = client.state(entityId);
      if (current && current.state === newState.state) onMatch({ entity_id: entityId, old_state: oldState, new_state: current });
    }, forMs);
    waiting.set(entityId, { state: newState.state, timer });
  });
  return () => {
    stop();
    for (const { timer } of waiting.values()) clearTimeout(timer);
    waiting.clear();
  };
}

/** The message of a state change. @param {StateChange} change */
function stateMessage(change) {
  return {
    topic: change.entity_id,
    payload: change.new_state?.state,
    data: { entity_id: change.entity_id, old_state: change.old_state, new_state: change.new_state },
  };
}

/**
 * A structural check of action data against the action's JSON Schema (from zod): types,
 * required properties, unknown properties where `additionalProperties` is false, enums and
 * number bounds; `anyOf`/`oneOf` pass when one branch does. Not a full JSON Schema validator.
 * @param {any} schema @param {unknown} value @param {string} [path]
 * @returns {string | undefined} the first problem, if any
 */
function checkSchema(schema, value, path = '') {
  if (!schema || typeof schema !== 'object' || schema === true) return undefined;
  const where = path || 'data';
  const branches = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(branches)) {
    const problems = branches.map((/** @type {any} */ branch) => checkSchema(branch, value, path));
    if (problems.some((p) => p === undefined)) return undefined;
    return problems.length === 1 ? problems[0] : `${where}: does not match any allowed form (${problems.join('; ')})`;
  }
  if (Array.isArray(schema.allOf)) {
    for (const part of schema.allOf) {
      const problem = checkSchema(part, value, path);
      if (problem) return problem;
    }
  }
  if ('const' in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) return `${where}: must be ${JSON.stringify(schema.const)}`;
  if (Array.isArray(schema.enum) && !schema.enum.some((/** @type {unknown} */ e) => JSON.stringify(e) === JSON.stringify(value))) {
    return `${where}: must be one of ${schema.enum.map((/** @type {unknown} */ e) => JSON.stringify(e)).join(', ')}`;
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((/** @type {string} */ t) => hasType(value, t))) return `${where}: expected ${types.join(' or ')}, got ${typeName(value)}`;
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) return `${where}: must be at least ${schema.minimum}`;
    if (typeof schema.maximum === 'number' && value > schema.maximum) return `${where}: must be at most ${schema.maximum}`;
    if (typeof schema.exclusiveMinimum === 'number' && value <= schema.exclusiveMinimum) return `${where}: must be more than ${schema.exclusiveMinimum}`;
    if (typeof schema.exclusiveMaximum === 'number' && value >= schema.exclusiveMaximum) return `${where}: must be less than ${schema.exclusiveMaximum}`;
  }
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) return `${where}: must have at least ${schema.minLength} characters`;
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength) return `${where}: must have at most ${schema.maxLength} characters`;
  }
  if (Array.isArray(value) && schema.items && typeof schema.items === 'object') {
    for (let i = 0; i < value.length; i++) {
      const problem = checkSchema(schema.items, value[i], `${where}[${i}]`);
      if (problem) return problem;
    }
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const object = /** @type {Record<string, unknown>} */ (value);
    const properties = schema.properties && typeof schema.properties === 'object' ? schema.properties : {};
    for (const key of Array.isArray(schema.required) ? schema.required : []) {
      if (object[key] === undefined) return `${path ? `${path}.` : ''}${key}: required`;
    }
    for (const [key, item] of Object.entries(object)) {
      const at = path ? `${path}.${key}` : key;
      if (key in properties) {
        if (item === undefined) continue;
        const problem = checkSchema(properties[key], item, at);
        if (problem) return problem;
      } else if (schema.additionalProperties === false) {
        return `${at}: unknown property`;
      } else if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
        const problem = checkSchema(schema.additionalProperties, item, at);
        if (problem) return problem;
      }
    }
  }
  return undefined;
}

/** @param {unknown} value @param {string} type */
function hasType(value, type) {
  switch (type) {
    case 'null':
      return value === null;
    case 'boolean':
      return typeof value === 'boolean';
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return Number.isInteger(value);
    case 'array':
      return Array.isArray(value);
    case 'object':
      return value !== null && typeof value === 'object' && !Array.isArray(value);
    default:
      return true;
  }
}

/** @param {unknown} value */
function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number' && Number.isInteger(value)) return 'integer';
  return typeof value;
}

/** Parses a JSON object from a config field; empty → {}. @param {unknown} text @param {string} what */
function parseObject(text, what) {
  if (text === undefined || text === null || String(text).trim() === '') return {};
  const value = JSON.parse(String(text));
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${what} must be a JSON object`);
  return value;
}

/** A comma list as an array of trimmed, non-empty strings. @param {unknown} value */
function list(value) {
  if (Array.isArray(value)) return value.map(String).map((s) => s.trim()).filter(Boolean);
  return String(value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** @param {unknown} value */
const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

module.exports = { STATUS, UNAVAILABLE, useServer, entityMatcher, compare, conditionHolds, conditionValue, watchStates, stateMessage, checkSchema, parseObject, list, isObject };
