import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createTestHub, type TestHub } from '../harness/index.js';

let t: TestHub;
let owner: { id: string; token: string };
let viewer: { id: string; email: string; token: string };
let homeId: string;
let otherHomeId: string;
const calls: unknown[] = [];

beforeAll(async () => {
  t = await createTestHub();
  owner = await t.createUser('owner@example.com');
  viewer = await t.createUser('viewer@example.com');
  homeId = await t.createHome(owner.token, { name: 'Mine' });
  otherHomeId = await t.createHome(await t.adminToken(), { name: 'Other' });
  await t.addMember(owner.token, homeId, viewer, 'viewer');
  t.hub.states.set('lawn_mower.front', 'docked', {}, { homeId, owner: 'plugin:mower' });
  t.hub.states.set('lawn_mower.neighbour', 'docked', {}, { homeId: otherHomeId, owner: 'plugin:mower' });
  t.hub.actions.register({
    domain: 'lawn_mower',
    name: 'start_mowing',
    description: 'Start mowing',
    role: 'technician',
    target: { domain: 'lawn_mower' },
    schema: z.object({ entity_id: z.union([z.string(), z.array(z.string())]).optional(), zones: z.array(z.string()).max(10).optional() }),
    handler: ({ entityIds, context, data }) => {
      calls.push(data);
      for (const id of entityIds) t.hub.states.set(id, 'mowing', {}, { homeId: t.hub.states.entry(id)!.homeId, owner: 'plugin:mower', context });
    },
  });
  t.hub.actions.register({
    domain: 'schedule',
    name: 'preview',
    role: 'viewer',
    response: 'only',
    schema: z.object({ home_id: z.uuid(), days: z.number().int().min(1).max(14) }),
    handler: ({ data, homeId: scoped }) => ({ home: scoped, days: data.days }),
  });
});
afterAll(() => t.stop());

const call = (path: string, token: string, json?: unknown) => t.request(`/api/services/${path}`, { token, json: json ?? {} });
const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

describe('POST /api/services/{domain}/{service}', () => {
  it('runs an entity action and answers with the states it changed', async () => {
    const res = await call('lawn_mower/start_mowing', owner.token, { entity_id: 'lawn_mower.front', zones: ['back'] });
    expect(res.status).toBe(200);
    const changed = (await res.json()) as { entity_id: string; state: string; context: { user_id: string } }[];
    expect(changed).toEqual([expect.objectContaining({ entity_id: 'lawn_mower.front', state: 'mowing', context: expect.objectContaining({ user_id: owner.id }) })]);
    expect(calls.at(-1)).toEqual({ entity_id: 'lawn_mower.front', zones: ['back'] });
  });

  it('returns the response with ?return_response, and refuses it where there is none', async () => {
    const res = await call('schedule/preview?return_response', viewer.token, { home_id: homeId, days: 3 });
    expect(await res.json()).toEqual({ changed_states: [], service_response: { home: homeId, days: 3 } });
    const none = await call('lawn_mower/start_mowing?return_response', owner.token, { entity_id: 'lawn_mower.front' });
    expect(none.status).toBe(400);
    expect(await code(none)).toBe('HUB_ERR_NO_RESPONSE');
  });

  it('validates the data, with the zod issues', async () => {
    const res = await call('lawn_mower/start_mowing', owner.token, { entity_id: 'lawn_mower.front', zones: 'back' });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; details: { path: string[] }[] } };
    expect(body.error.code).toBe('HUB_ERR_VALIDATION');
    expect(body.error.details[0]!.path).toEqual(['zones']);
    expect(await code(await call('lawn_mower/start_mowing', owner.token, {}))).toBe('HUB_ERR_VALIDATION'); // no target
    expect(await code(await call('schedule/preview', owner.token, { home_id: homeId, days: 99 }))).toBe('HUB_ERR_VALIDATION');
  });

  it("keeps callers out of other homes' entities and below the action's role", async () => {
    const foreign = await call('lawn_mower/start_mowing', owner.token, { entity_id: 'lawn_mower.neighbour' });
    expect(foreign.status).toBe(404);
    expect(await code(foreign)).toBe('HUB_ERR_ENTITY_NOT_FOUND');
    expect(t.hub.states.get('lawn_mower.neighbour')?.state).toBe('docked');
    const weak = await call('lawn_mower/start_mowing', viewer.token, { entity_id: 'lawn_mower.front' });
    expect(weak.status).toBe(403);
    expect((await call('schedule/preview?return_response', owner.token, { home_id: otherHomeId, days: 1 })).status).toBe(404);
  });

  it('checks entity ids given in the data as well as in the target', async () => {
    const res = await t.request('/api/services/lawn_mower/start_mowing', { token: owner.token, json: { entity_id: 'lawn_mower.neighbour' } });
    expect(res.status).toBe(404);
    const both = await t.request('/api/services/lawn_mower/start_mowing', { token: owner.token, json: { entity_id: ['lawn_mower.front', 'lawn_mower.neighbour'] } });
    expect(both.status).toBe(404);
    expect(t.hub.states.get('lawn_mower.neighbour')?.state).toBe('docked');
  });

  it('keeps actions without a home for administrators', async () => {
    expect((await call('hub/purge_history', owner.token, {})).status).toBe(403);
    const res = await call('hub/purge_history?return_response', await t.adminToken(), { keep_days: 30 });
    expect(await res.json()).toEqual({ changed_states: [], service_response: { deleted: 0 } });
  });

  it('answers unknown actions with 404 and a body that is not an object with 400', async () => {
    expect(await code(await call('lawn_mower/fly', owner.token))).toBe('HUB_ERR_ACTION_NOT_FOUND');
    expect((await call('lawn_mower/start_mowing', owner.token, ['lawn_mower.front'])).status).toBe(400);
  });
});

