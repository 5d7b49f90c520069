/**
 * The Mammotion cloud transport against the simulator's cloud faces, over real loopback
 * sockets: OAuth2 login and refresh, device discovery, MQTT frames in, HTTPS invokes out, and
 * every rule the cloud imposes (sync keep-alive, quota, 429 block, offline devices, broker
 * drops, broken messages). No mocks; a controllable clock stands in for waiting 7 s or 12 h.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CloudUnavailableError,
  DeviceOfflineError,
  GatewayTimeoutError,
  LoginRejectedError,
  MammotionAccountClient,
  MammotionOpenApiClient,
  MammotionCloudTransport,
  QuotaExceededError,
  RateLimitedError,
  ReauthRequiredError,
  UnsupportedDeviceError,
  compareVersions,
  decodeBase64,
  iotBaseUrl,
  isAliyunProductKey,
  isQuotaExempt,
  oauthSignature,
  parseBrokerAddress,
  type CloudDevice,
  type CloudTransportOptions,
  type TransportState,
} from '../../../plugins/mammotion/cloud/index.js';
import { MammotionCloudSimulator, type SimulatedDevice } from '../../../plugins/mammotion/simulator/cloud.js';
import { sleep, until } from '../../harness/wait.js';

const bytes = (base64: string) => new Uint8Array(Buffer.from(base64, 'base64'));
/** VECTORS §A1 start job, §A3 pause, §A12 sync keep-alive, §B report. */
const START = bytes('CPABEAcYESABKAEwATjAxAdaB6oCBAgBEAF4gPil+cEy');
const PAUSE = bytes('CPABEAcYESABKAEwATjAxAdaB6oCBAgBEAJ4gPil+cEy');
const SYNC = bytes('CPgBEAcgASgBMAE4wMQHQgIIA3iA+KX5wTI=');
const REPORT = bytes(
  'CPQBEAEYByADKCowAVKNAboCiQEKFQgCGLn//////////wE4AVgBYAFoARITCBMQARhkKA4wjb+1zgY4gQJgChoJCAQQARgZUJkyIhgIuZMMEKXRBRiIuiwgBTCincq1/sfimkAqJhDK7OrL7uvFrm4YppMsIO2A/AIoATjd2Q5A9rYBSIEuiAEBoAEyOg4I+9kMEOftUiIECNzmSniA+KX5wTI=',
);
const HOUR = 3600_000;

const logLines: string[] = [];
const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });

/** One mower per concern, so tests never share a device's sync, offline or quota state. */
const DEVICES = {
  frames: { iotId: 'iot-frames', deviceName: 'Luba-VSFRAMES', productKey: 'pkLuba2', firmware: '1.31.0.0' },
  sync: { iotId: 'iot-sync', deviceName: 'Luba-VSSYNC', productKey: 'pkLuba2', firmware: '1.31.0.0' },
  auth: { iotId: 'iot-auth', deviceName: 'Luba-VSAUTH', productKey: 'pkLuba2', firmware: '1.31.0.0' },
  auth2: { iotId: 'iot-auth2', deviceName: 'Yuka-MNAUTH2', productKey: 'pkYuka', firmware: '1.31.0.0' },
  offline: { iotId: 'iot-offline', deviceName: 'Luba-VSOFFLINE', productKey: 'pkLuba2', firmware: '1.31.0.0' },
  timeout: { iotId: 'iot-timeout', deviceName: 'Luba-VSTIMEOUT', productKey: 'pkLuba2', firmware: '1.31.0.0' },
  limited: { iotId: 'iot-429', deviceName: 'Luba-VS429', productKey: 'pkLuba2', firmware: '1.31.0.0' },
  oldFw: { iotId: 'iot-oldfw', deviceName: 'Luba-MNOLDFW', productKey: 'pkMini', firmware: '1.30.3.9' },
  noFw: { iotId: 'iot-nofw', deviceName: 'Luba-MNNOFW', productKey: 'pkMini' },
  newFw: { iotId: 'iot-newfw', deviceName: 'Luba-MNNEWFW', productKey: 'pkMini', firmware: '1.30.25.1' },
  status: { iotId: 'iot-status', deviceName: 'Luba-VSSTATUS', productKey: 'pkLuba2', firmware: '1.31.0.0' },
  aliyun: { iotId: 'iot-aliyun', deviceName: 'Luba-OLDCLOUD', productKey: 'a1AliyunPK', firmware: '1.10.0' },
} satisfies Record<string, SimulatedDevice>;

