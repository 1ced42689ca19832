// Property-based tests of every gateway parser that sees bytes from the network. The property
// each must hold: any input either parses into something within bounds, or is refused with an
// S3Error (a client error the user can read). Any other exception would surface as a 500.
import { PassThrough, Readable } from 'node:stream';
import fc from 'fast-check';
import t from 'tap';
import { aclFromXml } from '../../src/gateway/acl.js';
import { AwsChunkedDecoder } from '../../src/gateway/auth/chunked.js';
import { parseV2Header, parseV2Query } from '../../src/gateway/auth/sigv2.js';
import { parseAmzDate, parseAuthorizationHeader, parsePresignedQuery, signHex, chunkStringToSign, EMPTY_SHA256, sha256Hex } from '../../src/gateway/auth/sigv4.js';
import { bucketNameProblem } from '../../src/gateway/bucket-record.js';
import { S3Error } from '../../src/gateway/errors.js';
import { parseCopySource } from '../../src/gateway/ops/copy.js';
import { parseRange } from '../../src/gateway/ops/get.js';
import { decodeToken } from '../../src/gateway/ops/list.js';
import { parsePublicAccessBlock } from '../../src/gateway/ops/public-access-block.js';
import { tagsFromHeader } from '../../src/gateway/ops/put.js';
import { parseWebsiteConfiguration, websiteXml } from '../../src/gateway/ops/website.js';
import { MAX_KEY_BYTES, resolveAddress } from '../../src/gateway/router.js';
import { buildXml, MalformedXmlError, parseXml, xmlChild, xmlChildren, xmlText } from '../../src/gateway/xml.js';

const RUNS = { numRuns: 400 };

/** Strings as a hostile client sends them: ASCII noise, percent escapes, controls, UTF-8 and lone surrogates. */
const hostileString = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.array(fc.constantFrom('%', '%2', '%zz', '%C0%AF', '%00', '%FF', '../', '/', '?', '&', '=', '#', '\0', '\r\n', ';', ',', ' ', 'é', '\uD800'), { maxLength: 40 }).map((parts) => parts.join('')),
);

/** Runs `parse`; passes when it returns or throws an S3Error (also MalformedXmlError for raw XML). */
function refusesCleanly(parse: () => unknown, alsoAllowed: Array<new (...args: never[]) => Error> = []): boolean {
  try {
    parse();
    return true;
  } catch (err) {
    if (err instanceof S3Error || alsoAllowed.some((kind) => err instanceof kind)) return true;
    throw err;
  }
}

t.test('request targets resolve to a bucket and key, or InvalidURI / KeyTooLongError', async (t) => {
  fc.assert(fc.property(hostileString, fc.option(hostileString), (path, host) => {
    let address;
    try {
      address = resolveAddress(`/${path}`, host ?? undefined, host ? 's3.test' : undefined);
    } catch (err) {
      return err instanceof S3Error && ['InvalidURI', 'KeyTooLongError'].includes(err.code);
    }
    return address.key === undefined || Buffer.byteLength(address.key) <= MAX_KEY_BYTES;
  }), RUNS);
  t.throws(() => resolveAddress('/b/%C0', undefined), { code: 'InvalidURI' }, 'a broken UTF-8 escape');
  t.throws(() => resolveAddress(`/b/${'k'.repeat(1025)}`, undefined), { code: 'KeyTooLongError' });
  t.equal(resolveAddress(`/b/${'k'.repeat(1024)}`, undefined).key!.length, 1024, '1024 bytes is the largest key');
  t.equal(resolveAddress('/b/../../etc/passwd', undefined).key, '../../etc/passwd', 'dot segments stay part of the key');
  t.throws(() => resolveAddress('no-slash', undefined), { code: 'InvalidURI' });
});

t.test('SigV4 authorization headers and presigned queries parse or are refused', async (t) => {
  const field = fc.oneof(hostileString, fc.constantFrom('AKID/20240101/us-east-1/s3/aws4_request', 'host;x-amz-date', 'a'.repeat(64)));
  fc.assert(fc.property(field, field, field, fc.option(hostileString), (credential, signedHeaders, signature, amzDate) =>
    refusesCleanly(() => parseAuthorizationHeader(`AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${signedHeaders}, Signature=${signature}`, amzDate ?? undefined))), RUNS);
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (tail) => refusesCleanly(() => parseAuthorizationHeader(`AWS4-HMAC-SHA256${tail}`, '20240101T000000Z'))), RUNS);
  const queryField = fc.option(fc.oneof(hostileString, fc.constantFrom('AWS4-HMAC-SHA256', '3600', '0', '604801', '-1', '1e3')));
  fc.assert(fc.property(fc.tuple(queryField, queryField, queryField, queryField, queryField, queryField), (values) => {
    const names = ['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-SignedHeaders', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-Expires'];
    const query = new URLSearchParams();
    values.forEach((value, i) => { if (value !== null) query.set(names[i]!, value); });
    return refusesCleanly(() => {
      const sig = parsePresignedQuery(query);
      if (!(sig.expiresSeconds! >= 1 && sig.expiresSeconds! <= 604800)) throw new Error(`expiry out of bounds: ${sig.expiresSeconds}`);
    });
  }), RUNS);
  fc.assert(fc.property(hostileString, (date) => {
    const ms = parseAmzDate(date);
    return Number.isNaN(ms) || /^\d{8}T\d{6}Z$/.test(date);
  }), RUNS);
});

