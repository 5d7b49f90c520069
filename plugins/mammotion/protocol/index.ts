/**
 * The Mammotion protocol: our own LubaMsg definitions (`luba.proto`), the codec, a builder for
 * every command and readers for what devices report. Pure: no I/O, no clock unless given one.
 *
 * @module
 */
export { decodeLubaMsg, describeLubaMsg, encodeLubaMsg, fromBase64, MalformedFrameError, toBase64 } from './codec.js';
export { CommandBuilder, CutterMode, SettingId, SNAPSHOT_REPORT, TaskAction, type CommandOptions, type RouteSettings } from './commands.js';
export { localToWgs84, type RtkOrigin } from './geo.js';
export * from './messages.js';
export { detectModel, type ModelFamily, type MowerModel } from './models.js';
export { ALIYUN_PRODUCT_KEYS, LUBA1_PRODUCT_KEYS, PRODUCT_KEYS_BY_FAMILY } from './product-keys.js';
export {
  ACTIVE_JOB_MODES,
  activityOf,
  DO_NOT_POLL_MODES,
  Mode,
  positionInDegrees,
  readFirmware,
  readRapidState,
  readReport,
  readUpdateBuffer,
  readWorkReport,
  RTK_STATUS,
  WORK_MODES,
  ZONE_STATUS,
  type MowerActivity,
  type MowerReport,
  type UpdateBuffer,
} from './status.js';
