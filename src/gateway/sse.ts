// Server-side encryption of object data: SSE-S3 (x-amz-server-side-encryption: AES256, keys held
// by the gateway) and SSE-C (x-amz-server-side-encryption-customer-*, the client sends its key
// with every request and it is never stored).
//
// Data is AES-256-CTR: ciphertext has the plaintext's length and byte i depends only on counter
// block i/16, so ranges, part numbers and multipart objects decrypt from any offset without
// reading more. The counter block is `nonce (8 random bytes per object) | part number (4) |
// block index (4)`; a part is at most 5 GiB (2^28 blocks), so counters never cross into the part
// field. A plain object is part 0.
//   SSE-S3: a random 256-bit data key per object, wrapped (AES-256-GCM) by a master key; the
//           version's attributes keep the wrapped key and the master key's id.
//   SSE-C:  the customer key encrypts directly; the attributes keep only a salted HMAC of it, to
//           refuse a wrong key on GET with AccessDenied instead of returning garbage.
// The integrity of stored bytes rests on the storage nodes' per-block xxHash64 (CTR adds none).
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { ByteRange, ObjectVersion } from '../replication/types.js';
import type { BucketRecord } from './bucket-record.js';
import { header, type S3Context } from './context.js';
import { S3Error } from './errors.js';
import { attributesOf, withAttributes } from './ops/attributes.js';

export const SSE_ALGORITHM = 'AES256';
const KEY_BYTES = 32;
const BLOCK_BYTES = 16;
const MASTER_KEY_FILE = 'sse-master.key';

/** How a version's bytes are encrypted, as kept in its attributes. Never holds a usable key. */
export interface StoredEncryption {
  mode: 'SSE-S3' | 'SSE-C';
  /** 8 random bytes (base64): the top of every counter block of this object. */
  nonce: string;
  /** SSE-S3: id of the master key that wrapped the data key. */
  masterKeyId?: string;
  /** SSE-S3: GCM iv | tag | encrypted data key, base64. */
  wrappedKey?: string;
  /** SSE-C: random salt and HMAC-SHA256(customer key, salt), base64. */
  keySalt?: string;
  keyHmac?: string;
}

// ---------------------------------------------------------------- master keys (SSE-S3)

/**
 * The gateway's master keys: the first encrypts new data keys, every one can unwrap (so a
 * rotated-out key keeps old objects readable). Ids are a hash of the key, never the key.
 */
export class MasterKeys {
  private readonly byId = new Map<string, Buffer>();
  private readonly currentId: string;

  constructor(keys: readonly Buffer[]) {
    if (keys.length === 0) throw new Error('at least one SSE master key is required');
    for (const key of keys) {
      if (key.length !== KEY_BYTES) throw new Error(`an SSE master key must be ${KEY_BYTES} bytes (64 hex digits)`);
      this.byId.set(MasterKeys.idOf(key), key);
    }
    this.currentId = MasterKeys.idOf(keys[0]!);
  }

  static idOf(key: Buffer): string {
    return createHash('sha256').update('tessera-sse-master-key-id').update(key).digest('hex').slice(0, 16);
  }

  wrap(dataKey: Buffer): { masterKeyId: string; wrappedKey: string } {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.byId.get(this.currentId)!, iv);
    const encrypted = Buffer.concat([cipher.update(dataKey), cipher.final()]);
    return { masterKeyId: this.currentId, wrappedKey: Buffer.concat([iv, cipher.getAuthTag(), encrypted]).toString('base64') };
  }

  unwrap(stored: StoredEncryption): Buffer {
    const master = this.byId.get(stored.masterKeyId ?? '');
    if (!master) throw new Error(`SSE master key ${stored.masterKeyId} is not configured`);
    const wrapped = Buffer.from(stored.wrappedKey ?? '', 'base64');
    const decipher = createDecipheriv('aes-256-gcm', master, wrapped.subarray(0, 12));
    decipher.setAuthTag(wrapped.subarray(12, 28));
    return Buffer.concat([decipher.update(wrapped.subarray(28)), decipher.final()]);
  }
}

/** Hex keys, one per line (`#` comments); the first is current. */
export function parseMasterKeys(text: string): MasterKeys {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  return new MasterKeys(lines.map((line) => {
    if (!/^[0-9a-fA-F]{64}$/.test(line)) throw new Error('an SSE master key must be 64 hex digits');
    return Buffer.from(line, 'hex');
  }));
}

