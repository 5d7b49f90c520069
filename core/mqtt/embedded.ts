/**
 * The embedded broker (aedes) for hubs without `MQTT_URL`. Devices authenticate with their
 * credentials, connect under client ids bound to them, and may publish only under their own
 * topic and subscribe only to their own commands. The hub itself is no network client: it
 * publishes and subscribes in-process, so a burst of device messages never queues behind a
 * loopback socket, and no device can take its client id.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { StartupError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { guardPacketSize } from './packet-size.js';

/** What the broker knows about a connected device. */
export interface DeviceIdentity {
  deviceId: string;
  homeId: string;
}

export interface EmbeddedBrokerOptions {
  port: number;
  /** When the port is taken: fail (a port set on purpose), or take a free one (the default). */
  portIsExplicit: boolean;
  host: string;
  /** Topic root, e.g. `mowthos`. */
  root: string;
  /** Largest MQTT packet a client may send, fixed header included; a larger one closes its connection. */
  maxPacketBytes: number;
  /** Checks a device's MQTT credentials. */
  authenticateDevice(username: string, password: string): Promise<DeviceIdentity | undefined>;
  /** A refused login, publish or subscribe, or a connection closed for an oversized packet: for counting and logging. */
  onRefused(reason: 'auth' | 'publish' | 'subscribe' | 'too_large', detail: Record<string, unknown>): void;
  log: Logger;
}

const identities = new WeakMap<Client, DeviceIdentity>();
const DEVICE_TOPICS = new Set(['telemetry', 'status', 'state']);

function refusal(code: 2 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as AuthenticateError;
}

/**
 * Whether a client id belongs to a device: its id, or its id and `-<anything>` for a second
 * connection. Device ids are UUIDs of one length, so no device's ids can be another's, and a
 * device cannot take over (or resume the session of) another device's connection.
 */
export function clientIdBelongsTo(clientId: string, deviceId: string): boolean {
  return clientId === deviceId || clientId.startsWith(`${deviceId}-`);
}

/** The hub's side of the embedded broker. */
export interface EmbeddedBroker {
  port: number;
  publish(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean): Promise<void>;
  subscribe(filter: string, deliver: (topic: string, payload: Buffer) => void): Promise<() => Promise<void>>;
  /** Closes every connection of a device, and any still logging in; answers how many. */
  disconnectDevice(deviceId: string): number;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { root } = options;
  const connections = new DeviceConnections();
  const broker = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      const secret = password?.toString() ?? '';
      if (!username || !secret) {
        options.onRefused('auth', { clientId: client.id, reason: 'no credentials' });
        return done(refusal(4, 'Credentials required'), false);
      }
      // Held from before the credentials are read, so a rotation during the check cuts it off too.
      const release = connections.hold(username, client);
      options.authenticateDevice(username, secret).then(
        (device) => {
          if (!device) {
            release();
            options.onRefused('auth', { clientId: client.id, username });
            return done(refusal(4, 'Bad username or password'), false);
          }
          if (!clientIdBelongsTo(client.id, device.deviceId)) {
            release();
            options.onRefused('auth', { clientId: client.id, username, reason: 'client id not bound to the device' });
            return done(refusal(2, 'Identifier rejected: the client id must be the device id'), false);
          }
          identities.set(client, device);
          done(null, true);
        },
        (error: unknown) => {
          release();
          options.log.error({ err: error }, 'mqtt device authentication failed');
          done(refusal(5, 'Not authorized'), false);
        },
      );
    },
    authorizePublish(client, packet, done) {
      if (client === null) return done(null); // the hub, in-process
      const who = identities.get(client);
      const [prefix, home, device, kind, ...rest] = packet.topic.split('/');
      const own = who && prefix === root && home === who.homeId && device === who.deviceId && rest.length === 0 && DEVICE_TOPICS.has(kind ?? '');
      if (own) return done(null);
      options.onRefused('publish', { clientId: client.id, topic: packet.topic });
      done(new Error(`Not allowed to publish to ${packet.topic}`));
    },
    authorizeSubscribe(client, subscription, done) {
      const who = identities.get(client);
      const allowed = who && subscription.topic === `${root}/${who.homeId}/${who.deviceId}/command`;
      if (allowed) return done(null, subscription);
      options.onRefused('subscribe', { clientId: client.id, topic: subscription.topic });
      done(null, null); // SUBACK failure for this filter; the connection stays
    },
  });

  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    guardPacketSize(socket, options.maxPacketBytes, (violation) => {
      // A malformed length is closed like any other malformed packet aedes meets, uncounted.
      if (violation.kind !== 'too_large') return;
      const clientId = (socket as Socket & { client?: Client }).client?.id ?? undefined; // aedes hangs its client on the socket
      const { declaredBytes } = violation;
      options.onRefused('too_large', { address: socket.remoteAddress, port: socket.remotePort, clientId, declaredBytes, maxBytes: options.maxPacketBytes });
    });
    broker.handle(socket);
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  try {
    await listen(options.port);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    if (options.portIsExplicit) {
      throw new StartupError(`MQTT port ${options.port} is already in use; set MQTT_PORT to a free port, or MQTT_URL to use the broker that holds it`);
    }
    // The default port is often held by a broker already on the machine: run beside it.
    await listen(0);
    options.log.warn(
      { wanted: options.port, port: (server.address() as AddressInfo).port },
      'MQTT port taken (another broker?); the embedded broker took a free port. Set MQTT_PORT to choose, or MQTT_URL to use that broker',
    );
  }
  const { port } = server.address() as AddressInfo;
  options.log.info({ port }, 'embedded MQTT broker listening');

  return {
    port,
    publish: (topic, payload, qos, retain) =>
      new Promise((resolve, reject) =>
        broker.publish({ cmd: 'publish', topic, payload, qos, retain, dup: false }, (error) => (error ? reject(error) : resolve())),
      ),
    async subscribe(filter, deliver) {
      // Called synchronously and acknowledged at once: aedes never queues for the hub.
      const onMessage = (packet: { topic: string; payload: string | Buffer }, done: () => void) => {
        deliver(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
        done();
      };
      await new Promise<void>((resolve) => broker.subscribe(filter, onMessage, resolve));
      return () => new Promise<void>((resolve) => broker.unsubscribe(filter, onMessage, resolve));
    },
    disconnectDevice: (deviceId) => connections.closeAll(deviceId),
    async close() {
      // aedes.close waits for clients that may never go: cut their sockets first.
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

/** The connections of each device (by login), from the moment they try to log in until their socket closes. */
class DeviceConnections {
  readonly #byDevice = new Map<string, Set<Client>>();

  /** Holds a client under a login; answers the function that lets it go (also called when its socket closes). */
  hold(username: string, client: Client): () => void {
    const clients = this.#byDevice.get(username) ?? new Set<Client>();
    this.#byDevice.set(username, clients);
    clients.add(client);
    const release = () => {
      clients.delete(client);
      if (clients.size === 0 && this.#byDevice.get(username) === clients) this.#byDevice.delete(username);
    };
    client.conn.once('close', release);
    return release;
  }

  closeAll(deviceId: string): number {
    const clients = [...(this.#byDevice.get(deviceId) ?? [])];
    for (const client of clients) client.close();
    return clients.length;
  }
}