t.test('SigV2 headers and query parameters parse or are refused', async (t) => {
  fc.assert(fc.property(hostileString, (value) => refusesCleanly(() => parseV2Header(`AWS ${value}`))), RUNS);
  fc.assert(fc.property(fc.option(hostileString), fc.option(hostileString), fc.option(hostileString), (id, signature, expires) => {
    const query = new URLSearchParams();
    if (id !== null) query.set('AWSAccessKeyId', id);
    if (signature !== null) query.set('Signature', signature);
    if (expires !== null) query.set('Expires', expires);
    return refusesCleanly(() => {
      const sig = parseV2Query(query);
      if (!Number.isSafeInteger(sig.expiresEpochSeconds) && sig.expiresEpochSeconds !== Infinity) throw new Error('bad expiry');
    });
  }), RUNS);
});

/** Decode `wire` fed in pieces cut at `cuts`; the decoded bytes, or the S3Error it failed with. */
async function decodeChunked(wire: Buffer, cuts: number[], signing?: ConstructorParameters<typeof AwsChunkedDecoder>[0]): Promise<Buffer | S3Error> {
  const decoder = new AwsChunkedDecoder(signing);
  const positions = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let last = 0;
  for (const p of [...positions, wire.length]) { pieces.push(wire.subarray(last, p)); last = p; }
  const out: Buffer[] = [];
  try {
    for await (const chunk of Readable.from(pieces.filter((p) => p.length > 0)).pipe(decoder)) out.push(chunk as Buffer);
  } catch (err) {
    if (err instanceof S3Error) return err;
    throw err;
  }
  return Buffer.concat(out);
}

function encodeChunked(data: Buffer, chunkSizes: number[], trailer = ''): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  for (const size of chunkSizes) {
    if (offset >= data.length) break;
    const chunk = data.subarray(offset, offset + Math.max(1, size));
    parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
    offset += chunk.length;
  }
  if (offset < data.length) {
    const rest = data.subarray(offset);
    parts.push(Buffer.from(`${rest.length.toString(16)}\r\n`), rest, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`0\r\n${trailer}\r\n`));
  return Buffer.concat(parts);
}

t.test('aws-chunked framing: well-formed bodies round-trip however the socket splits them', async (t) => {
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }),
    async (data, chunkSizes, cuts) => {
      const decoded = await decodeChunked(encodeChunked(Buffer.from(data), chunkSizes, 'x-amz-checksum-crc32:AAAAAA==\r\n'), cuts);
      return Buffer.isBuffer(decoded) && decoded.equals(Buffer.from(data));
    }), { numRuns: 200 });
});

t.test('aws-chunked framing: corrupted, truncated and hostile bodies fail with an S3 error', async (t) => {
  const wellFormed = encodeChunked(Buffer.from('hello world, hello chunks'), [5, 7]);
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 30 }) }),
  );
  await fc.assert(fc.asyncProperty(mutation, fc.array(fc.nat(), { maxLength: 6 }), async (m, cuts) => {
    const at = m.at % wellFormed.length;
    const wire = m.kind === 'truncate' ? wellFormed.subarray(0, at)
      : m.kind === 'flip' ? Buffer.concat([wellFormed.subarray(0, at), Buffer.from([m.byte]), wellFormed.subarray(at + 1)])
        : Buffer.concat([wellFormed.subarray(0, at), m.bytes, wellFormed.subarray(at)]);
    await decodeChunked(wire, cuts); // resolves with bytes or an S3Error; anything else rejects
    return true;
  }), RUNS);
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (noise) => {
    await decodeChunked(Buffer.from(noise), []);
    return true;
  }), RUNS);

  const huge = await decodeChunked(Buffer.from('ffffffffffffffff\r\nabc'), []);
  t.ok(huge instanceof S3Error, 'a 2^64-byte chunk that never arrives is an incomplete body');
  const endless = await decodeChunked(Buffer.from('1'.repeat(100_000)), []);
  t.match(endless, { code: 'IncompleteBody' }, 'a size line without end is refused, not buffered');
  t.match(await decodeChunked(Buffer.from('5\r\nabc'), []), { code: 'IncompleteBody' }, 'a truncated body');
});

