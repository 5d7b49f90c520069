/**
 * The packet size guard follows packet boundaries however TCP splits the stream: headers cut
 * between chunks, many packets in one chunk, packets with no body.
 */
import { describe, expect, it } from 'vitest';
import { PacketSizeGuard } from '../../../core/mqtt/packet-size.js';
import { remainingLength } from '../../harness/mqtt-packets.js';

/** A packet of `type` with a body of `bodyBytes` (its content does not matter to the guard). */
const packet = (type: number, bodyBytes: number) => Buffer.from([type, ...remainingLength(bodyBytes), ...Buffer.alloc(bodyBytes, 0xff)]);

// A PINGREQ (no body), a PUBLISH with a 2-byte length, a PUBLISH with a 3-byte length.
const stream = Buffer.concat([packet(0xc0, 0), packet(0x30, 300), packet(0x30, 20_000), packet(0xc0, 0)]);
const largest = 1 + 3 + 20_000;

/** Feeds `bytes` in chunks of `size`; answers the first violation. */
function feed(guard: PacketSizeGuard, bytes: Buffer, size: number) {
  for (let at = 0; at < bytes.length; at += size) {
    const violation = guard.check(bytes.subarray(at, at + size));
    if (violation) return violation;
  }
  return undefined;
}

describe('PacketSizeGuard', () => {
  it('lets every packet up to the limit through, whatever the chunk sizes', () => {
    for (const size of [1, 2, 3, 5, 301, 4096, stream.length]) expect(feed(new PacketSizeGuard(largest), stream, size)).toBeUndefined();
  });

  it('stops at the first packet over the limit, with its declared size, whatever the chunk sizes', () => {
    for (const size of [1, 2, 3, 5, 301, 4096, stream.length]) {
      expect(feed(new PacketSizeGuard(largest - 1), stream, size)).toEqual({ kind: 'too_large', declaredBytes: largest });
    }
  });

  it('refuses a remaining length of more than 4 bytes', () => {
    expect(feed(new PacketSizeGuard(largest), Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]), 1)).toEqual({ kind: 'malformed' });
  });
});
