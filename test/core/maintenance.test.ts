import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, type TestHub } from '../harness/index.js';

let t: TestHub;
let owner: { id: string; token: string };
let homeId: string;
let device: { id: string; mqtt: { telemetry_topic: string } };
let admin: string;

beforeAll(async () => {
  t = await createTestHub();
  admin = await t.adminToken();
  owner = await t.createUser('owner@example.com');
  homeId = await t.createHome(owner.token);
  device = (await (await t.request(`/api/homes/${homeId}/devices`, { token: owner.token, json: { name: 'Mower', kind: 'mower' } })).json()) as typeof device;
});
afterAll(() => t.stop());

const runDueJob = async () => (await t.request('/api/jobs/hub:maintenance_due/run', { method: 'POST', token: admin })).json();
const openAlerts = async () =>
  (await (await t.request('/api/alerts?status=open', { token: owner.token })).json()) as { task_id: string | null; value: number; threshold: number }[];

async function publish(values: Record<string, number>) {
  const before = t.hub.telemetry.counters.readings;
  await t.hub.mqtt.publish(device.mqtt.telemetry_topic, JSON.stringify(values), { qos: 1 });
  for (let i = 0; i < 200 && t.hub.telemetry.counters.readings === before; i++) await new Promise((r) => setTimeout(r, 10));
  await t.hub.telemetry.flush();
}

describe('maintenance', () => {
  it('raises a task due by date once, and resolves its alert when done', async () => {
    const res = await t.request('/api/maintenance', {
      token: owner.token,
      json: { device_id: device.id, title: 'Replace blades', type: 'preventive', due_at: new Date(Date.now() - 60_000).toISOString() },
    });
    expect(res.status).toBe(201);
    const task = (await res.json()) as { id: string };
    expect(await runDueJob()).toMatchObject({ ok: true });
    await runDueJob();
    expect((await openAlerts()).filter((a) => a.task_id === task.id)).toHaveLength(1);

    const done = await t.request(`/api/maintenance/${task.id}`, { method: 'PATCH', token: owner.token, json: { status: 'done' } });
    expect(await done.json()).toMatchObject({ status: 'done', completed_at: expect.any(String) });
    expect((await openAlerts()).filter((a) => a.task_id === task.id)).toEqual([]);
  });

  it('raises a task due after operating hours when the metric gets there', async () => {
    await publish({ blade_hours: 100 });
    const task = (await (
      await t.request('/api/maintenance', {
        token: owner.token,
        json: { device_id: device.id, title: 'Sharpen', type: 'preventive', metric: 'blade_hours', due_after_hours: 50 },
      })
    ).json()) as { id: string; due_value: number };
    expect(task.due_value).toBe(150);
    await publish({ blade_hours: 149 });
    await runDueJob();
    expect((await openAlerts()).filter((a) => a.task_id === task.id)).toEqual([]);
    await publish({ blade_hours: 151 });
    await runDueJob();
    expect((await openAlerts()).filter((a) => a.task_id === task.id)).toMatchObject([{ value: 151, threshold: 150 }]);
  });

  it('validates tasks and keeps other homes out', async () => {
    const viewer = await t.createUser('viewer@example.com');
    await t.addMember(owner.token, homeId, viewer, 'viewer');
    const base = { device_id: device.id, title: 'x', type: 'corrective' };
    expect((await t.request('/api/maintenance', { token: owner.token, json: { ...base, assignee_id: viewer.id } })).status).toBe(400);
    expect((await t.request('/api/maintenance', { token: owner.token, json: { ...base, metric: 'blade_hours' } })).status).toBe(400);
    expect((await t.request('/api/maintenance', { token: owner.token, json: { ...base, type: 'cosmetic' } })).status).toBe(400);
    expect((await t.request('/api/maintenance', { token: viewer.token, json: base })).status).toBe(403);
    const stranger = await t.createUser('stranger@example.com');
    expect((await t.request('/api/maintenance', { token: stranger.token, json: base })).status).toBe(404);
    expect(await (await t.request('/api/maintenance', { token: stranger.token })).json()).toEqual([]);
    const [task] = (await (await t.request('/api/maintenance', { token: owner.token })).json()) as { id: string }[];
    expect((await t.request(`/api/maintenance/${task!.id}`, { method: 'PATCH', token: stranger.token, json: { status: 'done' } })).status).toBe(404);
  });
});
