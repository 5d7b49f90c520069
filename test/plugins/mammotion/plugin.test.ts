/**
 * The Mammotion plugin end to end against the simulator over real sockets: link an account,
 * mowers appear, actions go out as signed HTTPS invokes, reports come back over MQTT and move
 * the entities; sessions are recorded; every fault shows on the entity and the hub stays up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MammotionSimulator } from '../../../plugins/mammotion/simulator/index.js';
import { createTestHub, type TestHub } from '../../harness/index.js';
import { mammotionPlugin, startSimulatorEnv } from '../../harness/mammotion.js';
import { until } from '../../harness/wait.js';

const LUBA = 'lawn_mower.luba_vssim0001';
const YUKA = 'lawn_mower.yuka_mnsim0002';
const ON_ALIYUN = 'lawn_mower.luba_vssim0003';
const SCRAPE = 'scrape-token-for-mammotion-test';

describe('Mammotion plugin with the simulator', () => {
  let simulator: MammotionSimulator;
  let t: TestHub;
  let owner: { id: string; token: string };
  let homeId: string;
  const ended: Record<string, unknown>[] = [];

  const call = (action: string, data: Record<string, unknown>, token = owner.token) =>
    t.request(`/api/services/${action.replace('.', '/')}`, { token, json: data });
  const state = (entityId: string) => t.hub.states.get(entityId);
  const attribute = (entityId: string, name: string) => state(entityId)?.attributes[name];

  beforeAll(async () => {
    simulator = new MammotionSimulator({
      speedup: 30,
      tickMs: 100,
      mowers: [
        { iotId: 'sim-iot-0001', deviceName: 'Luba-VSSIM0001', firmware: '1.30.25.8', yard: { width: 4, length: 1.5 }, origin: { lat: 0.9, lon: -0.002 } },
        { iotId: 'sim-iot-0002', deviceName: 'Yuka-MNSIM0002', firmware: '1.30.25.8' },
        { iotId: 'sim-iot-0003', deviceName: 'Luba-VSSIM0003', productKey: 'a1BBOJnnjb9', firmware: '1.20.1.1' }, // still on the Aliyun cloud
        { iotId: 'sim-iot-0004', deviceName: 'RTK0004XYZ' }, // the base station: not a mower
      ],
    });
    t = await createTestHub(
      {
        ...(await startSimulatorEnv(simulator)),
        PLUGIN_MAMMOTION_REPLY_TIMEOUT_MS: '1500',
        PLUGIN_MAMMOTION_CONFIRM_SECONDS: '5',
        HUB_METRICS_TOKEN: SCRAPE,
      },
      { plugins: [mammotionPlugin] },
    );
    owner = await t.createUser('owner@example.com');
    homeId = await t.createHome(owner.token, { name: 'Garden' });
    t.hub.bus.on('mowing_session_ended', (event) => void ended.push(event.data as Record<string, unknown>));
  });
  afterAll(async () => {
    await t?.stop();
    await simulator?.stop();
  });

  it('refuses a wrong password, and links the account: its mowers appear', async () => {
    const wrong = await t.request('/api/plugins/mammotion/accounts', { token: owner.token, json: { home_id: homeId, email: simulator.cloud.account.email, password: 'wrong' } });
    expect(wrong.status).toBe(422);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('HUB_ERR_CLOUD_LOGIN_REFUSED');

    const res = await t.request('/api/plugins/mammotion/accounts', { token: owner.token, json: { home_id: homeId, email: simulator.cloud.account.email, password: simulator.cloud.account.password } });
    expect(res.status).toBe(201);
    const account = (await res.json()) as { status: string; mowers: { entity_id: string }[] };
    expect(JSON.stringify(account)).not.toContain(simulator.cloud.account.password);
    expect(account.mowers.map((m) => m.entity_id)).toEqual([LUBA, ON_ALIYUN, YUKA]); // not the RTK station
    await until(() => state(LUBA)?.state, (s) => s === 'docked');
    expect(state(LUBA)?.attributes).toMatchObject({ model: 'Luba 2', firmware: '1.30.25.8', battery_level: 100, charging: true });
    expect(state('sensor.luba_vssim0001_battery')?.state).toBe('100');
    expect(state('binary_sensor.luba_vssim0001_online')?.state).toBe('on');
    const sealed = await t.hub.database.db.selectFrom('mammotion_accounts' as never).select('sealed_session' as never).executeTakeFirstOrThrow();
    expect(String((sealed as { sealed_session: string }).sealed_session)).toMatch(/^v1\./);

    expect(state(ON_ALIYUN)).toMatchObject({ state: 'unavailable', attributes: { cloud_status: expect.stringMatching(/does not support yet/i) } });
    expect((await call('lawn_mower.start_mowing', { entity_id: ON_ALIYUN })).status).toBe(409);

    const again = await t.request('/api/plugins/mammotion/accounts', { token: owner.token, json: { home_id: homeId, email: simulator.cloud.account.email, password: simulator.cloud.account.password } });
    expect(again.status).toBe(409);
  });

  it('mows: start plans the route, the entity goes to mowing and progress rises; dock ends the session', async () => {
    const res = await call('lawn_mower.start_mowing', { entity_id: LUBA });
    expect(res.status).toBe(200);
    await until(() => state(LUBA)?.state, (s) => s === 'mowing');
    const first = Number(attribute(LUBA, 'area_mowed_m2'));
    await until(() => Number(attribute(LUBA, 'area_mowed_m2')), (a) => a > first, 10_000);
    expect(attribute(LUBA, 'latitude')).toEqual(expect.any(Number));

    expect((await call('lawn_mower.dock', { entity_id: LUBA })).status).toBe(200);
    await until(() => state(LUBA)?.state, (s) => s === 'docked', 15_000);
    await until(() => ended.length, (n) => n === 1);
    expect(ended[0]).toMatchObject({ home_id: homeId, entity_id: LUBA, outcome: 'interrupted' });
    expect(Number(ended[0]!.area_m2)).toBeGreaterThan(0);

    const sessions = await t.request('/api/plugins/mammotion/sessions', { token: owner.token });
    expect(((await sessions.json()) as { outcome: string }[])[0]).toMatchObject({ entity_id: LUBA, outcome: 'interrupted' });
  });

  it('finishes a small yard and records a finished session', async () => {
    expect((await call('mammotion.start_zones', { entity_id: LUBA, zones: ['1001'] })).status).toBe(200);
    await until(() => ended.length, (n) => n === 2, 25_000);
    expect(ended[1]).toMatchObject({ entity_id: LUBA, outcome: 'finished', area_m2: 6, zones: ['1001'] });
  });

  it('cancels a running job the way the app does, and refuses to cancel nothing', async () => {
    expect((await call('mammotion.cancel', { entity_id: LUBA })).status).toBe(409); // docked, no job
    expect((await call('lawn_mower.start_mowing', { entity_id: LUBA })).status).toBe(200);
    await until(() => state(LUBA)?.state, (s) => s === 'mowing');
    const sessions = ended.length;
    expect((await call('mammotion.cancel', { entity_id: LUBA })).status).toBe(200);
    await until(() => attribute(LUBA, 'work_mode'), (mode) => mode === 'MODE_READY');
    expect(attribute(LUBA, 'resumable')).toBe(false);
    await until(() => attribute(LUBA, 'pending_command'), (pending) => pending === null);
    await until(() => ended.length, (n) => n === sessions + 1);
    expect(ended.at(-1)).toMatchObject({ entity_id: LUBA, outcome: 'interrupted' });
  });

  it('starts again from a mower on its way home (the return is cancelled first)', async () => {
    expect((await call('lawn_mower.dock', { entity_id: LUBA })).status).toBe(200);
    await until(() => state(LUBA)?.state, (s) => s === 'returning' || s === 'docked');
    expect((await call('lawn_mower.start_mowing', { entity_id: LUBA })).status).toBe(200);
    await until(() => state(LUBA)?.state, (s) => s === 'mowing');
    expect((await call('lawn_mower.dock', { entity_id: LUBA })).status).toBe(200);
    await until(() => state(LUBA)?.state, (s) => s === 'docked', 15_000);
  });

  it('validates action data and refuses what the model cannot do', async () => {
    expect((await call('mammotion.set_blade_height', { entity_id: LUBA, height_mm: 5 })).status).toBe(400);
    expect((await call('mammotion.set_cutter_mode', { entity_id: LUBA, mode: 'turbo' })).status).toBe(400);
    const yuka = await call('mammotion.set_blade_height', { entity_id: YUKA, height_mm: 40 });
    expect(yuka.status).toBe(409);
    expect((await call('mammotion.set_blade_height', { entity_id: LUBA, height_mm: 45 })).status).toBe(200);
    await until(() => attribute(LUBA, 'blade_height_mm'), (h) => h === 45);
    expect((await call('mammotion.resume', { entity_id: LUBA })).status).toBe(409); // nothing paused
  });

  it("keeps another home's owner out", async () => {
    const stranger = await t.createUser('stranger@example.com');
    await t.createHome(stranger.token);
    const list = await t.request('/api/plugins/mammotion/accounts', { token: stranger.token });
    expect(await list.json()).toEqual([]);
    const [account] = (await (await t.request('/api/plugins/mammotion/accounts', { token: owner.token })).json()) as { id: string }[];
    expect((await t.request(`/api/plugins/mammotion/accounts/${account!.id}`, { method: 'DELETE', token: stranger.token })).status).toBe(404);
    expect((await call('lawn_mower.start_mowing', { entity_id: LUBA }, stranger.token)).status).toBe(404);
    expect(await (await t.request('/api/plugins/mammotion/sessions', { token: stranger.token })).json()).toEqual([]);
  });

  it('shows cloud faults on the entity and recovers from them', async () => {
    simulator.cloud.faults.gatewayTimeout('sim-iot-0002', 2);
    const timeout = await call('mammotion.refresh', { entity_id: YUKA });
    expect(timeout.status).toBe(504);
    expect(attribute(YUKA, 'last_error')).toMatch(/did not answer/);

    simulator.cloud.faults.expireTokens();
    expect((await call('mammotion.refresh', { entity_id: YUKA })).status).toBe(200); // refreshed once, retried

    simulator.cloud.faults.offline('sim-iot-0002', true);
    const offline = await call('mammotion.refresh', { entity_id: YUKA });
    expect(offline.status).toBe(409);
    expect(state(YUKA)?.state).toBe('unavailable');
    expect(state('binary_sensor.yuka_mnsim0002_online')?.state).toBe('off');
    simulator.cloud.faults.offline('sim-iot-0002', false);
    await simulator.cloud.publishStatus('simPK', 'Yuka-MNSIM0002', true);
    await until(() => state(YUKA)?.state, (s) => s !== 'unavailable');

    simulator.cloud.faults.rateLimit(1);
    const limited = await call('mammotion.refresh', { entity_id: LUBA });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(attribute(LUBA, 'last_error')).toMatch(/rate-limited/);
    expect(attribute(LUBA, 'send_budget')).toMatchObject({ blocked_until: expect.any(String) });
    const metrics = await (await t.request('/metrics', { token: SCRAPE })).text();
    expect(metrics).toMatch(/hub_mammotion_send_blocked\{mower="lawn_mower.luba_vssim0001"\} 1/);
    expect(metrics).toMatch(/hub_mammotion_account_connected\{account="[0-9a-f-]+"\} 1/);

    await simulator.cloud.faults.malformed('simPK', 'Yuka-MNSIM0002');
    simulator.cloud.faults.dropBroker();
    expect((await call('mammotion.refresh', { entity_id: YUKA })).status).toBe(200);
    expect((await t.request('/api/health')).status).toBe(200);
  });

  it('keeps a command pending until the mower confirms it, and says so when it never does', async () => {
    expect((await call('lawn_mower.start_mowing', { entity_id: YUKA })).status).toBe(200);
    await until(() => state(YUKA)?.state, (s) => s === 'mowing');
    const timeouts: unknown[] = [];
    t.hub.bus.on('mammotion_command_timeout', (event) => void timeouts.push(event.data));
    const mower = simulator.mowers.get('sim-iot-0002')!;
    const receive = mower.receive;
    mower.receive = () => {}; // the mower stops listening
    try {
      expect((await call('lawn_mower.pause', { entity_id: YUKA })).status).toBe(200);
      expect(attribute(YUKA, 'pending_command')).toBe('pause');
      await until(() => timeouts.length, (n) => n === 1, 10_000);
      expect(timeouts[0]).toMatchObject({ entity_id: YUKA, command: 'pause', expected: 'paused', activity: 'mowing' });
      expect(attribute(YUKA, 'pending_command')).toBeNull();
      expect(attribute(YUKA, 'last_error')).toMatch(/not confirmed/);
    } finally {
      mower.receive = receive;
    }
    expect((await call('lawn_mower.pause', { entity_id: YUKA })).status).toBe(200);
    await until(() => state(YUKA)?.state, (s) => s === 'paused');
    expect(attribute(YUKA, 'pending_command')).toBeNull();
  });

  it('unlinks the account: mower entities go, sessions stay', async () => {
    const [account] = (await (await t.request('/api/plugins/mammotion/accounts', { token: owner.token })).json()) as { id: string }[];
    expect((await t.request(`/api/plugins/mammotion/accounts/${account!.id}`, { method: 'DELETE', token: owner.token })).status).toBe(204);
    expect((await call('lawn_mower.pause', { entity_id: LUBA })).status).toBe(404);
    // Every session ended, the Yuka's (left mowing) as interrupted by the unlink.
    const sessions = (await (await t.request('/api/plugins/mammotion/sessions', { token: owner.token })).json()) as { entity_id: string; outcome: string | null }[];
    expect(sessions.length).toBe(ended.length);
    expect(sessions.filter((s) => s.outcome === null)).toEqual([]);
    expect(sessions.find((s) => s.entity_id === YUKA)?.outcome).toBe('interrupted');
  });
});