let sim: MammotionCloudSimulator;
let httpUrl: string;
const invoked: Array<{ iotId: string; frame: Uint8Array }> = [];
const cleanups: Array<() => Promise<void> | void> = [];
const framesFor = (iotId: string) => invoked.filter((call) => call.iotId === iotId).map((call) => call.frame);

interface Target {
  sim: MammotionCloudSimulator;
  url: string;
}

function accountClient(overrides: { clientSecret?: string; idBaseUrl?: string; refreshLeadMs?: number } = {}, target: Target = { sim, url: httpUrl }) {
  const account = new MammotionAccountClient({
    clientId: target.sim.account.clientId,
    clientSecret: overrides.clientSecret ?? target.sim.account.clientSecret,
    idBaseUrl: overrides.idBaseUrl ?? target.url,
    domesticBaseUrl: target.url,
    log,
    refreshLeadMs: overrides.refreshLeadMs,
    retry: { attempts: 2, initialDelayMs: 20 },
  });
  cleanups.push(() => account.close());
  return account;
}

/** A signed-in account and a started transport with its own clock. */
async function connect(options: Partial<CloudTransportOptions> = {}, target: Target = { sim, url: httpUrl }) {
  const simulator = target.sim;
  const account = accountClient({}, target);
  await account.login(simulator.account.email, simulator.account.password);
  const clock = { now: Date.now() };
  const transport = new MammotionCloudTransport({
    account,
    log,
    syncFrame: () => SYNC,
    firmwareOf: (iotId) => simulator.device(iotId)?.firmware,
    reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
    aliyunProductKeys: ['a1AliyunPK'],
    now: () => clock.now,
    ...options,
  });
  cleanups.push(() => transport.close());
  const states: TransportState[] = [];
  transport.onStateChange((state) => states.push(state));
  const frames: Array<{ iotId: string; frame: Uint8Array }> = [];
  transport.onFrame((iotId, frame) => frames.push({ iotId, frame }));
  const online: Array<[string, boolean]> = [];
  transport.onOnline((iotId, isOnline) => online.push([iotId, isOnline]));
  await transport.start();
  const devices = await transport.devices();
  const device = (iotId: string) => devices.find((d) => d.iotId === iotId) as CloudDevice;
  return { account, transport, clock, states, frames, online, device };
}

beforeAll(async () => {
  sim = new MammotionCloudSimulator({ log });
  for (const device of Object.values(DEVICES)) sim.addDevice(device);
  sim.handleInvokes((iotId, frame) => void invoked.push({ iotId, frame }));
  ({ httpUrl } = await sim.start());
});

afterEach(() => sim.faults.reset());

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await sim?.stop();
});

