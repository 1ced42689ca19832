// The bulk shard channel of a real storage node: only cluster members get in, shards round-trip
// in ranges, and missing or corrupt shards come back as typed errors.
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { isStoreError } from '../../src/common/errors.js';
import { NodeClient } from '../../src/replication/node-client.js';
import { startStorageNode } from '../../src/storage-node/server.js';
import { patternBytes } from '../lib/nodes.js';

const dataDir = mkdtempSync(join(tmpdir(), 'tessera-bulk-'));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
const node = await startStorageNode({ id: 'b1', dataDir, listen: '127.0.0.1:0', secret: 'right-secret', scrubIntervalMs: 0 });
t.teardown(() => node.close());

async function readAll(client: NodeClient, dataId: string, offset = 0, length = 0): Promise<Buffer> {
  const reader = client.openShardReader({ dataId, shardIndex: 0, offset, length });
  const chunks: Buffer[] = [];
  for (let chunk = await reader.next(); chunk; chunk = await reader.next()) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

t.test('a cluster member writes and reads shards over the bulk channel', async (t) => {
  const client = new NodeClient('b1', node.address, 'right-secret');
  t.teardown(() => client.close());
  const health = await client.health();
  t.match(health.bulkAddress, /^127\.0\.0\.1:\d+$/, 'Health advertises the bulk channel');
  const data = patternBytes(0, 3 * 65536 + 100, 3);
  const writer = client.openShardWriter({ dataId: 'bulk-a', shardIndex: 0, blockSize: 65536 });
  for (let offset = 0; offset < data.length; offset += 65536) await writer.write(data.subarray(offset, offset + 65536));
  const result = await writer.finish();
  t.same(result, { bytes: data.length, blocks: 4 });
  t.ok((await readAll(client, 'bulk-a')).equals(data), 'whole shard');
  t.ok((await readAll(client, 'bulk-a', 70000, 100000)).equals(data.subarray(70000, 170000)), 'a range across blocks');

  const missing = await readAll(client, 'no-such-shard').then(() => undefined, (err: unknown) => err);
  t.ok(isStoreError(missing, 'NotFound'), 'a missing shard is NotFound');

  const file = findShardFile('bulk-a.0');
  const bytes = readFileSync(file);
  bytes[70000] ^= 1;
  writeFileSync(file, bytes);
  const corrupt = await readAll(client, 'bulk-a').then(() => undefined, (err: unknown) => err);
  t.ok(isStoreError(corrupt, 'Corrupt'), 'a block failing its checksum is Corrupt');
});

t.test('a caller without the cluster secret is refused', async (t) => {
  const member = new NodeClient('b1', node.address, 'right-secret');
  await member.health();
  const intruder = new NodeClient('b1', node.address, 'wrong-secret');
  intruder.bulkAddress = member.bulkAddress;
  t.teardown(() => { member.close(); intruder.close(); });
  const writer = intruder.openShardWriter({ dataId: 'evil', shardIndex: 0, blockSize: 1024 });
  await writer.write(Buffer.alloc(1024));
  t.equal(await writer.finish(), undefined, 'the write does not happen');
  t.ok(isStoreError(writer.failed, 'Unauthenticated'), 'and fails as Unauthenticated');
  const read = await readAll(intruder, 'bulk-a').then(() => undefined, (err: unknown) => err);
  t.ok(isStoreError(read, 'Unauthenticated'), 'reads are refused too');
  t.notOk(findShardFile('evil.0', false), 'nothing was stored');
});

t.test('shard streams keep working across connections the node closed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bulk-restart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const options = { id: 'b2', dataDir: dir, listen: '127.0.0.1:0', secret: 'right-secret', scrubIntervalMs: 0 };
  let restartable = await startStorageNode(options);
  t.teardown(() => restartable.close());
  const client = new NodeClient('b2', restartable.address, 'right-secret');
  t.teardown(() => client.close());
  const bulkListen = (await client.health()).bulkAddress;
  const put = async (dataId: string, data: Buffer) => {
    const writer = client.openShardWriter({ dataId, shardIndex: 0, blockSize: 4096 });
    await writer.write(data);
    return writer.finish();
  };
  // Sequential and concurrent streams, so connections are handed from one stream to the next.
  for (let i = 0; i < 5; i++) t.ok(await put(`seq-${i}`, patternBytes(0, 10_000, i)), `write ${i}`);
  await Promise.all([0, 1, 2, 3].map((i) => put(`par-${i}`, patternBytes(0, 5_000, 10 + i))));
  for (let i = 0; i < 5; i++) t.ok((await readAll(client, `seq-${i}`)).equals(patternBytes(0, 10_000, i)), `read ${i}`);
  t.ok((await readAll(client, 'par-3', 100, 200)).equals(patternBytes(0, 5_000, 13).subarray(100, 300)), 'a range read');

  await restartable.close();
  restartable = await startStorageNode({ ...options, listen: restartable.address, bulkListen });
  await new Promise((resolve) => setTimeout(resolve, 100)); // the client sees the old connections end
  t.same(await put('after-restart', patternBytes(0, 3000, 99)), { bytes: 3000, blocks: 1 }, 'a write after the restart');
  t.ok((await readAll(client, 'seq-4')).equals(patternBytes(0, 10_000, 4)), 'a read after the restart');
});

function findShardFile(name: string, required = true): string {
  const shards = join(dataDir, 'shards');
  for (const dir of readdirSync(shards)) {
    if (readdirSync(join(shards, dir)).includes(name)) return join(shards, dir, name);
  }
  if (required) throw new Error(`${name} not found`);
  return '';
}
