/**
 * The Mammotion codec against the published vectors (shared/reference/mammotion/VECTORS.md,
 * copied here as bytes) and every command of SPEC §5, built from its field numbers.
 */
import { describe, expect, it } from 'vitest';
import {
  CommandBuilder,
  decodeLubaMsg,
  describeLubaMsg,
  detectModel,
  encodeLubaMsg,
  fromBase64,
  localToWgs84,
  MalformedFrameError,
  readReport,
  readUpdateBuffer,
  toBase64,
  type LubaMsg,
} from '../../../plugins/mammotion/protocol/index.js';

const VECTOR_CONTEXT = { userAccount: 123456, now: () => 1735689600000, nextSeq: () => 1 };
const luba2 = new CommandBuilder(detectModel('Luba-VSABCDEF'), VECTOR_CONTEXT);
const luba1 = new CommandBuilder(detectModel('Luba-ABCDEF'), VECTOR_CONTEXT);
const yuka = new CommandBuilder(detectModel('Yuka-MN12345'), VECTOR_CONTEXT);

const hex = (message: LubaMsg) => Buffer.from(encodeLubaMsg(message)).toString('hex');
/** What the device would decode from the command. */
const wire = (message: LubaMsg) => decodeLubaMsg(encodeLubaMsg(message));

describe('command vectors (VECTORS.md §A)', () => {
  it.each([
    ['A1 start job', () => luba2.startJob(), '08f0011007181120012801300138c0c4075a07aa0204080110017880f8a5f9c132'],
    ['A3 pause', () => luba2.pause(), '08f0011007181120012801300138c0c4075a07aa0204080110027880f8a5f9c132'],
    ['A4 resume', () => luba2.resume(), '08f0011007181120012801300138c0c4075a07aa0204080110037880f8a5f9c132'],
    ['A5 cancel', () => luba2.cancelJob(), '08f0011007181120012801300138c0c4075a07aa0204080110047880f8a5f9c132'],
    ['A6 return to dock', () => luba2.returnToDock(), '08f0011007181120012801300138c0c4075a07aa0204080110057880f8a5f9c132'],
    ['A7 cancel return', () => luba2.cancelReturnToDock(), '08f0011007181120012801300138c0c4075a07aa02040801100c7880f8a5f9c132'],
    ['A8 leave dock', () => luba2.leaveDock(), '08f0011007181120012801300138c0c4075a03d001017880f8a5f9c132'],
    ['A12 cloud sync', () => luba2.sync('cloud'), '08f801100720012801300138c0c407420208037880f8a5f9c132'],
    ['A13 one-shot report', () => luba2.reportOnce(), '08f4011007180120012801300138c0c4075217b2021410904e18e80720e80728013207010304060a08007880f8a5f9c132'],
  ])('%s decodes like the vector and encodes to its bytes', (_, build, vector) => {
    const built = build();
    expect(wire(built)).toEqual(decodeLubaMsg(Buffer.from(vector, 'hex')));
    expect(hex(built)).toBe(vector);
  });

  it('routes navigation to the main controller on a Luba 1', () => {
    expect(wire(luba1.startJob())).toMatchObject({ msgtype: 240, rcver: 1, nav: { todev_taskctrl: { type: 1, action: 1 } } });
  });

  it('takes the base64 the cloud carries', () => {
    expect(toBase64(encodeLubaMsg(luba2.startJob()))).toBe('CPABEAcYESABKAEwATjAxAdaB6oCBAgBEAF4gPil+cEy');
  });
});

const REPORT_HEX =
  '08f401100118072003282a3001528d01ba0289010a15080218b9ffffffffffffffff0138015801600168011213081310011864280e308dbfb5ce06388102600a1a09080410011819509932221808b9930c10a5d1051888ba2c200530a29dcab5fec7e29a402a2610caeceacbeeebc5ae6e18a6932c20ed80fc02280138ddd90e40f6b60148812e880101a001323a0e08fbd90c10e7ed52220408dce64a7880f8a5f9c132';

