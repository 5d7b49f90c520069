/**
 * The simulator's two cloud faces on loopback (SPEC §10): the Mammotion HTTP APIs (id
 * server, domestic server and IoT API on one origin) and the Mammotion MQTT broker. The
 * driver is pointed at `httpUrl` and finds everything else the way it would in production:
 * the IoT base URL in the access token's `iot` claim, the broker in the MQTT credentials.
 *
 * It is strict where the real cloud may be lax (it checks the OAuth2 signature, the invoke
 * headers and base64), so driver mistakes show up here rather than against Mammotion, and
 * it can inject the failures the driver must survive ({@link CloudFaults}).
 *
 * The mower physics plug in through two calls:
 * - {@link MammotionCloudSimulator.handleInvokes} receives every command frame a client sends;
 * - {@link MammotionCloudSimulator.publishFrame} sends a frame from a mower to subscribed clients.
 *
 * Response codes for failures the spec does not name (bad password, bad signature, unknown
 * device) are the simulator's own choice.
 *
 * @example
 * const sim = new MammotionCloudSimulator();
 * sim.addDevice({ iotId: 'iot-1', deviceName: 'Luba-VSLKJX', productKey: 'pk1', firmware: '1.30.25.1' });
 * sim.handleInvokes((iotId, frame) => mower.receive(iotId, frame));
 * const { httpUrl } = await sim.start();
 * // MammotionAccountClient({ idBaseUrl: httpUrl, domesticBaseUrl: httpUrl, clientId, clientSecret, … })
 *
 * @module
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { Aedes, type AuthenticateError } from 'aedes';
import type { Logger } from '../../../core/log/index.js';
import { oauthSignature } from '../cloud/signature.js';

/** The simulated Mammotion account. */
export interface SimulatedAccount {
  email: string;
  password: string;
  /** OAuth2 client id the driver must present. */
  clientId: string;
  /** OAuth2 client secret the signature is checked with. */
  clientSecret: string;
  /** `userInformation.userAccount`, i.e. the LubaMsg `subtype` commands should carry. */
  userAccount: number;
}

/** A mower known to the simulated cloud. */
export interface SimulatedDevice {
  iotId: string;
  deviceName: string;
  productKey: string;
  /** Main firmware version (the transport's quota depends on it). */
  firmware?: string;
  /** Listed online (1) or offline (3) by the device lists. Default true. */
  online?: boolean;
}

/**
 * Receives a command frame. Called once per accepted invoke, after fault injection, with the
 * exact LubaMsg bytes the client sent (base64 already decoded). The invoke answers code 0
 * when it returns (or its promise resolves) and code 50000 if it throws.
 */
export type InvokeHandler = (iotId: string, frame: Uint8Array) => void | Promise<void>;

/** Options of {@link MammotionCloudSimulator}. */
export interface CloudSimulatorOptions {
  account?: Partial<SimulatedAccount>;
  /** Lifetime of issued access tokens. Default 3600 s. */
  accessTokenTtlS?: number;
  /** Lifetime of issued MQTT JWTs. Default 7200 s. */
  mqttJwtTtlS?: number;
  /** Loopback address to listen on. Default 127.0.0.1. */
  host?: string;
  onInvoke?: InvokeHandler;
  log?: Logger;
}

/** How a refused access token answers. Both forms exist in the wild (SPEC §2.1). */
export type TokenRefusal = 'http401' | 'body401' | 'body460';

