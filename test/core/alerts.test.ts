import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { breach, recovered } from '../../core/alerts/index.js';
import type { HubEvent } from '../../core/bus/index.js';
import { createTestHub, type TestHub } from '../harness/index.js';

describe('breach and recovered', () => {
  const rule = { direction: 'above' as const, warning: 30, critical: 40, hysteresis: 2 };
  it('finds the worst level a value breaches', () => {
    expect(breach(rule, 25)).toBeUndefined();
    expect(breach(rule, 35)).toEqual({ severity: 'warning', threshold: 30 });
    expect(breach(rule, 41)).toEqual({ severity: 'critical', threshold: 40 });
    expect(breach({ ...rule, direction: 'below', warning: 20, critical: 10 }, 5)).toEqual({ severity: 'critical', threshold: 10 });
  });
  it('needs the hysteresis on the way back', () => {
    expect(recovered(rule, 30, 29)).toBe(false);
    expect(recovered(rule, 30, 28)).toBe(true);
    expect(recovered({ direction: 'below', hysteresis: 1 }, 10, 10.5)).toBe(false);
  });
});

describe('alerts from telemetry', () => {
  let t: TestHub;
  let owner: { id: string; token: string };
  let tech: { id: string; email: string; token: string };
  let homeId: string;
  let device: { id: string; mqtt: { telemetry_topic: string } };
  const events: HubEvent[] = [];

  beforeAll(async () => {
    t = await createTestHub();
    owner = await t.createUser('owner@example.com');
    tech = await t.createUser('tech@example.com');
    homeId = await t.createHome(owner.token);
    await t.addMember(owner.token, homeId, tech, 'technician');
    device = (await (await t.request(`/api/homes/${homeId}/devices`, { token: owner.token, json: { name: 'Pump', kind: 'pump' } })).json()) as typeof device;
    for (const type of ['alert_raised', 'alert_acknowledged', 'alert_resolved']) t.hub.bus.on(type, (e) => void events.push(e));
  });
  afterAll(() => t.stop());

  /** Publishes readings (with their own timestamps) and waits until the alert engine saw them. */
  async function send(values: { temperature: number; ts?: number }[]) {
    const before = t.hub.telemetry.counters.readings;
    for (const v of values) await t.hub.mqtt.publish(device.mqtt.telemetry_topic, JSON.stringify(v), { qos: 1 });
    for (let i = 0; i < 200 && t.hub.telemetry.counters.readings < before + values.length; i++) await new Promise((r) => setTimeout(r, 10));
    await t.hub.alerts.settled();
  }
  const open = async () =>
    (await (await t.request('/api/alerts?status=open', { token: owner.token })).json()) as { id: string; severity: string; status: string; value: number }[];

  it('raises, escalates and resolves by itself with hysteresis', async () => {
    const rule = await t.request('/api/alerts/rules', {
      token: owner.token,
      json: { home_id: homeId, metric: 'temperature', direction: 'above', warning: 30, critical: 40, hysteresis: 2 },
    });
    expect(rule.status).toBe(201);
    const ruleId = ((await rule.json()) as { id: string }).id;

    await send([{ temperature: 25 }]);
    expect(await open()).toEqual([]);
    await send([{ temperature: 35 }]);
    expect(await open()).toMatchObject([{ severity: 'warning', status: 'active', value: 35 }]);
    await send([{ temperature: 45 }]);
    expect(await open()).toMatchObject([{ severity: 'critical', value: 45 }]);
    await send([{ temperature: 29 }]); // below 30, not by the hysteresis of 2
    expect(await open()).toHaveLength(1);
    await send([{ temperature: 27 }]);
    expect(await open()).toEqual([]);
    expect(events.map((e) => [e.event_type, (e.data as { severity: string }).severity])).toEqual([
      ['alert_raised', 'warning'],
      ['alert_raised', 'critical'],
      ['alert_resolved', 'critical'],
    ]);
    expect(events.every((e) => e.home_id === homeId)).toBe(true);
    expect((await t.request(`/api/alerts/rules/${ruleId}`, { method: 'DELETE', token: owner.token })).status).toBe(204);
  });

  it('waits out the "for" duration, so a blip does not raise', async () => {
    await t.request('/api/alerts/rules', {
      token: owner.token,
      json: { home_id: homeId, device_id: device.id, metric: 'temperature', direction: 'above', warning: 50, for_seconds: 60 },
    });
    const now = Date.now();
    await send([{ temperature: 55, ts: now - 120_000 }, { temperature: 45, ts: now - 100_000 }, { temperature: 55, ts: now - 90_000 }]);
    expect(await open()).toEqual([]);
    await send([{ temperature: 56, ts: now - 20_000 }]); // held above 50 for 70 s
    expect(await open()).toMatchObject([{ severity: 'warning', value: 56 }]);
  });

  it('is acknowledged and resolved by technicians, in that order only', async () => {
    const [alert] = await open();
    const viewer = await t.createUser('viewer@example.com');
    await t.addMember(owner.token, homeId, viewer, 'viewer');
    expect((await t.request(`/api/alerts/${alert!.id}/acknowledge`, { method: 'POST', token: viewer.token })).status).toBe(403);
    const ack = await t.request(`/api/alerts/${alert!.id}/acknowledge`, { method: 'POST', token: tech.token });
    expect(await ack.json()).toMatchObject({ status: 'acknowledged', acknowledged_by: tech.id });
    expect((await t.request(`/api/alerts/${alert!.id}/acknowledge`, { method: 'POST', token: tech.token })).status).toBe(409);
    const resolved = await t.request(`/api/alerts/${alert!.id}/resolve`, { method: 'POST', token: tech.token });
    expect(await resolved.json()).toMatchObject({ status: 'resolved', resolved_by: tech.id });
    expect((await t.request(`/api/alerts/${alert!.id}/resolve`, { method: 'POST', token: tech.token })).status).toBe(409);
    const listed = (await (await t.request('/api/alerts?status=resolved&severity=warning', { token: viewer.token })).json()) as { id: string }[];
    expect(listed.map((a) => a.id)).toContain(alert!.id);
  });

  it("keeps other homes' alerts and rules out of reach", async () => {
    const stranger = await t.createUser('stranger@example.com');
    const [any] = (await (await t.request('/api/alerts', { token: owner.token })).json()) as { id: string }[];
    expect(await (await t.request('/api/alerts', { token: stranger.token })).json()).toEqual([]);
    expect(await (await t.request('/api/alerts/rules', { token: stranger.token })).json()).toEqual([]);
    expect((await t.request(`/api/alerts/${any!.id}/resolve`, { method: 'POST', token: stranger.token })).status).toBe(404);
    expect((await t.request(`/api/alerts?home_id=${homeId}`, { token: stranger.token })).status).toBe(404);
    const rule = await t.request('/api/alerts/rules', { token: stranger.token, json: { home_id: homeId, metric: 'x', direction: 'above', warning: 1 } });
    expect(rule.status).toBe(404);
  });

  it('validates rules', async () => {
    const bad = [
      { home_id: homeId, metric: 'temperature', direction: 'above' },
      { home_id: homeId, metric: 'temperature', direction: 'above', warning: 40, critical: 30 },
      { home_id: homeId, metric: 'Temp C', direction: 'above', warning: 1 },
      { home_id: homeId, metric: 'temperature', direction: 'sideways', warning: 1 },
    ];
    for (const json of bad) expect((await t.request('/api/alerts/rules', { token: owner.token, json })).status, JSON.stringify(json)).toBe(400);
  });
});
