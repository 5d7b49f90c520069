/**
 * MQTT: the embedded broker (no `MQTT_URL`), which the hub uses in-process, or an external
 * one, reached through a client that reconnects with back-off and resubscribes. Everything
 * above (telemetry, plugins) uses {@link MqttService}: publish, and subscribe with a handler,
 * the same way on either broker.
 *
 * @module
 */
import mqtt, { type MqttClient } from 'mqtt';
import { generateSecret } from '../auth/index.js';
import type { HubConfig } from '../config/index.js';
import { StartupError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { startEmbeddedBroker, type DeviceIdentity } from './embedded.js';
import { topicMatches } from './topics.js';

export { topicMatches, unshared } from './topics.js';
export { mosquittoConfig, mosquittoFiles, mosquittoHash } from './mosquitto-files.js';
export { clientIdBelongsTo, type DeviceIdentity } from './embedded.js';

export type MessageHandler = (topic: string, payload: Buffer) => void;

const MAX_BACKOFF_MS = 30_000;

export interface MqttOptions {
  config: Pick<HubConfig, 'mqttUrl' | 'mqttPort' | 'mqttPortExplicit' | 'mqttRoot' | 'mqttMaxPacketBytes' | 'host'>;
  log: Logger;
  authenticateDevice(username: string, password: string): Promise<DeviceIdentity | undefined>;
}

/** What the embedded broker refused, by kind (`too_large`: connections closed for an oversized packet); the metrics endpoint reads these. */
export type Refusals = Record<'auth' | 'publish' | 'subscribe' | 'too_large', number>;

/** How the hub reaches its broker: in-process (embedded) or as a client (external). */
interface Transport {
  readonly connected: boolean;
  publish(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean): Promise<void>;
  subscribe(filter: string, deliver: MessageHandler): Promise<() => Promise<void>>;
  /** Closes a device's connections; absent where the hub cannot (an external broker). */
  disconnectDevice?(deviceId: string): number;
  close(): Promise<void>;
}

export class MqttService {
  readonly #handlers = new Map<string, { handlers: Set<MessageHandler>; unsubscribe: Promise<() => Promise<void>> }>();

  private constructor(
    private readonly transport: Transport,
    private readonly log: Logger,
    /** The topic root every hub topic starts with (`HUB_MQTT_ROOT`). */
    readonly root: string,
    /** Where devices connect. */
    readonly broker: { kind: 'embedded' | 'external'; url: string },
    readonly refused: Refusals,
  ) {}

  /** Starts the embedded broker if there is no `MQTT_URL`, else connects to that broker. */
  static async start(options: MqttOptions): Promise<MqttService> {
    const { config, log } = options;
    const refused: Refusals = { auth: 0, publish: 0, subscribe: 0, too_large: 0 };
    if (!config.mqttUrl) {
      const broker = await startEmbeddedBroker({
        port: config.mqttPort,
        portIsExplicit: config.mqttPortExplicit,
        host: config.host,
        root: config.mqttRoot,
        maxPacketBytes: config.mqttMaxPacketBytes,
        authenticateDevice: options.authenticateDevice,
        onRefused: (kind, detail) => {
          refused[kind]++;
          log.warn({ refused: kind, ...detail }, 'mqtt client refused');
        },
        log,
      });
      const transport: Transport = { connected: true, ...broker };
      return new MqttService(transport, log, config.mqttRoot, { kind: 'embedded', url: `mqtt://127.0.0.1:${broker.port}` }, refused);
    }
    const parsed = new URL(config.mqttUrl);
    const credentials = { username: decodeURIComponent(parsed.username) || undefined, password: decodeURIComponent(parsed.password) || undefined };
    parsed.username = '';
    parsed.password = '';
    const url = parsed.toString();
    const transport = clientTransport(await connect(url, credentials, log));
    return new MqttService(transport, log, config.mqttRoot, { kind: 'external', url }, refused);
  }

  get connected(): boolean {
    return this.transport.connected;
  }

  async publish(topic: string, payload: string | Buffer, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    await this.transport.publish(topic, Buffer.isBuffer(payload) ? payload : Buffer.from(payload), options.qos ?? 0, options.retain ?? false);
  }

  /**
   * Subscribes `handler` to a filter (`+`, `#`, and `$share/<group>/…` on external brokers).
   * The subscription survives reconnects.
   *
   * @returns the function that removes the handler (and the subscription when it was the last).
   */
  async subscribe(filter: string, handler: MessageHandler): Promise<() => Promise<void>> {
    let entry = this.#handlers.get(filter);
    if (!entry) {
      const handlers = new Set<MessageHandler>();
      entry = { handlers, unsubscribe: this.transport.subscribe(filter, (topic, payload) => this.#deliver(handlers, topic, payload)) };
      this.#handlers.set(filter, entry);
    }
    entry.handlers.add(handler);
    await entry.unsubscribe;
    const current = entry;
    return async () => {
      current.handlers.delete(handler);
      if (current.handlers.size > 0 || this.#handlers.get(filter) !== current) return;
      this.#handlers.delete(filter);
      await (await current.unsubscribe)();
    };
  }

  /**
   * Cuts off a device whose credentials were rotated or deleted: closes its connections on the
   * embedded broker. An external broker keeps them until it reloads the regenerated files.
   *
   * @returns how many connections were closed
   */
  disconnectDevice(deviceId: string): number {
    if (!this.transport.disconnectDevice) {
      this.log.warn({ deviceId }, 'external MQTT broker: regenerate its files and reload it to cut off the old credentials');
      return 0;
    }
    return this.transport.disconnectDevice(deviceId);
  }

  async stop(): Promise<void> {
    this.#handlers.clear();
    await this.transport.close();
  }

  #deliver(handlers: Set<MessageHandler>, topic: string, payload: Buffer): void {
    for (const handler of handlers) {
      try {
        handler(topic, payload);
      } catch (error) {
        this.log.error({ err: error, topic }, 'mqtt message handler failed');
      }
    }
  }
}

/** An external broker through mqtt.js: messages are routed to subscriptions by their filter. */
function clientTransport(client: MqttClient): Transport {
  const routes = new Map<string, MessageHandler>();
  client.on('message', (topic, payload) => {
    for (const [filter, deliver] of routes) if (topicMatches(filter, topic)) deliver(topic, payload);
  });
  return {
    get connected() {
      return client.connected;
    },
    publish: async (topic, payload, qos, retain) => void (await client.publishAsync(topic, payload, { qos, retain })),
    async subscribe(filter, deliver) {
      routes.set(filter, deliver);
      await client.subscribeAsync(filter, { qos: 1 });
      return async () => {
        routes.delete(filter);
        if (client.connected) await client.unsubscribeAsync(filter);
      };
    },
    close: () => client.endAsync(true),
  };
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
      reject(new StartupError(`Could not connect to the MQTT broker at ${url} (MQTT_URL); is it running, and are the credentials right?`));
    }, 15_000);
    client.once('connect', () => {
      clearTimeout(timer);
      resolve(client);
    });
  });
}
