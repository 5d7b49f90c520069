import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePlugin, type PluginDefinition } from '../../core/plugin.js';
import { discoverPlugins, type PluginSource } from '../../core/plugins/index.js';
import { createTestHub, type TestHub } from '../harness/index.js';

const source = (definition: PluginDefinition): PluginSource => ({ definition: definition as PluginDefinition });
const noop = definePlugin({ id: 'noop', version: '1.0.0', hub: '*', setup() {} });

let t: TestHub | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

async function hubWith(plugins: PluginDefinition[], env: Record<string, string> = {}) {
  t = await createTestHub(env, { plugins: plugins.map(source) });
  return t;
}

const status = (hub: TestHub, id: string) => hub.hub.plugins.get(id);

describe('loading', () => {
  it('sets plugins up in dependency order, whatever order they come in', async () => {
    const order: string[] = [];
    const plugin = (id: string, dependsOn: string[] = []) =>
      definePlugin({ id, version: '1.0.0', hub: '*', dependsOn, setup: () => void order.push(id) });
    const hub = await hubWith([plugin('c', ['b']), plugin('b', ['a']), plugin('a'), plugin('d', ['a'])]);
    expect(order).toEqual(['a', 'b', 'c', 'd']);
    expect(hub.hub.plugins.list().filter((p) => p.id !== 'housekeeping').map((p) => [p.id, p.status])).toEqual([
      ['a', 'running'],
      ['b', 'running'],
      ['c', 'running'],
      ['d', 'running'],
    ]);
  });

  it('refuses a plugin made for another hub version, with the reason', async () => {
    const hub = await hubWith([definePlugin({ id: 'future', version: '1.0.0', hub: '^9.0.0', setup() {} })]);
    expect(status(hub, 'future')).toMatchObject({ status: 'failed', error: expect.stringMatching(/Needs hub \^9\.0\.0, but this hub is 0\.\d+\.\d+/) });
  });

  it('fails plugins whose dependencies are missing, circular or failed — and only those', async () => {
    const hub = await hubWith([
      definePlugin({ id: 'orphan', version: '1.0.0', hub: '*', dependsOn: ['ghost'], setup() {} }),
      definePlugin({ id: 'ping', version: '1.0.0', hub: '*', dependsOn: ['pong'], setup() {} }),
      definePlugin({ id: 'pong', version: '1.0.0', hub: '*', dependsOn: ['ping'], setup() {} }),
      definePlugin({ id: 'broken', version: '1.0.0', hub: '*', setup: () => Promise.reject(new Error('no coffee')) }),
      definePlugin({ id: 'needs_broken', version: '1.0.0', hub: '*', dependsOn: ['broken'], setup() {} }),
      noop,
    ]);
    expect(status(hub, 'orphan')?.error).toBe('Depends on "ghost", which is not installed');
    expect(status(hub, 'ping')?.error).toMatch(/Circular dependency/);
    expect(status(hub, 'broken')).toMatchObject({ status: 'failed', error: 'no coffee' });
    expect(status(hub, 'needs_broken')?.status).not.toBe('running');
    expect(status(hub, 'noop')?.status).toBe('running');
    expect((await hub.request('/api/health')).status).toBe(200);
  });

  it('removes what a plugin registered before its setup threw', async () => {
    const hub = await hubWith([
      definePlugin({
        id: 'halfway',
        version: '1.0.0',
        hub: '*',
        async setup(ctx) {
          ctx.actions.register({ domain: 'halfway', name: 'go', role: 'viewer', schema: z.object({}), handler: () => null });
          ctx.bus.on('state_changed', () => {});
          ctx.routes.get('/here', (c) => c.json({}));
          throw new Error('changed my mind');
        },
      }),
    ]);
    expect(status(hub, 'halfway')?.status).toBe('failed');
    expect(hub.hub.actions.has('halfway', 'go')).toBe(false);
    expect(hub.hub.bus.listenerCount('state_changed')).toBe(0);
    expect((await hub.request('/api/plugins/halfway/here', { token: await hub.adminToken() })).status).toBe(404);
  });

  it('validates config from PLUGIN_<ID>_* variables', async () => {
    let seen: unknown;
    const configured = definePlugin({
      id: 'configured',
      version: '1.0.0',
      hub: '*',
      config: z.object({ apiUrl: z.url(), retries: z.coerce.number().int().default(3) }),
      setup: (ctx) => void (seen = ctx.config),
    });
    const good = await hubWith([configured], { PLUGIN_CONFIGURED_API_URL: 'https://example.com/api', PLUGIN_CONFIGURED_RETRIES: '5' });
    expect(seen).toEqual({ apiUrl: 'https://example.com/api', retries: 5 });
    await good.stop();
    t = undefined;

    const bad = await hubWith([configured], { PLUGIN_CONFIGURED_API_URL: 'not a url' });
    expect(status(bad, 'configured')).toMatchObject({ status: 'failed', error: expect.stringContaining('PLUGIN_CONFIGURED_API_URL') });
  });

  it('respects HUB_DISABLED_PLUGINS, which an admin cannot override', async () => {
    const hub = await hubWith([noop], { HUB_DISABLED_PLUGINS: 'noop' });
    expect(status(hub, 'noop')).toMatchObject({ status: 'disabled', error: 'Disabled by HUB_DISABLED_PLUGINS' });
    const res = await hub.request('/api/plugins/noop/enable', { method: 'POST', token: await hub.adminToken() });
    expect(res.status).toBe(409);
  });

  it('discovers plugin folders, and reports one whose module does not load as failed', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'hub-plugins-'));
    try {
      await mkdir(path.join(dir, 'tiny'));
      await writeFile(path.join(dir, 'tiny', 'index.ts'), "export default { id: 'tiny', version: '1.0.0', hub: '*', setup() {} };");
      await mkdir(path.join(dir, 'typo'));
      await writeFile(path.join(dir, 'typo', 'index.ts'), 'export default definePlugin({ id: "typo", ');
      const sources = await discoverPlugins(dir, pino({ level: 'silent' }));
      expect(sources.map((s) => s.definition.id)).toEqual(['tiny', 'typo']);
      const hub = await hubWith(sources.map((s) => s.definition));
      expect(status(hub, 'tiny')?.status).toBe('running');
      expect(status(hub, 'typo')).toMatchObject({ status: 'failed', error: expect.stringMatching(/^The module did not load/) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('disable and enable', () => {
  function counterPlugin(calls: { setups: number; stops: number; events: number; runs: number }, homeId: () => string) {
    return definePlugin({
      id: 'lawn',
      version: '1.0.0',
      hub: '*',
      async setup(ctx) {
        calls.setups++;
        const entity = await ctx.entities.register({ entity_id: 'sensor.lawn_height', home_id: homeId(), initial: { state: '30' } });
        ctx.actions.register({
          domain: 'lawn',
          name: 'cut',
          role: 'owner',
          schema: z.object({ home_id: z.uuid() }),
          handler: () => void entity.set('20'),
        });
        ctx.bus.on('lawn_watered', () => void calls.events++);
        ctx.routes.get('/height', (c) => c.json({ height: entity.get()?.state }));
        await ctx.jobs.schedule('grow', { everyMs: 50 }, () => void calls.runs++);
        ctx.onStop(() => void calls.stops++);
      },
    });
  }

  it('disposes routes, actions, listeners, jobs and entities; a re-enable brings them back', async () => {
    const calls = { setups: 0, stops: 0, events: 0, runs: 0 };
    let homeId = '';
    const hub = await hubWith([counterPlugin(calls, () => homeId)]);
    // The plugin started before any home existed: create one and restart the plugin on it.
    const admin = await hub.adminToken();
    homeId = await hub.createHome(admin);
    expect(status(hub, 'lawn')?.status).toBe('failed'); // home '' is not a valid home
    expect((await hub.request('/api/plugins/lawn/enable', { method: 'POST', token: admin })).status).toBe(200);

    expect((await (await hub.request('/api/plugins/lawn/height', { token: admin })).json()).height).toBe('30');
    expect((await hub.request('/api/services/lawn/cut', { token: admin, json: { home_id: homeId } })).status).toBe(200);
    expect(hub.hub.states.get('sensor.lawn_height')?.state).toBe('20');
    hub.hub.bus.fire('lawn_watered', {});
    expect(calls.events).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(calls.runs).toBeGreaterThan(0);

    const disabled = await hub.request('/api/plugins/lawn/disable', { method: 'POST', token: admin });
    expect(await disabled.json()).toMatchObject({ id: 'lawn', status: 'disabled' });
    expect(calls.stops).toBe(1);
    expect((await hub.request('/api/plugins/lawn/height', { token: admin })).status).toBe(404);
    expect((await hub.request('/api/services/lawn/cut', { token: admin, json: { home_id: homeId } })).status).toBe(404);
    expect(hub.hub.states.get('sensor.lawn_height')).toBeUndefined();
    hub.hub.bus.fire('lawn_watered', {});
    expect(calls.events).toBe(1);
    const runsAtDisable = calls.runs;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(calls.runs).toBe(runsAtDisable);
    const jobs = (await (await hub.request('/api/jobs', { token: admin })).json()) as { id: string }[];
    expect(jobs.map((j) => j.id)).not.toContain('plugin:lawn:grow');

    const enabled = await hub.request('/api/plugins/lawn/enable', { method: 'POST', token: admin });
    expect(await enabled.json()).toMatchObject({ status: 'running', error: null });
    expect((await (await hub.request('/api/plugins/lawn/height', { token: admin })).json()).height).toBe('30');
    hub.hub.bus.fire('lawn_watered', {});
    expect(calls.events).toBe(2);
  });

  it('remembers an admin’s choice across restarts', async () => {
    const hub = await hubWith([noop]);
    await hub.request('/api/plugins/noop/disable', { method: 'POST', token: await hub.adminToken() });
    const settings = await hub.hub.database.db.selectFrom('plugin_settings').selectAll().where('plugin_id', '=', 'noop').executeTakeFirst();
    expect(settings?.enabled).toBe(false);
  });

  it('refuses to disable a plugin others depend on, and non-admins altogether', async () => {
    const hub = await hubWith([noop, definePlugin({ id: 'needs_noop', version: '1.0.0', hub: '*', dependsOn: ['noop'], setup() {} })]);
    const admin = await hub.adminToken();
    const res = await hub.request('/api/plugins/noop/disable', { method: 'POST', token: admin });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/needs_noop depend on noop/);
    const user = await hub.createUser('plain@example.com');
    expect((await hub.request('/api/plugins/needs_noop/disable', { method: 'POST', token: user.token })).status).toBe(403);
    expect((await hub.request('/api/plugins/ghost/disable', { method: 'POST', token: admin })).status).toBe(404);
  });
});

describe('the demo plugin', () => {
  it('works end to end: entity, action, job and route', async () => {
    const demo = (await import('../../plugins/demo/index.js')).default;
    t = await createTestHub({}, { plugins: [] });
    const admin = await t.adminToken();
    const homeId = await t.createHome(admin);
    await t.stop();
    // A second hub on a fresh database with the home id configured up front.
    t = await createTestHub({ PLUGIN_DEMO_HOME_ID: homeId, PLUGIN_DEMO_TICK_SECONDS: '3600' }, { plugins: [] });
    const token = await t.adminToken();
    const home = await t.hub.database.db.insertInto('homes').values({ id: homeId, name: 'Demo' }).returning('id').executeTakeFirstOrThrow();
    expect(home.id).toBe(homeId);
    await t.hub.plugins.startAll([{ definition: demo as PluginDefinition }]);
    expect(t.hub.plugins.get('demo')?.status).toBe('running');
    expect(t.hub.states.get('counter.demo')?.state).toBe('0');

    const call = await t.request('/api/services/demo/increment?return_response', { token, json: { entity_id: 'counter.demo', by: 5 } });
    expect(await call.json()).toMatchObject({ changed_states: [{ entity_id: 'counter.demo', state: '5' }], service_response: { value: 5 } });
    t.hub.states.set('counter.other', '0', {}, { homeId, owner: 'api' });
    const other = await t.request('/api/services/demo/increment', { token, json: { entity_id: 'counter.other' } });
    expect(other.status).toBe(400);
    expect(t.hub.states.get('counter.demo')?.state).toBe('5');
    const run = await t.request('/api/jobs/plugin:demo:tick/run', { method: 'POST', token });
    expect(await run.json()).toMatchObject({ ok: true, error: null });
    expect(t.hub.states.get('counter.demo')?.state).toBe('6');
    expect(await (await t.request('/api/plugins/demo/hello', { token })).json()).toEqual({ hello: 'Administrator', counter: '6' });
  });
});
