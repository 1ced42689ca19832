// Chunk ids as they sit back to back in a snapshot's index. Apart from format.ts because the codec
// threads need them too and should not load the protobuf code (~20 ms per thread at start-up).

export const ID_BYTES = 32;
export const ZERO_ID = Buffer.alloc(ID_BYTES);

/**
 * Whether the i-th id of `ids` (ID_BYTES each) is ZERO_ID; read in place, as disks have ~10^5
 * chunks (a byte loop: a hash differs from zero in its first byte, and it is 4x Buffer.compare's speed).
 */
export function isZeroIdAt(ids: Buffer, i: number): boolean {
  const end = (i + 1) * ID_BYTES;
  for (let at = i * ID_BYTES; at < end; at++) if (ids[at] !== 0) return false;
  return true;
}

/** An id in hex, the key of the index's maps; read in place (a blob index names ~10^5 of them). */
export function hexId(id: Uint8Array): string {
  return (Buffer.isBuffer(id) ? id : Buffer.from(id.buffer, id.byteOffset, id.byteLength)).toString('hex');
}
