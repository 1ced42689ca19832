// The security promises of SECURITY.md, end to end on a real multi-process cluster: requests
// without valid credentials are refused (anonymous, wrongly signed, unknown key, expired
// presigned URL, a signed request replayed too late); a key reaches only the buckets it was
// granted and a bucket policy's Deny holds; a storage-node port reached without the cluster
// secret serves nothing; the S3 endpoint serves TLS (--tls-cert/--tls-key); secrets never appear
// in logs or error bodies; the data directory and key files are private.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { NodeClient } from '../../src/replication/node-client.js';
import { freePort, startCluster, tesseraMain } from '../lib/cluster.js';
import { type Credentials, errorCode, send, signedRequest, signedSend, signer } from '../lib/s3-request.js';

const execFileAsync = promisify(execFile);
const cluster = await startCluster({ nodes: 3 });
t.teardown(() => cluster.stop());
const clusterFile = JSON.parse(readFileSync(join(cluster.dataDir, 'cluster.json'), 'utf8')) as { secret: string; nodes: Array<{ id: string; address: string }> };
const root: Credentials = cluster;

async function createBucketWithObject(bucket: string, key: string, body: string): Promise<void> {
  for (const path of [`/${bucket}`, `/${bucket}/${key}`]) {
    const reply = await signedSend(cluster.endpoint, root, { method: 'PUT', path, body: path.includes(key) ? body : undefined });
    if (reply.status !== 200) throw new Error(`PUT ${path}: ${reply.status} ${reply.body}`);
  }
}

await createBucketWithObject('private', 'secret.txt', 'for the owner only');
await createBucketWithObject('shared', 'doc.txt', 'for the granted key');

/** A presigned GET URL (path and query) made by the SDK's signer. */
async function presignedPath(path: string, options: { expiresIn: number; signingDate?: Date; endpoint?: string }): Promise<string> {
  const url = new URL(`${options.endpoint ?? cluster.endpoint}${path}`);
  const presigned = await signer(root).presign({
    method: 'GET', protocol: url.protocol, hostname: url.hostname, port: Number(url.port), path: url.pathname, query: {},
    // As @aws-sdk/s3-request-presigner does: hoisted into the query as X-Amz-Content-Sha256.
    headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
  }, { expiresIn: options.expiresIn, signingDate: options.signingDate });
  return `${url.pathname}?${new URLSearchParams(presigned.query as Record<string, string>).toString()}`;
}

t.test('requests without valid credentials are refused', async (t) => {
  const anonymous = await send(cluster.endpoint, { method: 'GET', path: '/private/secret.txt', headers: {} });
  t.same([anonymous.status, errorCode(anonymous)], [403, 'AccessDenied'], 'anonymous GET');
  const anonymousPut = await send(cluster.endpoint, { method: 'PUT', path: '/private/new.txt', headers: { 'content-length': '1' }, body: 'x' });
  t.same([anonymousPut.status, errorCode(anonymousPut)], [403, 'AccessDenied'], 'anonymous PUT');
  const anonymousList = await send(cluster.endpoint, { method: 'GET', path: '/', headers: {} });
  t.equal(anonymousList.status, 403, 'anonymous ListBuckets');

  const wrongSecret = await signedSend(cluster.endpoint, { accessKeyId: root.accessKeyId, secretAccessKey: 'wrong-secret' }, { method: 'GET', path: '/private/secret.txt' });
  t.same([wrongSecret.status, errorCode(wrongSecret)], [403, 'SignatureDoesNotMatch'], 'a wrong signature');
  t.notMatch(wrongSecret.body, root.secretAccessKey, 'the error body does not reveal the secret');
  t.notMatch(wrongSecret.body, /CanonicalRequest|StringToSign/, 'nor what the right signature would cover');
  const unknownKey = await signedSend(cluster.endpoint, { accessKeyId: 'AKIDNOBODY', secretAccessKey: 'x' }, { method: 'GET', path: '/private/secret.txt' });
  t.same([unknownKey.status, errorCode(unknownKey)], [403, 'InvalidAccessKeyId'], 'an unknown access key');

  const fresh = await send(cluster.endpoint, { method: 'GET', path: await presignedPath('/private/secret.txt', { expiresIn: 60 }), headers: {} });
  t.same([fresh.status, fresh.body], [200, 'for the owner only'], 'a valid presigned URL works');
  const expired = await send(cluster.endpoint, { method: 'GET', path: await presignedPath('/private/secret.txt', { expiresIn: 60, signingDate: new Date(Date.now() - 120_000) }), headers: {} });
  t.same([expired.status, errorCode(expired)], [403, 'AccessDenied'], 'an expired presigned URL');
  const tampered = (await presignedPath('/private/secret.txt', { expiresIn: 60 })).replace('secret.txt', 'other.txt');
  t.equal((await send(cluster.endpoint, { method: 'GET', path: tampered, headers: {} })).status, 403, 'a presigned URL pointed elsewhere');

  // A captured request replayed after the skew window: its signature is valid, its date is not.
  const captured = await signedRequest(cluster.endpoint, root, { method: 'GET', path: '/private/secret.txt', signingDate: new Date(Date.now() - 20 * 60_000) });
  const replayed = await send(cluster.endpoint, { method: 'GET', path: captured.path, headers: captured.headers });
  t.same([replayed.status, errorCode(replayed)], [403, 'RequestTimeTooSkewed'], 'a signed request replayed 20 minutes later');
});

