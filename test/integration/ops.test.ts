// Operating a real three-node cluster (2+1): Prometheus metrics and health on the S3 port without
// S3 credentials (and behind a bearer token when asked), cluster status with real backups per disk,
// `tessera admin status` as a table and as JSON, JSON logs carrying the S3 request id and no
// secret, and readiness following the write quorum as nodes die.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import t from 'tap';
import type { ClusterStatus } from '../../src/gateway/admin/status.js';
import { freePort, runTessera, startCluster, tesseraMain } from '../lib/cluster.js';

const TOKEN = 'scrape-token-0123';
const cluster = await startCluster({ nodes: 3, ec: '2+1' });
t.teardown(() => cluster.stop());
const clusterFile = JSON.parse(readFileSync(join(cluster.dataDir, 'cluster.json'), 'utf8')) as { secret: string; nodes: Array<{ address: string }> };

/** A second gateway on the same cluster, with a metrics token and debug logs we can read. */
async function startGateway(): Promise<{ endpoint: string; process: ChildProcess; logs: () => string[] }> {
  const port = await freePort();
  const child = spawn(process.execPath, [tesseraMain, 'gateway', '--seeds', clusterFile.nodes.map((n) => n.address).join(','),
    '--host', '127.0.0.1', '--port', String(port), '--log-level', 'debug', '--metrics-token', TOKEN], {
    env: { ...process.env, TESSERA_CLUSTER_SECRET: clusterFile.secret, TESSERA_ACCESS_KEY: cluster.accessKeyId, TESSERA_SECRET_KEY: cluster.secretAccessKey },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('ready')) resolve(); });
    child.once('exit', (code) => reject(new Error(`gateway exited (${code}): ${stderr}`)));
  });
  return { endpoint: `http://127.0.0.1:${port}`, process: child, logs: () => stderr.split('\n').filter(Boolean) };
}

const gateway = await startGateway();
t.teardown(() => { gateway.process.kill('SIGKILL'); });
const s3 = new S3Client({
  endpoint: gateway.endpoint, region: cluster.region, forcePathStyle: true, maxAttempts: 1,
  credentials: { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey },
});
t.teardown(() => s3.destroy());

const get = (url: string, headers: Record<string, string> = {}) => fetch(url, { headers });
const bearer = { authorization: `Bearer ${TOKEN}` };

