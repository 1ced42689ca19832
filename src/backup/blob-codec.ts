// How a blob (a chunk of disk data or an index page) becomes stored bytes and back:
// named by a hash of its plaintext (HMAC-SHA256 under a derived key when encrypted, so the store
// cannot confirm guesses), zstd-compressed when that helps, sealed with AES-256-GCM when encrypted.
// Repository format 2 seals each blob with its id as GCM's additional data, so opening it proves
// it is the blob the key holder stored under that id: reading need not hash the plaintext again
// (format 1 blobs, sealed without it, are re-hashed). Chunks are named and encoded, and blobs
// opened, natively (native/backup/encode.c, decode.c), a batch per call: one cipher context keeps
// the key schedule from blob to blob (Node's crypto sets one up per blob), each blob is compressed
// and sealed in its place in the output and each plaintext decompressed into its place.
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomFillSync, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { StoreError } from '../common/errors.js';
import { ID_BYTES } from './chunk-id.js';
import type { PackEntry } from './format.js';
import { backupAddon, type DecodeFailure, type NativeDecoder, type NativeEncoder } from './native-backup.js';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/**
 * zstd level 1: 2.4x the speed of level 3 on the bench's disk data (0.33 vs 0.14 GB/s on a loaded
 * core) for 5 % more stored bytes; it dominated an incremental's CPU. Decoding reads any level.
 */
const COMPRESSION_LEVEL = 1;
/**
 * Nonces are cut from random bytes drawn this many at a time: a randomFillSync call per blob cost
 * ~10-14 µs, as much as sealing 16 KiB.
 */
const NONCE_POOL_BYTES = 4096 - (4096 % NONCE_BYTES);

/** One stored blob inside a buffer of them. */
export interface StoredBlob {
  offset: number;
  length: number;
  compressed: boolean;
  rawLength: number;
}

const BLOB_FIELDS = 4;

/** Blobs as decodeBlobs takes them: offset, length, rawLength, compressed (1/0) each. */
export function packBlobs(blobs: StoredBlob[]): Float64Array {
  const packed = new Float64Array(blobs.length * BLOB_FIELDS);
  blobs.forEach((b, i) => packed.set([b.offset, b.length, b.rawLength, b.compressed ? 1 : 0], i * BLOB_FIELDS));
  return packed;
}

/** The plaintext length of each of `blobs` (as packBlobs lays them out). */
export function rawLengths(blobs: Float64Array): number[] {
  return Array.from({ length: blobs.length / BLOB_FIELDS }, (_, i) => blobs[i * BLOB_FIELDS + 2]!);
}

/** The i-th id of `ids` (ID_BYTES each), in place. */
function idAt(ids: Uint8Array, i: number): Buffer {
  return Buffer.from(ids.buffer, ids.byteOffset + i * ID_BYTES, ID_BYTES);
}

function decodeError({ index, reason }: DecodeFailure, ids: Uint8Array): StoreError {
  switch (reason) {
    case 'short': return new StoreError('Corrupt', 'sealed blob too short');
    case 'authentication': return new StoreError('Corrupt', 'sealed data failed authentication (wrong key or damaged object)');
    case 'decompression': return new StoreError('Corrupt', `blob ${idAt(ids, index).toString('hex')} does not decompress`);
    case 'length': return notItsHash(idAt(ids, index));
  }
}

function notItsHash(id: Buffer): StoreError {
  return new StoreError('Corrupt', `blob ${id.toString('hex')} does not match its hash`);
}

export interface EncodedBlob {
  stored: Buffer;
  compressed: boolean;
}

/** encodeBlobs' result: the bytes written, and (stored length, compressed 1/0) per piece. */
export interface EncodedBatch {
  length: number;
  stored: Float64Array;
}

/** The derived sub-keys and the seal format; a worker thread rebuilds the same codec from them. */
export interface CodecKeys {
  enc: Buffer;
  mac: Buffer;
  /** Blob seals bind the blob's id (repository format 2). */
  idBound: boolean;
}

export class BlobCodec {
  private encoder: NativeEncoder | undefined;
  private decoder: NativeDecoder | undefined;
  private readonly nonces = Buffer.alloc(NONCE_POOL_BYTES);
  private noncesUsed = NONCE_POOL_BYTES;

  private constructor(readonly keys: CodecKeys | undefined) {}

  static plain(): BlobCodec {
    return new BlobCodec(undefined);
  }

  static withKeys(keys: CodecKeys | undefined): BlobCodec {
    return new BlobCodec(keys);
  }

  /** Sub-keys for encryption and for chunk naming, derived from a key file's 256-bit secret. */
  static encrypted(secret: Buffer, salt: Uint8Array, idBound: boolean): BlobCodec {
    const derive = (info: string) => Buffer.from(hkdfSync('sha256', secret, salt, info, 32));
    return BlobCodec.withKeys({ enc: derive('tessera-backup aes-256-gcm'), mac: derive('tessera-backup chunk-id'), idBound });
  }

  get encrypted(): boolean {
    return this.keys !== undefined;
  }

  idOf(plain: Uint8Array): Buffer {
    return this.keys ? createHmac('sha256', this.keys.mac).update(plain).digest() : createHash('sha256').update(plain).digest();
  }

  /** Most bytes a blob's stored form takes beyond its plaintext. */
  get overhead(): number {
    return this.keys ? NONCE_BYTES + TAG_BYTES : 0;
  }

  encode(plain: Buffer, id: Uint8Array): EncodedBlob {
    const out = Buffer.allocUnsafe(plain.length + this.overhead);
    const { length, stored } = this.encodeBlobs(plain, new Float64Array([0, plain.length]), id, out);
    return { stored: out.subarray(0, length), compressed: stored[1] === 1 };
  }