t.test('a key reaches only the buckets it was granted; a policy Deny holds', async (t) => {
  const created = await cluster.tessera(['admin', '--data', cluster.dataDir, 'key', 'create', '--name', 'reader', '--json']);
  t.equal(created.code, 0, created.stderr);
  const reader = JSON.parse(created.stdout) as Credentials;
  const allowed = await cluster.tessera(['admin', '--data', cluster.dataDir, 'key', 'allow', reader.accessKeyId, '--bucket', 'shared', '--access', 'read']);
  t.equal(allowed.code, 0, allowed.stderr);
  await new Promise((r) => setTimeout(r, 5500)); // the gateway caches key records for 5 s

  const read = await signedSend(cluster.endpoint, reader, { method: 'GET', path: '/shared/doc.txt' });
  t.same([read.status, read.body], [200, 'for the granted key'], 'reads the granted bucket');
  const write = await signedSend(cluster.endpoint, reader, { method: 'PUT', path: '/shared/new.txt', body: 'x' });
  t.same([write.status, errorCode(write)], [403, 'AccessDenied'], 'read access does not write');
  for (const [method, path] of [['GET', '/private/secret.txt'], ['GET', '/private?list-type=2'], ['PUT', '/private/x'], ['DELETE', '/private/secret.txt'], ['GET', '/private?policy']]) {
    const reply = await signedSend(cluster.endpoint, reader, { method, path, body: method === 'PUT' ? 'x' : undefined });
    t.same([reply.status, errorCode(reply)], [403, 'AccessDenied'], `${method} ${path} in a bucket not granted`);
  }

  const policy = JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Deny', Principal: { AWS: [reader.accessKeyId] }, Action: 's3:GetObject', Resource: 'arn:aws:s3:::shared/doc.txt' }],
  });
  const put = await signedSend(cluster.endpoint, root, { method: 'PUT', path: '/shared?policy', body: policy });
  t.equal(put.status, 204, `PutBucketPolicy: ${put.body}`);
  const denied = await signedSend(cluster.endpoint, reader, { method: 'GET', path: '/shared/doc.txt' });
  t.same([denied.status, errorCode(denied)], [403, 'AccessDenied'], 'an explicit Deny beats the key grant');
});

/** The StoreError kind a call failed with ('succeeded' if it did not fail). */
async function failureKind(call: Promise<unknown>): Promise<string> {
  return call.then(() => 'succeeded', (err: { kind?: string }) => err.kind ?? String(err));
}

t.test('storage-node ports serve nothing without the cluster secret', async (t) => {
  for (const node of clusterFile.nodes) {
    const impostor = new NodeClient(node.id, node.address, 'not-the-cluster-secret');
    t.equal(await failureKind(impostor.getRecord({ namespace: 'keys', key: root.accessKeyId })), 'Unauthenticated', `${node.id}: records`);
    t.equal(await failureKind(impostor.getClusterMap()), 'Unauthenticated', `${node.id}: cluster map`);
    t.equal(await failureKind(impostor.setClusterMap({ epoch: 1_000_000 })), 'Unauthenticated', `${node.id}: cluster map change`);
    impostor.close();
  }
  const member = new NodeClient(clusterFile.nodes[0]!.id, clusterFile.nodes[0]!.address, clusterFile.secret);
  t.ok(Number((await member.getClusterMap()).epoch) < 1_000_000, 'the refused map change did nothing');
  member.close();
});

/** A second gateway on the cluster, as its own process, with TLS and captured (debug-level) logs. */
async function startTlsGateway(t: Test, workDir: string, sseMasterKey: string): Promise<{ endpoint: string; logs: () => string }> {
  const cert = join(workDir, 'cert.pem');
  const key = join(workDir, 'key.pem');
  await execFileAsync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-days', '1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [tesseraMain, 'gateway', '--seeds', clusterFile.nodes.map((n) => n.address).join(','),
    '--host', '127.0.0.1', '--port', String(port), '--tls-cert', cert, '--tls-key', key], {
    env: {
      ...process.env, TESSERA_CLUSTER_SECRET: clusterFile.secret, TESSERA_ACCESS_KEY: root.accessKeyId, TESSERA_SECRET_KEY: root.secretAccessKey,
      TESSERA_LOG_LEVEL: 'debug', TESSERA_SSE_MASTER_KEY: sseMasterKey,
    },
  });
  t.teardown(() => { child.kill('SIGKILL'); });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => { output += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { output += c.toString(); });
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => { if (output.includes('tessera gateway ready')) { clearInterval(poll); resolve(); } }, 50);
    child.once('exit', (code) => { clearInterval(poll); reject(new Error(`gateway exited (${code}): ${output}`)); });
  });
  return { endpoint: `https://127.0.0.1:${port}`, logs: () => output };
}