describe('signatures and parsing', () => {
  it('reproduces the OAuth2 signature of VECTORS §C2', () => {
    const signature = oauthSignature('DUMMY_CLIENT_ID', 'DUMMY_SECRET', 1735689600000, {
      client_id: 'DUMMY_CLIENT_ID',
      grant_type: 'refresh_token',
      refresh_token: 'DUMMY_REFRESH',
    });
    expect(signature).toBe('f195c17d59426977c7c7822561377372f9752ab2d2f0f1fea235328bfdf3d20f');
  });

  it('reads every broker host form of §2.3', () => {
    expect(parseBrokerAddress('mqtts://a.example:8884')).toEqual({ host: 'a.example', port: 8884, tls: true, url: 'mqtts://a.example:8884' });
    expect(parseBrokerAddress('ssl://a.example')).toMatchObject({ port: 8883, tls: true });
    expect(parseBrokerAddress('tcp://a.example')).toMatchObject({ port: 1883, tls: false, url: 'mqtt://a.example:1883' });
    expect(parseBrokerAddress('a.example:1999')).toMatchObject({ host: 'a.example', port: 1999, tls: false });
    expect(() => parseBrokerAddress('mqtt://')).toThrow();
  });

  it('prefixes a scheme-less iot claim with https and compares firmware numerically', () => {
    expect(iotBaseUrl('api-iot.example.com/')).toBe('https://api-iot.example.com');
    expect(iotBaseUrl('http://127.0.0.1:5000')).toBe('http://127.0.0.1:5000');
    expect(compareVersions('1.30.25.1', '1.30.3')).toBe(1);
    expect(compareVersions('1.9', '1.10')).toBe(-1);
    expect(isQuotaExempt('1.30.25.1')).toBe(true);
    expect(isQuotaExempt('1.30.25.0')).toBe(false);
    expect(isQuotaExempt(undefined)).toBe(false);
    expect(isQuotaExempt('beta')).toBe(false);
    expect(isAliyunProductKey('a1X', ['a1X'])).toBe(true);
    expect(isAliyunProductKey('pk', ['a1X'])).toBe(false);
  });

  it('decodes only strict base64', () => {
    expect(decodeBase64('CPgBEAcgASgBMAE4wMQHQgIIA3iA+KX5wTI=')).toEqual(SYNC);
    expect(decodeBase64('!!not*base64%%')).toBeUndefined();
    expect(decodeBase64('')).toBeUndefined();
    expect(decodeBase64('abcde')).toBeUndefined();
    expect(decodeBase64(42)).toBeUndefined();
  });
});

describe('account', () => {
  it('refuses a wrong password and a wrong client secret as bad credentials, not outages', async () => {
    await expect(accountClient().login(sim.account.email, 'wrong')).rejects.toBeInstanceOf(LoginRejectedError);
    const signaturesBefore = sim.stats.rejectedSignatures;
    await expect(accountClient({ clientSecret: 'not-the-secret' }).login(sim.account.email, sim.account.password)).rejects.toBeInstanceOf(LoginRejectedError);
    expect(sim.stats.rejectedSignatures).toBe(signaturesBefore + 1);
  });

  it('treats an unreachable id server as transient after retrying', async () => {
    const account = accountClient({ idBaseUrl: 'http://127.0.0.1:9' });
    await expect(account.login(sim.account.email, sim.account.password)).rejects.toBeInstanceOf(CloudUnavailableError);
    expect(account.state).toBe('signed_out');
  });

  it('refreshes on its own before the token expires', async () => {
    // Tokens live 3600 s (exp in whole seconds); a lead of 3598.5 s schedules the refresh 0.5–1.5 s out.
    const account = accountClient({ refreshLeadMs: 3_598_500 });
    await account.login(sim.account.email, sim.account.password);
    const before = sim.stats.refreshes;
    const firstExpiry = account.session?.accessTokenExpiresAt;
    await until(() => sim.stats.refreshes, (n) => n > before, 5000);
    await until(() => account.session?.accessTokenExpiresAt, (expiry) => expiry !== undefined && expiry >= (firstExpiry ?? 0));
    expect(account.state).toBe('signed_in');
  });
});

