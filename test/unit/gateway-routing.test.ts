// Gateway request shaping without a store: addressing, operation selection, ranges,
// conditional requests, XML and checksums.
import fc from 'fast-check';
import t from 'tap';
import { createChecksum } from '../../src/gateway/checksums.js';
import { S3Error } from '../../src/gateway/errors.js';
import { ALL_OPERATIONS } from '../../src/gateway/ops/index.js';
import { evaluateConditions, parseRange } from '../../src/gateway/ops/get.js';
import { OperationTable, resolveAddress } from '../../src/gateway/router.js';
import { buildXml, parseXml, xmlChild, xmlChildren, xmlText } from '../../src/gateway/xml.js';

const s3Code = (fn: () => unknown) => {
  try {
    fn();
    return 'none';
  } catch (err) {
    return err instanceof S3Error ? err.code : String(err);
  }
};

t.test('path-style and virtual-hosted-style addressing keep key bytes', async (t) => {
  const a = resolveAddress('/bucket/a//b/../c/?list-type=2', 'localhost:9000');
  t.equal(a.bucket, 'bucket');
  t.equal(a.key, 'a//b/../c/', "'//', '..' and a trailing slash are part of the key");
  t.equal(a.query.get('list-type'), '2');
  t.equal(resolveAddress('/bucket/%2Fx%20y%25', undefined).key, '/x y%', 'percent-decoded exactly once');
  t.equal(resolveAddress('/bucket/', undefined).key, undefined, 'a bucket with a trailing slash is the bucket');
  t.equal(resolveAddress('/', undefined).bucket, undefined);
  const v = resolveAddress('/photos/2024/cat.jpg', 'my-bucket.s3.example.com:9000', 's3.example.com');
  t.same([v.bucket, v.key, v.virtualHosted], ['my-bucket', 'photos/2024/cat.jpg', true]);
  t.equal(resolveAddress('/', 'my-bucket.s3.example.com', 's3.example.com').key, undefined);
  t.equal(resolveAddress('/b/k', 's3.example.com', 's3.example.com').bucket, 'b', 'the base domain itself is path-style');
  t.equal(s3Code(() => resolveAddress('/b/%E0%A4%A', undefined)), 'InvalidURI');
  t.equal(s3Code(() => resolveAddress(`/b/${'k'.repeat(1025)}`, undefined)), 'KeyTooLongError');
});

t.test('operations are chosen by method, scope and sub-resource', async (t) => {
  const table = new OperationTable().register(ALL_OPERATIONS);
  const noHeaders = () => undefined;
  const pick = (method: string, url: string) => table.select(method, resolveAddress(url, undefined), noHeaders).name;
  t.equal(pick('GET', '/'), 'ListBuckets');
  t.equal(pick('PUT', '/b'), 'CreateBucket');
  t.equal(pick('GET', '/b?list-type=2&prefix=x'), 'ListObjectsV2');
  t.equal(pick('GET', '/b?prefix=x'), 'ListObjects');
  t.equal(pick('GET', '/b?versions'), 'ListObjectVersions');
  t.equal(pick('GET', '/b?location'), 'GetBucketLocation');
  t.equal(pick('POST', '/b?delete'), 'DeleteObjects');
  t.equal(pick('GET', '/b/k?versionId=3&partNumber=1'), 'GetObject');
  t.equal(pick('HEAD', '/b/k'), 'HeadObject');
  t.equal(pick('PUT', '/b/k'), 'PutObject');
  t.equal(pick('DELETE', '/b/k'), 'DeleteObject');
  t.equal(s3Code(() => pick('GET', '/b/k?torrent')), 'NotImplemented', 'an unserved sub-resource is NotImplemented, not a GetObject');
  t.equal(s3Code(() => pick('POST', '/b/k')), 'MethodNotAllowed');
  t.equal(s3Code(() => pick('DELETE', '/')), 'MethodNotAllowed');
  t.throws(() => new OperationTable().register([...ALL_OPERATIONS, ALL_OPERATIONS[0]!]), /same request shape/, 'ambiguous registrations are refused');
});

