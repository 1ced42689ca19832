// `npm run bench -- client-cost [--requests N]`: what one S3 request costs the client in CPU, the
// bench's lean client (lean SigV4 over undici) against the AWS SDK v3, for signing alone and for
// whole 4 KiB PUTs against the null server (a separate process, so its CPU is not counted).
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { flag, parseArgs } from '../../src/cli/args.js';
import { ContentGenerator } from '../lib/content.js';
import { LeanS3Client } from '../lib/s3-client.js';
import { encodePath, SigV4Signer, UNSIGNED_PAYLOAD } from '../lib/sigv4.js';
import { NodeSha256 } from '../lib/smithy-hash.js';
import { startTarget } from '../lib/targets.js';

const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const CONCURRENCY = 16;
const BODY_BYTES = 4096;

/** CPU microseconds per call, `CONCURRENCY` calls in flight. */
async function cpuMicrosPerCall(requests: number, call: (i: number) => Promise<unknown> | unknown): Promise<number> {
  const before = process.cpuUsage();
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    for (let i = next++; i < requests; i = next++) await call(i);
  }));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / requests;
}

async function signing(requests: number): Promise<[number, number]> {
  const headers = (i: number) => ({ host: '127.0.0.1:9000', 'content-length': String(BODY_BYTES), 'x-amz-meta-bench-seed': `seed${i}` });
  const lean = new SigV4Signer(credentials);
  const sdk = new SignatureV4({ credentials, region: 'us-east-1', service: 's3', sha256: NodeSha256, uriEscapePath: false });
  const leanSign = (i: number) => lean.sign({ method: 'PUT', path: encodePath(`/bucket/bench/0/${i}`), headers: headers(i) });
  const sdkSign = (i: number) => sdk.sign({
    method: 'PUT', protocol: 'http:', hostname: '127.0.0.1', port: 9000, path: `/bucket/bench/0/${i}`, query: {},
    headers: { ...headers(i), 'x-amz-content-sha256': UNSIGNED_PAYLOAD },
  });
  await cpuMicrosPerCall(2000, leanSign);
  await cpuMicrosPerCall(2000, sdkSign);
  return [await cpuMicrosPerCall(requests, leanSign), await cpuMicrosPerCall(requests, sdkSign)];
}

async function wholePuts(requests: number): Promise<[number, number]> {
  const server = await startTarget('null', { nodes: 0, ec: '', cpuProfile: false });
  try {
    const target = { endpoint: server.endpoint, bucket: 'client-cost', region: 'us-east-1', credentials: server.credentials };
    const content = new ContentGenerator('client-cost');
    const lean = new LeanS3Client(target, CONCURRENCY);
    await lean.createBucket();
    const sdk = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', credentials: server.credentials, forcePathStyle: true });
    const body = content.bytes('k', 0, BODY_BYTES);
    const leanPut = (i: number) => lean.putObject(`lean/${i}`, BODY_BYTES, content);
    const sdkPut = (i: number) => sdk.send(new PutObjectCommand({ Bucket: target.bucket, Key: `sdk/${i}`, Body: body, ContentLength: BODY_BYTES }));
    await cpuMicrosPerCall(500, leanPut);
    await cpuMicrosPerCall(500, sdkPut);
    const result: [number, number] = [await cpuMicrosPerCall(requests, leanPut), await cpuMicrosPerCall(requests, sdkPut)];
    await lean.close();
    sdk.destroy();
    return result;
  } finally {
    await server.stop();
  }
}

export async function run(argv: string[]): Promise<number> {
  const requests = Number(flag(parseArgs(argv), 'requests') ?? 5000);
  const [leanSign, sdkSign] = await signing(requests * 4);
  const [leanPut, sdkPut] = await wholePuts(requests);
  const row = (what: string, lean: number, sdk: number) =>
    `  ${what.padEnd(28)} lean ${lean.toFixed(1).padStart(7)} µs   AWS SDK v3 ${sdk.toFixed(1).padStart(7)} µs   (${(sdk / lean).toFixed(1)}x)\n`;
  process.stdout.write(`client CPU per request, ${CONCURRENCY} in flight:\n` +
    row('SigV4 signing', leanSign, sdkSign) + row('4 KiB PUT to the null server', leanPut, sdkPut));
  return 0;
}
