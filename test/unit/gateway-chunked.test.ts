// The aws-chunked decoder gets its input split wherever TCP happens to split it: the S3 reference
// example (signed chunks) and unsigned bodies with trailers must decode the same for every split.
import { Readable } from 'node:stream';
import fc from 'fast-check';
import t from 'tap';
import { AwsChunkedDecoder, type ChunkSigning } from '../../src/gateway/auth/chunked.js';
import { signingKey } from '../../src/gateway/auth/sigv4.js';
import { S3Error } from '../../src/gateway/errors.js';

/** Feed `body` to a decoder in pieces cut at `cuts`; the decoded bytes, trailers, or the S3 error code. */
async function decode(body: Buffer, cuts: number[], signing?: ChunkSigning): Promise<{ data: Buffer; trailers: Map<string, string> } | string> {
  const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let last = 0;
  for (const point of [...points, body.length]) {
    if (point > last) pieces.push(body.subarray(last, point));
    last = Math.max(last, point);
  }
  const decoder = new AwsChunkedDecoder(signing);
  const out: Buffer[] = [];
  try {
    for await (const part of Readable.from(pieces).pipe(decoder)) out.push(part as Buffer);
  } catch (err) {
    return err instanceof S3Error ? err.code : String(err);
  }
  return { data: Buffer.concat(out), trailers: decoder.trailers };
}

// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
const credential = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', date: '20130524', region: 'us-east-1', service: 's3', scope: '20130524/us-east-1/s3/aws4_request' };
const referenceSigning: ChunkSigning = {
  key: signingKey('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', credential),
  amzDate: '20130524T000000Z',
  scope: credential.scope,
  seedSignature: '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
  accessKeyId: credential.accessKeyId,
};
const frame = (data: Buffer, signature: string) => Buffer.concat([Buffer.from(`${data.length.toString(16)};chunk-signature=${signature}\r\n`), data, Buffer.from('\r\n')]);
const referenceBody = Buffer.concat([
  frame(Buffer.alloc(65536, 'a'), 'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648'),
  frame(Buffer.alloc(1024, 'a'), '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497'),
  frame(Buffer.alloc(0), 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9'),
]);

t.test('signed chunks decode identically however the input is split', async () => {
  await fc.assert(fc.asyncProperty(fc.array(fc.nat(), { maxLength: 40 }), async (cuts) => {
    const result = await decode(referenceBody, cuts, referenceSigning);
    return typeof result !== 'string' && result.data.equals(Buffer.alloc(66560, 'a'));
  }), { numRuns: 30 });
});

t.test('unsigned chunks with trailing checksums', async (t) => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 20 }),
    async (chunks, cuts) => {
      const body = Buffer.concat([
        ...chunks.filter((c) => c.length > 0).map((c) => Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')])),
        Buffer.from('0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n'),
      ]);
      const result = await decode(body, cuts);
      return typeof result !== 'string' && result.data.equals(Buffer.concat(chunks)) && result.trailers.get('x-amz-checksum-crc32') === 'AAAAAA==';
    },
  ), { numRuns: 100 });
  const truncated = Buffer.from('5\r\nhello\r\n');
  t.equal(await decode(truncated, []), 'IncompleteBody', 'a body without its final chunk is incomplete');
  t.equal(await decode(Buffer.from('5\r\nhello world\r\n0\r\n\r\n'), []), 'IncompleteBody', 'data longer than its chunk size');
  t.equal(await decode(Buffer.from('zz\r\n'), []), 'IncompleteBody', 'a chunk size that is not hex');
  t.equal(await decode(referenceBody, [], { ...referenceSigning, seedSignature: '0'.repeat(64) }), 'SignatureDoesNotMatch', 'chunks chain from the seed signature');
});