t.test('Range headers', async (t) => {
  t.same(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
  t.same(parseRange('bytes=90-', 100), { start: 90, end: 99 });
  t.same(parseRange('bytes=-10', 100), { start: 90, end: 99 });
  t.same(parseRange('bytes=-500', 100), { start: 0, end: 99 }, 'a suffix longer than the object is the object');
  t.same(parseRange('bytes=50-1000', 100), { start: 50, end: 99 }, 'the end is clamped');
  t.equal(parseRange(undefined, 100), undefined);
  t.equal(parseRange('bytes=5-1', 100), undefined, 'an invalid range is ignored');
  t.equal(parseRange('bytes=0-1,5-6', 100), undefined, 'multiple ranges are not served');
  t.equal(parseRange('items=0-1', 100), undefined);
  let error: unknown;
  try { parseRange('bytes=100-', 100); } catch (err) { error = err; }
  t.ok(error instanceof S3Error && error.code === 'InvalidRange' && error.status === 416 && error.headers['content-range'] === 'bytes */100');
  t.equal(s3Code(() => parseRange('bytes=-0', 100)), 'InvalidRange');
  t.equal(s3Code(() => parseRange('bytes=0-', 0)), 'InvalidRange');
  fc.assert(fc.property(fc.nat(10_000), fc.nat(10_000), fc.integer({ min: 1, max: 10_000 }), (a, b, size) => {
    const start = Math.min(a, b);
    const end = Math.max(a, b);
    if (start >= size) return s3Code(() => parseRange(`bytes=${start}-${end}`, size)) === 'InvalidRange';
    const range = parseRange(`bytes=${start}-${end}`, size)!;
    return range.start === start && range.end === Math.min(end, size - 1);
  }));
});

t.test('conditional GET follows S3 precedence', async (t) => {
  const version = { etag: '"abc"', lastModifiedMs: Date.UTC(2024, 0, 10, 12, 0, 0, 500) };
  const at = (ms: number) => new Date(ms).toUTCString();
  const evaluate = (headers: Record<string, string>) => evaluateConditions((name) => headers[name], version);
  t.equal(evaluate({}), 'ok');
  t.equal(evaluate({ 'if-match': '"abc"' }), 'ok');
  t.equal(evaluate({ 'if-match': '"other"' }), 'failed');
  t.equal(evaluate({ 'if-match': '*' }), 'ok');
  t.equal(evaluate({ 'if-none-match': '"abc"' }), 'not-modified');
  t.equal(evaluate({ 'if-none-match': 'W/"abc", "x"' }), 'not-modified');
  t.equal(evaluate({ 'if-modified-since': at(Date.UTC(2024, 0, 10, 12, 0, 0)) }), 'not-modified', 'same second is not modified');
  t.equal(evaluate({ 'if-modified-since': at(Date.UTC(2024, 0, 9)) }), 'ok');
  t.equal(evaluate({ 'if-unmodified-since': at(Date.UTC(2024, 0, 9)) }), 'failed');
  t.equal(evaluate({ 'if-match': '"abc"', 'if-unmodified-since': at(Date.UTC(2024, 0, 9)) }), 'ok', 'If-Match true overrides If-Unmodified-Since');
  t.equal(evaluate({ 'if-none-match': '"zzz"', 'if-modified-since': at(Date.UTC(2024, 1, 1)) }), 'ok', 'If-None-Match false overrides If-Modified-Since');
  t.equal(evaluate({ 'if-match': '"nope"', 'if-none-match': '"abc"' }), 'failed', '412 before 304');
  t.equal(evaluate({ 'if-modified-since': 'garbage' }), 'ok', 'invalid dates are ignored');
});

t.test('XML in and out', async (t) => {
  const xml = buildXml('Result', { Key: 'a<b>&"c"', Items: { Item: ['1', '2'] }, Flag: true, Missing: undefined, When: new Date(0) });
  t.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<Result xmlns="http:\/\/s3.amazonaws.com\/doc\/2006-03-01\/">/);
  t.match(xml, /<Key>a&lt;b&gt;&amp;(&quot;|")c(&quot;|")<\/Key>/);
  t.match(xml, /<Item>1<\/Item><Item>2<\/Item>/);
  t.match(xml, /<Flag>true<\/Flag>/);
  t.notMatch(xml, /Missing/);
  t.match(xml, /<When>1970-01-01T00:00:00.000Z<\/When>/);

  const parsed = parseXml(`<?xml version="1.0"?>\n<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\n  <Quiet>true</Quiet>\n  <Object><Key> spaced key </Key></Object>\n  <Object><Key>a&amp;b</Key><VersionId>v1</VersionId></Object>\n</Delete>`, ['Object']);
  const root = xmlChild(parsed, 'Delete');
  t.equal(xmlText(root, 'Quiet'), 'true');
  t.same(xmlChildren(root, 'Object').map((o) => [xmlText(o, 'Key'), xmlText(o, 'VersionId')]), [[' spaced key ', undefined], ['a&b', 'v1']]);
  t.equal(xmlChildren(xmlChild(parseXml('<Delete><Object><Key>k</Key></Object></Delete>', ['Object']), 'Delete'), 'Object').length, 1, 'one element still reads as a list');
  for (const bad of ['', '<Delete><Object></Delete>', 'not xml', '<!DOCTYPE x [<!ENTITY a "b">]><Delete>&a;</Delete>']) {
    t.throws(() => parseXml(bad), `refused: ${JSON.stringify(bad).slice(0, 40)}`);
  }
});

t.test('checksums match the published check values', async (t) => {
  const check = Buffer.from('123456789');
  const hex = (algorithm: Parameters<typeof createChecksum>[0], parts: Buffer[]) => {
    const checksum = createChecksum(algorithm);
    for (const part of parts) checksum.update(part);
    return Buffer.from(checksum.digest(), 'base64').toString('hex');
  };
  t.equal(hex('CRC32', [check]), 'cbf43926');
  t.equal(hex('CRC32C', [check]), 'e3069283');
  t.equal(hex('CRC64NVME', [check]), 'ae8b14860a799888');
  const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff));
  for (const algorithm of ['CRC32C', 'CRC64NVME'] as const) {
    t.equal(hex(algorithm, [data.subarray(0, 13), data.subarray(13, 500), data.subarray(500)]), hex(algorithm, [data]), `${algorithm} is independent of how the data is split`);
  }
});