/** Failures the simulator can inject. */
export interface CloudFaults {
  /** While on, invokes for the device answer code 50103 (device offline). */
  offline(iotId: string, on: boolean): void;
  /** The next `n` invokes for the device answer code 20056 (gateway timeout). */
  gatewayTimeout(iotId: string, n: number): void;
  /** The next `n` invokes (any device) answer HTTP 429. */
  rateLimit(n: number): void;
  /** Every access token issued so far is refused from now on. */
  expireTokens(as?: TokenRefusal): void;
  /** Refresh requests answer code 40102 "Refresh token has expired" from now on. */
  rejectRefresh(): void;
  /** Cuts every MQTT client's connection (they may reconnect). */
  dropBroker(): void;
  /** Publishes a frame event with broken JSON and one with garbage base64 for the device. */
  malformed(productKey: string, deviceName: string): Promise<void>;
  /** Every MQTT credential issued so far is refused at connect from now on (fresh ones work). */
  revokeMqttCredentials(): void;
  /** While on, the broker refuses every connection, even with fresh credentials. */
  refuseMqtt(on: boolean): void;
  /** Clears every fault. */
  reset(): void;
}

/** What the simulator counted, for tests. */
export interface CloudSimulatorStats {
  passwordLogins: number;
  refreshes: number;
  rejectedSignatures: number;
  /** Invoke requests that passed authentication (accepted or failed by a fault). */
  invokeRequests: number;
  /** Invokes handed to the handler. */
  invokes: number;
  mqttCredentialsIssued: number;
  mqttRefusals: number;
  mqttConnections: number;
}

interface Faults {
  offline: Set<string>;
  gatewayTimeouts: Map<string, number>;
  rateLimits: number;
  rejectRefresh: boolean;
  refuseMqtt: boolean;
}

interface AccessToken {
  refused: TokenRefusal | undefined;
  expiresAt: number;
}

interface MqttCredential {
  jwt: string;
  clientId: string;
  revoked: boolean;
}

const DEFAULT_ACCOUNT: SimulatedAccount = {
  email: 'mower@example.com',
  password: 'simulator-password',
  clientId: 'SIMULATOR_CLIENT_ID',
  clientSecret: 'SIMULATOR_CLIENT_SECRET',
  userAccount: 123456,
};

const MAX_BODY = 1024 * 1024;
const AEDES_CLOSE_TIMEOUT_MS = 2000;

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: { code: number; msg: string },
  ) {
    super(body.msg);
  }
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The simulated Mammotion cloud: HTTP APIs + MQTT broker on loopback. */
export class MammotionCloudSimulator {
  /** The account clients must sign in with. */
  readonly account: SimulatedAccount;
  /** Fault injection. */
  readonly faults: CloudFaults;
  /** Counters. */
  readonly stats: CloudSimulatorStats = {
    passwordLogins: 0,
    refreshes: 0,
    rejectedSignatures: 0,
    invokeRequests: 0,
    invokes: 0,
    mqttCredentialsIssued: 0,
    mqttRefusals: 0,
    mqttConnections: 0,
  };
  readonly #devices = new Map<string, SimulatedDevice>();
  readonly #accessTokens = new Map<string, AccessToken>();
  readonly #refreshTokens = new Set<string>();
  readonly #mqttCredentials = new Map<string, MqttCredential>();
  readonly #faults: Faults = { offline: new Set(), gatewayTimeouts: new Map(), rateLimits: 0, rejectRefresh: false, refuseMqtt: false };
  readonly #signingKey = randomBytes(32);
  readonly #host: string;
  readonly #accessTtlS: number;
  readonly #mqttTtlS: number;
  readonly #log: Logger | undefined;
  #onInvoke: InvokeHandler;
  #http: HttpServer | undefined;
  #mqttServer: NetServer | undefined;
  #broker: Aedes | undefined;
  readonly #mqttSockets = new Set<Socket>();
  #httpUrl = '';
  #mqttPort = 0;
  #messageId = 0;

  constructor(options: CloudSimulatorOptions = {}) {
    this.account = { ...DEFAULT_ACCOUNT, ...options.account };
    this.#host = options.host ?? '127.0.0.1';
    this.#accessTtlS = options.accessTokenTtlS ?? 3600;
    this.#mqttTtlS = options.mqttJwtTtlS ?? 7200;
    this.#onInvoke = options.onInvoke ?? (() => undefined);
    this.#log = options.log;
    this.faults = this.#faultApi();
  }

