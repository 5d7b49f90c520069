/**
 * A ceiling on the size of the MQTT packets a client may send to the embedded broker. aedes's
 * parser (mqtt-packet) buffers a whole packet, up to MQTT's 256 MB, before anything looks at
 * it, even a CONNECT from a client that has not logged in. The guard reads only each packet's
 * fixed header as the bytes arrive and skips the rest by counting, so a packet that declares
 * too large a size costs the broker a few bytes, not the packet.
 */
import type { Socket } from 'node:net';

/** Why the guard closed a connection. */
export type PacketViolation =
  /** The packet declared more bytes (fixed header included) than the limit. */
  | { kind: 'too_large'; declaredBytes: number }
  /** The remaining length ran over its 4 bytes (MQTT 3.1.1 §2.2.3). */
  | { kind: 'malformed' };

const CONTINUES = 0x80;
const MAX_LENGTH_BYTES = 4;

/**
 * Follows the packet boundaries of one connection's byte stream. Each packet starts with a
 * type byte and its remaining length: 1 to 4 bytes of 7 bits, least significant first, the
 * top bit set on every byte but the last.
 */
export class PacketSizeGuard {
  /** Body bytes of the current packet not seen yet. */
  #bodyLeft = 0;
  /** -1 while the next byte is a packet's type byte, else how many length bytes were read. */
  #lengthBytes = -1;
  #length = 0;
  #multiplier = 1;

  /** @param maxPacketBytes the largest whole packet (fixed header, variable header and payload) */
  constructor(readonly maxPacketBytes: number) {}

  /**
   * Reads the next bytes of the stream.
   *
   * @returns the first packet in them that breaks the limit, or undefined when none does
   */
  check(chunk: Uint8Array): PacketViolation | undefined {
    const end = chunk.length;
    let at = 0;
    while (at < end) {
      if (this.#bodyLeft > 0) {
        const skipped = Math.min(this.#bodyLeft, end - at);
        this.#bodyLeft -= skipped;
        at += skipped;
        continue;
      }
      const byte = chunk[at++]!;
      if (this.#lengthBytes < 0) {
        this.#lengthBytes = 0;
        this.#length = 0;
        this.#multiplier = 1;
        continue;
      }
      this.#length += (byte & ~CONTINUES) * this.#multiplier;
      this.#lengthBytes++;
      if (byte & CONTINUES) {
        if (this.#lengthBytes === MAX_LENGTH_BYTES) return { kind: 'malformed' };
        this.#multiplier *= 128;
        continue;
      }
      const declaredBytes = 1 + this.#lengthBytes + this.#length;
      if (declaredBytes > this.maxPacketBytes) return { kind: 'too_large', declaredBytes };
      this.#bodyLeft = this.#length;
      this.#lengthBytes = -1;
    }
    return undefined;
  }
}

/**
 * Destroys `socket` as soon as the peer sends a packet over `maxPacketBytes` or a malformed
 * length, before the parser holds it; `onViolation` hears of it first.
 *
 * aedes reads its connection in paused mode (`conn.read(null)` on 'readable'), so every byte
 * its parser gets comes out of `read`: checking the chunk there, before handing it on, sees
 * each header in time and copies nothing. The socket itself stays the connection, with its
 * own back-pressure, end and destroy.
 */
export function guardPacketSize(socket: Socket, maxPacketBytes: number, onViolation: (violation: PacketViolation) => void): void {
  const guard = new PacketSizeGuard(maxPacketBytes);
  const read = socket.read;
  socket.read = function readChecked(this: Socket, size?: number) {
    const chunk: Buffer | null = read.call(this, size);
    if (chunk === null) return null;
    const violation = guard.check(chunk);
    if (!violation) return chunk;
    onViolation(violation);
    socket.destroy();
    return null;
  };
}