describe('status report vector (VECTORS.md §B)', () => {
  const bytes = Buffer.from(REPORT_HEX, 'hex');

  it('decodes to the listed content', () => {
    expect(describeLubaMsg(bytes)).toEqual({
      msgtype: 'MSG_CMD_TYPE_EMBED_SYS',
      sender: 'DEV_MAINCTL',
      rcver: 'DEV_MOBILEAPP',
      msgattr: 'MSG_ATTR_REPORT',
      seqs: 42,
      version: 1,
      sys: {
        toapp_report_data: {
          connect: { connect_type: 2, wifi_rssi: -71, used_net: 'NET_USED_TYPE_WIFI', iot_con_status: 1, wifi_con_status: 1, wifi_is_available: 1 },
          dev: { sys_status: 19, charge_state: 1, battery_val: 100, last_status: 14, sys_time_stamp: '1775067021', vslam_status: 257, self_check_status: 10 },
          rtk: { status: 4, pos_level: 1, gps_stars: 25, co_view_stars: 6425 },
          locations: [{ real_pos_x: 199097, real_pos_y: 92325, real_toward: 728328, pos_type: 5, bol_hash: '4626756199251087010' }],
          work: {
            path_hash: '7952538213417662026',
            progress: 723366,
            area: 6226029,
            bp_info: 1,
            bp_pos_x: 240861,
            bp_pos_y: 23414,
            real_path_num: '5889',
            test_mode_status: '1',
            knife_height: 50,
          },
          maintain: { mileage: '208123', work_time: 1357543, blade_used_time: { blade_used_time: 1225564 } },
        },
      },
      timestamp: '1735689600000',
    });
  });

  it('gives the derived values of SPEC §7', () => {
    const report = readReport(decodeLubaMsg(bytes).sys!.toapp_report_data!);
    expect(report).toMatchObject({
      mode: 19,
      modeName: 'MODE_PAUSE',
      activity: 'paused',
      battery: 100,
      charging: true,
      work: { progressPercent: 95, areaMowedM2: 109, totalMinutes: 2470, leftMinutes: 11, elapsedMinutes: 2459, resumable: true, pathIndex: 23, bladeHeightMm: 50 },
      rtk: { status: 4, label: 'fix', satellites: 25 },
      position: { x: 19.9097, y: 9.2325, heading: 72.8328, positionType: 5 },
      maintenance: { mileageM: 208123, workSeconds: 1357543, bladeSeconds: 1225564 },
    });
    const where = localToWgs84({ lat: -0.2531131457813326, lon: 0.7822247661474, yaw: 0 }, report.position!.x, report.position!.y);
    expect(where.latitude).toBeCloseTo(-14.5022315491, 9);
    expect(where.longitude).toBeCloseTo(44.8183624301, 9);
  });
});

