/**
 * What survives a restart: a linked account comes back from its sealed refresh token (no
 * password), and a key that cannot open it asks the owner to link again. Also the built-in
 * simulator a new user gets with PLUGIN_MAMMOTION_SIMULATOR=true.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MammotionSimulator } from '../../../plugins/mammotion/simulator/index.js';
import { createTestHub, reusableDatabase } from '../../harness/index.js';
import { mammotionPlugin, startSimulatorEnv } from '../../harness/mammotion.js';
import { until } from '../../harness/wait.js';

const plugins = [mammotionPlugin];
const LUBA = 'lawn_mower.luba_vssim0001';

describe('Mammotion across restarts', () => {
  let simulator: MammotionSimulator;
  let env: Record<string, string>;

  beforeAll(async () => {
    simulator = new MammotionSimulator({ mowers: 1, speedup: 30, tickMs: 100 });
    env = await startSimulatorEnv(simulator);
  });
  afterAll(() => simulator?.stop());

  it('reconnects a linked account from its sealed refresh token, never the password', async () => {
    const database = await reusableDatabase();
    try {
      const first = await createTestHub(env, { plugins, database: database.handle() });
      const owner = await first.createUser('owner@example.com');
      const homeId = await first.createHome(owner.token);
      const { email, password } = simulator.cloud.account;
      expect((await first.request('/api/plugins/mammotion/accounts', { token: owner.token, json: { home_id: homeId, email, password } })).status).toBe(201);
      await until(() => first.hub.states.get(LUBA)?.state, (s) => s === 'docked');
      await first.stop();
      const logins = simulator.cloud.stats.passwordLogins;

      const second = await createTestHub(env, { plugins, database: database.handle() });
      await until(() => second.hub.states.get(LUBA)?.attributes.cloud_status, (s) => s === 'connected', 10_000);
      const token = await second.login('owner@example.com', 'user-password-1');
      expect((await second.request('/api/services/lawn_mower/start_mowing', { token, json: { entity_id: LUBA } })).status).toBe(200);
      await until(() => second.hub.states.get(LUBA)?.state, (s) => s === 'mowing');
      expect(simulator.cloud.stats.passwordLogins).toBe(logins);
      expect(JSON.stringify(second.logs)).not.toContain(password);
      await second.stop();

      const otherKey = await createTestHub({ ...env, HUB_SECRET_KEY: 'a-different-secret-key-0123456789abcdef' }, { plugins, database: database.handle() });
      const ownerToken = await otherKey.login('owner@example.com', 'user-password-1');
      const accounts = (await (await otherKey.request('/api/plugins/mammotion/accounts', { token: ownerToken })).json()) as {
        status: string;
        status_detail: string;
      }[];
      expect(accounts[0]).toMatchObject({ status: 'reauth_required', status_detail: expect.stringMatching(/cannot be decrypted/) });
      // Linking again signs the same account in anew, in place.
      const relinked = await otherKey.request('/api/plugins/mammotion/accounts', { token: ownerToken, json: { home_id: homeId, email, password } });
      expect(relinked.status).toBe(201);
      expect(await relinked.json()).toMatchObject({ status: 'connected', mowers: [{ entity_id: LUBA }] });
      expect((await otherKey.request('/api/plugins/mammotion/accounts', { token: ownerToken, json: { home_id: homeId, email, password } })).status).toBe(409);

      // Deleting the home stops its account and takes its mowers away.
      expect((await otherKey.request(`/api/homes/${homeId}`, { method: 'DELETE', token: ownerToken })).status).toBe(204);
      await until(() => otherKey.hub.states.get(LUBA), (s) => s === undefined);
      await otherKey.stop();
    } finally {
      await database.close();
    }
  });

  it('with PLUGIN_MAMMOTION_SIMULATOR=true, shows two simulated mowers in the first home', async () => {
    const t = await createTestHub({ PLUGIN_MAMMOTION_SIMULATOR: 'true', PLUGIN_MAMMOTION_SIMULATOR_SPEEDUP: '30' }, { plugins });
    try {
      const owner = await t.createUser('owner@example.com');
      const homeId = await t.createHome(owner.token);
      const accounts = await until(
        async () => (await (await t.request(`/api/plugins/mammotion/accounts?home_id=${homeId}`, { token: owner.token })).json()) as { mowers: unknown[] }[],
        (list) => list[0]?.mowers.length === 2,
      );
      expect(accounts).toHaveLength(1);
      await until(() => t.hub.states.get('lawn_mower.yuka_mnsim0002')?.state, (s) => s === 'docked');
    } finally {
      await t.stop();
    }
  });
});
