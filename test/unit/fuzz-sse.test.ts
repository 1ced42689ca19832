// Property-based tests of server-side encryption (src/gateway/sse.ts): any object layout (one
// segment or many multipart parts), any range, any way the stored bytes arrive in pieces, decrypts
// to exactly the plaintext; master-key rotation keeps old objects readable; the generated key file
// is private and stable.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import t from 'tap';
import type { S3Context } from '../../src/gateway/context.js';
import { S3Error } from '../../src/gateway/errors.js';
import { decryptionFor, encryptionForWrite, loadMasterKeys, MasterKeys, parseMasterKeys, type StoredEncryption } from '../../src/gateway/sse.js';

/** The slice of a request the SSE functions read: its headers. */
function requestWith(headers: Record<string, string>): S3Context {
  return { request: { headers } as unknown as IncomingMessage } as S3Context;
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** `data` as a stream of pieces cut at `cuts`. */
function piecewise(data: Buffer, cuts: number[]): Readable {
  const positions = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let last = 0;
  for (const p of [...positions, data.length]) { if (p > last) pieces.push(data.subarray(last, p)); last = p; }
  return Readable.from(pieces);
}

const masterKeys = new MasterKeys([randomBytes(32)]);

t.test('any layout, range and piece boundaries decrypt to the plaintext', async (t) => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.uint8Array({ minLength: 1, maxLength: 3000 }), { minLength: 1, maxLength: 4 }),
    fc.nat(), fc.nat(), fc.array(fc.nat(), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 6 }),
    async (parts, a, b, writeCuts, readCuts) => {
      const encryption = encryptionForWrite(requestWith({ 'x-amz-server-side-encryption': 'AES256' }), masterKeys, {})!;
      const multipart = parts.length > 1;
      const stored: Buffer[] = [];
      for (const [i, part] of parts.entries()) {
        const body = encryption.encrypt(piecewise(Buffer.from(part), writeCuts), multipart ? i + 1 : 0);
        stored.push(await collect(body.stream));
        if (!multipart && body.etag('ignored') !== `"${createHash('md5').update(part).digest('hex')}"`) return false;
      }
      const plaintext = Buffer.concat(parts.map((p) => Buffer.from(p)));
      const ciphertext = Buffer.concat(stored);
      if (ciphertext.length !== plaintext.length || (plaintext.length >= 16 && ciphertext.equals(plaintext))) return false;
      const version = {
        size: plaintext.length,
        segments: parts.map((p, i) => ({ size: p.length, partNumber: multipart ? i + 1 : 0 })),
        attributesJson: JSON.stringify({ encryption: encryption.stored }),
      };
      const start = a % plaintext.length;
      const end = start + (b % (plaintext.length - start));
      const decryption = decryptionFor(requestWith({}), masterKeys, version);
      const decrypted = await collect(decryption.decrypt(piecewise(ciphertext.subarray(start, end + 1), readCuts), { start, end }));
      return decrypted.equals(plaintext.subarray(start, end + 1));
    }), { numRuns: 150 });
});

t.test('parts of one upload never share a key stream', async (t) => {
  const encryption = encryptionForWrite(requestWith({ 'x-amz-server-side-encryption': 'AES256' }), masterKeys, {})!;
  const zeros = Buffer.alloc(4096);
  const streams = await Promise.all([0, 1, 2].map((part) => collect(encryption.encrypt(Readable.from([zeros]), part).stream)));
  t.not(streams[0]!.toString('hex'), streams[1]!.toString('hex'));
  t.not(streams[1]!.toString('hex'), streams[2]!.toString('hex'));
});

t.test('master keys rotate: the first wraps new keys, older ones still unwrap', async (t) => {
  const oldKey = randomBytes(32).toString('hex');
  const newKey = randomBytes(32).toString('hex');
  const before = encryptionForWrite(requestWith({ 'x-amz-server-side-encryption': 'AES256' }), parseMasterKeys(oldKey), {})!;
  const rotated = parseMasterKeys(`${newKey}\n# the previous key, kept for old objects\n${oldKey}\n`);
  const version = { size: 5, segments: [], attributesJson: JSON.stringify({ encryption: before.stored }) };
  const ciphertext = await collect(before.encrypt(Readable.from([Buffer.from('hello')])).stream);
  t.equal((await collect(decryptionFor(requestWith({}), rotated, version).decrypt(Readable.from([ciphertext])))).toString(), 'hello', 'an old object reads after rotation');
  const after = encryptionForWrite(requestWith({ 'x-amz-server-side-encryption': 'AES256' }), rotated, {})!;
  t.equal(after.stored.masterKeyId, MasterKeys.idOf(Buffer.from(newKey, 'hex')), 'new objects use the first key');
  t.throws(() => decryptionFor(requestWith({}), parseMasterKeys(newKey), version), 'without the old key the object cannot be read');
  const stored: StoredEncryption = before.stored;
  t.notOk(JSON.stringify(stored).includes(oldKey) || JSON.stringify(stored).includes(Buffer.from(oldKey, 'hex').toString('base64')), 'the stored attributes hold no master key');
  t.throws(() => parseMasterKeys('not hex'), /64 hex digits/);
});

t.test('a generated master key file is private and reused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-sse-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = loadMasterKeys({ dataDir: dir })!;
  t.equal(statSync(join(dir, 'sse-master.key')).mode & 0o777, 0o600);
  const again = loadMasterKeys({ dataDir: dir })!;
  const encryption = encryptionForWrite(requestWith({ 'x-amz-server-side-encryption': 'AES256' }), first, {})!;
  t.equal(again.unwrap(encryption.stored).length, 32, 'a restart reads the same key');
  t.equal(loadMasterKeys({}), undefined, 'no key source: SSE-S3 is off');
});

t.test('SSE-C headers: malformed keys and algorithms are client errors', async (t) => {
  const key = randomBytes(32);
  const good = {
    'x-amz-server-side-encryption-customer-algorithm': 'AES256',
    'x-amz-server-side-encryption-customer-key': key.toString('base64'),
    'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(key).digest('base64'),
  };
  fc.assert(fc.property(fc.record({
    'x-amz-server-side-encryption-customer-algorithm': fc.option(fc.oneof(fc.constant('AES256'), fc.string({ maxLength: 10 })), { nil: undefined }),
    'x-amz-server-side-encryption-customer-key': fc.option(fc.oneof(fc.constant(good['x-amz-server-side-encryption-customer-key']), fc.base64String({ maxLength: 60 }), fc.string({ maxLength: 60 })), { nil: undefined }),
    'x-amz-server-side-encryption-customer-key-md5': fc.option(fc.oneof(fc.constant(good['x-amz-server-side-encryption-customer-key-md5']), fc.string({ maxLength: 30 })), { nil: undefined }),
    'x-amz-server-side-encryption': fc.option(fc.constantFrom('AES256', 'aws:kms', 'x'), { nil: undefined }),
  }, { requiredKeys: [] }), (headers) => {
    const defined = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined)) as Record<string, string>;
    try {
      encryptionForWrite(requestWith(defined), masterKeys, {});
      return true;
    } catch (err) {
      return err instanceof S3Error && (err.status < 500 || err.code === 'NotImplemented');
    }
  }), { numRuns: 300 });
});
