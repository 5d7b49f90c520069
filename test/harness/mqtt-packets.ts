/** Sizes of MQTT packets on the wire, for tests of packet size limits. */

/** MQTT's variable-length "remaining length": 7 bits a byte, least significant first, 0x80 = more follow. */
export function remainingLength(value: number): number[] {
  const bytes: number[] = [];
  do {
    const low = value % 128;
    value = Math.floor(value / 128);
    bytes.push(value > 0 ? low | 0x80 : low);
  } while (value > 0);
  return bytes;
}

/** Bytes of a whole PUBLISH packet at QoS 1: fixed header, topic, packet id, payload. */
export function publishBytes(topic: string, payloadBytes: number): number {
  const remaining = 2 + Buffer.byteLength(topic) + 2 + payloadBytes;
  return 1 + remainingLength(remaining).length + remaining;
}

/** The largest payload whose QoS 1 PUBLISH on `topic` takes at most `packetBytes`. */
export function payloadFilling(topic: string, packetBytes: number): number {
  let payload = packetBytes - publishBytes(topic, 0);
  while (publishBytes(topic, payload) > packetBytes) payload--;
  return payload;
}