/** One sample of a metric from Prometheus text, matched by name and every given label. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

const body = Buffer.alloc(200 * 1024, 7);
await s3.send(new CreateBucketCommand({ Bucket: 'ops' }));
const put = await s3.send(new PutObjectCommand({ Bucket: 'ops', Key: 'object', Body: body }));
const got = await s3.send(new GetObjectCommand({ Bucket: 'ops', Key: 'object' }));
await got.Body!.transformToByteArray();
// Two real backups of a small disk image by the backup agent, through the first gateway (so the
// second one's S3 counters stay exact), each leaving its outcome for node_exporter.
const workDir = mkdtempSync(join(tmpdir(), 'tessera-ops-'));
t.teardown(() => rmSync(workDir, { recursive: true, force: true }));
const image = join(workDir, 'web-1.raw');
const backupMetrics = join(workDir, 'tessera-backup-web-1.prom');
await s3.send(new CreateBucketCommand({ Bucket: 'vm-backups' }));
for (const fill of [1, 2]) {
  writeFileSync(image, Buffer.alloc(1024 * 1024, fill));
  const result = await runTessera(['backup', '--bucket', 'vm-backups', '--disk', 'web-1', '--endpoint', cluster.endpoint,
    '--metrics-file', backupMetrics, image], cluster.clientEnv);
  if (result.code !== 0) throw new Error(`backup failed: ${result.stderr}`);
}
const snapshotIds = (await (await fetch(`${cluster.endpoint}/_tessera/status`)).json() as ClusterStatus).backups[0]?.snapshots.map((s) => s.id);

t.test('metrics answer on the S3 port without S3 credentials; a token guards them when set', async (t) => {
  const open = await get(`${cluster.endpoint}/_tessera/metrics`);
  t.equal(open.status, 200, 'no credentials needed by default');
  t.match(open.headers.get('content-type'), /text\/plain/);
  t.equal((await get(`${gateway.endpoint}/_tessera/metrics`)).status, 401, 'with --metrics-token a scrape without it is refused');
  t.equal((await get(`${gateway.endpoint}/_tessera/metrics`, { authorization: 'Bearer wrong' })).status, 401);
  const text = await (await get(`${gateway.endpoint}/_tessera/metrics`, bearer)).text();
  t.equal(sample(text, 'tessera_s3_requests_total', { operation: 'PutObject', status: '200' }), 1, 'PUTs counted by operation and status');
  t.equal(sample(text, 'tessera_s3_requests_total', { operation: 'GetObject', status: '200' }), 1);
  t.equal(sample(text, 'tessera_s3_request_duration_seconds_count', { operation: 'PutObject' }), 1, 'latency histogram per operation');
  t.ok(sample(text, 'tessera_s3_received_bytes_total', { operation: 'PutObject' })! >= body.length, 'bytes in');
  t.equal(sample(text, 'tessera_s3_sent_bytes_total', { operation: 'GetObject' }), body.length, 'bytes out');
  for (const id of cluster.nodeIds) {
    t.equal(sample(text, 'tessera_node_up', { node: id }), 1, `${id} up`);
    t.ok(sample(text, 'tessera_node_capacity_bytes', { node: id })! > 0, `${id} disk capacity`);
  }
  t.equal(sample(text, 'tessera_cluster_write_quorum_reachable'), 1);
  t.equal(sample(text, 'tessera_heal_queue_pending'), 0);
  t.equal(sample(text, 'tessera_backup_snapshots', { bucket: 'vm-backups', disk: 'web-1' }), 2, 'snapshots per backed-up disk');
  const newest = sample(text, 'tessera_backup_last_snapshot_timestamp_seconds', { disk: 'web-1' })!;
  t.ok(Math.abs(newest * 1000 - Date.now()) < 10 * 60_000, 'the newest snapshot is minutes old');
  t.notMatch(text, /tessera_s3_requests_total\{operation="Unrouted"/, 'admin paths are not counted as S3 requests');
});

t.test('liveness, readiness and the reserved prefix', async (t) => {
  t.equal((await get(`${gateway.endpoint}/_tessera/health/live`)).status, 200);
  const ready = await get(`${gateway.endpoint}/_tessera/health/ready`);
  t.equal(ready.status, 200, 'ready with every node up');
  t.same(await ready.json(), { status: 'ready' });
  const unknown = await get(`${gateway.endpoint}/_tessera/anything`);
  t.equal(unknown.status, 404, 'unknown admin paths are never S3 requests');
  t.match(unknown.headers.get('content-type'), /json/);
});

t.test('cluster status: nodes, erasure, objects, backups per disk', async (t) => {
  t.equal((await get(`${gateway.endpoint}/_tessera/status`)).status, 401, 'status is guarded like metrics');
  const status = await (await get(`${gateway.endpoint}/_tessera/status`, bearer)).json() as ClusterStatus;
  t.same(status.erasure, { dataShards: 2, parityShards: 1, writeQuorum: 2 });
  t.same(status.nodes.map((n) => [n.id, n.state, n.reachable]), cluster.nodeIds.map((id) => [id, 'up', true]));
  t.ok(status.nodes.every((n) => n.lastHeartbeatMs! > Date.now() - 60_000), 'recent heartbeats');
  t.ok(status.totals.objects >= 4, 'the object and the backup repository\'s objects are counted');
  t.ok(status.totals.rawUsedBytes >= body.length * 1.5, 'raw bytes include parity');
  t.same(status.heal && { pending: status.heal.pending, failed: status.heal.failed }, { pending: 0, failed: 0 });
  t.same(status.backups.map((b) => [b.bucket, b.disk, b.snapshots.length]), [['vm-backups', 'web-1', 2]], 'both snapshots of the disk');
  t.ok(snapshotIds![0]! < snapshotIds![1]!, 'oldest first');
  t.ok(status.usageHistory.length >= 1 && status.usageHistory.every((s) => s.capacityBytes > 0), 'usage history is sampled');
});

t.test('tessera admin status: a table for people, JSON for scripts', async (t) => {
  const table = await runTessera(['admin', 'status', '--endpoint', gateway.endpoint, '--token', TOKEN]);
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, /erasure 2\+1 \(write quorum 2\), 3 of 3 nodes answering/);
  t.match(table.stdout, /NODE\s+STATE\s+ZONE\s+WEIGHT\s+ADDRESS\s+USED\s+FREE\s+CAPACITY\s+SHARDS\s+HEARTBEAT/);
  for (const id of cluster.nodeIds) t.match(table.stdout, new RegExp(`^${id}\\s+up\\s`, 'm'));
  t.match(table.stdout, /heal: 0 pending/);
  t.match(table.stdout, new RegExp(`vm-backups\\s+web-1\\s+2\\s+${snapshotIds![1]}\\s+\\d+[smh] ago`));

  const json = await runTessera(['admin', 'status', '--endpoint', gateway.endpoint, '--json'], { TESSERA_METRICS_TOKEN: TOKEN });
  t.equal((JSON.parse(json.stdout) as ClusterStatus).nodes.length, 3, '--json prints the status document');

  const refused = await runTessera(['admin', 'status', '--endpoint', gateway.endpoint]);
  t.not(refused.code, 0);
  t.match(refused.stderr, /bearer token/, 'a missing token is named');

  const direct = await cluster.tessera(['admin', '--data', cluster.dataDir, 'status']);
  t.equal(direct.code, 0, direct.stderr);
  t.match(direct.stdout, /3 of 3 nodes answering/, 'works from the nodes alone');
  t.match(direct.stdout, /heal: n\/a/, 'and says where heal progress lives');
});

t.test('the backup agent leaves its outcome for node_exporter', async (t) => {
  const text = readFileSync(backupMetrics, 'utf8');
  const labels = { bucket: 'vm-backups', disk: 'web-1' };
  t.equal(sample(text, 'tessera_backup_last_read_bytes', labels), 1024 * 1024, 'bytes read from the disk');
  t.ok(sample(text, 'tessera_backup_last_uploaded_bytes', labels)! > 0, 'bytes uploaded');
  t.ok(sample(text, 'tessera_backup_last_duration_seconds', labels)! > 0, 'duration');
  t.ok(sample(text, 'tessera_backup_last_success_timestamp_seconds', labels)! * 1000 > Date.now() - 10 * 60_000, 'when');
});

t.test('console sign-in takes JSON only and stops guessing after ten failures', async (t) => {
  const login = (secretAccessKey: string, contentType = 'application/json') => fetch(`${gateway.endpoint}/_tessera/console/login`, {
    method: 'POST', headers: { 'content-type': contentType }, body: JSON.stringify({ accessKeyId: cluster.accessKeyId, secretAccessKey }),
  });
  t.equal((await login(cluster.secretAccessKey, 'text/plain')).status, 415, 'a cross-site form body is refused');
  const right = await login(cluster.secretAccessKey);
  t.equal(right.status, 200);
  t.match(right.headers.get('set-cookie'), /^tessera_console=[\w-]{43}; Path=\/_tessera\/console; HttpOnly; SameSite=Strict/);
  for (let i = 0; i < 10; i++) t.equal((await login(`guess-${i}`)).status, 403, `guess ${i + 1} refused`);
  t.equal((await login(cluster.secretAccessKey)).status, 429, 'then even the right secret waits');
});

t.test('logs are JSON lines with the S3 request id and no secret', async (t) => {
  const lines = gateway.logs().map((line) => JSON.parse(line) as Record<string, unknown>);
  const requestId = put.$metadata.requestId!;
  const ofPut = lines.filter((l) => l.reqId === requestId);
  t.ok(ofPut.length >= 1, 'the PutObject request logged under its x-amz-request-id');
  const everything = gateway.logs().join('\n');
  t.notOk(everything.includes(cluster.secretAccessKey), 'the S3 secret never appears');
  t.notOk(everything.includes(clusterFile.secret), 'the cluster secret never appears');
  t.notMatch(everything, /Signature=[0-9a-f]{64}/, 'no request signature appears');
});

t.test('readiness follows the write quorum as nodes die', async (t) => {
  await cluster.killNode('n3');
  const waitFor = async (check: () => Promise<boolean>) => { while (!(await check())) await new Promise((r) => setTimeout(r, 200)); };
  await waitFor(async () => {
    const status = await (await get(`${gateway.endpoint}/_tessera/status`, bearer)).json() as ClusterStatus;
    return status.nodes.find((n) => n.id === 'n3')?.reachable === false;
  });
  t.equal((await get(`${gateway.endpoint}/_tessera/health/ready`)).status, 200, 'two of three nodes are a write quorum for 2+1');
  const degraded = await runTessera(['admin', 'status', '--endpoint', gateway.endpoint, '--token', TOKEN]);
  t.equal(degraded.code, 1, 'status exits 1 while a node is down');
  t.match(degraded.stdout, /^n3\s+DOWN\s/m);
  await cluster.killNode('n2');
  const notReady = await get(`${gateway.endpoint}/_tessera/health/ready`);
  t.equal(notReady.status, 503, 'one node left: not ready');
  t.same(await notReady.json(), { status: 'no write quorum' });
  t.equal((await get(`${gateway.endpoint}/_tessera/health/live`)).status, 200, 'still live');
  const text = await (await get(`${gateway.endpoint}/_tessera/metrics`, bearer)).text();
  t.equal(sample(text, 'tessera_node_up', { node: 'n2' }), 0, 'the metric shows the node down');
  t.equal(sample(text, 'tessera_cluster_write_quorum_reachable'), 0);
});
