/**
 * The MQTT side of the Mammotion cloud (SPEC §2.3, §3.1, §9): one connection with JWT
 * credentials, re-established with exponential back-off (1 s doubling to 120 s), topics
 * subscribed again after every connect (sessions are clean), and credentials renewed 30 min
 * before their JWT expires. A broker that refuses the credentials gets one fresh set and
 * one more try; a second refusal gives up with a reason.
 *
 * mqtt.js's own reconnect is off: it would retry with stale credentials at a fixed period.
 *
 * @module
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from '../../../core/log/index.js';
import type { MqttCredentials } from './account.js';
import { ReauthRequiredError } from './errors.js';
import { delay } from './http.js';

/** What the link reports. */
export type LinkStatus = 'connecting' | 'connected' | 'reconnecting' | 'failed' | 'reauth_required';

/** Options of {@link BrokerLink}. */
export interface BrokerLinkOptions {
  /** Fetches a fresh credential set (the account's `mqttCredentials`). */
  credentials: () => Promise<MqttCredentials>;
  /** Every topic filter to hold, read at each connect. */
  topics: () => string[];
  /** Every message. Must not throw (it is guarded anyway). */
  onMessage: (topic: string, payload: Buffer) => void;
  onStatus: (status: LinkStatus, reason?: string) => void;
  log: Logger;
  initialDelayMs: number;
  maxDelayMs: number;
  /** Renew credentials this long before the MQTT JWT's `exp`. */
  refreshLeadMs: number;
  connectTimeoutMs: number;
  now: () => number;
}

type Outcome = 'refused' | 'lost' | 'unreachable' | 'stopped';

/** MQTT 3.1.1 CONNACK 4/5 and MQTT 5 reason codes 134/135: the broker refused who we are. */
function isAuthRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 4 || code === 5 || code === 134 || code === 135;
}

/** One connection to the Mammotion broker, kept up until {@link stop}. */
export class BrokerLink {
  readonly #o: BrokerLinkOptions;
  readonly #stopping = new AbortController();
  #client: MqttClient | undefined;
  #cached: MqttCredentials | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  /** Set when the current connection is being cut on purpose to pick up renewed credentials. */
  #rotating = false;
  #loop: Promise<void> | undefined;
  /** Connections lost and re-established, for metrics. */
  reconnects = 0;

  constructor(options: BrokerLinkOptions) {
    this.#o = options;
  }

