import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definePlugin } from '../../core/plugin.js';
import { createTestHub, type TestHub } from '../harness/index.js';

const SCRAPE = 'scrape-token-0123456789';
let t: TestHub;
beforeAll(async () => {
  const gauges = definePlugin({
    id: 'gauges',
    version: '1.0.0',
    hub: '*',
    setup(ctx) {
      ctx.metrics.gauge({ name: 'queue_length', help: 'Items waiting', labelNames: ['queue'], collect: () => [{ labels: { queue: 'a' }, value: 3 }] });
    },
  });
  t = await createTestHub({ HUB_METRICS_TOKEN: SCRAPE }, { plugins: [{ definition: gauges }] });
});
afterAll(() => t.stop());

describe('GET /metrics', () => {
  it('needs the scrape token or an administrator', async () => {
    expect((await t.request('/metrics')).status).toBe(401);
    expect((await t.request('/metrics', { token: 'scrape-token-wrong-000000' })).status).toBe(401);
    const user = await t.createUser('user@example.com');
    expect((await t.request('/metrics', { token: user.token })).status).toBe(403);
    expect((await t.request('/metrics', { token: await t.adminToken() })).status).toBe(200);
  });

  it('reports requests by route pattern, ingest, broker, plugins and jobs', async () => {
    const owner = await t.createUser('owner@example.com');
    const homeId = await t.createHome(owner.token);
    await t.request(`/api/homes/${homeId}`, { token: owner.token });
    await t.hub.mqtt.publish(`${t.hub.mqtt.root}/${homeId}/${crypto.randomUUID()}/telemetry`, '{"x":1}');
    await new Promise((resolve) => setTimeout(resolve, 100));

    const res = await t.request('/metrics', { token: SCRAPE });
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/hub_http_requests_total\{method="GET",route="\/api\/homes\/:id",status="200"\} 1/);
    expect(text).not.toContain(homeId);
    expect(text).toMatch(/hub_mqtt_messages_dropped_total\{reason="unknown_device"\} 1/);
    expect(text).toMatch(/hub_mqtt_connected 1/);
    expect(text).toMatch(/hub_db_up 1/);
    expect(text).toMatch(new RegExp(`hub_db_pool_size ${t.hub.database.pool.size}`));
    expect(text).toMatch(/hub_db_connections_waiting \d+/);
    expect(Number(/hub_db_acquire_seconds_count (\d+)/.exec(text)?.[1])).toBeGreaterThan(10);
    expect(text).toMatch(/hub_plugin_running\{plugin="housekeeping",status="running"\} 1/);
    expect(text).toMatch(/hub_job_runs\{job="plugin:housekeeping:roll_up_readings"\} \d+/);
    expect(text).toMatch(/hub_websocket_connections 0/);
  });

  it("serves plugins' gauges under their id, and drops them when the plugin stops", async () => {
    const scrape = async () => (await t.request('/metrics', { token: SCRAPE })).text();
    expect(await scrape()).toMatch(/hub_gauges_queue_length\{queue="a"\} 3/);
    await t.request('/api/plugins/gauges/disable', { method: 'POST', token: await t.adminToken() });
    expect(await scrape()).not.toContain('hub_gauges_queue_length');
  });
});