describe('cloud transport', () => {
  it('signs in, discovers devices and delivers frames with their exact bytes', async () => {
    const { account, transport, frames, device } = await connect();
    expect(transport.state).toBe('connected');
    expect(account.session?.userAccount).toBe(123456);
    expect(account.session?.iotBaseUrl).toBe(httpUrl);
    expect(device(DEVICES.frames.iotId)).toMatchObject({ deviceName: 'Luba-VSFRAMES', productKey: 'pkLuba2', cloud: 'mammotion', supported: true, online: true });

    await sim.publishFrame(DEVICES.frames.productKey, DEVICES.frames.deviceName, REPORT);
    const [received] = await until(() => frames.filter((f) => f.iotId === DEVICES.frames.iotId), (list) => list.length === 1);
    expect(received?.frame).toEqual(REPORT);
    expect(transport.stats().framesIn).toBeGreaterThanOrEqual(1);
  });

  it('lists Aliyun devices as unsupported and refuses to send to them', async () => {
    const { transport, device } = await connect();
    const aliyun = device(DEVICES.aliyun.iotId);
    expect(aliyun).toMatchObject({ cloud: 'aliyun', supported: false });
    expect(aliyun.unsupportedReason).toMatch(/not support/);
    const before = sim.stats.invokeRequests;
    await expect(transport.send(aliyun, START)).rejects.toBeInstanceOf(UnsupportedDeviceError);
    expect(sim.stats.invokeRequests).toBe(before);
  });

  it('sends the sync frame first when the last sync is older than 7 s, and only then', async () => {
    const { transport, clock, device } = await connect();
    const mower = device(DEVICES.sync.iotId);
    await transport.send(mower, START);
    expect(framesFor(mower.iotId)).toEqual([SYNC, START]);

    clock.now += 7000; // exactly 7 s: still fresh
    await transport.send(mower, PAUSE);
    expect(framesFor(mower.iotId)).toEqual([SYNC, START, PAUSE]);

    clock.now += 1; // now older than 7 s since the sync
    await transport.send(mower, START);
    expect(framesFor(mower.iotId)).toEqual([SYNC, START, PAUSE, SYNC, START]);

    // Concurrent sends to a stale device: one sync, then the commands in order.
    clock.now += 8000;
    await Promise.all([transport.send(mower, PAUSE), transport.send(mower, START)]);
    expect(framesFor(mower.iotId).slice(5)).toEqual([SYNC, PAUSE, START]);
    expect(transport.stats()).toMatchObject({ syncsSent: 3, commandsSent: 5 });
    expect(transport.budget(mower.iotId)).toMatchObject({ used: 5, limit: null });
  });

  it.each(['http401', 'body401', 'body460'] as const)('refreshes once and retries when the token is refused (%s)', async (refusal) => {
    const { transport, device } = await connect();
    const logins = sim.stats.passwordLogins;
    const refreshes = sim.stats.refreshes;
    const sentBefore = invoked.length;
    sim.faults.expireTokens(refusal);
    // Two concurrent callers see the same stale token: one refresh serves both.
    await Promise.all([transport.send(device(DEVICES.auth.iotId), START), transport.send(device(DEVICES.auth2.iotId), PAUSE)]);
    expect(sim.stats.refreshes).toBe(refreshes + 1);
    expect(sim.stats.passwordLogins).toBe(logins);
    const sent = invoked.slice(sentBefore);
    expect(sent.filter((c) => c.iotId === DEVICES.auth.iotId).at(-1)?.frame).toEqual(START);
    expect(sent.filter((c) => c.iotId === DEVICES.auth2.iotId).at(-1)?.frame).toEqual(PAUSE);
    expect(transport.state).toBe('connected');
  });

  it('stops with reauth_required when the refresh token is rejected, never re-using the password', async () => {
    const { account, transport, states, device } = await connect();
    const logins = sim.stats.passwordLogins;
    sim.faults.rejectRefresh();
    sim.faults.expireTokens();
    await expect(transport.send(device(DEVICES.auth.iotId), START)).rejects.toBeInstanceOf(ReauthRequiredError);
    expect(account.state).toBe('reauth_required');
    expect(transport.state).toBe('reauth_required');
    expect(states).toContain('reauth_required');
    expect(sim.stats.passwordLogins).toBe(logins);

    const requests = sim.stats.invokeRequests;
    await expect(transport.send(device(DEVICES.auth.iotId), START)).rejects.toBeInstanceOf(ReauthRequiredError);
    expect(sim.stats.invokeRequests).toBe(requests);
  });

  it('maps 50103 to DeviceOfflineError and holds sends until the device is heard from', async () => {
    const { transport, online, device } = await connect();
    const mower = device(DEVICES.offline.iotId);
    sim.faults.offline(mower.iotId, true);
    await expect(transport.send(mower, START)).rejects.toBeInstanceOf(DeviceOfflineError);
    expect(transport.isOffline(mower.iotId)).toBe(true);
    expect(online).toContainEqual([mower.iotId, false]);

    sim.faults.offline(mower.iotId, false);
    const requests = sim.stats.invokeRequests;
    await expect(transport.send(mower, START)).rejects.toBeInstanceOf(DeviceOfflineError);
    expect(sim.stats.invokeRequests).toBe(requests); // refused locally, the cloud was not asked

    await sim.publishFrame(mower.productKey, mower.deviceName, REPORT);
    await until(() => transport.isOffline(mower.iotId), (offline) => !offline);
    expect(online.at(-1)).toEqual([mower.iotId, true]);
    await transport.send(mower, START);
    expect(framesFor(mower.iotId).at(-1)).toEqual(START);
  });

  it('maps 20056 to GatewayTimeoutError without blocking the device', async () => {
    const { transport, device } = await connect();
    const mower = device(DEVICES.timeout.iotId);
    await transport.send(mower, START); // the sync is fresh now, so the fault hits the command
    sim.faults.gatewayTimeout(mower.iotId, 1);
    await expect(transport.send(mower, PAUSE)).rejects.toBeInstanceOf(GatewayTimeoutError);
    await transport.send(mower, PAUSE);
    expect(framesFor(mower.iotId).at(-1)).toEqual(PAUSE);
    expect(transport.isOffline(mower.iotId)).toBe(false);
  });

  it('maps HTTP 429 to RateLimitedError and blocks that device for 12 h', async () => {
    const { transport, clock, device } = await connect();
    const mower = device(DEVICES.limited.iotId);
    await transport.send(mower, START);
    sim.faults.rateLimit(1);
    const error = await transport.send(mower, PAUSE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).blockedUntil).toBe(clock.now + 12 * HOUR);
    expect(transport.budget(mower.iotId).blockedUntil).toBe(clock.now + 12 * HOUR);

    const requests = sim.stats.invokeRequests;
    clock.now += 11 * HOUR;
    await expect(transport.send(mower, PAUSE)).rejects.toBeInstanceOf(RateLimitedError);
    expect(sim.stats.invokeRequests).toBe(requests);
    await transport.send(device(DEVICES.timeout.iotId), PAUSE); // other devices are not blocked

    clock.now += HOUR + 1;
    await transport.send(mower, PAUSE);
    expect(framesFor(mower.iotId).at(-1)).toEqual(PAUSE);
  });

  it('enforces the send quota for firmware older than 1.30.25.1 (and unknown), not for newer', async () => {
    const { transport, clock, device } = await connect({ sendLimit: 3 });
    const old = device(DEVICES.oldFw.iotId);
    const firstSendAt = clock.now;
    for (let i = 0; i < 3; i++) {
      await transport.send(old, START);
      clock.now += 8000; // each send also needs a sync: syncs must not count
    }
    const requests = sim.stats.invokeRequests;
    const error = await transport.send(old, START).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(sim.stats.invokeRequests).toBe(requests);
    expect(transport.budget(old.iotId)).toEqual({ used: 3, limit: 3, blockedUntil: firstSendAt + 12 * HOUR });

    clock.now = firstSendAt + 12 * HOUR + 1; // the first send left the rolling window
    await transport.send(old, PAUSE);
    expect(transport.budget(old.iotId)).toMatchObject({ used: 3, limit: 3 });

    const unknown = device(DEVICES.noFw.iotId);
    for (let i = 0; i < 3; i++) await transport.send(unknown, START);
    await expect(transport.send(unknown, START)).rejects.toBeInstanceOf(QuotaExceededError);

    const fresh = device(DEVICES.newFw.iotId);
    for (let i = 0; i < 5; i++) await transport.send(fresh, START);
    expect(transport.budget(fresh.iotId)).toEqual({ used: 5, limit: null, blockedUntil: null });
  });

  it('reports thing/status in both shapes and refuses sends while offline', async () => {
    const { transport, online, device } = await connect();
    const mower = device(DEVICES.status.iotId);
    await sim.publishStatus(mower.productKey, mower.deviceName, false, 'mammotion');
    await until(() => transport.isOffline(mower.iotId), (offline) => offline);
    expect(online.at(-1)).toEqual([mower.iotId, false]);
    await expect(transport.send(mower, START)).rejects.toBeInstanceOf(DeviceOfflineError);

    await sim.publishStatus(mower.productKey, mower.deviceName, true, 'aliyun');
    await until(() => transport.isOffline(mower.iotId), (offline) => !offline);
    expect(online.at(-1)).toEqual([mower.iotId, true]);
    await transport.send(mower, START);

    await sim.publishStatus(mower.productKey, mower.deviceName, false, 'aliyun');
    await until(() => transport.isOffline(mower.iotId), (offline) => offline);
    await sim.publishStatus(mower.productKey, mower.deviceName, true, 'mammotion');
    await until(() => transport.isOffline(mower.iotId), (offline) => !offline);
    expect(online.filter(([id]) => id === mower.iotId).map(([, on]) => on)).toEqual([false, true, false, true]);
  });

  it('counts and drops malformed messages without throwing, and keeps delivering', async () => {
    const { transport, frames } = await connect();
    const { productKey, deviceName, iotId } = DEVICES.frames;
    const before = transport.stats();
    await sim.faults.malformed(productKey, deviceName);
    await sim.publishRaw(`/sys/${productKey}/${deviceName}/app/down/thing/status`, 'not json');
    await sim.publishRaw(`/sys/${productKey}/${deviceName}/app/down/thing/status`, '{"action":"sideways"}');
    await sim.publishRaw(`/sys/${productKey}/${deviceName}/thing/event/device_notification_event/post`, '{"params":{}}');
    await sim.publishRaw(`/sys/proto/${productKey}/${deviceName}/thing/event/device_protobuf_msg_event/post`, '{"params":{}}');
    await sim.publishFrame(productKey, deviceName, START);
    // Messages arrive in order, so once the good frame is here the broken ones were handled.
    await until(() => frames.filter((f) => f.iotId === iotId).length, (n) => n === 1);
    const after = transport.stats();
    expect(after.malformed - before.malformed).toBe(4);
    expect(after.ignored - before.ignored).toBe(2);
    expect(frames.at(-1)?.frame).toEqual(START);
    expect(transport.state).toBe('connected');
    expect(logLines.some((line) => line.includes('mammotion mqtt message dropped'))).toBe(true);
  });

  it('reconnects and subscribes again after the broker drops it', async () => {
    const { transport, states, frames } = await connect();
    const { productKey, deviceName, iotId } = DEVICES.frames;
    sim.faults.dropBroker();
    await until(() => states.includes('reconnecting'), Boolean);
    await until(() => transport.state, (state) => state === 'connected');
    expect(transport.stats().reconnects).toBeGreaterThanOrEqual(1);
    await sim.publishFrame(productKey, deviceName, PAUSE);
    await until(() => frames.filter((f) => f.iotId === iotId).length, (n) => n === 1);
    expect(frames.at(-1)?.frame).toEqual(PAUSE);
  });

  it('never writes secrets to the log', async () => {
    const { account } = await connect();
    const text = logLines.join('\n');
    const refreshToken = account.refreshTokenForStorage() ?? '';
    expect(refreshToken).not.toBe('');
    for (const secret of [sim.account.password, Buffer.from(sim.account.password).toString('base64'), sim.account.clientSecret, refreshToken, 'Bearer ']) {
      expect(text).not.toContain(secret);
    }
    expect(text).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/); // no JWT of any kind
  });
});

