// Crash consistency: kill -9 the gateway and two storage nodes in the middle of multi-stripe PUTs
// and multipart completes, a few times over. Afterwards no object is partially visible (every
// key reads back exactly one whole value that was written, or nothing), listings agree, and once
// the scrubber has run no orphan shard (nor temp file) is left on any node.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { MAX_CLOCK_SKEW_MS, UNARY_DEADLINE_MS } from '../../src/common/node-service.js';
import { allVersions } from '../../src/replication/heal.js';
import { finalHeal } from '../lib/faults/chaos.js';
import { checkListing, RegisterChecker } from '../lib/faults/checker.js';
import { FaultCluster } from '../lib/faults/fault-cluster.js';
import { History } from '../lib/faults/history.js';
import { Random } from '../lib/faults/random.js';
import { FaultS3Client } from '../lib/faults/s3.js';
import { readKey, recordWrite } from '../lib/faults/workload.js';

const MiB = 1024 * 1024;
const BUCKET = 'crash';
const ROUNDS = 3;
const PUTS_PER_ROUND = 4;
const COMPLETES_PER_ROUND = 3;

const seed = Number(process.env.TESSERA_FAULT_SEED ?? 7);
const random = new Random(seed);
const cluster = await FaultCluster.start({ nodes: 6, dataShards: 4, parityShards: 2 });
t.teardown(() => cluster.stop());
const client = new FaultS3Client(cluster.endpoint, cluster, cluster.region, 60_000);
t.teardown(() => client.close());
const history = new History();
t.comment(`seed ${seed}`);

/** Upload the parts of a multipart object; returns what completing it needs. */
async function preparedUpload(key: string, name: string): Promise<() => Promise<void>> {
  const sizes = random.next() < 0.5 ? [5 * MiB, random.int(1, 2 * MiB)] : [random.int(1, 3 * MiB)];
  const body = history.newValue(key, name, sizes.reduce((a, b) => a + b, 0));
  const uploadId = await client.createUpload(BUCKET, key);
  if (typeof uploadId !== 'string') throw new Error(`create upload: ${uploadId.status}`);
  const etags: string[] = [];
  for (let i = 0, offset = 0; i < sizes.length; offset += sizes[i]!, i++) {
    const reply = await client.uploadPart(BUCKET, key, uploadId, i + 1, body.subarray(offset, offset + sizes[i]!));
    if (reply.status !== 200) throw new Error(`upload part: ${reply.status}`);
    etags.push(String(reply.headers.etag));
  }
  return async () => { await recordWrite(history, 'multipart', key, name, () => client.completeUpload(BUCKET, key, uploadId, etags)); };
}

let lastCrashAt = 0;

/** Resolves once the history holds more than `count` writes (or after `capMs`). */
async function answeredBeyond(count: number, capMs: number): Promise<void> {
  for (const deadline = Date.now() + capMs; history.writes.length <= count && Date.now() < deadline;) await sleep(10);
}

/**
 * Writes in flight; once the first of them has been answered (so some finish and some do not,
 * however fast the machine), the gateway and two nodes die at a seeded moment; then all restart.
 */
async function crashRound(round: number): Promise<void> {
  const completes = await Promise.all(Array.from({ length: COMPLETES_PER_ROUND }, (_, i) =>
    preparedUpload(`mp-${i}`, `mp-${i}@r${round}`)));
  const puts = Array.from({ length: PUTS_PER_ROUND }, (_, i) => {
    const key = `put-${i}`;
    const body = history.newValue(key, `${key}@r${round}`, random.int(2 * MiB, 8 * MiB));
    return () => recordWrite(history, 'put', key, `${key}@r${round}`, () => client.putObject(BUCKET, key, body)).then(() => undefined);
  });
  const victims = [...cluster.nodeIds].sort(() => random.next() - 0.5).slice(0, 2);
  const answeredBefore = history.writes.length;
  const inFlight = Promise.all([...puts, ...completes].map((start) => start()));
  await answeredBeyond(answeredBefore, 5_000);
  await sleep(random.int(0, 300));
  await cluster.killNode(victims[0]!);
  await sleep(random.int(0, 100));
  await cluster.killGateway('SIGKILL');
  lastCrashAt = Date.now();
  await cluster.killNode(victims[1]!);
  await inFlight;
  await cluster.restoreAll();
}

t.test('kill -9 mid-write leaves nothing partially visible and no orphans after scrubbing', async (t) => {
  t.equal((await client.createBucket(BUCKET)).status, 200, 'bucket created');
  for (let round = 1; round <= ROUNDS; round++) await crashRound(round);
  const acknowledged = history.writes.filter((w) => w.outcome === 'ok').length;
  t.comment(`${acknowledged} writes acknowledged, ${history.writes.length - acknowledged} cut off by the crashes`);

  // Until no copy of a write cut off by the crash can still be applied, its outcome is open and the
  // nodes keep what it replaced; heal settles those records once that time has passed.
  await sleep(Math.max(0, lastCrashAt + UNARY_DEADLINE_MS + MAX_CLOCK_SKEW_MS - Date.now()));
  t.same(await finalHeal(cluster), [], 'heal succeeds once every process is back');
  const checker = new RegisterChecker(history);
  const settled = await Promise.all(history.keys.map((key) => readKey(client, history, BUCKET, key)));
  t.same(checker.checkFinal(settled), [], 'every key holds one whole written value, or nothing');
  t.same(checkListing(history, settled, await client.listObjects(BUCKET)), [], 'the listing shows exactly the readable objects');

  for (const upload of await client.listUploads(BUCKET)) {
    t.equal((await client.abortUpload(BUCKET, upload.key, upload.uploadId)).status, 204, `interrupted upload of ${upload.key} aborted`);
  }
  const scrub = await cluster.admin(['scrub', '--remove-orphans', '--orphan-grace', '0']);
  t.comment(scrub.stdout.trim());
  t.equal(scrub.code, 0, 'scrub finds nothing corrupt or missing');
  const rescrub = await cluster.admin(['scrub']);
  t.notMatch(rescrub.stdout, /[1-9]\d* orphans/, 'a second scrub finds no orphans');
  const afterCleanup = await Promise.all(history.keys.map((key) => readKey(client, history, BUCKET, key)));
  t.same(afterCleanup.map((r) => r.value), settled.map((r) => r.value), 'aborting leftover uploads and scrubbing lost no stored object');

  const store = await cluster.connectStore();
  const referenced = new Set<string>();
  try {
    for await (const version of allVersions(store)) for (const segment of version.segments ?? []) referenced.add(segment.dataId!);
  } finally {
    await store.close();
  }
  for (const id of cluster.nodeIds) {
    const stray = cluster.shardFiles(id).filter((path) => !referenced.has(path.slice(path.lastIndexOf('/') + 1, path.lastIndexOf('.'))));
    t.same(stray, [], `${id}: every shard file belongs to a stored version`);
    t.same(cluster.tempFiles(id), [], `${id}: no temp file of an interrupted write left`);
  }
});
