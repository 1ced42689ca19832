// Contract of the Reed-Solomon codec (systematic, GF(2^8)); the implementation lives beside it.
// Shards are equal-length byte arrays; shard i < k holds bytes [i*L, (i+1)*L) of the stripe.

export interface ErasureCodec {
  readonly dataShards: number;   // k
  readonly parityShards: number; // m
  /** Fill parity[0..m) from data[0..k); all arrays have the same length, a multiple of 64 is fastest. */
  encode(data: readonly Uint8Array[], parity: readonly Uint8Array[]): void;
  /**
   * Rebuild the missing shards in place. `shards` has k+m entries, all the same length;
   * `present[i]` says whether shards[i] holds valid data. At least k must be present.
   * Only missing entries listed in `wanted` (default: all missing) are written.
   */
  reconstruct(shards: readonly Uint8Array[], present: readonly boolean[], wanted?: readonly number[]): void;
}