describe('broker refusing credentials', () => {
  let own: MammotionCloudSimulator;
  let ownUrl: string;
  beforeAll(async () => {
    own = new MammotionCloudSimulator({ log });
    own.addDevice(DEVICES.frames);
    ownUrl = (await own.start()).httpUrl;
  });
  afterAll(async () => {
    await own?.stop();
  });

  it('fetches one fresh credential set, and gives up when that is refused too', async () => {
    const { transport, frames, states } = await connect({}, { sim: own, url: ownUrl });
    const issued = own.stats.mqttCredentialsIssued;
    own.faults.revokeMqttCredentials();
    own.faults.dropBroker();
    await until(() => own.stats.mqttCredentialsIssued, (n) => n === issued + 1);
    await until(() => transport.state, (state) => state === 'connected');
    await own.publishFrame(DEVICES.frames.productKey, DEVICES.frames.deviceName, REPORT);
    await until(() => frames.length, (n) => n === 1);

    own.faults.refuseMqtt(true);
    own.faults.dropBroker();
    await until(() => transport.state, (state) => state === 'failed');
    expect(own.stats.mqttCredentialsIssued).toBe(issued + 2);
    expect(transport.failureReason).toMatch(/refused/);
    expect(states.at(-1)).toBe('failed');
    await sleep(300); // a given-up transport stays down: no further attempts
    expect(own.stats.mqttCredentialsIssued).toBe(issued + 2);
  });
});

