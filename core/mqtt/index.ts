/**
 * MQTT: the embedded broker (no `MQTT_URL`) or an external one, and the hub's own client on
 * it. Everything above (telemetry, plugins) uses {@link MqttService}: publish, and subscribe
 * with a handler, the same way on either broker.
 *
 * @module
 */
import mqtt, { type MqttClient } from 'mqtt';
import { generateSecret } from '../auth/index.js';
import type { HubConfig } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { startEmbeddedBroker, type DeviceIdentity } from './embedded.js';
import { topicMatches } from './topics.js';

export { topicMatches, unshared } from './topics.js';
export { mosquittoFiles, mosquittoHash } from './mosquitto-files.js';
export type { DeviceIdentity } from './embedded.js';

export type MessageHandler = (topic: string, payload: Buffer) => void;

const MAX_BACKOFF_MS = 30_000;

export interface MqttOptions {
  config: Pick<HubConfig, 'mqttUrl' | 'mqttPort' | 'mqttRoot' | 'host'>;
  log: Logger;
  authenticateDevice(username: string, password: string): Promise<DeviceIdentity | undefined>;
}

/** What the embedded broker refused, by kind; the metrics endpoint reads these. */
export type Refusals = Record<'auth' | 'publish' | 'subscribe', number>;

export class MqttService {
  readonly #handlers = new Map<string, Set<MessageHandler>>();

  private constructor(
    private readonly client: MqttClient,
    private readonly log: Logger,
    /** The topic root every hub topic starts with (`HUB_MQTT_ROOT`). */
    readonly root: string,
    /** Where devices connect. */
    readonly broker: { kind: 'embedded' | 'external'; url: string },
    private readonly closeBroker: () => Promise<void>,
    readonly refused: Refusals,
  ) {
    client.on('message', (topic, payload) => this.#deliver(topic, payload));
  }

  /** Starts the embedded broker if there is no `MQTT_URL`, then connects the hub's client. */
  static async start(options: MqttOptions): Promise<MqttService> {
    const { config, log } = options;
    let url = config.mqttUrl;
    let credentials: { username?: string; password?: string } = {};
    let closeBroker = async () => {};
    const refused: Refusals = { auth: 0, publish: 0, subscribe: 0 };
    if (!url) {
      const internal = { username: `hub-${generateSecret().slice(0, 8)}`, password: generateSecret() };
      const broker = await startEmbeddedBroker({
        port: config.mqttPort,
        host: config.host,
        root: config.mqttRoot,
        internal,
        authenticateDevice: options.authenticateDevice,
        onRefused: (kind, detail) => {
          refused[kind]++;
          log.warn({ refused: kind, ...detail }, 'mqtt client refused');
        },
        log,
      });
      url = `mqtt://127.0.0.1:${broker.port}`;
      credentials = internal;
      closeBroker = broker.close;
    } else {
      const parsed = new URL(url);
      credentials = { username: decodeURIComponent(parsed.username) || undefined, password: decodeURIComponent(parsed.password) || undefined };
      parsed.username = '';
      parsed.password = '';
      url = parsed.toString();
    }
    const client = await connect(url, credentials, log);
    return new MqttService(client, log, config.mqttRoot, { kind: config.mqttUrl ? 'external' : 'embedded', url }, closeBroker, refused);
  }

  get connected(): boolean {
    return this.client.connected;
  }

  async publish(topic: string, payload: string | Buffer, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: options.qos ?? 0, retain: options.retain ?? false });
  }

  /**
   * Subscribes `handler` to a filter (`+`, `#`, and `$share/<group>/…` on external brokers).
   * The subscription survives reconnects.
   *
   * @returns the function that removes the handler (and the subscription when it was the last).
   */
  async subscribe(filter: string, handler: MessageHandler): Promise<() => Promise<void>> {
    let set = this.#handlers.get(filter);
    if (!set) {
      this.#handlers.set(filter, (set = new Set()));
      await this.client.subscribeAsync(filter, { qos: 1 });
    }
    set.add(handler);
    return async () => {
      set.delete(handler);
      if (set.size > 0 || this.#handlers.get(filter) !== set) return;
      this.#handlers.delete(filter);
      if (this.client.connected) await this.client.unsubscribeAsync(filter);
    };
  }

  async stop(): Promise<void> {
    await this.client.endAsync(true);
    await this.closeBroker();
  }

  #deliver(topic: string, payload: Buffer): void {
    for (const [filter, handlers] of this.#handlers) {
      if (!topicMatches(filter, topic)) continue;
      for (const handler of handlers) {
        try {
          handler(topic, payload);
        } catch (error) {
          this.log.error({ err: error, topic }, 'mqtt message handler failed');
        }
      }
    }
  }
}

/** Connects with reconnection backing off from 1 s to 30 s; resolves on the first connection. */
function connect(url: string, credentials: { username?: string; password?: string }, log: Logger): Promise<MqttClient> {
  const client = mqtt.connect(url, {
    ...credentials,
    clientId: `hub-${generateSecret().slice(0, 12)}`,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    resubscribe: true,
  });
  client.on('connect', () => {
    client.options.reconnectPeriod = 1000;
    log.info({ url }, 'mqtt connected');
  });
  client.on('reconnect', () => {
    client.options.reconnectPeriod = Math.min((client.options.reconnectPeriod ?? 1000) * 2, MAX_BACKOFF_MS);
    log.warn({ url, nextTryMs: client.options.reconnectPeriod }, 'mqtt reconnecting');
  });
  client.on('error', (error) => log.warn({ err: error, url }, 'mqtt client error'));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.end(true);
      reject(new Error(`Could not connect to the MQTT broker at ${url}`));
    }, 15_000);
    client.once('connect', () => {
      clearTimeout(timer);
      resolve(client);
    });
  });
}
