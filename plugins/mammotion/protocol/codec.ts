/**
 * LubaMsg bytes ⇄ objects, through protobufjs reflection over our own `luba.proto`.
 *
 * Decoded objects keep the proto's field names (`keepCase`), give enums as numbers and 64-bit
 * integers as decimal strings (map hashes do not fit in a double). Encoding leaves proto3 zero
 * scalars out, as the vendor's app does, except oneof members, which are always written.
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { LubaMsg } from './messages.js';

const root = new protobuf.Root().loadSync(fileURLToPath(new URL('./luba.proto', import.meta.url)), { keepCase: true });
root.resolveAll();
const LubaMsgType = root.lookupType('LubaMsg');

/** Raised for bytes that are not a LubaMsg; the caller drops the frame. */
export class MalformedFrameError extends Error {
  override readonly name = 'MalformedFrameError';
}

export function encodeLubaMsg(message: LubaMsg): Uint8Array {
  // fromObject converts decimal strings to 64-bit integers; unknown field names are refused below.
  const plain = withoutZeroScalars(LubaMsgType, message as unknown as Record<string, unknown>);
  return LubaMsgType.encode(LubaMsgType.fromObject(plain)).finish();
}

export function decodeLubaMsg(bytes: Uint8Array): LubaMsg {
  return toObject(bytes, Number) as unknown as LubaMsg;
}

/** The message with enum names instead of numbers: for logs, and to compare with published vectors. */
export function describeLubaMsg(bytes: Uint8Array): Record<string, unknown> {
  return toObject(bytes, String);
}

export const toBase64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/** Strict base64 (what the cloud puts in `params.content`); anything else is a malformed frame. */
export function fromBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new MalformedFrameError('content is not base64');
  return Buffer.from(text, 'base64');
}

function toObject(bytes: Uint8Array, enums: typeof Number | typeof String): Record<string, unknown> {
  let message: protobuf.Message;
  try {
    message = LubaMsgType.decode(bytes);
  } catch (error) {
    throw new MalformedFrameError(`not a LubaMsg: ${(error as Error).message}`, { cause: error });
  }
  return LubaMsgType.toObject(message, { longs: String, enums, defaults: false, arrays: false, oneofs: false });
}

/** A copy of `value` without proto3 zero scalars and empty lists, recursively; oneof members stay. */
function withoutZeroScalars(type: protobuf.Type, value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, fieldValue] of Object.entries(value)) {
    const field = type.fields[name];
    if (!field) throw new TypeError(`${type.name} has no field ${name}`);
    if (fieldValue === undefined || fieldValue === null) continue;
    const message = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    if (field.repeated) {
      const items = fieldValue as unknown[];
      if (items.length > 0) out[name] = message ? items.map((item) => withoutZeroScalars(message, item as Record<string, unknown>)) : items;
    } else if (message) {
      out[name] = withoutZeroScalars(message, fieldValue as Record<string, unknown>);
    } else if (field.partOf || !isZero(fieldValue)) {
      out[name] = fieldValue;
    }
  }
  return out;
}

function isZero(value: unknown): boolean {
  return value === 0 || value === '' || value === false || value === '0' || value === 0n;
}
