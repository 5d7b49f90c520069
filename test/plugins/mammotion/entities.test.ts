/**
 * Mower entity ids come from the hub's entity registry (issue 12, finding 1): entities that
 * already hold the ids a mower would like — a telemetry device named like the mower, a virtual
 * entity in another home — do not make the link fail; the mower gets the next free ids, and
 * keeps them across restarts after the squatters are gone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MammotionSimulator } from '../../../plugins/mammotion/simulator/index.js';
import { createTestHub, reusableDatabase } from '../../harness/index.js';
import { mammotionPlugin, startSimulatorEnv } from '../../harness/mammotion.js';
import { until } from '../../harness/wait.js';

const plugins = [mammotionPlugin];
const WANTED = 'lawn_mower.luba_vssim0001';
const GIVEN = 'lawn_mower.luba_vssim0001_2';

describe('Mammotion mower ids next to squatters', () => {
  let simulator: MammotionSimulator;
  let env: Record<string, string>;

  beforeAll(async () => {
    simulator = new MammotionSimulator({ mowers: 1, speedup: 30, tickMs: 100 });
    env = await startSimulatorEnv(simulator);
  });
  afterAll(() => simulator?.stop());

  it('links a mower whose ids are taken, with other ids, and keeps them across a restart', async () => {
    const database = await reusableDatabase();
    try {
      const first = await createTestHub(env, { plugins, database: database.handle() });
      const owner = await first.createUser('owner@example.com');
      const homeId = await first.createHome(owner.token);

      // A telemetry device in the same home, named like the mower, publishes first.
      const device = await first.addDevice(owner.token, homeId, 'Luba VSSIM0001');
      await first.hub.mqtt.publish(device.mqtt.telemetry_topic, JSON.stringify({ battery: 50, progress: 10, rtk_fix: true }), { qos: 1 });
      await first.hub.mqtt.publish(device.mqtt.status_topic, 'online', { qos: 1 });
      await until(() => first.hub.states.get('binary_sensor.luba_vssim0001_online')?.state, (s) => s === 'on');
      // And the mower's own id is a virtual entity of another home.
      const admin = await first.adminToken();
      const adminHome = await first.createHome(admin, { name: 'Elsewhere' });
      expect((await first.request(`/api/states/${WANTED}`, { token: admin, json: { state: 'squatting', home_id: adminHome } })).status).toBe(201);

      const { email, password } = simulator.cloud.account;
      const linked = await first.request('/api/plugins/mammotion/accounts', { token: owner.token, json: { home_id: homeId, email, password } });
      expect(linked.status).toBe(201);
      expect(await linked.json()).toMatchObject({ mowers: [{ entity_id: GIVEN }] });
      await until(() => first.hub.states.get(GIVEN)?.state, (s) => s === 'docked');
      expect(first.hub.states.entry(GIVEN)).toMatchObject({ homeId, owner: 'plugin:mammotion' });
      expect(first.hub.states.get('sensor.luba_vssim0001_battery_2')?.state).toBe('100');
      expect(first.hub.states.entry('binary_sensor.luba_vssim0001_online_2')?.owner).toBe('plugin:mammotion');

      // The squatters keep what is theirs.
      expect(first.hub.states.entry('sensor.luba_vssim0001_battery')).toMatchObject({ owner: 'telemetry', deviceId: device.id, state: { state: '50' } });
      expect(first.hub.states.entry(WANTED)).toMatchObject({ owner: 'api', homeId: adminHome, state: { state: 'squatting' } });
      const action = await first.request('/api/services/lawn_mower/start_mowing', { token: owner.token, json: { entity_id: GIVEN } });
      expect(action.status).toBe(200);

      // Gone squatters do not move the mower's ids: automations keep working after a restart.
      expect((await first.request(`/api/devices/${device.id}`, { method: 'DELETE', token: owner.token })).status).toBe(204);
      expect((await first.request(`/api/states/${WANTED}`, { method: 'DELETE', token: admin })).status).toBe(200);
      await first.stop();

      const second = await createTestHub(env, { plugins, database: database.handle() });
      await until(() => second.hub.states.get(GIVEN)?.attributes.cloud_status, (s) => s === 'connected', 10_000);
      expect(second.hub.states.get(WANTED)).toBeUndefined();
      expect(second.hub.states.get('sensor.luba_vssim0001_battery_2')).toBeDefined();
      const token = await second.login('owner@example.com', 'user-password-1');
      const accounts = (await (await second.request('/api/plugins/mammotion/accounts', { token })).json()) as { mowers: { entity_id: string }[] }[];
      expect(accounts[0]?.mowers).toEqual([expect.objectContaining({ entity_id: GIVEN })]);
      await second.stop();
    } finally {
      await database.close();
    }
  }, 90_000); // two hub starts with the plugin, and a link
});