  /** Registers (or replaces) a mower. */
  addDevice(device: SimulatedDevice): void {
    this.#devices.set(device.iotId, { online: true, ...device });
  }

  /** A registered mower, e.g. to read its firmware. */
  device(iotId: string): SimulatedDevice | undefined {
    return this.#devices.get(iotId);
  }

  /** Replaces the command handler (see {@link InvokeHandler}). */
  handleInvokes(handler: InvokeHandler): void {
    this.#onInvoke = handler;
  }

  /** Starts both faces on free loopback ports. */
  async start(): Promise<{ httpUrl: string; mqttUrl: string }> {
    await this.#startBroker();
    const http = createHttpServer((req, res) => void this.#handle(req, res));
    this.#http = http;
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(0, this.#host, () => resolve());
    });
    this.#httpUrl = `http://${this.#host}:${(http.address() as AddressInfo).port}`;
    return { httpUrl: this.#httpUrl, mqttUrl: `mqtt://${this.#host}:${this.#mqttPort}` };
  }

  /** Stops both faces. Always finishes: open sockets are destroyed and aedes gets a deadline. */
  async stop(): Promise<void> {
    const http = this.#http;
    this.#http = undefined;
    if (http) {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
    for (const socket of this.#mqttSockets) socket.destroy();
    const server = this.#mqttServer;
    this.#mqttServer = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    const broker = this.#broker;
    this.#broker = undefined;
    if (broker) {
      await Promise.race([
        new Promise<void>((resolve) => broker.close(() => resolve())),
        new Promise<void>((resolve) => setTimeout(resolve, AEDES_CLOSE_TIMEOUT_MS).unref()),
      ]);
    }
  }

  /**
   * Publishes a frame from a mower, as Mammotion does (VECTORS §B-wire):
   * `{"id","version","sys","method","params":{"content":"<base64>"}}` on
   * `/sys/<pk>/<dn>/thing/event/device_protobuf_msg_event/post`.
   */
  publishFrame(productKey: string, deviceName: string, frame: Uint8Array): Promise<void> {
    const envelope = {
      id: String(++this.#messageId),
      version: '1.0',
      sys: { ack: 0 },
      method: 'thing.event.device_protobuf_msg_event.post',
      params: { content: Buffer.from(frame).toString('base64') },
    };
    return this.publishRaw(`/sys/${productKey}/${deviceName}/thing/event/device_protobuf_msg_event/post`, JSON.stringify(envelope));
  }

  /**
   * Publishes a thing/status message on `/sys/<pk>/<dn>/app/down/thing/status`, in Mammotion's
   * shape (`{"action":"online"|"offline",…}`) or the IoT platform's (`{"method":"thing.status",…}`).
   */
  publishStatus(productKey: string, deviceName: string, online: boolean, shape: 'mammotion' | 'aliyun' = 'mammotion'): Promise<void> {
    const iotId = [...this.#devices.values()].find((d) => d.productKey === productKey && d.deviceName === deviceName)?.iotId ?? '';
    const now = Date.now();
    const payload =
      shape === 'mammotion'
        ? { action: online ? 'online' : 'offline', productKey, deviceName, iotId, gmtCreate: now }
        : { method: 'thing.status', id: String(++this.#messageId), params: { iotId, productKey, deviceName, status: { value: online ? 1 : 3, time: now } }, version: '1.0' };
    return this.publishRaw(`/sys/${productKey}/${deviceName}/app/down/thing/status`, JSON.stringify(payload));
  }

  /** Publishes anything on any topic (for malformed-input tests). */
  publishRaw(topic: string, payload: string | Uint8Array): Promise<void> {
    const broker = this.#broker;
    if (!broker) return Promise.reject(new Error('simulator not started'));
    return new Promise((resolve, reject) =>
      broker.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false }, (error) => (error ? reject(error) : resolve())),
    );
  }

  // ---------------------------------------------------------------- faults

  #faultApi(): CloudFaults {
    const f = this.#faults;
    return {
      offline: (iotId, on) => void (on ? f.offline.add(iotId) : f.offline.delete(iotId)),
      gatewayTimeout: (iotId, n) => void f.gatewayTimeouts.set(iotId, n),
      rateLimit: (n) => void (f.rateLimits = n),
      expireTokens: (as = 'http401') => {
        for (const token of this.#accessTokens.values()) token.refused = as;
      },
      rejectRefresh: () => void (f.rejectRefresh = true),
      dropBroker: () => {
        for (const socket of this.#mqttSockets) socket.destroy();
      },
      malformed: async (productKey, deviceName) => {
        const topic = `/sys/${productKey}/${deviceName}/thing/event/device_protobuf_msg_event/post`;
        await this.publishRaw(topic, '{"params":{"content":"CPAB');
        await this.publishRaw(topic, JSON.stringify({ id: '1', params: { content: '!!not*base64%%' } }));
      },
      revokeMqttCredentials: () => {
        for (const credential of this.#mqttCredentials.values()) credential.revoked = true;
      },
      refuseMqtt: (on) => void (f.refuseMqtt = on),
      reset: () => {
        f.offline.clear();
        f.gatewayTimeouts.clear();
        f.rateLimits = 0;
        f.rejectRefresh = false;
        f.refuseMqtt = false;
      },
    };
  }

  // ---------------------------------------------------------------- HTTP face

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', this.#httpUrl);
      const data = await this.#route(req.method ?? 'GET', url, req);
      send(res, 200, { code: 0, msg: 'Request success', data });
    } catch (error) {
      if (error instanceof HttpFailure) return send(res, error.status, error.body);
      this.#log?.error({ err: error }, 'simulator http handler failed');
      send(res, 500, { code: 500, msg: 'simulator error' });
    }
  }

  async #route(method: string, url: URL, req: IncomingMessage): Promise<unknown> {
    const route = `${method} ${url.pathname}`;
    switch (route) {
      case 'POST /oauth2/token':
        return this.#token(url, req);
      case 'GET /device-server/v1/device/list':
        this.#bearer(req);
        return [...this.#devices.values()].map((d) => ({
          iotId: d.iotId,
          deviceId: d.iotId,
          deviceName: d.deviceName,
          deviceType: d.deviceName.split('-')[0] ?? 'Luba',
          series: 'simulated',
          productSeries: 'simulated',
          generation: 2,
          status: d.online === false ? 3 : 1,
        }));
      case 'POST /v1/user/device/page': {
        const body = await readJson(req);
        this.#bearer(req);
        return this.#devicePage(body);
      }
      case 'POST /v1/mqtt/auth/jwt':
        await readJson(req);
        this.#bearer(req);
        return this.#issueMqttCredentials();
      case 'POST /v1/mqtt/rpc/thing/service/invoke': {
        const body = await readJson(req);
        this.#bearer(req);
        return this.#invoke(req, body);
      }
      default:
        throw new HttpFailure(404, { code: 404, msg: `No route ${route}` });
    }
  }

  #token(url: URL, req: IncomingMessage): unknown {
    const params = Object.fromEntries(url.searchParams.entries());
    const { clientId, clientSecret } = this.account;
    const timestamp = Number(header(req, 'ma-timestamp'));
    const expected = Number.isFinite(timestamp) ? oauthSignature(clientId, clientSecret, timestamp, params) : '';
    if (params.client_id !== clientId || header(req, 'ma-app-key') !== clientId) throw new HttpFailure(200, { code: 40003, msg: 'Unknown client' });
    if (!expected || header(req, 'ma-signature') !== expected || !/^\d+_\d{7}_1$/.test(header(req, 'client-id') ?? '')) {
      this.stats.rejectedSignatures++;
      throw new HttpFailure(200, { code: 40004, msg: 'Signature verification failed' });
    }
    if (params.grant_type === 'password') return this.#passwordGrant(params);
    if (params.grant_type === 'refresh_token') return this.#refreshGrant(params);
    throw new HttpFailure(200, { code: 40005, msg: 'Unsupported grant_type' });
  }

  #passwordGrant(params: Record<string, string>): unknown {
    const password = Buffer.from(params.password ?? '', 'base64').toString('utf8');
    if (params.username !== this.account.email || password !== this.account.password || params.authType === undefined) {
      throw new HttpFailure(200, { code: 40001, msg: 'Incorrect account or password' });
    }
    this.stats.passwordLogins++;
    return this.#issueTokens();
  }

