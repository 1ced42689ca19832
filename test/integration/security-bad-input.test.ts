// Hostile bytes over a raw socket to a real cluster: malformed request lines, paths and keys,
// garbage and forged auth, broken aws-chunked framing, malformed XML bodies, bad Range headers,
// huge headers, truncated, slow and mis-sized bodies. Every request must get an answer (no hang)
// that is an S3 client error (XML body with a Code, x-amz-request-id; also for bytes that are not
// HTTP at all) — never a 5xx — and afterwards the gateway is alive, the stored objects
// are unchanged, and nothing was written outside the data directory.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { startCluster } from '../lib/cluster.js';
import { errorCode, signedRequest, signedSend } from '../lib/s3-request.js';

const cluster = await startCluster({ nodes: 3 });
t.teardown(() => cluster.stop());
const port = Number(new URL(cluster.endpoint).port);
const host = `127.0.0.1:${port}`;

interface RawReply {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/**
 * Send raw bytes (pieces written `delayMs` apart) and read until the server closes the
 * connection. Rejects if no complete answer arrives within `timeoutMs` (a hang).
 */
function rawExchange(pieces: Buffer[], options: { delayMs?: number; timeoutMs?: number; halfClose?: boolean } = {}): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer within ${options.timeoutMs ?? 15_000} ms`)); }, options.timeoutMs ?? 15_000);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => undefined); // a reset after the answer is fine; the answer is what counts
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(received).toString('latin1');
      const headerEnd = text.indexOf('\r\n\r\n');
      const lines = text.slice(0, headerEnd < 0 ? text.length : headerEnd).split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      const headers = new Map(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as [string, string]));
      resolve({ status, headers, body: headerEnd < 0 ? '' : text.slice(headerEnd + 4) });
    });
    socket.on('connect', async () => {
      for (const piece of pieces) {
        if (socket.destroyed) return;
        socket.write(piece);
        if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
      }
      if (options.halfClose) socket.end();
    });
  });
}

function requestBytes(method: string, target: string, headers: Array<[string, string]>, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = [`${method} ${target} HTTP/1.1`, `Host: ${host}`, 'Connection: close', ...headers.map(([n, v]) => `${n}: ${v}`)].join('\r\n');
  return Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), body]);
}

/** What every answer to bad input must look like. Returns a description of the violation, if any. */
function violation(reply: RawReply, method: string): string | undefined {
  if (reply.status === 0) return 'no HTTP answer';
  if (reply.status >= 500) return `server error ${reply.status}: ${reply.body.slice(0, 300)}`;
  if (reply.status < 400) return undefined;
  if (!reply.headers.has('x-amz-request-id')) return `status ${reply.status} without x-amz-request-id`;
  if (method !== 'HEAD' && !/<Error>.*<Code>[A-Za-z0-9]+<\/Code>.*<RequestId>/s.test(reply.body)) return `status ${reply.status} without an S3 error body: ${reply.body.slice(0, 200)}`;
  return undefined;
}

async function checkAnswer(t: Test, pieces: Buffer[], method: string, label: string, options?: Parameters<typeof rawExchange>[1]): Promise<RawReply> {
  const reply = await rawExchange(pieces, options);
  const problem = violation(reply, method);
  t.equal(problem, undefined, `${label}: ${reply.status} ${errorCodeOf(reply) ?? ''}`);
  return reply;
}

const errorCodeOf = (reply: RawReply) => /<Code>([^<]+)<\/Code>/.exec(reply.body)?.[1];

// ---------------------------------------------------------------- what must not change

// Text bodies: the raw replies are compared as strings.
const stored = new Map<string, string>([['plain', randomBytes(100_000).toString('hex')], ['small', 'small object'], ['dir/nested', randomBytes(500).toString('base64')]]);
t.before(async () => {
  const created = await signedSend(cluster.endpoint, cluster, { method: 'PUT', path: '/fuzz' });
  if (created.status !== 200) throw new Error(`create bucket: ${created.status}`);
  for (const [key, body] of stored) {
    const put = await signedSend(cluster.endpoint, cluster, { method: 'PUT', path: `/fuzz/${key}`, body });
    if (put.status !== 200) throw new Error(`put ${key}: ${put.status}`);
  }
});

async function assertNothingChanged(t: Test): Promise<void> {
  const gatewayPid = Number(readFileSync(join(cluster.dataDir, 'gateway.pid'), 'utf8'));
  t.doesNotThrow(() => process.kill(gatewayPid, 0), 'the gateway process is alive');
  for (const id of cluster.nodeIds) t.doesNotThrow(() => process.kill(cluster.nodePid(id), 0), `node ${id} is alive`);
  const listing = await signedSend(cluster.endpoint, cluster, { method: 'GET', path: '/fuzz?list-type=2' });
  t.same([...listing.body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]).sort(), [...stored.keys()].sort(), 'no object was added or removed');
  for (const [key, body] of stored) {
    const got = await signedSend(cluster.endpoint, cluster, { method: 'GET', path: `/fuzz/${key}` });
    t.ok(got.status === 200 && got.body === body, `${key} is unchanged`);
  }
}

// ---------------------------------------------------------------- generated hostile requests

const hostilePath = fc.oneof(
  fc.constantFrom('/', '//', '/fuzz', '/fuzz/', '/fuzz/plain', '/fuzz/../../../etc/passwd', '/fuzz/%2e%2e%2f%2e%2e%2fescape', '/fuzz/%00nul', '/fuzz/%C0%AF',
    '/fuzz/%ff%fe', '/fuzz/%', `/fuzz/${'k'.repeat(1025)}`, '/fuzz/?delete', '/fuzz/plain?uploadId=', '/fuzz/plain?partNumber=0', '/fuzz/plain?acl&tagging',
    '/FUZZ/x', '/a/x', '/fuzz/plain?versionId=%00', '/fuzz?list-type=2&max-keys=-1&continuation-token=!!', '*', 'http://evil/fuzz/x', '/fuzz/plain#frag'),
  fc.string({ maxLength: 60 }).map((s) => `/fuzz/${encodeURIComponent(s)}`),
  fc.uint8Array({ maxLength: 40 }).map((bytes) => `/fuzz/${[...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}`),
);
const hostileHeader = fc.oneof(
  fc.constantFrom<[string, string]>(
    ['Authorization', 'AWS4-HMAC-SHA256 Credential=test-access-key/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00'],
    ['Authorization', 'AWS4-HMAC-SHA256'], ['Authorization', 'AWS test-access-key:'], ['Authorization', 'Bearer x'], ['Authorization', 'AWS4-HMAC-SHA256 Credential=//////'],
    ['x-amz-date', '99999999T999999Z'], ['x-amz-content-sha256', 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'], ['x-amz-content-sha256', 'nope'],
    ['Range', 'bytes=99999999999999999999-'], ['Range', 'bytes=-0'], ['Range', 'bytes=5-1'], ['Range', 'bytes=0-1,2-3'],
    ['Content-MD5', 'not-base64'], ['x-amz-decoded-content-length', '-5'], ['Content-Encoding', 'aws-chunked'],
    ['x-amz-copy-source', '/fuzz/../plain'], ['x-amz-copy-source', '%'], ['x-amz-server-side-encryption', 'ROT13'],
    ['x-amz-server-side-encryption-customer-algorithm', 'AES256'], ['x-amz-server-side-encryption-customer-key', '!!!'],
    ['x-amz-tagging', '=&=&%'], ['x-amz-meta-a', 'x'.repeat(3000)], ['If-Match', '"'], ['If-Modified-Since', 'yesterday'], ['Expect', '100-continue'],
    ['x-amz-checksum-crc32', 'AAAA'], ['x-amz-trailer', 'x-amz-checksum-bogus'], ['x-amz-object-attributes', 'Nope'],
  ),
  fc.tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/), fc.string({ maxLength: 80 }).map((v) => v.replace(/[\r\n\0]/g, ' '))),
);

t.test('generated malformed requests get S3 client errors and change nothing', async (t) => {
  const failures: string[] = [];
  await fc.assert(fc.asyncProperty(
    fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'PATCH', 'BREW'),
    hostilePath,
    fc.array(hostileHeader, { maxLength: 5 }),
    fc.uint8Array({ maxLength: 300 }),
    async (method, path, headers, body) => {
      const withLength: Array<[string, string]> = [...headers.filter(([n]) => !/^(content-length|transfer-encoding|host|connection)$/i.test(n)), ['Content-Length', String(body.length)]];
      const reply = await rawExchange([requestBytes(method, path, withLength, Buffer.from(body))]);
      const problem = violation(reply, method);
      if (problem) failures.push(`${method} ${path} ${JSON.stringify(withLength)}: ${problem}`);
      // Anonymous requests are never allowed to write.
      return problem === undefined && !(reply.status < 300 && ['PUT', 'POST', 'DELETE'].includes(method));
    }), { numRuns: 150 });
  t.same(failures, []);
  await assertNothingChanged(t);
});

// ---------------------------------------------------------------- hand-picked cases

t.test('request lines, header blocks and sizes that are not valid HTTP', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['garbage instead of a request', Buffer.from('\x00\x01\x02 hello\r\n\r\n')],
    ['no HTTP version', Buffer.from('GET /fuzz/plain\r\n\r\n')],
    ['a header without a colon', Buffer.from(`GET /fuzz/plain HTTP/1.1\r\nHost: ${host}\r\nNoColon\r\n\r\n`)],
    ['a huge header (100 KB)', requestBytes('GET', '/fuzz/plain', [['x-amz-meta-big', 'a'.repeat(100_000)]])],
    ['3000 headers', requestBytes('GET', '/fuzz/plain', Array.from({ length: 3000 }, (_, i) => [`x-h${i}`, 'v'] as [string, string]))],
    ['a 20 KB URL', requestBytes('GET', `/fuzz/${'a'.repeat(20_000)}`, [])],
    ['conflicting Content-Length and Transfer-Encoding', requestBytes('PUT', '/fuzz/x', [['Content-Length', '5'], ['Transfer-Encoding', 'chunked']], Buffer.from('0\r\n\r\n'))],
    ['two different Content-Lengths', requestBytes('PUT', '/fuzz/x', [['Content-Length', '5'], ['Content-Length', '6']], Buffer.from('hello!'))],
    ['a negative Content-Length', requestBytes('PUT', '/fuzz/x', [['Content-Length', '-1']])],
    ['broken chunked transfer encoding', requestBytes('PUT', '/fuzz/x', [['Transfer-Encoding', 'chunked']], Buffer.from('zz\r\nhello\r\n0\r\n\r\n'))],
  ];
  for (const [label, bytes] of cases) await checkAnswer(t, [bytes], 'GET', label);
  await assertNothingChanged(t);
});

/** A signed request built by the SDK's signer, then sent raw (optionally with its body or headers changed). */
async function signedRaw(method: string, path: string, options: { body?: Buffer; payloadHash?: string; headers?: Record<string, string>; sendBody?: Buffer; extraHeaders?: Array<[string, string]> }) {
  const signed = await signedRequest(cluster.endpoint, cluster, { method, path, body: options.body, payloadHash: options.payloadHash, headers: options.headers });
  const body = options.sendBody ?? options.body ?? Buffer.alloc(0);
  const headers = Object.entries(signed.headers).filter(([n]) => !/^(host|content-length)$/i.test(n)) as Array<[string, string]>;
  const length = options.extraHeaders?.some(([n]) => n.toLowerCase() === 'content-length') ? [] : [['Content-Length', String(body.length)] as [string, string]];
  return requestBytes(method, path, [...headers, ...length, ...(options.extraHeaders ?? [])], body);
}

t.test('signed requests with broken bodies fail as S3 does, and store nothing', async (t) => {
  const body = Buffer.from('the body that was signed');
  const cases: Array<[string, Buffer, string | string[]]> = [
    ['a body that differs from the signed hash', await signedRaw('PUT', '/fuzz/new-1', { body, sendBody: Buffer.from('another body of bytes!!!') }), 'XAmzContentSHA256Mismatch'],
    ['Content-Length shorter than the body', await signedRaw('PUT', '/fuzz/new-2', { body, extraHeaders: [['Content-Length', '5']] }), ['XAmzContentSHA256Mismatch', 'InvalidRequest']],
    ['a wrong Content-MD5', await signedRaw('PUT', '/fuzz/new-3', { body, headers: { 'content-md5': createHash('md5').update('x').digest('base64') } }), 'BadDigest'],
    ['aws-chunked with a bad chunk size', await signedRaw('PUT', '/fuzz/new-4', { payloadHash: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '5' }, sendBody: Buffer.from('zz\r\nhello\r\n0\r\n\r\n') }), 'IncompleteBody'],
    ['aws-chunked shorter than declared', await signedRaw('PUT', '/fuzz/new-5', { payloadHash: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '50' }, sendBody: Buffer.from('5\r\nhello\r\n0\r\n\r\n') }), 'IncompleteBody'],
    ['aws-chunked with a forged chunk signature', await signedRaw('PUT', '/fuzz/new-6', { payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '5' }, sendBody: Buffer.from(`5;chunk-signature=${'0'.repeat(64)}\r\nhello\r\n0;chunk-signature=${'0'.repeat(64)}\r\n\r\n`) }), 'SignatureDoesNotMatch'],
    ['aws-chunked with a trailer checksum that does not match', await signedRaw('PUT', '/fuzz/new-7', { payloadHash: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '5', 'x-amz-trailer': 'x-amz-checksum-crc32' }, sendBody: Buffer.from('5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n') }), 'BadDigest'],
    ['a part number out of range', await signedRaw('PUT', '/fuzz/new-8?partNumber=10001&uploadId=x', { body }), 'InvalidArgument'],
    ['an unsatisfiable range', await signedRaw('GET', '/fuzz/small', { headers: { range: 'bytes=1000-2000' } }), 'InvalidRange'],
    ['a key longer than 1024 bytes', await signedRaw('PUT', `/fuzz/${'k'.repeat(1025)}`, { body }), 'KeyTooLongError'],
    ['an invalid UTF-8 key', await signedRaw('PUT', '/fuzz/%C0%AF', { body }), 'InvalidURI'],
    ['an invalid bucket name', await signedRaw('PUT', '/Bad_Bucket', {}), 'InvalidBucketName'],
    ['a 300-character bucket name', await signedRaw('PUT', `/${'b'.repeat(300)}`, {}), 'InvalidBucketName'],
  ];
  for (const [label, bytes, code] of cases) {
    const reply = await checkAnswer(t, [bytes], 'PUT', label);
    t.ok([code].flat().includes(errorCodeOf(reply) ?? ''), `${label}: ${[code].flat().join(' or ')}`);
  }
  await assertNothingChanged(t);
});

t.test('malformed XML bodies of DeleteObjects, CompleteMultipartUpload and configurations', async (t) => {
  const documents = [
    '', '<', '<Delete>', '<Delete><Object><Key>plain</Key></Object>', '<Delete><Object></Object></Delete>', `<Delete>${'<Object><Key>x</Key></Object>'.repeat(1001)}</Delete>`,
    '<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&e;</Key></Object></Delete>',
    `${'<a>'.repeat(3000)}${'</a>'.repeat(3000)}`, '<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>',
    '<Tagging><TagSet><Tag><Key></Key></Tag></TagSet></Tagging>', '<VersioningConfiguration><Status>Maybe</Status></VersioningConfiguration>',
    '\uFEFF<?xml version="1.0" encoding="UTF-16"?><Delete/>', '<Delete><Quiet>perhaps</Quiet></Delete>',
  ];
  const targets = ['/fuzz?delete', '/fuzz/plain?uploadId=nope', '/fuzz/plain?tagging', '/fuzz?versioning', '/fuzz?tagging', '/fuzz?acl', '/fuzz?object-lock', '/fuzz/plain?retention'];
  for (const target of targets) {
    for (const document of documents) {
      const body = Buffer.from(document);
      const method = target === '/fuzz?delete' || target.includes('uploadId') ? 'POST' : 'PUT';
      const headers = target === '/fuzz?delete' ? { 'content-md5': createHash('md5').update(body).digest('base64') } : undefined;
      const reply = await rawExchange([await signedRaw(method, target, { body, headers })]);
      const problem = violation(reply, method);
      if (problem !== undefined || reply.status < 400) t.fail(`${method} ${target} ${JSON.stringify(document.slice(0, 60))}: ${reply.status} ${problem ?? 'accepted'}`);
    }
  }
  t.pass(`${targets.length * documents.length} malformed documents refused`);
  await assertNothingChanged(t);
});

t.test('slow, truncated and abandoned bodies', async (t) => {
  const body = Buffer.from('trickled one byte at a time');
  const slow = await signedRaw('PUT', '/fuzz/slow', { body });
  const head = slow.subarray(0, slow.length - body.length);
  const reply = await rawExchange([head, ...[...body].map((b) => Buffer.from([b]))], { delayMs: 20 });
  t.equal(reply.status, 200, 'a slow but complete body is stored');
  const deleted = await signedSend(cluster.endpoint, cluster, { method: 'DELETE', path: '/fuzz/slow' });
  t.equal(deleted.status, 204);

  const truncated = await signedRaw('PUT', '/fuzz/truncated', { body: randomBytes(100_000) });
  const cut = await rawExchange([truncated.subarray(0, truncated.length - 50_000)], { halfClose: true });
  t.not(cut.status, 200, `a body cut short is not stored (${cut.status} ${errorCodeOf(cut) ?? ''})`);
  t.ok(cut.status === 0 || violation(cut, 'PUT') === undefined, 'and if answered, with an S3 client error');

  // A client that vanishes mid-body: the gateway must fail the write and carry on.
  await new Promise<void>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => { socket.write(truncated.subarray(0, 30_000)); setTimeout(() => { socket.destroy(); resolve(); }, 100); });
  });
  await new Promise((r) => setTimeout(r, 300));
  await assertNothingChanged(t);
});

t.test('keys with ../ and NUL never become paths outside the data directory', async (t) => {
  const marker = `escape-${randomBytes(6).toString('hex')}`;
  const keys = [`../../${marker}`, `../../../../../../tmp/${marker}`, `%2e%2e/%2e%2e/${marker}`, `/${marker}`, `./${marker}/.`];
  for (const key of keys) {
    const path = `/fuzz/${key.split('/').map((part) => (part.startsWith('%') || part.includes('%00') ? part : encodeURIComponent(part))).join('/')}`;
    const put = await signedSend(cluster.endpoint, cluster, { method: 'PUT', path, body: 'escape attempt' });
    t.equal(put.status, 200, `${key} is an ordinary key`);
    const got = await signedSend(cluster.endpoint, cluster, { method: 'GET', path });
    t.equal(got.body, 'escape attempt', `${key} reads back`);
    const deleted = await signedSend(cluster.endpoint, cluster, { method: 'DELETE', path });
    t.equal(deleted.status, 204);
  }
  const withNul = await signedSend(cluster.endpoint, cluster, { method: 'PUT', path: `/fuzz/${marker}%00.txt`, body: 'nul' });
  t.same([withNul.status, errorCode(withNul)], [400, 'InvalidArgument'], 'a key with NUL is refused (the metadata store separates names with NUL)');
  const parent = dirname(cluster.dataDir);
  const found = (dir: string, depth: number): string[] => (depth < 0 ? [] : readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name.includes(marker)) return [join(dir, entry.name)];
    return entry.isDirectory() && !entry.isSymbolicLink() ? found(join(dir, entry.name), depth - 1) : [];
  }));
  t.same(found(cluster.dataDir, 8), [], 'no file inside the data directory is named after a key');
  t.same(readdirSync(parent).filter((name) => name.includes(marker)), [], 'nothing next to the data directory');
  t.notOk(existsSync(`/tmp/${marker}`), 'nothing in /tmp');
  await assertNothingChanged(t);
});
