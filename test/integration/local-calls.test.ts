// A node in the caller's own process (as under `tessera start`) answers unary calls without gRPC:
// the records, the errors and the behaviour after the node stops are the same as over the wire.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { StoreError } from '../../src/common/errors.js';
import { localCalls } from '../../src/common/local-calls.js';
import { NodeClient } from '../../src/replication/node-client.js';
import { startStorageNode } from '../../src/storage-node/server.js';

const root = mkdtempSync(join(tmpdir(), 'tessera-local-calls-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const secret = 'local-calls-secret';

localCalls.enable();
const node = await startStorageNode({ id: 'n1', dataDir: join(root, 'n1'), listen: '127.0.0.1:0', secret, scrubIntervalMs: 0, bulkListen: 'off' });
const client = new NodeClient('n1', node.address, secret);
t.teardown(() => client.close());

const version = {
  bucket: 'b', key: 'k', versionId: 'null', hlc: 1_000_000, size: 3, etag: '"abc"', contentType: 'text/plain',
  userMetadata: { colour: 'blue' },
  segments: [{ dataId: 'd1', size: 3, inline: true, nodes: ['n1'], inlineShard: Buffer.from('abc'), layout: { dataShards: 1, parityShards: 0, stripeSize: 1 << 20, blockSize: 1 << 20 } }],
};

async function failureKind(call: Promise<unknown>): Promise<string> {
  return call.then(() => 'no failure', (err: unknown) => (err instanceof StoreError ? err.kind : String(err)));
}

t.test('the node serves this process directly', async (t) => {
  t.ok(localCalls.at(node.address), 'registered under its gRPC address');
});

t.test('records round-trip as they would over gRPC, concurrent single calls included', async (t) => {
  const written = await Promise.all([client.putMeta([version]), client.putMeta([{ ...version, key: 'k2' }])]);
  t.same(written.map((r) => r.applied), [[true], [true]]);
  const [read, absent] = await Promise.all([
    client.getMeta([{ bucket: 'b', key: 'k', versionId: '' }], true),
    client.getMeta([{ bucket: 'b', key: 'nothing', versionId: '' }], true),
  ]);
  const slot = read.results[0]!;
  t.equal(slot.found, true);
  t.equal(slot.version!.etag, '"abc"');
  t.same(slot.version!.userMetadata, { colour: 'blue' });
  t.equal(Buffer.from(slot.version!.segments![0]!.inlineShard!).toString(), 'abc');
  t.equal(absent.results[0]!.found, false);
});

t.test('a request the node refuses fails with the same kind of error', async (t) => {
  t.equal(await failureKind(client.putMeta([{ ...version, bucket: '' }])), 'InvalidArgument');
});

t.test('once the node stops, calls fail as unavailable instead of reaching it', async (t) => {
  await node.close();
  t.notOk(localCalls.at(node.address), 'withdrawn');
  t.equal(await failureKind(client.getMeta([{ bucket: 'b', key: 'k', versionId: '' }], false)), 'Unavailable');
});
