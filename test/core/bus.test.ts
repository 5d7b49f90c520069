import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { canSee, EventBus, type EventRelay, type HubEvent } from '../../core/bus/index.js';

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
