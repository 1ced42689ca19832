// S3 "flexible checksums": CRC32 (zlib's native one), CRC32C and CRC64NVME (slice-by-8 tables:
// eight bytes per step, so no per-byte loop over bulk data), SHA1 and SHA256 (OpenSSL).
// Values travel base64-encoded, big-endian, as in x-amz-checksum-* headers.
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const CHECKSUM_ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

export interface Checksum {
  update(data: Buffer): void;
  /** base64 of the big-endian digest. */
  digest(): string;
}

/** `x-amz-checksum-crc32` for 'CRC32'. */
export function checksumHeader(algorithm: ChecksumAlgorithm): string {
  return `x-amz-checksum-${algorithm.toLowerCase()}`;
}

export function parseChecksumAlgorithm(value: string): ChecksumAlgorithm | undefined {
  const upper = value.toUpperCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(upper) ? (upper as ChecksumAlgorithm) : undefined;
}

/** Length in bytes of each algorithm's digest (to validate given values). */
export const DIGEST_BYTES: Record<ChecksumAlgorithm, number> = { CRC32: 4, CRC32C: 4, CRC64NVME: 8, SHA1: 20, SHA256: 32 };

export function createChecksum(algorithm: ChecksumAlgorithm): Checksum {
  switch (algorithm) {
    case 'CRC32': return new Crc32();
    case 'CRC32C': return new Crc32c();
    case 'CRC64NVME': return new Crc64Nvme();
    case 'SHA1': return hashChecksum('sha1');
    case 'SHA256': return hashChecksum('sha256');
  }
}

function hashChecksum(name: string): Checksum {
  const hash = createHash(name);
  return { update: (data) => hash.update(data), digest: () => hash.digest('base64') };
}

function uint32Base64(value: number): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0);
  return out.toString('base64');
}

class Crc32 implements Checksum {
  private value = 0;
  update(data: Buffer): void { this.value = crc32(data, this.value); }
  digest(): string { return uint32Base64(this.value); }
}

/** Eight 256-entry tables for a reflected 32-bit CRC. */
function sliceBy8Tables32(polynomial: number): Uint32Array[] {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let bit = 0; bit < 8; bit++) c = c & 1 ? (c >>> 1) ^ polynomial : c >>> 1;
    tables[0]![i] = c >>> 0;
  }
  for (let t = 1; t < 8; t++) {
    for (let i = 0; i < 256; i++) {
      const previous = tables[t - 1]![i]!;
      tables[t]![i] = ((previous >>> 8) ^ tables[0]![previous & 0xff]!) >>> 0;
    }
  }
  return tables;
}

const CRC32C_TABLES = sliceBy8Tables32(0x82f63b78);

class Crc32c implements Checksum {
  private crc = 0xffffffff;

  update(data: Buffer): void {
    const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC32C_TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
    let crc = this.crc;
    let i = 0;
    const whole = data.length - (data.length % 8);
    for (; i < whole; i += 8) {
      crc ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
      crc = t7[crc & 0xff]! ^ t6[(crc >>> 8) & 0xff]! ^ t5[(crc >>> 16) & 0xff]! ^ t4[crc >>> 24]!
        ^ t3[data[i + 4]!]! ^ t2[data[i + 5]!]! ^ t1[data[i + 6]!]! ^ t0[data[i + 7]!]!;
    }
    for (; i < data.length; i++) crc = (crc >>> 8) ^ t0[(crc ^ data[i]!) & 0xff]!;
    this.crc = crc >>> 0;
  }

  digest(): string { return uint32Base64(this.crc ^ 0xffffffff); }
}

/** CRC-64/NVME tables, each entry split into high and low 32-bit halves (no BigInt in the loop). */
function crc64NvmeTables(): { hi: Uint32Array[]; lo: Uint32Array[] } {
  const polynomial = 0x9a6c9329ac4bc9b5n;
  const mask = 0xffffffffffffffffn;
  const full: bigint[][] = [[]];
  for (let i = 0; i < 256; i++) {
    let c = BigInt(i);
    for (let bit = 0; bit < 8; bit++) c = c & 1n ? (c >> 1n) ^ polynomial : c >> 1n;
    full[0]!.push(c);
  }
  for (let t = 1; t < 8; t++) {
    full.push(full[t - 1]!.map((previous) => ((previous >> 8n) ^ full[0]![Number(previous & 0xffn)]!) & mask));
  }
  return {
    hi: full.map((table) => Uint32Array.from(table, (v) => Number(v >> 32n))),
    lo: full.map((table) => Uint32Array.from(table, (v) => Number(v & 0xffffffffn))),
  };
}

const CRC64_TABLES = crc64NvmeTables();

class Crc64Nvme implements Checksum {
  private hi = 0xffffffff;
  private lo = 0xffffffff;

  update(data: Buffer): void {
    const { hi: H, lo: L } = CRC64_TABLES;
    let hi = this.hi;
    let lo = this.lo;
    let i = 0;
    const whole = data.length - (data.length % 8);
    for (; i < whole; i += 8) {
      lo ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
      hi ^= data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
      const i7 = lo & 0xff, i6 = (lo >>> 8) & 0xff, i5 = (lo >>> 16) & 0xff, i4 = lo >>> 24;
      const i3 = hi & 0xff, i2 = (hi >>> 8) & 0xff, i1 = (hi >>> 16) & 0xff, i0 = hi >>> 24;
      hi = H[7]![i7]! ^ H[6]![i6]! ^ H[5]![i5]! ^ H[4]![i4]! ^ H[3]![i3]! ^ H[2]![i2]! ^ H[1]![i1]! ^ H[0]![i0]!;
      lo = L[7]![i7]! ^ L[6]![i6]! ^ L[5]![i5]! ^ L[4]![i4]! ^ L[3]![i3]! ^ L[2]![i2]! ^ L[1]![i1]! ^ L[0]![i0]!;
    }
    for (; i < data.length; i++) {
      const index = (lo ^ data[i]!) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ L[0]![index]!;
      hi = (hi >>> 8) ^ H[0]![index]!;
    }
    this.hi = hi >>> 0;
    this.lo = lo >>> 0;
  }

  digest(): string {
    const out = Buffer.alloc(8);
    out.writeUInt32BE((this.hi ^ 0xffffffff) >>> 0, 0);
    out.writeUInt32BE((this.lo ^ 0xffffffff) >>> 0, 4);
    return out.toString('base64');
  }
}