  /** Starts the connect loop (once). */
  start(): void {
    this.#loop ??= this.#run().catch((error: unknown) => {
      this.#o.log.error({ err: error }, 'mammotion mqtt loop crashed');
      this.#o.onStatus('failed', `MQTT loop crashed: ${(error as Error).message}`);
    });
  }

  /** Subscribes more topics now, when connected (new devices); they are also held on every later connect. */
  async subscribe(topics: string[]): Promise<void> {
    const client = this.#client;
    if (!client?.connected || topics.length === 0) return;
    await client.subscribeAsync(topics, { qos: 0 });
  }

  /** Ends the connection and the loop; resolves when both are gone. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    clearTimeout(this.#renewTimer);
    this.#client?.end(true);
    await this.#loop;
  }

  async #run(): Promise<void> {
    let failures = 0;
    let refusedOnce = false;
    let fresh = false;
    this.#o.onStatus('connecting');
    while (!this.#stopping.signal.aborted) {
      let credentials: MqttCredentials;
      try {
        credentials = await this.#credentials(fresh);
        fresh = false;
      } catch (error) {
        if (error instanceof ReauthRequiredError) return this.#o.onStatus('reauth_required', error.message);
        this.#o.log.warn({ err: (error as Error).message }, 'mammotion mqtt credentials unavailable');
        await this.#backoff(failures++);
        continue;
      }
      const outcome = await this.#connectOnce(credentials);
      if (outcome === 'stopped') return;
      if (outcome === 'refused') {
        // Client id and username can rotate with the JWT: one complete new set, one more try.
        if (refusedOnce) return this.#o.onStatus('failed', 'The Mammotion MQTT broker refused fresh credentials; giving up on this transport');
        refusedOnce = true;
        fresh = true;
        this.#o.log.warn('mammotion mqtt broker refused the credentials; fetching a new set once');
        continue;
      }
      if (outcome === 'lost') {
        failures = 0;
        refusedOnce = false;
        this.reconnects++;
      }
      if (this.#rotating) {
        this.#rotating = false;
        continue;
      }
      this.#o.onStatus('reconnecting');
      await this.#backoff(failures++);
    }
  }

  /** Cached credentials while their JWT is unexpired (the renewal timer keeps them ahead), else a new set. */
  async #credentials(fresh: boolean): Promise<MqttCredentials> {
    const cached = this.#cached;
    if (!fresh && cached && (cached.expiresAt === undefined || cached.expiresAt > this.#o.now())) return cached;
    const credentials = await this.#o.credentials();
    this.#cached = credentials;
    this.#scheduleRenewal(credentials);
    return credentials;
  }

  #scheduleRenewal(credentials: MqttCredentials): void {
    clearTimeout(this.#renewTimer);
    if (credentials.expiresAt === undefined || this.#stopping.signal.aborted) return;
    const wait = credentials.expiresAt - this.#o.refreshLeadMs - this.#o.now();
    // A JWT already inside the lead is renewed at the next connect instead of in a tight loop.
    if (wait <= 0) return;
    this.#renewTimer = setTimeout(() => void this.#renew(), Math.min(wait, 2 ** 31 - 1));
    this.#renewTimer.unref();
  }

  /** Fetches new credentials first, then cuts the connection so the loop reconnects with them at once. */
  async #renew(): Promise<void> {
    if (this.#stopping.signal.aborted) return;
    try {
      this.#cached = await this.#o.credentials();
      this.#scheduleRenewal(this.#cached);
    } catch (error) {
      this.#o.log.warn({ err: (error as Error).message }, 'mammotion mqtt credential renewal failed; keeping the current connection');
      if (this.#stopping.signal.aborted) return;
      this.#renewTimer = setTimeout(() => void this.#renew(), 60_000);
      this.#renewTimer.unref();
      return;
    }
    this.#o.log.info('mammotion mqtt credentials renewed; reconnecting');
    this.#rotating = true;
    this.#client?.end(false);
  }

  #connectOnce(credentials: MqttCredentials): Promise<Outcome> {
    if (this.#stopping.signal.aborted) return Promise.resolve('stopped');
    const { address, clientId, username, jwt } = credentials;
    this.#o.log.debug({ broker: address.url, clientId, hasPassword: jwt.length > 0 }, 'mammotion mqtt connecting');
    const client = mqtt.connect(address.url, {
      clientId,
      username,
      password: jwt,
      protocolVersion: 4,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 0,
      connectTimeout: this.#o.connectTimeoutMs,
      // The cloud's TLS is used without CA verification by the reference client (SPEC §2.3).
      rejectUnauthorized: false,
    });
    this.#client = client;
    return new Promise((resolve) => {
      let connected = false;
      let refused = false;
      client.on('connect', () => {
        connected = true;
        void this.#afterConnect(client);
      });
      client.on('message', (topic, payload) => this.#deliver(topic, payload));
      client.on('error', (error) => {
        if (isAuthRefusal(error)) refused = true;
        this.#o.log.warn({ err: error.message }, 'mammotion mqtt error');
      });
      client.once('close', () => {
        client.removeAllListeners('connect');
        client.removeAllListeners('message');
        client.end(true);
        if (this.#client === client) this.#client = undefined;
        // Keep an error listener: a late socket error must not become an uncaught exception.
        client.on('error', () => undefined);
        resolve(this.#stopping.signal.aborted ? 'stopped' : refused ? 'refused' : connected ? 'lost' : 'unreachable');
      });
    });
  }

  async #afterConnect(client: MqttClient): Promise<void> {
    try {
      const topics = this.#o.topics();
      if (topics.length > 0) {
        const granted = await client.subscribeAsync(topics, { qos: 0 });
        const refused = granted.filter((grant) => grant.qos === 128).map((grant) => grant.topic);
        if (refused.length > 0) this.#o.log.warn({ topics: refused }, 'mammotion mqtt broker refused some subscriptions');
      }
      this.#o.log.info({ topics: topics.length }, 'mammotion mqtt connected');
      this.#o.onStatus('connected');
    } catch (error) {
      // Without the subscriptions the connection is useless: drop it and let the loop retry.
      this.#o.log.warn({ err: (error as Error).message }, 'mammotion mqtt subscribe failed; reconnecting');
      client.end(true);
    }
  }

  #deliver(topic: string, payload: Buffer): void {
    try {
      this.#o.onMessage(topic, payload);
    } catch (error) {
      this.#o.log.error({ err: error, topic }, 'mammotion mqtt message handler threw');
    }
  }

  #backoff(failures: number): Promise<void> {
    const wait = Math.min(this.#o.initialDelayMs * 2 ** failures, this.#o.maxDelayMs);
    return delay(wait, this.#stopping.signal);
  }
}
