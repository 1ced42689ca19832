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

// The message as little-endian 32-bit words, zero past its end; reused across calls (hashing is
// synchronous) so hashing allocates nothing per call.
let words = new Uint32Array(64);

function reserveWords(byteLength: number): Uint32Array {
  const needed = ((byteLength >>> 3) + 1) * 2;
  if (words.length < needed) words = new Uint32Array(needed * 2);
  words.fill(0, 0, needed);
  return words;
}

/** Loads a string as its UTF-16LE code units (injective on JavaScript strings); returns its byte length. */
function loadString(text: string): number {
  const w = reserveWords(text.length * 2);
  for (let i = 0; i < text.length; i += 2) {
    w[i >>> 1] = (text.charCodeAt(i) | ((text.charCodeAt(i + 1) || 0) << 16)) >>> 0;
  }
  return text.length * 2;
}

function loadBytes(bytes: Uint8Array): number {
  const w = reserveWords(bytes.length);
  for (let i = 0; i < bytes.length; i++) w[i >>> 2] = (w[i >>> 2]! | (bytes[i]! << ((i & 3) << 3))) >>> 0;
  return bytes.length;
}

/** SipHash-2-4 under `key` of the `byteLength` bytes loaded into `words`. */
function sipHashLoaded(key: SipKey, byteLength: number): Digest64 {
  const [k0l, k0h, k1l, k1h] = key;
  let v0h = (k0h ^ 0x736f6d65) >>> 0, v0l = (k0l ^ 0x70736575) >>> 0;
  let v1h = (k1h ^ 0x646f7261) >>> 0, v1l = (k1l ^ 0x6e646f6d) >>> 0;
  let v2h = (k0h ^ 0x6c796765) >>> 0, v2l = (k0l ^ 0x6e657261) >>> 0;
  let v3h = (k1h ^ 0x74656462) >>> 0, v3l = (k1l ^ 0x79746573) >>> 0;
  // The last block holds the tail bytes, zero-padded, with the length mod 256 in its top byte.
  const blocks = (byteLength >>> 3) + 1;
  words[blocks * 2 - 1] = (words[blocks * 2 - 1]! | ((byteLength & 0xff) << 24)) >>> 0;
  // Blocks 0..blocks-1 are compressed with 2 rounds each; the extra pass is finalisation (4 rounds).
  for (let block = 0; block <= blocks; block++) {
    const finalising = block === blocks;
    const ml = finalising ? 0 : words[block * 2]!;
    const mh = finalising ? 0 : words[block * 2 + 1]!;
    if (finalising) v2l = (v2l ^ 0xff) >>> 0;
    v3h = (v3h ^ mh) >>> 0; v3l = (v3l ^ ml) >>> 0;
    for (let round = finalising ? 4 : 2; round > 0; round--) {
      let l: number, h: number;
      // v0 += v1; v1 = rotl(v1, 13) ^ v0; v0 = rotl(v0, 32)
      l = v0l + v1l; v0h = (v0h + v1h + (l > 0xffffffff ? 1 : 0)) >>> 0; v0l = l >>> 0;
      h = (v1h << 13) | (v1l >>> 19); l = (v1l << 13) | (v1h >>> 19);
      v1h = (h ^ v0h) >>> 0; v1l = (l ^ v0l) >>> 0;
      h = v0h; v0h = v0l; v0l = h;
      // v2 += v3; v3 = rotl(v3, 16) ^ v2
      l = v2l + v3l; v2h = (v2h + v3h + (l > 0xffffffff ? 1 : 0)) >>> 0; v2l = l >>> 0;
      h = (v3h << 16) | (v3l >>> 16); l = (v3l << 16) | (v3h >>> 16);
      v3h = (h ^ v2h) >>> 0; v3l = (l ^ v2l) >>> 0;
      // v0 += v3; v3 = rotl(v3, 21) ^ v0
      l = v0l + v3l; v0h = (v0h + v3h + (l > 0xffffffff ? 1 : 0)) >>> 0; v0l = l >>> 0;
      h = (v3h << 21) | (v3l >>> 11); l = (v3l << 21) | (v3h >>> 11);
      v3h = (h ^ v0h) >>> 0; v3l = (l ^ v0l) >>> 0;
      // v2 += v1; v1 = rotl(v1, 17) ^ v2; v2 = rotl(v2, 32)
      l = v2l + v1l; v2h = (v2h + v1h + (l > 0xffffffff ? 1 : 0)) >>> 0; v2l = l >>> 0;
      h = (v1h << 17) | (v1l >>> 15); l = (v1l << 17) | (v1h >>> 15);
      v1h = (h ^ v2h) >>> 0; v1l = (l ^ v2l) >>> 0;
      h = v2h; v2h = v2l; v2l = h;
    }
    v0h = (v0h ^ mh) >>> 0; v0l = (v0l ^ ml) >>> 0;
  }
  return { hi: (v0h ^ v1h ^ v2h ^ v3h) >>> 0, lo: (v0l ^ v1l ^ v2l ^ v3l) >>> 0 };
}

/**
 * SipHash-2-4 of `message` under `key`. A string is hashed as its UTF-16LE code units; bytes are
 * hashed as they are.
 */
export function sipHash24(key: SipKey, message: string | Uint8Array): Digest64 {
  return sipHashLoaded(key, typeof message === 'string' ? loadString(message) : loadBytes(message));
}

const KEY_FROM_SEED_A: SipKey = [0x7e55e7a0, 0x706c6163, 0x656d656e, 0x74000001];
const KEY_FROM_SEED_B: SipKey = [0x7e55e7a0, 0x706c6163, 0x656d656e, 0x74000002];

/**
 * The SipHash key for a placement seed: a 16-byte seed is the key itself; any other is hashed to
 * 128 bits. An empty seed gives a key anyone can compute: fine for tests, not for a real cluster.
 */
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
 * The top 32 bits of the uniform number of an (object, node) pair, from the high halves of their
 * digests. Both digests come out of SipHash, so mixing their xor is enough to decorrelate pairs;
 * it is cheap, and decides most comparisons on its own.
 */
export function pairHigh(objectHi: number, nodeHi: number): number {
  return mix32(objectHi ^ nodeHi);
}

/** The pair's uniform number in (0, 1) with 53 bits, whose top 32 bits are `high` (from pairHigh). */
export function pairUniform(high: number, objectLo: number, nodeLo: number): number {
  const low = mix32(objectLo ^ nodeLo ^ Math.imul(high, 0x9e3779b9));
  return (high * 2 ** 21 + (low >>> 11) + 0.5) / TWO_POW_53;
}