  #refreshGrant(params: Record<string, string>): unknown {
    const token = params.refresh_token ?? '';
    if (this.#faults.rejectRefresh || !this.#refreshTokens.has(token)) throw new HttpFailure(200, { code: 40102, msg: 'Refresh token has expired' });
    this.#refreshTokens.delete(token);
    this.stats.refreshes++;
    return this.#issueTokens();
  }

  #issueTokens(): unknown {
    const exp = Math.floor(Date.now() / 1000) + this.#accessTtlS;
    const accessToken = this.#jwt({ iot: this.#httpUrl, exp, robot: 'simulator', jti: randomUUID() });
    const refreshToken = randomBytes(24).toString('base64url');
    this.#accessTokens.set(accessToken, { refused: undefined, expiresAt: exp * 1000 });
    this.#refreshTokens.add(refreshToken);
    return {
      access_token: accessToken,
      token_type: 'bearer',
      refresh_token: refreshToken,
      expires_in: this.#accessTtlS,
      authorization_code: randomBytes(8).toString('hex'),
      userInformation: {
        areaCode: '+46',
        domainAbbreviation: 'SE',
        userId: 'sim-user',
        userAccount: String(this.account.userAccount),
        authType: '0',
        email: this.account.email,
      },
    };
  }

  #bearer(req: IncomingMessage): void {
    const value = /^Bearer (.+)$/.exec(header(req, 'authorization') ?? '')?.[1];
    const token = value ? this.#accessTokens.get(value) : undefined;
    const refusal = !token || token.expiresAt <= Date.now() ? 'http401' : token.refused;
    if (refusal === undefined) return;
    if (refusal === 'http401') throw new HttpFailure(401, { code: 401, msg: 'Unauthorized' });
    throw new HttpFailure(200, { code: refusal === 'body401' ? 401 : 460, msg: 'Token expired' });
  }

  #devicePage(body: unknown): unknown {
    const { pageNumber, pageSize } = body as { pageNumber?: unknown; pageSize?: unknown };
    const size = typeof pageSize === 'number' && pageSize > 0 ? Math.min(pageSize, 200) : 10;
    const page = typeof pageNumber === 'number' && pageNumber > 0 ? pageNumber : 1;
    const all = [...this.#devices.values()];
    const records = all.slice((page - 1) * size, page * size).map((d) => ({
      identityId: 'sim-identity',
      iotId: d.iotId,
      productKey: d.productKey,
      deviceName: d.deviceName,
      owned: 1,
      bindTime: 1735689600000,
      createTime: 1735689600000,
      status: d.online === false ? 3 : 1,
    }));
    return { current: page, size, total: all.length, pages: Math.ceil(all.length / size), records };
  }

  #issueMqttCredentials(): unknown {
    const username = `sim_${randomBytes(6).toString('hex')}`;
    const clientId = `sim_client_${randomBytes(6).toString('hex')}`;
    const jwt = this.#jwt({ sub: username, exp: Math.floor(Date.now() / 1000) + this.#mqttTtlS, jti: randomUUID() });
    this.#mqttCredentials.set(username, { jwt, clientId, revoked: false });
    this.stats.mqttCredentialsIssued++;
    return { host: `tcp://${this.#host}:${this.#mqttPort}`, jwt, clientId, username };
  }

  async #invoke(req: IncomingMessage, body: unknown): Promise<unknown> {
    this.stats.invokeRequests++;
    const headersOk =
      /^\d{21}$/.test(header(req, 'request-id') ?? '') &&
      /^\d+\/0\/0$/.test(header(req, 'l-t-z') ?? '') &&
      header(req, 'client-type') === '1' &&
      Boolean(header(req, 'client-id'));
    if (!headersOk) throw new HttpFailure(200, { code: 40006, msg: 'Missing or malformed Request-Id, L-T-Z, Client-Id or Client-Type' });
    const { iotId, identifier, args } = (body ?? {}) as { iotId?: unknown; identifier?: unknown; args?: { content?: unknown } };
    if (identifier !== 'device_protobuf_sync_service') throw new HttpFailure(200, { code: 40007, msg: 'Unknown identifier' });
    if (typeof iotId !== 'string' || !this.#devices.has(iotId)) throw new HttpFailure(200, { code: 40008, msg: 'Unknown device' });
    const content = typeof args?.content === 'string' ? args.content : '';
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(content) || content.length % 4 !== 0) throw new HttpFailure(200, { code: 40009, msg: 'args.content is not base64' });
    this.#injectInvokeFaults(iotId);
    this.stats.invokes++;
    try {
      await this.#onInvoke(iotId, new Uint8Array(Buffer.from(content, 'base64')));
    } catch (error) {
      this.#log?.warn({ err: error, iotId }, 'simulator invoke handler failed');
      throw new HttpFailure(200, { code: 50000, msg: 'Device handler failed' });
    }
    return { result: 'success' };
  }

  #injectInvokeFaults(iotId: string): void {
    const f = this.#faults;
    if (f.rateLimits > 0) {
      f.rateLimits--;
      throw new HttpFailure(429, { code: 429, msg: 'Too Many Requests' });
    }
    if (f.offline.has(iotId)) throw new HttpFailure(200, { code: 50103, msg: 'Device is offline' });
    const timeouts = f.gatewayTimeouts.get(iotId) ?? 0;
    if (timeouts > 0) {
      f.gatewayTimeouts.set(iotId, timeouts - 1);
      throw new HttpFailure(200, { code: 20056, msg: 'Device response timeout' });
    }
  }

  #jwt(payload: Record<string, unknown>): string {
    const head = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(payload)}`;
    return `${head}.${createHmac('sha256', this.#signingKey).update(head).digest('base64url')}`;
  }

  // ---------------------------------------------------------------- MQTT face

  async #startBroker(): Promise<void> {
    const broker = await Aedes.createBroker({
      authenticate: (client, username, password, done) => {
        const credential = username ? this.#mqttCredentials.get(username) : undefined;
        const ok =
          !this.#faults.refuseMqtt &&
          credential !== undefined &&
          !credential.revoked &&
          credential.clientId === client.id &&
          password?.toString() === credential.jwt;
        if (ok) {
          this.stats.mqttConnections++;
          return done(null, true);
        }
        this.stats.mqttRefusals++;
        done(Object.assign(new Error('Bad username or password'), { returnCode: 4 }) as AuthenticateError, false);
      },
      // MQTT is receive-only for clients: only the simulator (client null) publishes.
      authorizePublish: (client, _packet, done) => done(client === null ? null : new Error('clients may not publish')),
      authorizeSubscribe: (_client, subscription, done) => done(null, subscription.topic.startsWith('/sys/') ? subscription : null),
    });
    this.#broker = broker;
    const server = createNetServer((socket) => {
      this.#mqttSockets.add(socket);
      socket.once('close', () => this.#mqttSockets.delete(socket));
      broker.handle(socket);
    });
    this.#mqttServer = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, this.#host, () => resolve());
    });
    this.#mqttPort = (server.address() as AddressInfo).port;
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpFailure(413, { code: 413, msg: 'Body too large' });
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpFailure(400, { code: 400, msg: 'Malformed JSON' });
  }
}
