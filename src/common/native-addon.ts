// The project's native addons (built by `npm ci` through binding.gyp). native/erasure/: the
// erasure kernels the gateway codes stripes with, the MD5 it hashes large bodies with on a thread
// of its own, the memory-alignment helper and block checksums of the storage node's shard files,
// and the shared-memory mappings of the bulk channel's rings. native/backup/ is the backup's (see its user).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreError } from './errors.js';

export interface NativeAddon {
  kernels(): string[];
  prepare(coefficients: Uint8Array, rows: number, cols: number): Uint8Array;
  multiply(kernel: number, prepared: Uint8Array, inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): void;
  /** Bytes to skip so a view of `bytes` starts at a multiple of `alignment` (a power of two). */
  alignmentOffset(bytes: Uint8Array, alignment: number): number;
  /** xxHash64 of `bytes` with seed 0: the storage node's block checksums. */
  xxh64(bytes: Uint8Array): bigint;
  /**
   * Freed memory glibc keeps at the top of the malloc heap instead of handing it back to the kernel
   * (M_TOP_PAD); false where the C library is not glibc.
   */
  keepHeapTop(bytes: number): boolean;
  /** A fresh MD5 state for md5Update and md5Digest. */
  md5Start(): Buffer;
  /**
   * Hashes `bytes` into `state` on the addon's MD5 thread, then calls `done`; until then `bytes`
   * must not change. A state's updates may be queued: they are hashed, and `done` called, in order.
   */
  md5Update(state: Buffer, bytes: Uint8Array, done: () => void): void;
  /** The 16-byte digest, once every update of `state` is done; the state is spent. */
  md5Digest(state: Buffer): Buffer;
  /** The MD5 thread's ways of hashing on this CPU, for md5SetMode: 'auto', 'interleaved' and maybe 'simd'. */
  md5Modes(): string[];
  /**
   * How the MD5 thread hashes bodies that arrive together: 'auto' (the default) picks what costs
   * least; 'interleaved' never uses SIMD lanes, 'simd' does for any two or more (tests, benchmarks).
   */
  md5SetMode(mode: string): void;
  /** How often the MD5 thread has held updates back for other bodies' (tests). */
  md5CompanyWaits(): number;
  /**
   * A file's pages mapped shared into this process (unmapped once the Buffer is collected).
   * `create`: a new file of mode 0600 (never an existing one); otherwise an existing regular file
   * of exactly `size` bytes owned by this user. Symbolic links are refused. Throws with the errno
   * name as `code`.
   */
  mapSharedFile(path: string, size: number, create: boolean): Buffer;
}

const ADDON_FUNCTIONS: ReadonlyArray<keyof NativeAddon> = ['kernels', 'prepare', 'multiply', 'alignmentOffset', 'xxh64', 'keepHeapTop', 'md5Start', 'md5Update', 'md5Digest', 'md5Modes', 'md5SetMode', 'md5CompanyWaits', 'mapSharedFile'];

/**
 * binding.gyp's target `name`, which must have `functions`. It sits under the package root, found
 * by walking up from here (src/ under tsx, dist/src/ when built).
 */
export function loadAddon<T>(name: string, functions: ReadonlyArray<keyof T & string>): T {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  const path = join(dir, 'build', 'Release', `${name}.node`);
  if (!existsSync(path)) {
    throw new StoreError('Internal', `native addon ${path} is not built: run \`npm ci\` or \`npm run build\``);
  }
  const addon = createRequire(import.meta.url)(path) as T;
  // A build from older sources loads fine and fails at its first use of something newer.
  const missing = functions.filter((f) => typeof addon[f] !== 'function');
  if (missing.length) {
    throw new StoreError('Internal', `native addon ${path} is out of date (no ${missing.join(', ')}): run \`npm run build\` or \`npm ci\``);
  }
  return addon;
}

export const nativeAddon = loadAddon<NativeAddon>('tessera_erasure', ADDON_FUNCTIONS);