/**
 * Master keys from TESSERA_SSE_MASTER_KEY (comma-separated), else `keyFile`, else DATA/sse-master.key,
 * created with 0600 permissions on first start. Undefined (SSE-S3 refused) when none applies.
 */
export function loadMasterKeys(options: { envValue?: string; keyFile?: string; dataDir?: string }): MasterKeys | undefined {
  if (options.envValue) return parseMasterKeys(options.envValue.replace(/,/g, '\n'));
  if (options.keyFile) return parseMasterKeys(readFileSync(options.keyFile, 'utf8'));
  if (!options.dataDir) return undefined;
  const path = join(options.dataDir, MASTER_KEY_FILE);
  if (!existsSync(path)) writeFileSync(path, `${randomBytes(KEY_BYTES).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
  return parseMasterKeys(readFileSync(path, 'utf8'));
}

// ---------------------------------------------------------------- the cipher

/** One segment of a version's byte stream: where it starts and which counter part it uses. */
interface CipherSegment {
  start: number;
  size: number;
  part: number;
}

function counterBlock(nonce: Buffer, part: number, offset: number): Buffer {
  const iv = Buffer.alloc(BLOCK_BYTES);
  nonce.copy(iv, 0, 0, 8);
  iv.writeUInt32BE(part, 8);
  iv.writeUInt32BE(Math.floor(offset / BLOCK_BYTES), 12);
  return iv;
}

/**
 * AES-256-CTR over a byte stream that starts at `offset` of the object (CTR is its own inverse:
 * the same transform encrypts and decrypts). Crossing a segment boundary restarts the counter
 * at the next segment's part.
 */
class CtrTransform extends Transform {
  private index = -1;
  private cipher: ReturnType<typeof createCipheriv> | undefined;

  constructor(private readonly key: Buffer, private readonly nonce: Buffer, private readonly segments: CipherSegment[], private offset: number) {
    super();
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let rest = data;
    while (rest.length > 0) {
      const segment = this.segmentAtOffset();
      if (!segment) { callback(new Error('more bytes than the object holds')); return; }
      const take = Math.min(rest.length, segment.start + segment.size - this.offset);
      this.push(this.cipher!.update(rest.subarray(0, take)));
      this.offset += take;
      rest = rest.subarray(take);
    }
    callback();
  }

  private segmentAtOffset(): CipherSegment | undefined {
    const current = this.segments[this.index];
    if (current && this.offset < current.start + current.size) return current;
    this.index = this.segments.findIndex((s) => this.offset >= s.start && this.offset < s.start + s.size);
    const segment = this.segments[this.index];
    if (!segment) return undefined;
    const within = this.offset - segment.start;
    this.cipher = createCipheriv('aes-256-ctr', this.key, counterBlock(this.nonce, segment.part, within));
    this.cipher.update(Buffer.alloc(within % BLOCK_BYTES)); // skip into the block
    return segment;
  }
}

/** Hashes what passes through (the plaintext MD5 that is an SSE-S3 object's ETag). */
class Md5Tap extends Transform {
  private readonly md5 = createHash('md5');
  hex = '';

  override _transform(data: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.md5.update(data);
    callback(null, data);
  }

  override _flush(callback: TransformCallback): void {
    this.hex = this.md5.digest('hex');
    callback();
  }
}

function segmentsOf(version: Pick<ObjectVersion, 'segments' | 'size'>): CipherSegment[] {
  const segments = version.segments ?? [];
  if (segments.length === 0) return [{ start: 0, size: Number(version.size ?? 0), part: 0 }];
  let start = 0;
  return segments.map((segment) => {
    const size = Number(segment.size ?? 0);
    const entry = { start, size, part: segment.partNumber ?? 0 };
    start += size;
    return entry;
  });
}

// ---------------------------------------------------------------- request headers

const CUSTOMER_PREFIX = 'x-amz-server-side-encryption-customer-';
const COPY_SOURCE_CUSTOMER_PREFIX = 'x-amz-copy-source-server-side-encryption-customer-';

interface CustomerKey {
  key: Buffer;
  keyMd5: string;
}

function invalid(message: string, name: string): S3Error {
  return new S3Error('InvalidArgument', { message, fields: { ArgumentName: name } });
}

/** The SSE-C key of a request (under `prefix`), validated; undefined when none was sent. */
function customerKeyOf(ctx: S3Context, prefix: string): CustomerKey | undefined {
  const algorithm = header(ctx.request, `${prefix}algorithm`);
  const key = header(ctx.request, `${prefix}key`);
  const keyMd5 = header(ctx.request, `${prefix}key-md5`);
  if (algorithm === undefined && key === undefined && keyMd5 === undefined) return undefined;
  if (algorithm === undefined) throw invalid('Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.', `${prefix}algorithm`);
  if (algorithm !== SSE_ALGORITHM) throw new S3Error('InvalidEncryptionAlgorithmError', { fields: { ArgumentName: `${prefix}algorithm`, ArgumentValue: algorithm } });
  if (key === undefined) throw invalid('Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.', `${prefix}key`);
  const keyBytes = Buffer.from(key, 'base64');
  if (keyBytes.length !== KEY_BYTES || !/^[A-Za-z0-9+/]+=*$/.test(key)) throw invalid('The secret key was invalid for the specified algorithm.', `${prefix}key`);
  const actualMd5 = createHash('md5').update(keyBytes).digest('base64');
  if (keyMd5 !== undefined && keyMd5 !== actualMd5) throw invalid('The calculated MD5 hash of the key did not match the hash that was provided.', `${prefix}key-MD5`);
  return { key: keyBytes, keyMd5: actualMd5 };
}

function customerKeyHmac(key: Buffer, salt: Buffer): Buffer {
  return createHmac('sha256', key).update('tessera-sse-c-key-check').update(salt).digest();
}

function responseHeaders(stored: StoredEncryption, customer: CustomerKey | undefined): Record<string, string> {
  if (stored.mode === 'SSE-S3') return { 'x-amz-server-side-encryption': SSE_ALGORITHM };
  return { [`${CUSTOMER_PREFIX}algorithm`]: SSE_ALGORITHM, [`${CUSTOMER_PREFIX}key-md5`]: customer!.keyMd5 };
}

// ---------------------------------------------------------------- writes

/** Encryption of a new object or upload, chosen from the request headers. */
export interface NewEncryption {
  stored: StoredEncryption;
  /** x-amz-server-side-encryption* response headers. */
  headers: Record<string, string>;
  /** Encrypts the body of part `part` (0 for a whole object). */
  encrypt(body: Readable, part?: number): EncryptedBody;
}

export interface EncryptedBody {
  stream: Readable;
  /** The version's ETag once the stream has ended: the plaintext MD5 for SSE-S3, the stored bytes' MD5 for SSE-C. */
  etag(storedMd5Hex: string): string;
}

/** The encryption a write asks for (SSE-C or SSE-S3 headers, else the bucket's default), or undefined for none. */
export function encryptionForWrite(ctx: S3Context, masterKeys: MasterKeys | undefined, bucket: Pick<BucketRecord, 'encryption'>): NewEncryption | undefined {
  const explicit = header(ctx.request, 'x-amz-server-side-encryption');
  const customer = customerKeyOf(ctx, CUSTOMER_PREFIX);
  if (explicit !== undefined && customer !== undefined) {
    throw invalid('Server Side Encryption with Customer provided key is incompatible with the encryption method specified', 'x-amz-server-side-encryption');
  }
  if (customer) {
    const nonce = randomBytes(8);
    const salt = randomBytes(16);
    const stored: StoredEncryption = { mode: 'SSE-C', nonce: nonce.toString('base64'), keySalt: salt.toString('base64'), keyHmac: customerKeyHmac(customer.key, salt).toString('base64') };
    return newEncryption(stored, customer.key, responseHeaders(stored, customer));
  }
  const requested = explicit ?? bucket.encryption;
  if (requested === undefined) return undefined;
  if (requested.startsWith('aws:kms')) throw new S3Error('NotImplemented', { message: 'SSE-KMS is not supported; use AES256 (SSE-S3) or SSE-C.' });
  if (requested !== SSE_ALGORITHM) throw invalid('The encryption method specified is not supported', 'x-amz-server-side-encryption');
  if (!masterKeys) throw new S3Error('NotImplemented', { message: 'Server-side encryption (SSE-S3) is not configured on this gateway.' });
  const dataKey = randomBytes(KEY_BYTES);
  const stored: StoredEncryption = { mode: 'SSE-S3', nonce: randomBytes(8).toString('base64'), ...masterKeys.wrap(dataKey) };
  return newEncryption(stored, dataKey, responseHeaders(stored, undefined));
}

function newEncryption(stored: StoredEncryption, key: Buffer, headers: Record<string, string>): NewEncryption {
  return { stored, headers, encrypt: (body, part = 0) => encryptBody(stored, key, body, part) };
}

function encryptBody(stored: StoredEncryption, key: Buffer, body: Readable, part: number): EncryptedBody {
  const md5 = new Md5Tap();
  const cipher = new CtrTransform(key, Buffer.from(stored.nonce, 'base64'), [{ start: 0, size: Infinity, part }], 0);
  body.on('error', (err) => md5.destroy(err));
  md5.on('error', (err) => cipher.destroy(err));
  const stream = body.pipe(md5).pipe(cipher);
  return { stream, etag: (storedMd5Hex) => `"${stored.mode === 'SSE-S3' ? md5.hex : storedMd5Hex}"` };
}

// ---------------------------------------------------------------- reads and later parts

/** How to read a version's bytes back (identity for unencrypted versions). */
export interface Decryption {
  /** x-amz-server-side-encryption* response headers. */
  headers: Record<string, string>;
  /** Decrypts the stored bytes of `range` (the whole version when undefined). */
  decrypt(stored: Readable, range?: ByteRange): Readable;
}

const PLAINTEXT: Decryption = { headers: {}, decrypt: (stored) => stored };

/**
 * The key for reading `version` (GET, HEAD; a copy source with `copySource`), checked against
 * the request's SSE-C headers: an SSE-C object needs the right key (400 without one, 403 with
 * another); other objects refuse SSE-C headers.
 */
export function decryptionFor(
  ctx: S3Context,
  masterKeys: MasterKeys | undefined,
  version: Pick<ObjectVersion, 'segments' | 'size' | 'attributesJson'>,
  options: { copySource?: boolean } = {},
): Decryption {
  const stored = storedEncryptionOf(version);
  const unlocked = unlock(ctx, masterKeys, stored, options.copySource ? COPY_SOURCE_CUSTOMER_PREFIX : CUSTOMER_PREFIX);
  if (!stored || !unlocked) return PLAINTEXT;
  return {
    headers: unlocked.headers,
    decrypt: (bytes, range) => {
      const decipher = new CtrTransform(unlocked.key, Buffer.from(stored.nonce, 'base64'), segmentsOf(version), range?.start ?? 0);
      bytes.on('error', (err) => decipher.destroy(err));
      return bytes.pipe(decipher);
    },
  };
}

/** The encryption of a multipart upload, for its next part (UploadPart needs the SSE-C key again). */
export function encryptionForPart(ctx: S3Context, masterKeys: MasterKeys | undefined, template: Pick<ObjectVersion, 'attributesJson'>): NewEncryption | undefined {
  const stored = storedEncryptionOf(template);
  const unlocked = unlock(ctx, masterKeys, stored, CUSTOMER_PREFIX);
  return stored && unlocked ? newEncryption(stored, unlocked.key, unlocked.headers) : undefined;
}

function unlock(ctx: S3Context, masterKeys: MasterKeys | undefined, stored: StoredEncryption | undefined, prefix: string): { key: Buffer; headers: Record<string, string> } | undefined {
  const customer = customerKeyOf(ctx, prefix);
  if (stored?.mode !== 'SSE-C' && customer !== undefined) {
    throw new S3Error('InvalidRequest', { message: 'The encryption parameters are not applicable to this object.' });
  }
  if (!stored) return undefined;
  if (stored.mode === 'SSE-S3') {
    if (!masterKeys) throw new S3Error('InternalError', { cause: new Error('an SSE-S3 object was read but no SSE master key is configured') });
    return { key: masterKeys.unwrap(stored), headers: responseHeaders(stored, undefined) };
  }
  if (!customer) {
    throw new S3Error('InvalidRequest', { message: 'The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.' });
  }
  const expected = Buffer.from(stored.keyHmac ?? '', 'base64');
  const given = customerKeyHmac(customer.key, Buffer.from(stored.keySalt ?? '', 'base64'));
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    throw new S3Error('AccessDenied', { message: 'The provided customer key does not match the key the object was encrypted with.' });
  }
  return { key: customer.key, headers: responseHeaders(stored, customer) };
}

// ---------------------------------------------------------------- version attributes

export function storedEncryptionOf(version: Pick<ObjectVersion, 'attributesJson'>): StoredEncryption | undefined {
  return attributesOf(version).encryption;
}

/** Fields of a new version (or upload template) that record how its bytes are encrypted. */
export function withEncryption<T extends Pick<ObjectVersion, 'attributesJson'>>(fields: T, encryption: NewEncryption | undefined): T {
  return encryption ? withAttributes(fields, { encryption: encryption.stored }) : fields;
}
