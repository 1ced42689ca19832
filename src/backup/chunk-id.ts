// Chunk ids as they sit back to back in a snapshot's index. Apart from format.ts because the codec
// threads need them too and should not load the protobuf code (~20 ms per thread at start-up).

export const ID_BYTES = 32;
export const ZERO_ID = Buffer.alloc(ID_BYTES);

/** Whether the i-th id of `ids` (ID_BYTES each) is ZERO_ID; compared in place, as disks have ~10^5 chunks. */
export function isZeroIdAt(ids: Buffer, i: number): boolean {
  return ZERO_ID.compare(ids, i * ID_BYTES, (i + 1) * ID_BYTES) === 0;
}

/** An id in hex, the key of the index's maps; read in place (a blob index names ~10^5 of them). */
export function hexId(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
}
