import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canSee, EventBus, KERNEL, type EventRelay, type HubEvent } from '../../core/bus/index.js';
import { definePlugin, type PluginContext } from '../../core/plugin.js';
import { createTestHub, type TestHub } from '../harness/index.js';
import { WsClient } from '../harness/ws.js';

function busWithLog() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'error' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { bus: new EventBus(log), lines };
}

describe('EventBus', () => {
  it('delivers to listeners of the type and to wildcard listeners, with Home Assistant’s fields', () => {
    const { bus } = busWithLog();
    const seen: string[] = [];
    bus.on('mower_docked', (e) => void seen.push(`typed:${e.data.mower}`));
    bus.on('*', (e) => void seen.push(`all:${e.event_type}`));
    const event = bus.fire('mower_docked', { mower: 'luba' }, { homeId: 'h1' });
    bus.fire('other', {});
    expect(seen).toEqual(['typed:luba', 'all:mower_docked', 'all:other']);
    expect(event).toMatchObject({
      event_type: 'mower_docked',
      data: { mower: 'luba' },
      origin: 'LOCAL',
      home_id: 'h1',
      context: { id: expect.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/), parent_id: null, user_id: null },
    });
    expect(Date.parse(event.time_fired)).not.toBeNaN();
  });

  it('supports once and off', () => {
    const { bus } = busWithLog();
    let once = 0;
    let on = 0;
    bus.once('tick', () => void once++);
    const listener = () => void on++;
    bus.on('tick', listener);
    bus.fire('tick', {});
    bus.off('tick', listener);
    bus.fire('tick', {});
    expect([once, on]).toEqual([1, 1]);
    expect(bus.listenerCount('tick')).toBe(0);
  });

  it('logs a listener that throws or rejects, and still delivers to the others', async () => {
    const { bus, lines } = busWithLog();
    let delivered = 0;
    bus.on('x', () => {
      throw new Error('sync failure');
    });
    bus.on('x', () => Promise.reject(new Error('async failure')));
    bus.on('x', () => void delivered++);
    expect(() => bus.fire('x', {})).not.toThrow();
    await new Promise((resolve) => setImmediate(resolve));
    expect(delivered).toBe(1);
    expect(lines.map((l) => (l.err as { message: string }).message).sort()).toEqual(['async failure', 'sync failure']);
  });

  it('shares events with other instances through a relay, marked REMOTE and never echoed', () => {
    const wire = new Set<(e: HubEvent) => void>();
    const relayFor = (): EventRelay & { published: number } => {
      let deliverHere: ((e: HubEvent) => void) | undefined;
      const relay = {
        published: 0,
        publish(event: HubEvent) {
          relay.published++;
          for (const deliver of wire) if (deliver !== deliverHere) deliver(event);
        },
        subscribe(deliver: (e: HubEvent) => void) {
          deliverHere = deliver;
          wire.add(deliver);
          return () => wire.delete(deliver);
        },
      };
      return relay;
    };
    const a = busWithLog().bus;
    const b = busWithLog().bus;
    const relayA = relayFor();
    const relayB = relayFor();
    a.setRelay(relayA);
    b.setRelay(relayB);
    const onB: HubEvent[] = [];
    b.on('ping', (e) => void onB.push(e));
    a.fire('ping', { n: 1 });
    expect(onB.map((e) => [e.origin, e.data])).toEqual([['REMOTE', { n: 1 }]]);
    expect(relayB.published).toBe(0);
  });

  it('canSee: admins see all, members their homes and the public hub-wide events', () => {
    const member = { isAdmin: false, homes: new Map([['h1', 'owner']]) };
    const admin = { isAdmin: true, homes: new Map() };
    expect(canSee({ event_type: 'x', home_id: 'h1' }, member)).toBe(true);
    expect(canSee({ event_type: 'x', home_id: 'h2' }, member)).toBe(false);
    expect(canSee({ event_type: 'plugin_loaded', home_id: null }, member)).toBe(true);
    // An action an admin called for no home, or across homes, may carry other homes' data.
    expect(canSee({ event_type: 'call_service', home_id: null }, member)).toBe(false);
    expect(canSee({ event_type: 'call_service', home_id: null }, admin)).toBe(true);
    expect(canSee({ event_type: 'x', home_id: 'h2' }, admin)).toBe(true);
  });
});