describe('every command of SPEC §5', () => {
  it.each<[string, () => LubaMsg, Record<string, unknown>]>([
    ['continue from breakpoint', () => luba2.continueFromBreakpoint(), { nav: { todev_taskctrl: { type: 1, action: 7 } } }],
    ['continue from current position', () => luba2.continueFromCurrentPosition(), { nav: { todev_taskctrl: { type: 1, action: 9 } } }],
    ['mapless mow', () => luba2.maplessMow(), { nav: { todev_taskctrl: { type: 1, action: 16 } } }],
    ['reset charging station', () => luba2.resetChargingStation(), { nav: { todev_taskctrl: { type: 3, action: 1 } } }],
    ['query route', () => luba2.queryRoute(), { rcver: 17, nav: { bidire_reqconver_path: { pver: 1, subCmd: 2 } } }],
    ['blade height', () => luba2.setBladeHeight(55), { msgtype: 243, rcver: 1, driver: { todev_knife_height_set: { knifeHeight: 55 } } }],
    ['read speed', () => luba2.readSpeed(), { msgtype: 243, driver: { bidire_speed_read_set: {} } }],
    ['cutter mode', () => luba2.setCutterMode(2), { driver: { cutter_mode_ctrl_by_hand: { CutterMode: 2 } } }],
    ['read cutter mode', () => luba2.readCutterMode(), { driver: { current_cutter_mode: {} } }],
    ['manual drive', () => luba2.drive(40, -10), { driver: { todev_devmotion_ctrl: { setLinearSpeed: 40, setAngularSpeed: -10 } } }],
    ['blades on, Luba 1', () => luba1.blades(true), { msgtype: 244, sys: { todev_knife_ctrl: { knife_status: 1 } } }],
    ['blades off, Luba 2', () => luba2.blades(false), { msgtype: 243, driver: { mow_ctrl_by_hand: {} } }],
    ['report stop', () => luba2.reportStop(), { sys: { todev_report_cfg: { act: 1 } } }],
    ['firmware info', () => luba2.firmwareInfo(), { msgtype: 244, rcver: 1, sys: { todev_get_dev_fw_info: 1 } }],
    ['product type', () => luba2.productType(), { sys: { device_product_type_info: { result: 1 } } }],
    ['main software version', () => luba2.mainSoftwareVersion(), { msgtype: 248, net: { todev_devinfo_req: { req_ids: [{ id: 1, type: 6 }] } } }],
    ['Bluetooth sync', () => luba2.sync('ble'), { msgtype: 248, net: { todev_ble_sync: 2 } }],
    ['rain detection on the navigation board', () => luba2.writeSetting(3, 1), { msgtype: 240, rcver: 17, nav: { nav_sys_param_cmd: { rw: 1, id: 3, context: 1 } } }],
    ['rain detection on a Luba 1', () => luba1.writeSetting(3, 1), { msgtype: 244, sys: { bidire_comm_cmd: { rw: 1, id: 3, context: 1 } } }],
    ['animal protection on the main controller', () => luba2.readSetting(12), { msgtype: 244, sys: { bidire_comm_cmd: { id: 12 } } }],
    ['RTK and dock location query', () => luba2.writeSetting(5, 1), { msgtype: 244, sys: { bidire_comm_cmd: { rw: 1, id: 5, context: 1 } } }],
    ['area names', () => luba2.areaNames('iot-1'), { nav: { toapp_map_name_msg: { deviceId: 'iot-1' } } }],
    ['rename area', () => luba2.renameArea('iot-1', '18446744073709551615', 'Front'), { nav: { toapp_map_name_msg: { rw: 1, hash: '18446744073709551615', name: 'Front', deviceId: 'iot-1' } } }],
    ['hash list', () => luba2.hashList(), { nav: { todev_gethash: { pver: 1 } } }],
    ['hash list frame ack', () => luba2.hashListAck(3, 2), { nav: { todev_gethash: { pver: 1, subCmd: 2, totalFrame: 3, currentFrame: 2 } } }],
    ['element geometry', () => luba2.elementGeometry('-5'), { nav: { todev_get_commondata: { pver: 1, action: 8, subCmd: 1, hash: '-5' } } }],
    ['create schedule', () => luba2.createSchedule({ planId: 'p1', taskName: 'Weekly', weeks: [1, 3] }), { nav: { todev_planjob_set: { subCmd: 1, planId: 'p1', taskName: 'Weekly', weeks: [1, 3] } } }],
    ['delete schedule', () => luba2.deleteSchedule('p1'), { nav: { todev_planjob_set: { subCmd: 3, planId: 'p1' } } }],
    ['read schedule', () => luba2.readSchedule(2, 1), { nav: { todev_planjob_set: { subCmd: 2, PlanIndex: 1 } } }],
    ['run schedule now', () => luba2.runScheduleNow('p1'), { nav: { plan_task_execute: { subCmd: 1, id: 'p1' } } }],
    ['do not disturb', () => luba2.setDoNotDisturb('iot-1', '22:00', '07:00'), { nav: { todev_unable_time_set: { subCmd: 1, trigger: 1, unableStartTime: '22:00', unableEndTime: '07:00' } } }],
    ['read do not disturb', () => luba2.readDoNotDisturb('iot-1'), { nav: { todev_unable_time_set: { subCmd: 2, deviceId: 'iot-1' } } }],
    ['reset blade time', () => luba2.resetBladeTime(), { sys: { todev_reset_blade_used_time: 1 } }],
  ])('%s', (_, build, expected) => {
    const built = build();
    expect(wire(built)).toMatchObject({ sender: 7, msgattr: 1, version: 1, subtype: 123456, seqs: 1, ...expected });
    expect(hex(wire(built))).toBe(hex(built)); // what decodes re-encodes to the same bytes
  });

  it('plans a route with the vendor defaults and the 8-byte path order', () => {
    const route = wire(luba2.planRoute({ zones: ['123', '18446744073709551615'], bladeHeightMm: 65 })).nav!.bidire_reqconver_path!;
    expect(route).toMatchObject({ pver: 1, zoneHashs: ['123', '18446744073709551615'], jobMode: 4, edgeMode: 1, knifeHeight: 65, UltraWave: 2, channelWidth: 25 });
    expect(route.speed).toBeCloseTo(0.3, 6);
    expect([...Buffer.from(route.reserved!, 'utf8')]).toEqual([1, 1, 0, 0, 0, 8, 10, 0]);
    const yukaRoute = wire(yuka.planRoute({ zones: ['1'], yukaJobContent: 12, borderLaps: 2 })).nav!.bidire_reqconver_path!;
    expect(yukaRoute.knifeHeight).toBe(-10);
    expect([...Buffer.from(yukaRoute.reserved!, 'utf8')]).toEqual([2, 1, 0, 0, 0, 12, 10, 0]);
    const luba1Route = wire(luba1.modifyRoute({ zones: ['1'], towardMode: 1 })).nav!.bidire_reqconver_path!;
    expect(luba1Route.subCmd).toBe(3);
    expect([...Buffer.from(luba1Route.reserved!, 'utf8')]).toEqual([1, 1, 0, 0, 1, 0, 0, 0]);
  });

  it('subscribes to a report stream and renews it', () => {
    expect(wire(luba2.reportSubscribe()).sys!.todev_report_cfg).toMatchObject({ timeout: 10000, period: 1000, no_change_period: 4000 });
    expect(wire(luba2.reportKeep()).sys!.todev_report_cfg).toMatchObject({ act: 2 });
  });

  it('sets the clock in local time with an ISO weekday', () => {
    const sunday = new Date('2025-06-01T22:30:15Z'); // Monday 00:30:15 at UTC+2; hour 0 is left out, as proto3 does
    expect(wire(luba2.setDateTime(sunday, 120)).sys!.todev_data_time).toEqual({ Year: 2025, Month: 6, Date: 2, Week: 1, Minutes: 30, Seconds: 15, timeZone: 120 });
    expect(wire(luba2.setDateTime(new Date('2025-06-01T12:00:00Z'), 0)).sys!.todev_data_time!.Week).toBe(7);
  });

  it('keeps the sequence number to one byte', () => {
    const builder = new CommandBuilder(detectModel('Luba-VS1'), { userAccount: 1, nextSeq: () => 257 });
    expect(wire(builder.pause()).seqs).toBe(1);
  });
});