  /**
   * The stored forms of pieces of `data` (offset and length each in `pieces`, ids back to back in
   * `ids`), back to back into `out` (room for each piece and the overhead). A blob is kept
   * compressed only when that saves at least 1/32 of it.
   */
  encodeBlobs(data: Uint8Array, pieces: Float64Array, ids: Uint8Array, out: Uint8Array): EncodedBatch {
    const stored = new Float64Array(pieces.length);
    return { length: backupAddon().encodeBatch(this.sharedEncoder(), data, 0, ids, pieces, out, stored), stored };
  }

  /** A native encoder of its own running up to `lanes` batches at a time (encode-lanes.ts). */
  newEncoder(lanes = 1): NativeEncoder {
    return backupAddon().encoder(this.keys?.enc ?? null, this.keys?.mac ?? null, this.keys?.idBound ?? false, COMPRESSION_LEVEL, lanes);
  }

  /** The encoder of this codec's own calls (on the calling thread). */
  private sharedEncoder(): NativeEncoder {
    return (this.encoder ??= this.newEncoder());
  }

  /**
   * Opens, decompresses and checks a blob against the id it is stored under. `rehash` checks the
   * plaintext's hash even where the seal already proves the id (verify does, to catch a writer's bug).
   */
  decode(stored: Buffer, id: Uint8Array, compressed: boolean, rawLength: number, rehash = false): Buffer {
    return this.decodeInto(stored, id, compressed, Buffer.allocUnsafe(rawLength), rehash);
  }

  /** decode() of a pack entry's stored bytes. */
  decodeEntry(stored: Buffer, entry: PackEntry, rehash = false): Buffer {
    return this.decode(stored, entry.id, entry.compressed, entry.rawLength, rehash);
  }

  /** decode() into `out`, which is exactly the blob's plaintext length (no buffer per blob). */
  decodeInto(stored: Buffer, id: Uint8Array, compressed: boolean, out: Buffer, rehash = false): Buffer {
    this.decodeBlobs(stored, packBlobs([{ offset: 0, length: stored.length, compressed, rawLength: out.length }]), id, out, rehash);
    return out;
  }

  /**
   * decode() of each blob of `data` (laid out by packBlobs, ids back to back in `ids`) into `out`,
   * back to back; throws Corrupt for the first that fails.
   */
  decodeBlobs(data: Uint8Array, blobs: Float64Array, ids: Uint8Array, out: Uint8Array, rehash = false): void {
    this.decoder ??= backupAddon().decoder(this.keys?.enc ?? null, this.keys?.idBound ?? false);
    const failed = backupAddon().decodeBlobs(this.decoder, data, blobs, ids, out);
    if (failed) throw decodeError(failed, ids);
    if (rehash || !this.keys?.idBound) this.checkHashes(blobs, ids, out);
  }

  /** The plaintexts in `out` against their ids, where the seal does not prove them. */
  private checkHashes(blobs: Float64Array, ids: Uint8Array, out: Uint8Array): void {
    let at = 0;
    for (const [i, rawLength] of rawLengths(blobs).entries()) {
      const id = idAt(ids, i);
      if (!this.idOf(Buffer.from(out.buffer, out.byteOffset + at, rawLength)).equals(id)) throw notItsHash(id);
      at += rawLength;
    }
  }

  /** AES-256-GCM with a fresh nonce (whole objects: index files, snapshots, the key check). */
  seal(plain: Buffer): Buffer {
    if (!this.keys) return plain;
    const out = Buffer.allocUnsafe(plain.length + this.overhead);
    const cipher = createCipheriv('aes-256-gcm', this.keys.enc, this.nextNonce(out));
    const length = NONCE_BYTES + cipher.update(plain).copy(out, NONCE_BYTES);
    cipher.final();
    return out.subarray(0, length + cipher.getAuthTag().copy(out, length));
  }

  /** A fresh random nonce, written to the start of `out`. */
  private nextNonce(out: Buffer): Buffer {
    if (this.noncesUsed === this.nonces.length) {
      randomFillSync(this.nonces);
      this.noncesUsed = 0;
    }
    this.nonces.copy(out, 0, this.noncesUsed, this.noncesUsed + NONCE_BYTES);
    this.noncesUsed += NONCE_BYTES;
    return out.subarray(0, NONCE_BYTES);
  }

  /** Opens what seal() made. */
  open(sealed: Buffer): Buffer {
    if (!this.keys) return sealed;
    if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new StoreError('Corrupt', 'sealed blob too short');
    const decipher = createDecipheriv('aes-256-gcm', this.keys.enc, sealed.subarray(0, NONCE_BYTES));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      const plain = decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
      decipher.final(); // GCM emits nothing more here; it checks the tag
      return plain;
    } catch {
      throw new StoreError('Corrupt', 'sealed data failed authentication (wrong key or damaged object)');
    }
  }
}

/** A key file holds 32 random bytes, raw or as 64 hex digits (`openssl rand -hex 32 > key`). */
export async function readKeyFile(path: string): Promise<Buffer> {
  const raw = await readFile(path);
  const text = raw.toString('utf8').trim();
  const secret = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : raw;
  if (secret.length < 32) throw new StoreError('InvalidArgument', `key file ${path} holds fewer than 32 bytes`);
  return secret;
}

const KEY_CHECK_TEXT = Buffer.from('tessera-backup key check');

export function keyCheck(codec: BlobCodec): Buffer {
  return codec.seal(KEY_CHECK_TEXT);
}

export function keyMatches(codec: BlobCodec, check: Buffer): boolean {
  try {
    const opened = codec.open(check);
    return opened.length === KEY_CHECK_TEXT.length && timingSafeEqual(opened, KEY_CHECK_TEXT);
  } catch {
    return false;
  }
}
