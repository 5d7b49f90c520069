/**
 * The hub's own Node-RED nodes (core/nodered/nodes), deployed in real flows on a hub with
 * Node-RED embedded: driven by real state changes and events, observed through the entities
 * and events they produce. The remote `hub-server` mode runs against a second hub over its
 * WebSocket API, through a TCP proxy the test can cut.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { HubEvent } from '../../core/bus/index.js';
import { definePlugin, type EntityHandle, type PluginContext } from '../../core/plugin.js';
import { createTestHub, type TestHub } from '../harness/index.js';
import { sleep, until } from '../harness/wait.js';

const NODE_TYPES = [
  'hub-server',
  'hub-state-changed',
  'hub-trigger-state',
  'hub-current-state',
  'hub-get-entities',
  'hub-get-history',
  'hub-call-action',
  'hub-fire-event',
  'hub-events-all',
  'hub-wait-until',
];

/** A plugin with a pump (`switch.pump`), `nrtest.turn_on`, which sets it on at a speed, and an event only it fires (`nrtest_reading`). */
function pumpPlugin() {
  const calls: { speed: number; entityIds: string[] }[] = [];
  let context: PluginContext<unknown> | undefined;
  let pump: EntityHandle | undefined;
  const definition = definePlugin({
    id: 'nrtest',
    version: '1.0.0',
    hub: '*',
    reservedEvents: ['nrtest_reading'],
    setup(ctx) {
      context = ctx;
      ctx.actions.register({
        domain: 'nrtest',
        name: 'turn_on',
        description: 'Turns the pump on',
        role: 'technician',
        target: { domain: 'switch' },
        response: 'optional',
        schema: z.strictObject({
          entity_id: z.union([z.string(), z.array(z.string())]).optional(),
          speed: z.number().int().min(1).max(3).describe('Pump speed'),
        }),
        handler: ({ data, entityIds, context: callContext }) => {
          calls.push({ speed: data.speed, entityIds });
          pump!.set('on', { speed: data.speed }, callContext);
          return { speed: data.speed };
        },
      });
    },
  });
  return {
    source: { definition },
    calls,
    async addPump(homeId: string) {
      pump = await context!.entities.register({ entity_id: 'switch.pump', home_id: homeId, initial: { state: 'off' } });
      return pump;
    },
  };
}