describe('MQTT credential renewal', () => {
  let short: MammotionCloudSimulator;
  let shortUrl: string;
  beforeAll(async () => {
    // MQTT JWTs live 3 s here; with a 1.5 s lead the transport renews them within about 1.5 s.
    // Whole-second JWT expiry: 6 s with a 4 s lead leaves 1–2 s before the renewal, even on a busy machine.
    short = new MammotionCloudSimulator({ log, mqttJwtTtlS: 6 });
    short.addDevice(DEVICES.frames);
    shortUrl = (await short.start()).httpUrl;
  });
  afterAll(async () => {
    await short?.stop();
  });

  it('renews the credentials before the JWT expires and reconnects with them', async () => {
    const { transport, frames } = await connect({ credentialRefreshLeadMs: 4000 }, { sim: short, url: shortUrl });
    const issued = short.stats.mqttCredentialsIssued;
    const connections = short.stats.mqttConnections;
    await until(() => short.stats.mqttConnections, (n) => n > connections, 10_000);
    expect(short.stats.mqttCredentialsIssued).toBeGreaterThan(issued);
    await until(() => transport.state, (state) => state === 'connected');
    // 'connected' can come just before the subscriptions are back: keep reporting, as a mower does.
    await until(
      async () => {
        await short.publishFrame(DEVICES.frames.productKey, DEVICES.frames.deviceName, REPORT);
        return frames.length;
      },
      (n) => n >= 1,
    );
    expect(frames[0]?.frame).toEqual(REPORT);
  });
});