t.test('aws-chunked framing: signed chunks verify; a forged chunk signature is refused', async (t) => {
  const key = Buffer.alloc(32, 1);
  const signing = { key, amzDate: '20240101T000000Z', scope: '20240101/us-east-1/s3/aws4_request', seedSignature: 'seed', accessKeyId: 'AKID' };
  const sign = (previous: string, data: Buffer) => signHex(key, chunkStringToSign(signing.amzDate, signing.scope, previous, data.length ? sha256Hex(data) : EMPTY_SHA256));
  await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 500 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 5 }), async (bytes, forge, cuts) => {
    const data = Buffer.from(bytes);
    const first = sign('seed', data);
    const last = sign(first, Buffer.alloc(0));
    const given = forge ? first.replace(/^./, (c) => (c === '0' ? '1' : '0')) : first;
    const wire = Buffer.concat([Buffer.from(`${data.length.toString(16)};chunk-signature=${given}\r\n`), data, Buffer.from(`\r\n0;chunk-signature=${last}\r\n\r\n`)]);
    const decoded = await decodeChunked(wire, cuts, signing);
    return forge ? decoded instanceof S3Error && decoded.code === 'SignatureDoesNotMatch' : Buffer.isBuffer(decoded) && decoded.equals(data);
  }), { numRuns: 100 });
});

/** XML documents shaped like S3 request bodies, then broken in random ways. */
const xmlDocument = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small' },
    hostileString.map((text) => text.replace(/[<&]/g, '')),
    fc.tuple(fc.constantFrom('Delete', 'Object', 'Key', 'VersionId', 'Quiet', 'Part', 'PartNumber', 'ETag', 'Tagging', 'TagSet', 'Tag', 'Value',
      'AccessControlPolicy', 'AccessControlList', 'Grant', 'Grantee', 'ID', 'URI', 'Permission', 'x:y', '1bad'), fc.array(tie('node'), { maxLength: 4 }))
      .map(([name, children]) => `<${name}>${(children as string[]).join('')}</${name}>`)),
})).node as fc.Arbitrary<string>;

t.test('XML request bodies: well-formed or MalformedXML, never an exception of another kind', async (t) => {
  const breakage = fc.oneof(fc.constant(''), fc.constantFrom('<', '</', '&', '&amp', '&#0;', '&#xD800;', ']]>', '<!DOCTYPE x [<!ENTITY a "b">]>', '<?xml version="1.0"?>', '\0', '\uFFFE'));
  fc.assert(fc.property(xmlDocument, breakage, fc.nat(), (document, insert, at) => {
    const position = at % (document.length + 1);
    const text = document.slice(0, position) + insert + document.slice(position);
    return refusesCleanly(() => {
      const parsed = parseXml(text, ['Object', 'Part', 'Tag', 'Grant']);
      for (const object of xmlChildren(xmlChild(parsed, 'Delete'), 'Object')) xmlText(object, 'Key');
      aclFromXml(parsed);
    }, [MalformedXmlError]);
  }), RUNS);
  t.throws(() => parseXml('<!DOCTYPE lolz [<!ENTITY lol "lol">]><Delete>&lol;</Delete>'), { message: 'not well-formed XML' }, 'DTDs (entity expansion) are refused');
  const deep = `${'<a>'.repeat(5000)}${'</a>'.repeat(5000)}`;
  t.ok(refusesCleanly(() => parseXml(deep), [MalformedXmlError]), 'deep nesting does not overflow the stack');
});

t.test('Range headers: a range inside the object, the whole object, or InvalidRange', async (t) => {
  const rangeHeader = fc.oneof(
    hostileString,
    fc.tuple(fc.option(fc.bigInt({ min: 0n, max: 10n ** 30n })), fc.option(fc.bigInt({ min: 0n, max: 10n ** 30n }))).map(([a, b]) => `bytes=${a ?? ''}-${b ?? ''}`),
    fc.constantFrom('bytes=0-0,5-6', 'bytes=-0', 'bytes=--1', 'items=0-1', 'bytes= 1-2', 'bytes=1e3-2e3', 'bytes=0x10-'),
  );
  fc.assert(fc.property(rangeHeader, fc.integer({ min: 0, max: 5 * 1024 ** 3 }), (value, size) => {
    let range;
    try {
      range = parseRange(value, size);
    } catch (err) {
      return err instanceof S3Error && err.code === 'InvalidRange';
    }
    return range === undefined || (Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.start <= range.end && range.end < size);
  }), RUNS);
});