/** A TCP proxy to a port, which the test can close to clients and cut. */
async function tcpProxy(targetPort: number) {
  const sockets = new Set<Socket>();
  const pairs = new Set<Socket[]>();
  let open = true;
  let accepted = 0;
  const server = net.createServer((client) => {
    if (!open) return void client.destroy();
    accepted += 1;
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = [client, upstream];
    pairs.add(pair);
    for (const socket of pair) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        pairs.delete(pair);
        for (const other of pair) other.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    setOpen: (value: boolean) => void (open = value),
    cut: () => {
      for (const socket of sockets) socket.destroy();
    },
    /** Open connections stop carrying data, but stay open: only a heartbeat notices. */
    freeze: () => {
      for (const [client, upstream] of pairs) {
        client!.unpipe(upstream);
        upstream!.unpipe(client);
        client!.pause();
        upstream!.pause();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('the hub nodes in deployed flows', () => {
  let t: TestHub;
  let url: string;
  let dataDir: string;
  let admin: string;
  let homeId: string;
  const plugin = pumpPlugin();
  const events: HubEvent[] = [];
  let deploys = 0;

  const red = (route: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(`${url}/red${route}`, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: {
        authorization: `Bearer ${admin}`,
        accept: 'application/json',
        ...(init.body === undefined ? {} : { 'content-type': 'application/json', 'node-red-deployment-type': 'full' }),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
  const flowApi = (route: string, init?: RequestInit) => fetch(`${url}/red/api${route}`, init);
  const set = (entityId: string, state: string, attributes: Record<string, unknown> = {}) => t.hub.states.set(entityId, state, attributes, { homeId, owner: 'test' });
  const fired = (eventType: string) => events.filter((e) => e.event_type === eventType).map((e) => e.data);
  const fire = (id: string, eventType: string, extra: Record<string, unknown> = {}) => ({ id, type: 'hub-fire-event', server: 'srv', eventType, data: '', ...extra });

  /**
   * Deploys a flow (with a "this hub" server `srv`) and waits until it runs: an inject node
   * fires `nr_deployed` once the flow has started.
   */
  async function deploy(nodes: Record<string, unknown>[], configNodes: Record<string, unknown>[] = []) {
    const n = String(++deploys);
    const flow = [
      { id: 'tab', type: 'tab', label: 'hub nodes' },
      { id: 'srv', type: 'hub-server', name: 'this hub', mode: 'local' },
      ...configNodes,
      ...[
        { id: `started${n}`, type: 'inject', props: [{ p: 'payload' }], payload: n, payloadType: 'str', once: true, onceDelay: 0.1, repeat: '', wires: [[`startedFire${n}`]] },
        fire(`startedFire${n}`, 'nr_deployed'),
        ...nodes,
      ].map((node, i) => ({ z: 'tab', wires: [], x: 150, y: 40 + 40 * i, ...node })), // nodes without x/y would be taken for config nodes
    ];
    const res = await red('/flows', { body: flow });
    expect(res.status).toBe(204);
    await until(() => fired('nr_deployed').some((d) => d.payload === n), Boolean);
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'hub-nodered-nodes-'));
    t = await createTestHub({ HUB_NODERED: 'true', HUB_DATA_DIR: dataDir }, { plugins: [plugin.source] });
    ({ url } = await t.hub.listen());
    admin = await t.adminToken();
    homeId = await t.createHome(admin);
    await plugin.addPump(homeId);
    t.hub.bus.on('*', (event) => void events.push(event));
  });
  afterAll(async () => {
    await t?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('loads every hub node type into Node-RED, and lists the actions for the editor', async () => {
    const sets = (await (await red('/nodes')).json()) as { types: string[]; enabled: boolean; err?: string }[];
    const loaded = sets.flatMap((s) => (s.enabled && !s.err ? s.types : []));
    expect(loaded).toEqual(expect.arrayContaining(NODE_TYPES));

    const actions = (await (await red('/hub/actions')).json()) as { domain: string; name: string; fields: { required?: string[] } }[];
    expect(actions.find((a) => a.domain === 'nrtest' && a.name === 'turn_on')?.fields.required).toEqual(['speed']);
    const entities = (await (await red('/hub/entities')).json()) as { entity_id: string }[];
    expect(entities.map((e) => e.entity_id)).toContain('switch.pump');
    expect((await fetch(`${url}/red/hub/actions`)).status).toBe(401);
  });

  it('turns a state change into an action call that changes an entity, and fires nothing for the initial states', async () => {
    set('sensor.trigger', 'idle');
    await deploy([
      { id: 'sc', type: 'hub-state-changed', server: 'srv', entityType: 'exact', entity: 'sensor.trigger', ignoreUnavailable: true, forSeconds: 0, wires: [['call', 'seen']] },
      fire('seen', 'nr_seen'),
      { id: 'call', type: 'hub-call-action', server: 'srv', domain: 'nrtest', action: 'turn_on', target: 'switch.pump', data: '{"speed": 2}', wires: [['done']] },
      fire('done', 'nr_done'),
    ]);
    // The flow runs, and the states the hub already had are not changes.
    expect(fired('nr_seen')).toEqual([]);
    expect(t.hub.states.get('switch.pump')?.state).toBe('off');

    set('sensor.trigger', 'go');
    await until(() => t.hub.states.get('switch.pump'), (pump) => pump?.state === 'on');
    expect(t.hub.states.get('switch.pump')?.attributes).toEqual({ speed: 2 });
    expect(plugin.calls).toEqual([{ speed: 2, entityIds: ['switch.pump'] }]);
    await until(() => fired('nr_done'), (done) => done.length === 1);
    expect(fired('nr_done')).toEqual([{ speed: 2 }]); // the action's response
    expect(fired('nr_seen')).toEqual([{ payload: 'go', topic: 'sensor.trigger' }]);
  });

  it('ignores transitions from and to unknown/unavailable by default, and attribute-only changes unless asked', async () => {
    set('sensor.door', 'closed');
    await deploy([
      { id: 'filtered', type: 'hub-state-changed', server: 'srv', entityType: 'list', entity: 'sensor.door, sensor.other', ignoreUnavailable: true, wires: [['f1']] },
      fire('f1', 'nr_door'),
      { id: 'everything', type: 'hub-state-changed', server: 'srv', entityType: 'prefix', entity: 'sensor.do', ignoreUnavailable: false, wires: [['f2']] },
      fire('f2', 'nr_door_all'),
      { id: 'attrs', type: 'hub-state-changed', server: 'srv', entityType: 'regex', entity: '^sensor\\.d[o]+r$', attributeChanges: true, wires: [['f3']] },
      fire('f3', 'nr_door_attr'),
    ]);
    set('sensor.door', 'unavailable');
    set('sensor.door', 'open');
    set('sensor.door', 'closed');
    set('sensor.door', 'closed', { battery: 5 });
    await until(() => fired('nr_door_all'), (all) => all.length === 3);
    expect(fired('nr_door_all').map((d) => d.payload)).toEqual(['unavailable', 'open', 'closed']);
    await until(() => fired('nr_door_attr'), (all) => all.length === 2);
    expect(fired('nr_door').map((d) => d.payload)).toEqual(['closed']);
    expect(fired('nr_door_attr').map((d) => d.payload)).toEqual(['closed', 'closed']);
  });

  it('waits out a "for" duration, and a change meanwhile cancels it', async () => {
    set('binary_sensor.motion', 'off');
    await deploy([
      { id: 'held', type: 'hub-state-changed', server: 'srv', entity: 'binary_sensor.motion', forSeconds: 0.5, wires: [['chg']] },
      { id: 'chg', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '{"state": payload, "was": data.old_state.state}', tot: 'jsonata' }], wires: [['f']] },
      fire('f', 'nr_motion'),
    ]);
    set('binary_sensor.motion', 'on');
    await sleep(200);
    set('binary_sensor.motion', 'off'); // cancels the first wait
    set('binary_sensor.motion', 'on');
    const secondOn = Date.now();
    await until(() => fired('nr_motion'), (all) => all.length === 1, 3000);
    expect(Date.now() - secondOn).toBeGreaterThanOrEqual(450);
    expect(fired('nr_motion')).toEqual([{ state: 'on', was: 'off' }]);
  });

  it('routes trigger-state messages by its conditions', async () => {
    set('sensor.battery', '80', { charging: false });
    await deploy([
      {
        id: 'trigger',
        type: 'hub-trigger-state',
        server: 'srv',
        entity: 'sensor.battery',
        conditions: [
          { property: 'state', op: '<', value: '20', valueType: 'num' },
          { property: 'attribute', attribute: 'charging', op: '==', value: 'false', valueType: 'bool' },
        ],
        wires: [['low'], ['fine']],
      },
      fire('low', 'nr_low'),
      fire('fine', 'nr_fine'),
    ]);
    set('sensor.battery', '15', { charging: false });
    set('sensor.battery', '50', { charging: false });
    set('sensor.battery', '10', { charging: true });
    await until(() => fired('nr_fine'), (all) => all.length === 2);
    expect(fired('nr_low').map((d) => d.payload)).toEqual(['15']);
    expect(fired('nr_fine').map((d) => d.payload)).toEqual(['50', '10']);
  });

  it('reads the current state and finds entities', async () => {
    set('sensor.ge_a', 'on', { friendly_name: 'A' });
    set('sensor.ge_b', 'off');
    set('binary_sensor.ge_c', 'on');
    await deploy([
      { id: 'in1', type: 'http in', url: '/current', method: 'get', wires: [['id1']] },
      { id: 'id1', type: 'change', rules: [{ t: 'set', p: 'entity_id', pt: 'msg', to: 'payload.entity', tot: 'msg' }], wires: [['cs']] },
      { id: 'cs', type: 'hub-current-state', server: 'srv', entity: '', wires: [['shape'], ['missing']] },
      { id: 'shape', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '{"state": payload, "name": data.attributes.friendly_name}', tot: 'jsonata' }], wires: [['out1']] },
      { id: 'missing', type: 'change', rules: [{ t: 'set', p: 'statusCode', pt: 'msg', to: '404', tot: 'num' }, { t: 'set', p: 'payload', pt: 'msg', to: 'entity_id', tot: 'msg' }], wires: [['out1']] },
      { id: 'out1', type: 'http response', statusCode: '', headers: {} },

      { id: 'in2', type: 'http in', url: '/entities', method: 'get', wires: [['ge']] },
      { id: 'ge', type: 'hub-get-entities', server: 'srv', domain: 'sensor', entityType: 'prefix', entity: 'sensor.ge_', state: '', outputType: 'array', wires: [['ids']] },
      { id: 'ids', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '[payload.entity_id]', tot: 'jsonata' }], wires: [['out2']] },
      { id: 'out2', type: 'http response', statusCode: '', headers: {} },

      { id: 'split', type: 'inject', props: [{ p: 'payload' }], payload: '', payloadType: 'date', repeat: '', once: false, wires: [['ges']] },
      { id: 'ges', type: 'hub-get-entities', server: 'srv', domain: '', entityType: 'regex', entity: '\\.ge_[ac]$', state: 'on', outputType: 'split', wires: [['each']] },
      fire('each', 'nr_entity'),
    ]);
    const current = await flowApi('/current?entity=sensor.ge_a');
    expect(current.status).toBe(200);
    expect(await current.json()).toEqual({ state: 'on', name: 'A' });
    const absent = await flowApi('/current?entity=sensor.nope');
    expect(absent.status).toBe(404);
    expect(await absent.text()).toBe('sensor.nope');

    expect(await (await flowApi('/entities')).json()).toEqual(['sensor.ge_a', 'sensor.ge_b']);
    expect(await (await flowApi('/entities?state=off')).json()).toEqual(['sensor.ge_b']); // msg.payload overrides the state

    expect((await red('/inject/split', { method: 'POST' })).status).toBe(200);
    await until(() => fired('nr_entity'), (all) => all.length === 2);
    expect(fired('nr_entity').map((d) => d.entity_id)).toEqual(['binary_sensor.ge_c', 'sensor.ge_a']);
  });

  it('reads history for the last hours or a period', async () => {
    const before = new Date(Date.now() - 1000).toISOString();
    set('sensor.hist', 'a');
    set('sensor.hist', 'b');
    await sleep(5);
    const middle = new Date().toISOString();
    await sleep(5);
    set('sensor.hist', 'c');
    await t.hub.states.flush();
    await deploy([
      { id: 'in', type: 'http in', url: '/history', method: 'get', wires: [['hist']] },
      { id: 'hist', type: 'hub-get-history', server: 'srv', entities: 'sensor.hist', rangeType: 'hours', hours: 1, wires: [['states']] },
      { id: 'states', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '[payload[0].state]', tot: 'jsonata' }], wires: [['out']] },
      { id: 'out', type: 'http response', statusCode: '', headers: {} },
    ]);
    expect(await (await flowApi('/history')).json()).toEqual(['a', 'b', 'c']);
    const period = new URLSearchParams({ start: before, end: middle });
    expect(await (await flowApi(`/history?${period}`)).json()).toEqual(['a', 'b']);
  });

  it('fires events, and hears one type or all of them', async () => {
    await deploy([
      { id: 'one', type: 'hub-events-all', server: 'srv', eventType: 'nr_ping', wires: [['data']] },
      { id: 'data', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'payload.data', tot: 'msg' }], wires: [['pong']] },
      fire('pong', 'nr_pong'),
      { id: 'all', type: 'hub-events-all', server: 'srv', eventType: '', wires: [['only']] },
      { id: 'only', type: 'switch', property: 'topic', propertyType: 'msg', rules: [{ t: 'eq', v: 'nr_ping2', vt: 'str' }], checkall: 'true', outputs: 1, wires: [['pongAll']] },
      fire('pongAll', 'nr_pong_all', { data: '{"seen": true}' }),
      { id: 'kernel', type: 'inject', props: [{ p: 'event_type', v: 'state_changed', vt: 'str' }], repeat: '', once: false, wires: [['forged']] },
      { id: 'plugin', type: 'inject', props: [{ p: 'event_type', v: 'nrtest_reading', vt: 'str' }], repeat: '', once: false, wires: [['forged']] },
      fire('forged', ''),
      { id: 'catch', type: 'catch', scope: ['forged'], uncaught: false, wires: [['why']] },
      { id: 'why', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'error.message', tot: 'msg' }], wires: [['refused']] },
      fire('refused', 'nr_refused'),
    ]);
    t.hub.bus.fire('nr_ping', { n: 1 });
    await until(() => fired('nr_pong'), (all) => all.length === 1);
    expect(fired('nr_pong')).toEqual([{ n: 1 }]);

    t.hub.bus.fire('nr_ping2', {});
    await until(() => fired('nr_pong_all'), (all) => all.length === 1);
    expect(fired('nr_pong_all')).toEqual([{ seen: true }]);

    const stateChanges = fired('state_changed').length;
    expect((await red('/inject/kernel', { method: 'POST' })).status).toBe(200);
    await until(() => fired('nr_refused'), (all) => all.length === 1);
    expect(fired('nr_refused')[0]!.payload).toMatch(/state_changed is fired by the hub only/);
    expect(fired('state_changed').length).toBe(stateChanges);

    // Flows are deployed by users who may automate, not only admins: a plugin's reserved events are refused too.
    expect((await red('/inject/plugin', { method: 'POST' })).status).toBe(200);
    await until(() => fired('nr_refused'), (all) => all.length === 2);
    expect(fired('nr_refused')[1]!.payload).toMatch(/nrtest_reading is fired by the nrtest plugin only/);
    expect(fired('nrtest_reading')).toEqual([]);
  });

  it('holds messages until a state is met, or times out', async () => {
    set('cover.gate', 'closed');
    await deploy([
      { id: 'in', type: 'http in', url: '/wait', method: 'get', wires: [['wait']] },
      { id: 'wait', type: 'hub-wait-until', server: 'srv', entity: 'cover.gate', property: 'state', op: '==', value: 'open', valueType: 'str', timeout: '1', checkCurrent: true, wires: [['met'], ['late']] },
      { id: 'met', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '"met: " & data.state', tot: 'jsonata' }], wires: [['out']] },
      { id: 'late', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '"timed out: " & data.state', tot: 'jsonata' }], wires: [['out']] },
      { id: 'out', type: 'http response', statusCode: '', headers: {} },
    ]);
    const started = Date.now();
    const waiting = flowApi('/wait').then((res) => res.text());
    await sleep(300);
    set('cover.gate', 'open');
    expect(await waiting).toBe('met: open');
    expect(Date.now() - started).toBeLessThan(1000);

    expect(await (await flowApi('/wait')).text()).toBe('met: open'); // already open: passes at once

    set('cover.gate', 'closed');
    const again = Date.now();
    expect(await (await flowApi('/wait')).text()).toBe('timed out: closed');
    expect(Date.now() - again).toBeGreaterThanOrEqual(950);
  });

  it('refuses action data that does not fit the schema, without calling the action', async () => {
    await deploy([
      { id: 'in', type: 'http in', url: '/call', method: 'post', wires: [['call']] },
      { id: 'call', type: 'hub-call-action', server: 'srv', domain: '', action: '', target: '', data: '', wires: [['out']] },
      { id: 'catch', type: 'catch', scope: ['call'], uncaught: false, wires: [['why']] },
      { id: 'why', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'error.message', tot: 'msg' }, { t: 'set', p: 'statusCode', pt: 'msg', to: '400', tot: 'num' }], wires: [['out']] },
      { id: 'out', type: 'http response', statusCode: '', headers: {} },
    ]);
    const call = (data: unknown, action = 'turn_on') =>
      flowApi('/call', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ domain: 'nrtest', action, target: { entity_id: 'switch.pump' }, data }),
      });
    const before = plugin.calls.length;
    for (const [data, reason] of [
      [{ speed: 'fast' }, 'speed: expected integer, got string'],
      [{ speed: 2, colour: 'red' }, 'colour: unknown property'],
      [{}, 'speed: required'],
      [{ speed: 9 }, 'speed: must be at most 3'],
    ] as const) {
      const res = await call(data);
      expect(res.status).toBe(400);
      expect(await res.text()).toContain(`invalid data for nrtest.turn_on: ${reason}`);
    }
    const unknown = await call({}, 'turn_sideways');
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain('no action nrtest.turn_sideways');
    expect(plugin.calls.length).toBe(before);

    const ok = await call({ speed: 3 });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ speed: 3 });
    expect(plugin.calls.length).toBe(before + 1);
    expect(t.hub.states.get('switch.pump')?.attributes).toEqual({ speed: 3 });
  });

  describe('with a remote hub', () => {
    let t2: TestHub;
    let proxy: Awaited<ReturnType<typeof tcpProxy>>;
    const remotePlugin = pumpPlugin();
    const remoteEvents: HubEvent[] = [];
    let remoteHome: string;
    const setRemote = (entityId: string, state: string) => t2.hub.states.set(entityId, state, {}, { homeId: remoteHome, owner: 'test' });

    beforeAll(async () => {
      t2 = await createTestHub({}, { plugins: [remotePlugin.source] });
      const { port } = await t2.hub.listen();
      const token = await t2.adminToken();
      remoteHome = await t2.createHome(token);
      await remotePlugin.addPump(remoteHome);
      t2.hub.bus.on('nr_remote_pong', (event) => void remoteEvents.push(event));
      setRemote('sensor.remote_temp', '20');
      proxy = await tcpProxy(port);
      proxy.setOpen(false); // the remote hub is unreachable when the flow starts

      const remote = { id: 'remoteHub', type: 'hub-server', name: 'remote', mode: 'remote', url: `http://127.0.0.1:${proxy.port}`, heartbeat: 2, credentials: { token } };
      await deploy(
        [
          { id: 'rsc', type: 'hub-state-changed', server: 'remoteHub', entity: 'sensor.remote_temp', wires: [['rf']] },
          fire('rf', 'nr_remote'),
          { id: 'rinject', type: 'inject', props: [{ p: 'payload' }], payload: '', payloadType: 'str', once: true, onceDelay: 0.1, repeat: '', wires: [['rcs']] },
          { id: 'rcs', type: 'hub-current-state', server: 'remoteHub', entity: 'sensor.remote_temp', wires: [['rready'], []] },
          fire('rready', 'nr_remote_ready'),
          { id: 'rgo', type: 'hub-state-changed', server: 'remoteHub', entity: 'sensor.remote_go', wires: [['rcall']] },
          { id: 'rcall', type: 'hub-call-action', server: 'remoteHub', domain: 'nrtest', action: 'turn_on', target: 'switch.pump', data: '{"speed": 1}', wires: [['rdone']] },
          fire('rdone', 'nr_remote_done'),
          { id: 'revents', type: 'hub-events-all', server: 'remoteHub', eventType: 'nr_remote_ping', wires: [['rdata']] },
          { id: 'rdata', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'payload.data', tot: 'msg' }], wires: [['rpong']] },
          { ...fire('rpong', 'nr_remote_pong'), server: 'remoteHub' },
        ],
        [remote],
      );
    });
    afterAll(async () => {
      await t2?.stop();
      await proxy?.close();
    });

    it('holds messages until the remote hub is connected and its states loaded', async () => {
      await sleep(1200); // connection attempts fail meanwhile
      expect(fired('nr_remote_ready')).toEqual([]);
      proxy.setOpen(true);
      await until(() => fired('nr_remote_ready'), (all) => all.length === 1, 10_000);
      expect(fired('nr_remote_ready')[0]).toMatchObject({ payload: '20', topic: 'sensor.remote_temp' });

      // The editor's pickers list what the remote hub has.
      const actions = (await (await red('/hub/actions?server=remoteHub&remote=1')).json()) as { domain: string; name: string }[];
      expect(actions.map((a) => `${a.domain}.${a.name}`)).toContain('nrtest.turn_on');
      const entities = (await (await red('/hub/entities?server=remoteHub&remote=1')).json()) as { entity_id: string }[];
      expect(entities.map((e) => e.entity_id)).toEqual(expect.arrayContaining(['sensor.remote_temp', 'switch.pump']));
      expect(await (await red('/hub/actions?server=notDeployed&remote=1')).json()).toEqual([]);
    });

    it("hears the remote hub's state changes, calls its actions and fires events on it", async () => {
      setRemote('sensor.remote_temp', '21');
      await until(() => fired('nr_remote'), (all) => all.length === 1);
      expect(fired('nr_remote')).toEqual([{ payload: '21', topic: 'sensor.remote_temp' }]); // not the initial 20

      setRemote('sensor.remote_go', 'yes');
      await until(() => t2.hub.states.get('switch.pump')?.state, (state) => state === 'on');
      expect(remotePlugin.calls).toEqual([{ speed: 1, entityIds: ['switch.pump'] }]);
      await until(() => fired('nr_remote_done'), (all) => all.length === 1);
      expect(fired('nr_remote_done')).toEqual([{ speed: 1 }]);
      expect(plugin.calls.every((c) => c.speed !== 1)).toBe(true); // the local pump was not involved

      t2.hub.bus.fire('nr_remote_ping', { n: 7 });
      await until(() => remoteEvents, (all) => all.length === 1);
      expect(remoteEvents[0]!.data).toEqual({ n: 7 });
    });

    it('reconnects and resubscribes after the connection drops', async () => {
      const connections = proxy.accepted();
      proxy.cut();
      await until(() => proxy.accepted(), (n) => n > connections, 5000);
      setRemote('sensor.remote_temp', '22');
      await until(() => fired('nr_remote').map((d) => d.payload), (seen) => seen.includes('22'), 5000);
      setRemote('sensor.remote_temp', '23');
      await until(() => fired('nr_remote').map((d) => d.payload), (seen) => seen.includes('23'));
      expect(fired('nr_remote').map((d) => d.payload)).toEqual(['21', '22', '23']);

      t2.hub.bus.fire('nr_remote_ping', { n: 8 });
      await until(() => remoteEvents, (all) => all.length === 2, 5000);
      expect(remoteEvents[1]!.data).toEqual({ n: 8 });
    });

    it('notices a connection that went silent through the heartbeat, and reconnects', async () => {
      const connections = proxy.accepted();
      proxy.freeze();
      await sleep(200);
      setRemote('sensor.remote_temp', '24'); // lost on the silent connection…
      // …until a ping goes unanswered for 5 s (heartbeat every 2 s here) and the client reconnects.
      await until(() => proxy.accepted(), (n) => n > connections, 10_000);
      await until(() => fired('nr_remote').map((d) => d.payload), (seen) => seen.includes('24'), 5000);
      expect(fired('nr_remote').map((d) => d.payload)).toEqual(['21', '22', '23', '24']);
    });
  });
});