describe('models (SPEC §8)', () => {
  it.each([
    ['Luba-VSXXXX', 'Luba 2', true],
    ['Luba-VPXXXX', 'Luba 2 Pro', true],
    ['Luba-MNXXXX', 'Luba mini (HM430)', true],
    ['Yuka-MNXXXX', 'Yuka Mini', true],
    ['Yuka-XXXXXX', 'Yuka', true],
    ['Luba-XXXXXX', 'Luba 1', false],
    ['RTKXXXXXX', 'RTK station', false],
  ])('%s is a %s', (name, model, navigationBoard) => {
    expect(detectModel(name)).toMatchObject({ name: model, navigationBoard });
  });

  it('trusts a Luba 1 product key over the name', () => {
    expect(detectModel('Luba-VSXXXX', 'pk-luba1', ['pk-luba1']).family).toBe('luba1');
  });
});

describe('device frames', () => {
  it('refuses bytes that are not a LubaMsg, and text that is not base64', () => {
    expect(() => decodeLubaMsg(Buffer.from([0x0a, 0xff, 0xff, 0xff]))).toThrow(MalformedFrameError);
    expect(() => fromBase64('not base64!')).toThrow(MalformedFrameError);
  });

  it('reads the RTK origin, the error list and the zone statuses from systemUpdateBuf', () => {
    expect(readUpdateBuffer(['1', '0', '0', '90', '0', '-25311314', '78222476', '100000', '-20000'])).toEqual({
      kind: 'origin',
      origin: { lat: -0.25311314, lon: 0.78222476, yaw: 0 },
      dock: { x: 10, y: -2, heading: 90 },
    });
    expect(readUpdateBuffer(['2', '0', '0', '-1005', '1735689600', '0', '0'])).toEqual({
      kind: 'errors',
      errors: [{ code: 1005, at: new Date('2025-01-01T00:00:00Z') }],
    });
    expect(readUpdateBuffer(['3', '0', '0', '111', '2', '222', '3'])).toEqual({
      kind: 'zones',
      zones: [
        { hash: '111', status: 'mowing' },
        { hash: '222', status: 'complete' },
      ],
    });
  });
});