describe('GET /api/services', () => {
  it('lists actions by domain with their fields', async () => {
    const domains = (await (await t.request('/api/services', { token: viewer.token })).json()) as { domain: string; services: Record<string, { fields: object }> }[];
    const schedule = domains.find((d) => d.domain === 'schedule');
    expect(schedule?.services.preview).toMatchObject({
      fields: { home_id: { required: true }, days: { required: true, selector: { number: { min: 1, max: 14 } } } },
      response: { optional: false },
    });
    expect(domains.map((d) => d.domain)).not.toContain('hub');
  });
});

describe('GET /api/actions', () => {
  it('gives each action with the JSON Schema of its data', async () => {
    const list = (await (await t.request('/api/actions', { token: viewer.token })).json()) as { domain: string; name: string; fields: Record<string, unknown> }[];
    const preview = list.find((a) => a.domain === 'schedule' && a.name === 'preview');
    expect(preview).toMatchObject({
      role: 'viewer',
      response: 'only',
      target: null,
      fields: { type: 'object', required: ['home_id', 'days'], properties: { days: { type: 'integer', minimum: 1, maximum: 14 } } },
    });
  });
});

describe('/api/events', () => {
  it('fires an event scoped to the caller’s home', async () => {
    const received: { home_id: string | null; context: { user_id: string | null } }[] = [];
    const off = t.hub.bus.on('rain_detected', (e) => void received.push(e));
    const res = await t.request('/api/events/rain_detected', { token: owner.token, json: { mm: 4 } });
    off();
    expect(await res.json()).toEqual({ message: 'Event rain_detected fired.' });
    expect(received).toEqual([expect.objectContaining({ home_id: homeId, data: { mm: 4 }, context: expect.objectContaining({ user_id: owner.id }) })]);
  });

  it('refuses events for other homes, by viewers, and of the kernel’s own types', async () => {
    expect((await t.request('/api/events/x', { token: owner.token, json: { home_id: otherHomeId } })).status).toBe(404);
    expect((await t.request('/api/events/x', { token: viewer.token, json: {} })).status).toBe(403);
    expect((await t.request('/api/events/state_changed', { token: await t.adminToken(), json: {} })).status).toBe(403);
    expect((await t.request('/api/events/bad%20type', { token: owner.token, json: {} })).status).toBe(400);
  });

  it('lists event types with their listener counts', async () => {
    const events = (await (await t.request('/api/events', { token: viewer.token })).json()) as { event: string; listener_count: number }[];
    expect(events).toContainEqual({ event: 'home_deleted', listener_count: 1 });
  });
});