describe('Open API client (unverified API, against a local stand-in)', () => {
  const calls: Array<{ method: string; path: string; auth: string; body: string }> = [];
  let url: string;
  let tokens = 0;
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      const auth = req.headers.authorization ?? '';
      calls.push({ method: req.method ?? '', path, auth, body });
      const reply = (status: number, json: unknown) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(json));
      if (path === '/oauth2/token') return reply(200, { code: 0, data: { access_token: `open-${++tokens}`, expires_in: 3600 } });
      // The first token is refused once, so the client must fetch a new one and retry.
      if (auth === 'Bearer open-1') return reply(401, { code: 401, msg: 'expired' });
      if (path === '/v1/mowers') return reply(200, { code: 0, data: [{ deviceId: 'm1', deviceName: 'Luba-VS1' }, { nothing: true }] });
      if (path === '/v1/mower/m1') return reply(200, { code: 0, data: { status: 'Working', batteryLevel: 80, chargeStatus: 0 } });
      if (path === '/v1/mower/action') return reply(200, { code: 0, data: null });
      reply(404, { code: 404, msg: 'no route' });
    });
  });
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('gets a client-credentials token, lists, reads status and sends actions', async () => {
    const api = new MammotionOpenApiClient({ clientId: 'dev-id', clientSecret: 'dev-secret', baseUrl: url, idBaseUrl: url, log });
    expect(await api.listMowers()).toEqual([{ id: 'm1', name: 'Luba-VS1', raw: { deviceId: 'm1', deviceName: 'Luba-VS1' } }]);
    expect(tokens).toBe(2); // the refused first token was replaced once
    expect(await api.status('m1')).toMatchObject({ status: 'Working', batteryLevel: 80, chargeStatus: 0 });
    await api.action('m1', 'RETURN');
    const action = calls.find((c) => c.path === '/v1/mower/action');
    expect(JSON.parse(action?.body ?? '{}')).toEqual({ deviceId: 'm1', action: 'RETURN', params: {} });
    expect(action?.auth).toBe('Bearer open-2');
    const tokenCall = calls.find((c) => c.path === '/oauth2/token');
    expect(new URLSearchParams(tokenCall?.body).get('grant_type')).toBe('client_credentials');
  });
});