describe('reserved event types', () => {
  it('holds the kernel’s types from the start, and a plugin’s for good', () => {
    const { bus } = busWithLog();
    expect(bus.reservedBy('state_changed')).toBe(KERNEL);
    expect(bus.reservedBy('home_updated')).toBe(KERNEL);
    expect(bus.reservedBy('mowing_session_ended')).toBeUndefined();

    bus.reserve('plugin:mower', ['mowing_session_ended', 'mower_billed']);
    expect(bus.reservedBy('mowing_session_ended')).toBe('plugin:mower');
    // Nobody else takes them, nor the kernel's; a refused reservation takes nothing.
    expect(() => bus.reserve('plugin:other', ['other_event', 'mower_billed'])).toThrow(/mower_billed is reserved by plugin:mower/);
    expect(bus.reservedBy('other_event')).toBeUndefined();
    expect(() => bus.reserve('plugin:other', ['state_changed'])).toThrow(/reserved by hub/);
    // The bus itself still fires them: it is how the owner does.
    const seen: string[] = [];
    bus.on('mowing_session_ended', (e) => void seen.push(e.event_type));
    bus.fire('mowing_session_ended', {});
    expect(seen).toEqual(['mowing_session_ended']);
    // The owner reserving again (a restart of the plugin) changes nothing.
    bus.reserve('plugin:mower', ['mowing_session_ended']);
    expect(bus.reservedBy('mowing_session_ended')).toBe('plugin:mower');
  });

  describe('through the APIs', () => {
    let t: TestHub;
    let url: string;
    let owner: { id: string; token: string };
    let homeId: string;
    let mower: PluginContext<unknown> | undefined;
    let other: PluginContext<unknown> | undefined;
    const plugin = (id: string, setup: (ctx: PluginContext<unknown>) => void, reservedEvents: string[] = []) => ({
      definition: definePlugin({ id, version: '1.0.0', hub: '*', reservedEvents, setup }),
    });

    beforeAll(async () => {
      t = await createTestHub({ HUB_DISABLED_PLUGINS: 'billing' }, {
        plugins: [
          plugin('mower', (ctx) => void (mower = ctx), ['mowing_session_ended']),
          plugin('other', (ctx) => void (other = ctx)),
          plugin('billing', () => {}, ['invoice_paid']),
        ],
      });
      ({ url } = await t.hub.listen());
      owner = await t.createUser('owner@example.com');
      homeId = await t.createHome(owner.token);
    });
    afterAll(() => t.stop());

    const fireRest = (type: string) => t.request(`/api/events/${type}`, { token: owner.token, json: { home_id: homeId, area_m2: 1e6 } });

    it('refuses users through REST and the WebSocket with a coded 403, and other plugins; the owner fires', async () => {
      const seen: HubEvent[] = [];
      t.hub.bus.on('mowing_session_ended', (e) => void seen.push(e));

      const rest = await fireRest('mowing_session_ended');
      expect(rest.status).toBe(403);
      expect(await rest.json()).toEqual({ error: { code: 'HUB_ERR_FORBIDDEN', message: 'mowing_session_ended is fired by the mower plugin only' } });

      const ws = await WsClient.authenticated(url, owner.token);
      const reply = await ws.command({ id: 1, type: 'fire_event', event_type: 'mowing_session_ended', event_data: { home_id: homeId } });
      expect(reply).toMatchObject({ success: false, error: { code: 'unauthorized', hub_code: 'HUB_ERR_FORBIDDEN', message: 'mowing_session_ended is fired by the mower plugin only' } });
      ws.close();

      expect(() => other!.bus.fire('mowing_session_ended', {})).toThrow(expect.objectContaining({ code: 'HUB_ERR_FORBIDDEN' }));
      expect(() => other!.bus.fire('home_updated', { home_id: homeId, changed: [] })).toThrow(/fired by the hub only/);
      expect(seen).toEqual([]);

      mower!.bus.fire('mowing_session_ended', { area_m2: 3 }, { homeId });
      expect(seen.map((e) => e.data)).toEqual([{ area_m2: 3 }]);
      // Types nobody reserved stay open to all.
      expect((await fireRest('lawn_watered')).status).toBe(200);
    });

    it('holds them while the plugin is installed: disabled by an admin, or never started', async () => {
      await t.hub.plugins.disable('mower');
      expect((await fireRest('mowing_session_ended')).status).toBe(403);
      expect(() => other!.bus.fire('mowing_session_ended', {})).toThrow(expect.objectContaining({ code: 'HUB_ERR_FORBIDDEN' }));
      await t.hub.plugins.enable('mower');
      expect((await fireRest('mowing_session_ended')).status).toBe(403);

      expect(t.hub.plugins.get('billing')).toMatchObject({ status: 'disabled' });
      const rest = await fireRest('invoice_paid');
      expect(rest.status).toBe(403);
      expect(await rest.json()).toMatchObject({ error: { code: 'HUB_ERR_FORBIDDEN', message: 'invoice_paid is fired by the billing plugin only' } });
    });

    it('fails the start of a plugin that declares what another holds', async () => {
      const hub = await createTestHub({}, {
        plugins: [plugin('first', () => {}, ['yard_billed']), plugin('second', () => {}, ['yard_billed'])],
      });
      try {
        expect(hub.hub.plugins.get('second')).toMatchObject({ status: 'failed', error: 'yard_billed is reserved by plugin:first' });
        expect(hub.hub.bus.reservedBy('yard_billed')).toBe('plugin:first');
      } finally {
        await hub.stop();
      }
    });
  });
});
