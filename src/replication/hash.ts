// Keyed hashing for placement. SipHash-2-4 (a keyed pseudo-random function) names objects and
// nodes, so without the cluster's placement seed nobody can craft keys that pile onto one node.
// A cheap mixer then scores every (object, node) pair from the two 64-bit digests.
// Pure JavaScript on 32-bit halves (Math.imul): no BigInt, no allocation per block.

/** A 64-bit value as two unsigned 32-bit halves. */
export interface Digest64 {
  hi: number;
  lo: number;
}

/** The 128-bit SipHash key as four little-endian 32-bit words: k0 = (w1:w0), k1 = (w3:w2). */
export type SipKey = readonly [number, number, number, number];

// SipHash state v0..v3 as hi/lo halves, reused across calls (hashing is synchronous).
const v = new Uint32Array(8);
const tail = new Uint8Array(8);
const V0H = 0, V0L = 1, V1H = 2, V1L = 3, V2H = 4, V2L = 5, V3H = 6, V3L = 7;

/** a += b (64-bit) on slots of `v`. */
function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = v[al]! + v[bl]!;
  v[ah] = v[ah]! + v[bh]! + (lo > 0xffffffff ? 1 : 0);
  v[al] = lo;
}

/** a = rotl(a, n) ^ b (64-bit, 0 < n < 64) on slots of `v`. */
function rotlXor(ah: number, al: number, n: number, bh: number, bl: number): void {
  let h = v[ah]!, l = v[al]!;
  if (n >= 32) { const t = h; h = l; l = t; n -= 32; }
  if (n > 0) { const t = (h << n) | (l >>> (32 - n)); l = (l << n) | (h >>> (32 - n)); h = t; }
  v[ah] = h ^ v[bh]!;
  v[al] = l ^ v[bl]!;
}

/** a = rotl(a, 32) (64-bit) on slots of `v`. */
function swapHalves(ah: number, al: number): void {
  const t = v[ah]!;
  v[ah] = v[al]!;
  v[al] = t;
}

function sipRound(): void {
  add(V0H, V0L, V1H, V1L); rotlXor(V1H, V1L, 13, V0H, V0L); swapHalves(V0H, V0L);
  add(V2H, V2L, V3H, V3L); rotlXor(V3H, V3L, 16, V2H, V2L);
  add(V0H, V0L, V3H, V3L); rotlXor(V3H, V3L, 21, V0H, V0L);
  add(V2H, V2L, V1H, V1L); rotlXor(V1H, V1L, 17, V2H, V2L); swapHalves(V2H, V2L);
}

function compress(hi: number, lo: number, rounds: number): void {
  v[V3H] ^= hi; v[V3L] ^= lo;
  for (let r = 0; r < rounds; r++) sipRound();
  v[V0H] ^= hi; v[V0L] ^= lo;
}

/** Reads byte `i` of a message given as a string (UTF-16LE code units) or bytes. */
type ByteAt = (message: string & Uint8Array, i: number) => number;
const stringByte = (s: string, i: number) => (s.charCodeAt(i >>> 1) >>> ((i & 1) << 3)) & 0xff;
const arrayByte = (b: Uint8Array, i: number) => b[i]!;

function word(message: string & Uint8Array, at: number, byteAt: ByteAt): number {
  return (byteAt(message, at) | (byteAt(message, at + 1) << 8) | (byteAt(message, at + 2) << 16)
    | (byteAt(message, at + 3) << 24)) >>> 0;
}

/**
 * SipHash-2-4 of `message` under `key`. A string is hashed as its UTF-16LE code units (injective
 * on JavaScript strings and free of allocation); bytes are hashed as they are.
 */
export function sipHash24(key: SipKey, message: string | Uint8Array): Digest64 {
  const byteAt = (typeof message === 'string' ? stringByte : arrayByte) as ByteAt;
  const msg = message as string & Uint8Array;
  const length = typeof message === 'string' ? message.length * 2 : message.length;
  const [k0l, k0h, k1l, k1h] = key;
  v[V0H] = k0h ^ 0x736f6d65; v[V0L] = k0l ^ 0x70736575;
  v[V1H] = k1h ^ 0x646f7261; v[V1L] = k1l ^ 0x6e646f6d;
  v[V2H] = k0h ^ 0x6c796765; v[V2L] = k0l ^ 0x6e657261;
  v[V3H] = k1h ^ 0x74656462; v[V3L] = k1l ^ 0x79746573;

  const whole = length - (length % 8);
  for (let i = 0; i < whole; i += 8) compress(word(msg, i + 4, byteAt), word(msg, i, byteAt), 2);
  // Last block: the remaining bytes, zero-padded, with length mod 256 in the top byte.
  tail.fill(0);
  for (let i = whole; i < length; i++) tail[i - whole] = byteAt(msg, i);
  tail[7] = length & 0xff;
  const t = tail as string & Uint8Array;
  compress(word(t, 4, arrayByte as ByteAt), word(t, 0, arrayByte as ByteAt), 2);

  v[V2L] ^= 0xff;
  for (let r = 0; r < 4; r++) sipRound();
  return { hi: (v[V0H]! ^ v[V1H]! ^ v[V2H]! ^ v[V3H]!) >>> 0, lo: (v[V0L]! ^ v[V1L]! ^ v[V2L]! ^ v[V3L]!) >>> 0 };
}

const KEY_FROM_SEED_A: SipKey = [0x7e55e7a0, 0x706c6163, 0x656d656e, 0x74000001];
const KEY_FROM_SEED_B: SipKey = [0x7e55e7a0, 0x706c6163, 0x656d656e, 0x74000002];

/** The SipHash key for a placement seed: a 16-byte seed is the key itself; any other is hashed to 128 bits. */
export function sipKeyFromSeed(seed: Uint8Array | null | undefined): SipKey {
  const bytes = seed ?? new Uint8Array(0);
  if (bytes.length === 16) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, 16);
    return [view.getUint32(0, true), view.getUint32(4, true), view.getUint32(8, true), view.getUint32(12, true)];
  }
  const a = sipHash24(KEY_FROM_SEED_A, bytes);
  const b = sipHash24(KEY_FROM_SEED_B, bytes);
  return [a.lo, a.hi, b.lo, b.hi];
}

/** 32-bit finaliser with low bias (Wellons' "lowbias32"). */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

const TWO_POW_53 = 2 ** 53;

/**
 * A uniform number in (0, 1) with 53 random bits for the pair (a, b) of 64-bit digests. Both
 * digests come out of SipHash, so mixing their xor is enough to decorrelate pairs.
 */
export function pairUniform(aHi: number, aLo: number, bHi: number, bLo: number): number {
  const hi = mix32((aHi ^ bHi) + mix32(aLo ^ bLo));
  const lo = mix32((aLo ^ bLo) ^ Math.imul(hi, 0x9e3779b9));
  return (hi * 2 ** 21 + (lo >>> 11) + 0.5) / TWO_POW_53;
}