t.test('TLS on the S3 endpoint; secrets stay out of logs and error bodies', async (t) => {
  const workDir = mkdtempSync(join(tmpdir(), 'tessera-security-'));
  t.teardown(() => rmSync(workDir, { recursive: true, force: true }));
  const sseMasterKey = randomBytes(32).toString('hex');
  const gateway = await startTlsGateway(t, workDir, sseMasterKey);

  const overTls = await signedSend(gateway.endpoint, root, { method: 'GET', path: '/private/secret.txt' });
  t.same([overTls.status, overTls.body], [200, 'for the owner only'], 'HTTPS works');
  const plainHttp = await send(gateway.endpoint.replace('https:', 'http:'), { method: 'GET', path: '/private/secret.txt', headers: {} }).then((r) => r.body, () => 'no answer');
  t.notMatch(plainHttp, 'for the owner only', 'plain HTTP on the TLS port gets no object');

  const customerKey = randomBytes(32);
  const sseHeaders = {
    'x-amz-server-side-encryption-customer-algorithm': 'AES256',
    'x-amz-server-side-encryption-customer-key': customerKey.toString('base64'),
    'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(customerKey).digest('base64'),
  };
  t.equal((await signedSend(gateway.endpoint, root, { method: 'PUT', path: '/private/sse-c.txt', body: 'customer encrypted', headers: sseHeaders })).status, 200, 'SSE-C over TLS');
  const otherKey = randomBytes(32);
  const wrongKey = await signedSend(gateway.endpoint, root, { method: 'GET', path: '/private/sse-c.txt', headers: { ...sseHeaders, 'x-amz-server-side-encryption-customer-key': otherKey.toString('base64'), 'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(otherKey).digest('base64') } });
  t.same([wrongKey.status, errorCode(wrongKey)], [403, 'AccessDenied'], 'another customer key is refused');
  t.notMatch(wrongKey.body, otherKey.toString('base64'), 'and not echoed in the error');
  t.equal((await signedSend(gateway.endpoint, root, { method: 'PUT', path: '/private/sse-s3.txt', body: 'gateway encrypted', headers: { 'x-amz-server-side-encryption': 'AES256' } })).status, 200, 'SSE-S3 with the configured master key');
  await signedSend(gateway.endpoint, { accessKeyId: root.accessKeyId, secretAccessKey: 'wrong' }, { method: 'GET', path: '/private/secret.txt' });
  const presigned = await presignedPath('/private/secret.txt', { expiresIn: 60, endpoint: gateway.endpoint });
  t.equal((await send(gateway.endpoint, { method: 'GET', path: presigned, headers: {} })).status, 200, 'a presigned URL over TLS');
  const failing = await send(gateway.endpoint, { method: 'GET', path: `${presigned}&x-id=tampered`, headers: {} });
  t.equal(failing.status, 403, 'a tampered presigned URL (logged as a failure)');
  await new Promise((r) => setTimeout(r, 200));

  const logs = gateway.logs();
  t.ok(logs.length > 0, 'the gateway logged the requests');
  const presignSignature = new URLSearchParams(presigned.split('?')[1]).get('X-Amz-Signature')!;
  const secrets: Array<[string, string]> = [
    ['the S3 secret key', root.secretAccessKey], ['the cluster secret', clusterFile.secret], ['the SSE master key', sseMasterKey],
    ['the SSE-C key', customerKey.toString('base64')], ['a presigned URL signature', presignSignature],
  ];
  for (const [what, secret] of secrets) t.notOk(logs.includes(secret), `${what} is not in the log`);
});

t.test('the data directory and key files are private', async (t) => {
  t.equal(statSync(join(cluster.dataDir, 'cluster.json')).mode & 0o077, 0, 'cluster.json (the cluster secret) is 0600');
  t.equal(statSync(join(cluster.dataDir, 'sse-master.key')).mode & 0o777, 0o600, 'the generated SSE master key is 0600');
  for (const id of cluster.nodeIds) t.equal(statSync(join(cluster.dataDir, id)).mode & 0o077, 0, `node ${id}'s data directory is 0700`);
});
