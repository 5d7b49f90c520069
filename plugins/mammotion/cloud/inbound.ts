/**
 * Reading what arrives on the Mammotion-direct MQTT topics (SPEC §3.1). Pure and total: any
 * payload, however broken, becomes a value (`malformed` at worst) and nothing throws, so one
 * bad message can never take the connection's handler down.
 *
 * @module
 */

/** The identifier of events that carry a protobuf frame. */
export const FRAME_EVENT = 'device_protobuf_msg_event';

/** One inbound message, classified. `productKey`/`deviceName` come from the topic. */
export type Inbound =
  | { kind: 'status'; productKey: string; deviceName: string; iotId: string | undefined; online: boolean }
  | { kind: 'frame'; productKey: string; deviceName: string; frame: Uint8Array }
  | { kind: 'event'; productKey: string; deviceName: string; identifier: string }
  | { kind: 'ignored'; reason: string }
  | { kind: 'malformed'; reason: string };

/** The three topic filters of one device. */
export function deviceTopics(productKey: string, deviceName: string): string[] {
  return [
    `/sys/${productKey}/${deviceName}/thing/event/+/post`,
    `/sys/proto/${productKey}/${deviceName}/thing/event/+/post`,
    `/sys/${productKey}/${deviceName}/app/down/thing/status`,
  ];
}

/**
 * Strict base64 (standard alphabet, padding optional): `Buffer.from(s, 'base64')` silently
 * skips junk, which would hand garbage bytes to the protobuf decoder.
 */
export function decodeBase64(value: unknown): Uint8Array | undefined {
  if (typeof value !== 'string') return undefined;
  const body = value.replace(/={1,2}$/, '');
  if (body.length === 0 || body.length % 4 === 1 || !/^[A-Za-z0-9+/]+$/.test(body)) return undefined;
  if (value.length !== body.length && value.length % 4 !== 0) return undefined;
  return new Uint8Array(Buffer.from(body, 'base64'));
}

function parseJson(payload: Uint8Array): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(payload).toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const record = (value: unknown): Record<string, unknown> | undefined =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;

/**
 * Online state from either thing/status shape: Mammotion's `{"action":"online"|"offline",…}`
 * or the IoT platform's `{"method":"thing.status","params":{"status":{"value":1|3}}}`.
 */
export function readStatus(json: Record<string, unknown>): { online: boolean; iotId: string | undefined } | undefined {
  if (json.action === 'online' || json.action === 'offline') {
    return { online: json.action === 'online', iotId: typeof json.iotId === 'string' ? json.iotId : undefined };
  }
  const params = record(json.params);
  const value = record(params?.status)?.value;
  const code = typeof value === 'string' ? Number(value) : value;
  if (code !== 1 && code !== 3) return undefined;
  return { online: code === 1, iotId: typeof params?.iotId === 'string' ? params.iotId : undefined };
}

/** Classifies one MQTT message. */
export function parseInbound(topic: string, payload: Uint8Array): Inbound {
  const parts = topic.split('/');
  if (parts[0] !== '' || parts[1] !== 'sys') return { kind: 'ignored', reason: 'not a /sys/ topic' };
  // What Mammotion sends on /sys/proto/... is unverified (SPEC §3.1): the reference client drops it, so do we.
  if (parts[2] === 'proto') return { kind: 'ignored', reason: '/sys/proto/ topic' };
  const [, , productKey, deviceName, ...rest] = parts;
  if (!productKey || !deviceName) return { kind: 'malformed', reason: 'topic without product key or device name' };
  const path = rest.join('/');
  if (path === 'app/down/thing/status') return parseStatus(productKey, deviceName, payload);
  if (rest.length === 4 && rest[0] === 'thing' && rest[1] === 'event' && rest[3] === 'post') {
    const identifier = rest[2] ?? '';
    if (identifier === FRAME_EVENT) return parseFrameEvent(productKey, deviceName, payload);
    return { kind: 'event', productKey, deviceName, identifier };
  }
  return { kind: 'ignored', reason: `unhandled topic tail ${path}` };
}

function parseStatus(productKey: string, deviceName: string, payload: Uint8Array): Inbound {
  const json = parseJson(payload);
  if (!json) return { kind: 'malformed', reason: 'thing/status payload is not a JSON object' };
  const status = readStatus(json);
  if (!status) return { kind: 'malformed', reason: 'thing/status payload has no online/offline value' };
  return { kind: 'status', productKey, deviceName, ...status };
}

function parseFrameEvent(productKey: string, deviceName: string, payload: Uint8Array): Inbound {
  const json = parseJson(payload);
  if (!json) return { kind: 'malformed', reason: 'frame event is not a JSON object' };
  const params = record(json.params);
  // The Aliyun-shaped envelope nests it under params.value; accept both.
  const content = params?.content ?? record(params?.value)?.content;
  const frame = decodeBase64(content);
  if (!frame) return { kind: 'malformed', reason: 'frame event without valid base64 params.content' };
  return { kind: 'frame', productKey, deviceName, frame };
}