t.test('copy sources, tagging headers, continuation tokens and bucket names', async (t) => {
  fc.assert(fc.property(hostileString, (value) => refusesCleanly(() => {
    const source = parseCopySource(value);
    if (source.bucket === '' || source.key === '') throw new Error('empty bucket or key accepted');
  })), RUNS);
  fc.assert(fc.property(hostileString, (value) => refusesCleanly(() => {
    if (Object.keys(tagsFromHeader(value)).length > 10) throw new Error('more than 10 tags accepted');
  })), RUNS);
  fc.assert(fc.property(hostileString, (value) => refusesCleanly(() => decodeToken(value))), RUNS);
  fc.assert(fc.property(fc.oneof(hostileString, fc.stringMatching(/^[a-z0-9.-]{1,70}$/)), (name) => {
    const problem = bucketNameProblem(name);
    return problem !== undefined || (/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) && !name.includes('..') && !name.includes('/'));
  }), RUNS);
});

t.test('a slow body trickling one byte at a time still decodes', async (t) => {
  const data = Buffer.from('slow and steady');
  const source = new PassThrough();
  const decoder = new AwsChunkedDecoder(undefined);
  const wire = encodeChunked(data, [4]);
  const decoded: Buffer[] = [];
  decoder.on('data', (c: Buffer) => decoded.push(c));
  const done = new Promise((resolve) => decoder.on('end', resolve));
  source.pipe(decoder);
  for (const byte of wire) { source.write(Buffer.from([byte])); await new Promise((r) => setImmediate(r)); }
  source.end();
  await done;
  t.same(Buffer.concat(decoded), data);
});

t.test('website and public-access-block configurations: parsed within the rules, or refused with an S3 error', async (t) => {
  const element = (name: string, value: fc.Arbitrary<string>) => fc.option(value.map((v) => `<${name}>${v}</${name}>`), { nil: '' });
  const word = fc.oneof(hostileString.map((s) => s.replace(/[<&]/g, '')), fc.constantFrom('index.html', 'a/b', '', '404', '301', 'https', 'true', 'false'));
  const rule = fc.tuple(element('KeyPrefixEquals', word), element('HttpErrorCodeReturnedEquals', word), element('ReplaceKeyWith', word),
    element('ReplaceKeyPrefixWith', word), element('HttpRedirectCode', word), element('Protocol', word))
    .map(([prefix, code, key, keyPrefix, redirectCode, protocol]) =>
      `<RoutingRule><Condition>${prefix}${code}</Condition><Redirect>${key}${keyPrefix}${redirectCode}${protocol}</Redirect></RoutingRule>`);
  const website = fc.tuple(element('IndexDocument', word.map((w) => `<Suffix>${w}</Suffix>`)), element('ErrorDocument', word.map((w) => `<Key>${w}</Key>`)),
    element('RedirectAllRequestsTo', word.map((w) => `<HostName>${w}</HostName>`)), fc.array(rule, { maxLength: 3 }))
    .map(([index, error, all, rules]) => `<WebsiteConfiguration>${index}${error}${all}<RoutingRules>${rules.join('')}</RoutingRules></WebsiteConfiguration>`);
  fc.assert(fc.property(website, (text) => refusesCleanly(() => {
    const parsed = parseWebsiteConfiguration(parseXml(text, ['RoutingRule']));
    if (parsed.redirectAll) return;
    if (!parsed.indexSuffix || parsed.indexSuffix.includes('/')) throw new Error(`accepted a bad index suffix: ${text}`);
    for (const r of parsed.routingRules ?? []) {
      const code = r.redirect.httpRedirectCode;
      if (code !== undefined && (code < 300 || code > 399)) throw new Error(`accepted redirect code ${code}`);
    }
    const again = parseWebsiteConfiguration(parseXml(buildXml('WebsiteConfiguration', websiteXml(parsed)), ['RoutingRule']));
    if (JSON.stringify(again) !== JSON.stringify(parsed)) throw new Error(`does not round-trip: ${text}`);
  }, [MalformedXmlError])), RUNS);

  const block = fc.array(fc.tuple(fc.constantFrom('BlockPublicAcls', 'IgnorePublicAcls', 'BlockPublicPolicy', 'RestrictPublicBuckets'), word), { maxLength: 5 })
    .map((settings) => `<PublicAccessBlockConfiguration>${settings.map(([n, v]) => `<${n}>${v}</${n}>`).join('')}</PublicAccessBlockConfiguration>`);
  fc.assert(fc.property(block, (text) => refusesCleanly(() => {
    const parsed = parsePublicAccessBlock(parseXml(text));
    if (Object.values(parsed).some((v) => typeof v !== 'boolean')) throw new Error(`not all switches are booleans: ${text}`);
  }, [MalformedXmlError])), RUNS);
});
