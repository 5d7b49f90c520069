/**
 * Every example flow in flows/: imported through the API into the embedded Node-RED, run
 * against the Mammotion simulator and a rain sensor, doing what flows/README.md says.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mammotion from '../../plugins/mammotion/index.js';
import { MammotionSimulator } from '../../plugins/mammotion/simulator/index.js';
import { createTestHub, type TestHub } from '../harness/index.js';
import { until } from '../harness/wait.js';

const FLOWS_DIR = fileURLToPath(new URL('../../flows', import.meta.url));
const LUBA = 'lawn_mower.luba_vssim0001';
const YUKA = 'lawn_mower.yuka_mnsim0002';

describe('example flows', () => {
  let simulator: MammotionSimulator;
  let t: TestHub;
  let url: string;
  let admin: string;
  let dataDir: string;
  let rainTopic: string;
  const notifications: Record<string, unknown>[] = [];

  const call = (action: string, data: Record<string, unknown>) => t.request(`/api/services/${action.replace('.', '/')}`, { token: admin, json: data });
  const state = (entityId: string) => t.hub.states.get(entityId)?.state;
  const rain = async (raining: boolean) => {
    await t.hub.mqtt.publish(rainTopic, JSON.stringify({ raining }), { qos: 1 });
    await until(() => state('binary_sensor.rain_sensor_raining'), (s) => s === (raining ? 'on' : 'off'));
  };
  const runningFlows = async () =>
    (await (await fetch(`${url}/red/flows`, { headers: { authorization: `Bearer ${admin}` } })).json()) as { id: string; type: string; name?: string }[];

  beforeAll(async () => {
    simulator = new MammotionSimulator({ mowers: 2, speedup: 30, tickMs: 100 });
    const { httpUrl, account } = await simulator.start();
    dataDir = await mkdtemp(path.join(tmpdir(), 'hub-flows-'));
    t = await createTestHub(
      {
        HUB_NODERED: 'true',
        HUB_DATA_DIR: dataDir,
        PLUGIN_MAMMOTION_CLIENT_ID: account.clientId,
        PLUGIN_MAMMOTION_CLIENT_SECRET: account.clientSecret,
        PLUGIN_MAMMOTION_ID_BASE_URL: httpUrl,
        PLUGIN_MAMMOTION_DOMESTIC_BASE_URL: httpUrl,
      },
      { plugins: [{ definition: mammotion, dir: fileURLToPath(new URL('../../plugins/mammotion', import.meta.url)) }] },
    );
    ({ url } = await t.hub.listen());
    admin = await t.adminToken();
    const homeId = await t.createHome(admin, { name: 'Garden' });
    const linked = await t.request('/api/plugins/mammotion/accounts', { token: admin, json: { home_id: homeId, email: account.email, password: account.password } });
    expect(linked.status).toBe(201);
    const sensor = await t.request(`/api/homes/${homeId}/devices`, { token: admin, json: { name: 'Rain sensor', kind: 'rain_sensor' } });
    rainTopic = ((await sensor.json()) as { mqtt: { telemetry_topic: string } }).mqtt.telemetry_topic;
    await rain(false);
    await until(() => state(LUBA), (s) => s === 'docked');
    t.hub.bus.on('mowthos_notification', (event) => void notifications.push(event.data as Record<string, unknown>));
  });
  afterAll(async () => {
    await t?.stop();
    await simulator?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('imports every example, each deployed as a new version', async () => {
    const shipped = (await readdir(FLOWS_DIR)).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
    const listed = (await (await t.request('/api/nodered/flows/examples', { token: admin })).json()) as { name: string }[];
    expect(listed.map((e) => e.name)).toEqual(shipped);
    for (const name of shipped) {
      const imported = await t.request('/api/nodered/flows/import', { token: admin, json: { name } });
      expect(imported.status).toBe(200);
    }
    const versions = (await (await t.request('/api/nodered/versions', { token: admin })).json()) as unknown[];
    expect(versions).toHaveLength(shipped.length);
    expect((await t.request('/api/nodered/flows/import', { token: admin, json: { name: 'no-such-flow' } })).status).toBe(404);
    expect((await t.request('/api/nodered/flows/import', { token: admin, json: { name: '../etc/passwd' } })).status).toBe(400);
  });

  it('dock-when-rain-starts: rain sends a mowing mower home', async () => {
    expect((await call('lawn_mower.start_mowing', { entity_id: LUBA })).status).toBe(200);
    await until(() => state(LUBA), (s) => s === 'mowing');
    await rain(true);
    await until(() => state(LUBA), (s) => s === 'returning' || s === 'docked');
    await until(() => state(LUBA), (s) => s === 'docked', 15_000);
  });

  it('mow-on-schedule-unless-raining: the weekly start waits for dry weather', async () => {
    const inject = (await runningFlows()).find((n) => n.type === 'inject' && n.name === 'Saturday 09:00')!;
    const fire = () => fetch(`${url}/red/inject/${inject.id}`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } });
    expect((await fire()).status).toBe(200); // raining: nothing happens
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(state(LUBA)).toBe('docked');
    await rain(false);
    expect((await fire()).status).toBe(200);
    await until(() => state(LUBA), (s) => s === 'mowing', 10_000);
  });

  it('low-battery-return: a mower below 20 % goes home', async () => {
    simulator.mowers.get('sim-iot-0001')!.battery = 19;
    await until(() => state('sensor.luba_vssim0001_battery'), (s) => s === '19', 10_000);
    await until(() => state(LUBA), (s) => s === 'returning' || s === 'docked', 10_000);
  });

  it('notify-on-mower-error: a mower in error fires a notification event', async () => {
    simulator.mowers.get('sim-iot-0002')!.mode = 17; // locked: Home Assistant's "error"
    expect((await call('mammotion.refresh', { entity_id: YUKA })).status).toBe(200);
    await until(() => notifications.length, (n) => n > 0);
    expect(notifications[0]).toMatchObject({ severity: 'critical', entity_id: YUKA, title: 'Mower needs help', message: expect.stringContaining('Yuka-MNSIM0002') });
    simulator.mowers.get('sim-iot-0002')!.mode = 11;
  });

  // cluster-relay drives the cluster plugin's runs: test/plugins/cluster/nodes.test.ts runs it with that plugin.

  it("the Mammotion plugin's mower-command node drives a mower", async () => {
    const flows = await runningFlows();
    const server = flows.find((n) => n.type === 'hub-server')!;
    const command = [
      { id: 'mc_tab', type: 'tab', label: 'mower command' },
      { id: 'mc_inject', type: 'inject', z: 'mc_tab', name: 'go', props: [], repeat: '', crontab: '', once: false, x: 100, y: 40, wires: [['mc_node']] },
      { id: 'mc_node', type: 'mower-command', z: 'mc_tab', server: server.id, entity: YUKA, command: 'start_mowing', parameter: '', x: 300, y: 40, wires: [[]] },
    ];
    const deployed = await fetch(`${url}/red/flows`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', 'node-red-deployment-type': 'full' },
      body: JSON.stringify([...flows, ...command]),
    });
    expect(deployed.status).toBe(204);
    await until(async () => (await fetch(`${url}/red/inject/mc_inject`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } })).status, (s) => s === 200);
    await until(() => state(YUKA), (s) => s === 'mowing', 10_000);
  });
});
