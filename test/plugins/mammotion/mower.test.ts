/**
 * The simulated mower as the hub will see it: real command frames in, real LubaMsg frames out,
 * time advanced by hand.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { CommandBuilder, decodeLubaMsg, detectModel, encodeLubaMsg, readReport, type LubaMsg } from '../../../plugins/mammotion/protocol/index.js';
import { SimulatedMower } from '../../../plugins/mammotion/simulator/mower.js';

const ACCOUNT = 4242;

describe('simulated mower', () => {
  let now: number;
  let sent: LubaMsg[];
  let mower: SimulatedMower;
  let app: CommandBuilder;
  const send = (message: LubaMsg) => mower.receive(encodeLubaMsg(message), now);
  const advance = (seconds: number, step = 1) => {
    for (let t = 0; t < seconds; t += step) {
      now += step * 1000;
      mower.tick(step, now);
    }
  };
  const report = () => {
    send(app.reportOnce());
    return readReport(sent.at(-1)!.sys!.toapp_report_data!);
  };
  const start = () => {
    send(app.sync());
    send(app.planRoute({ zones: ['1001'] }));
    send(app.startJob());
  };

  beforeEach(() => {
    now = Date.parse('2026-06-01T08:00:00Z');
    sent = [];
    const model = detectModel('Luba-VSSIM001');
    mower = new SimulatedMower({ deviceName: 'Luba-VSSIM001', model, userAccount: ACCOUNT, firmware: '1.30.25.5', yard: { width: 10, length: 5 } }, (frame) =>
      sent.push(decodeLubaMsg(frame)),
    );
    app = new CommandBuilder(model, { userAccount: ACCOUNT, now: () => now });
  });

  it('ignores commands without a recent sync, for another account or on the wrong board', () => {
    send(app.reportOnce());
    expect(sent).toHaveLength(0);
    send(app.sync());
    send(new CommandBuilder(detectModel('Luba-VSSIM001'), { userAccount: 1 }).reportOnce());
    send(new CommandBuilder(detectModel('Luba-XXSIM001'), { userAccount: ACCOUNT }).startJob()); // Luba 1 routing: rcver 1
    expect(mower.ignored).toBe(3);
    advance(11);
    send(app.reportOnce());
    expect(sent).toHaveLength(0);
  });

  it('starts only after a route is planned, then mows: progress and area grow, battery drains', () => {
    send(app.sync());
    send(app.startJob());
    expect(mower.mode).toBe(11);
    send(app.planRoute({ zones: ['1001'] }));
    expect(sent.at(-1)!.nav!.bidire_reqconver_path).toMatchObject({ zoneHashs: ['1001'] });
    send(app.startJob());
    expect(sent.at(-1)!.nav!.zone_start_precent).toMatchObject({ dataHash: '1001' });

    advance(60);
    send(app.sync());
    const first = report();
    expect(first).toMatchObject({ mode: 13, activity: 'mowing', charging: false });
    expect(first.work!.areaMowedM2).toBe(5); // 0.3 m/s × 60 s × 0.25 m
    expect(first.battery).toBe(99);
    expect(first.position!.x).toBeGreaterThan(0);
  });

  it('pauses, resumes, returns to the dock and charges there', () => {
    mower.battery = 50;
    start();
    advance(30);
    send(app.sync());
    send(app.pause());
    expect(report().activity).toBe('paused');
    send(app.resume());
    expect(report().activity).toBe('mowing');
    send(app.pause()); // the hub docks a working mower by pausing it first (SPEC §6)
    send(app.returnToDock());
    expect(report().activity).toBe('returning');
    advance(120);
    send(app.sync());
    const docked = report();
    expect(docked).toMatchObject({ activity: 'docked', charging: true, position: { x: 0, y: 0 } });
    const battery = docked.battery!;
    advance(120);
    send(app.sync());
    expect(report().battery).toBeGreaterThan(battery);
  });

  it('goes home on low battery and keeps the job resumable', () => {
    mower.battery = 16;
    start();
    advance(120);
    send(app.sync());
    const low = report();
    expect(low.work!.resumable).toBe(true);
    expect(['returning', 'docked']).toContain(low.activity);
  });

  it('finishes the yard, sends the job summary and returns', () => {
    start();
    advance(700, 5); // 50 m² at 0.075 m²/s
    const summary = sent.find((m) => m.nav?.toapp_work_report_upload)?.nav!.toapp_work_report_upload;
    expect(summary).toMatchObject({ work_ares: 50, work_progress: 100 });
    expect(mower.mode === 14 || mower.mode === 11).toBe(true);
  });

  it('streams reports while subscribed and stops when asked', () => {
    send(app.sync());
    send(app.reportSubscribe(undefined, 1000, 10_000));
    advance(5);
    const streamed = sent.filter((m) => m.sys?.toapp_report_data).length;
    expect(streamed).toBeGreaterThanOrEqual(4);
    send(app.sync());
    send(app.reportStop());
    advance(5);
    expect(sent.filter((m) => m.sys?.toapp_report_data).length).toBe(streamed);
  });

  it('answers firmware, area names, speed and cutter mode, and ignores garbage', () => {
    send(app.sync());
    send(app.firmwareInfo());
    expect(sent.at(-1)!.sys!.toapp_dev_fw_info).toMatchObject({ version: '1.30.25.5' });
    send(app.areaNames('iot-1'));
    expect(sent.at(-1)!.nav!.toapp_all_hash_name!.hashnames).toEqual([
      { hash: '1001', name: 'Front lawn' },
      { hash: '1002', name: 'Back lawn' },
    ]);
    send(app.setSpeed(0.5));
    expect(sent.at(-1)!.driver!.bidire_speed_read_set!.speed).toBeCloseTo(0.5, 6);
    send(app.setCutterMode(2));
    expect(sent.at(-1)!.driver!.current_cutter_mode).toMatchObject({ current_cutter_mode: 2 });
    mower.receive(Buffer.from([0x0a, 0xff, 0xff]), now);
    expect(mower.ignored).toBe(1);
  });
});
