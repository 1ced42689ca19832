// `npm run bench -- storage-node [--metas 4000] [--concurrency 64] [--shard 64MiB] [--streams 4] [--keys 20000]`
// One real `tessera node` process on loopback, driven over gRPC as the replication layer drives it:
//   meta:   PutMeta calls/s one at a time and with many in flight (group commit), side by side
//           with the baseline of synced LevelDB puts one at a time in this process;
//   shards: PutShard and GetShard MB/s (1 MiB messages, 256 KiB checksum blocks), one stream and
//           several at once;
//   list:   keys/s listed in pages, flat and rolled up by a delimiter.
// Beside each rate, the node process's own CPU time per unit of work, which stays meaningful
// on a busy machine where wall-clock rates swing.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { Level } from 'level';
import { flag, parseArgs } from '../../src/cli/args.js';
import { AUTH_METADATA_KEY, makeClusterToken } from '../../src/common/cluster-auth.js';
import { StorageNodeClient, bulkChannelOptions, pb } from '../../src/common/node-service.js';
import { ProcessSampler } from '../lib/proc-stats.js';
import { megabytesPerSecond, parseSize } from '../lib/units.js';

const here = dirname(fileURLToPath(import.meta.url));
const RESULTS_FILE = join(here, '..', '..', '..', 'bench', 'results', 'storage-node.json');
const TESSERA_MAIN = join(here, '..', '..', 'src', 'cli', 'main.js');
const SECRET = 'bench-secret';
const BLOCK = 256 * 1024;
const MESSAGE = 1024 * 1024;

type Client = grpc.Client & Record<string, Function>;

function auth(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set(AUTH_METADATA_KEY, makeClusterToken(SECRET));
  return metadata;
}

function unary<Res>(client: Client, method: string, request: object): Promise<Res> {
  return new Promise((resolve, reject) => {
    client[method]!(request, auth(), (err: Error | null, res: Res) => (err ? reject(err) : resolve(res)));
  });
}

async function startNode(dataDir: string): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, [TESSERA_MAIN, 'node', '--id', 'bench', '--data', dataDir, '--listen', '127.0.0.1:0', '--secret', SECRET],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const address = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const match = /listening on (\S+)/.exec(chunk.toString());
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`node exited with ${code}`)));
  });
  return { child, address };
}

/** Wall milliseconds of `work`, and the CPU seconds the node process spent meanwhile. */
async function measured(nodePid: number, work: () => Promise<unknown>): Promise<{ wallMs: number; nodeCpuSeconds: number }> {
  const sampler = new ProcessSampler([{ role: 'node', pid: nodePid }]);
  sampler.start();
  const started = performance.now();
  await work();
  const wallMs = performance.now() - started;
  return { wallMs, nodeCpuSeconds: sampler.stop()[0]!.cpuSeconds };
}

function inParallel(count: number, concurrency: number, call: (i: number) => Promise<unknown>): Promise<unknown> {
  let next = 0;
  return Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await call(next++);
  }));
}

/** Calls per second with at most `concurrency` in flight, and node CPU microseconds per call. */
async function callRate(nodePid: number, count: number, concurrency: number, call: (i: number) => Promise<unknown>) {
  const { wallMs, nodeCpuSeconds } = await measured(nodePid, () => inParallel(count, concurrency, call));
  return { perSecond: Math.round(count / (wallMs / 1000)), nodeCpuMicrosPerCall: Math.round((nodeCpuSeconds * 1e6) / count) };
}

/** MB/s of moving `bytes`, and node CPU milliseconds per MB. */
async function byteRate(nodePid: number, bytes: number, work: () => Promise<unknown>) {
  const { wallMs, nodeCpuSeconds } = await measured(nodePid, work);
  return { mbPerSecond: Math.round(megabytesPerSecond(bytes, wallMs)), nodeCpuMsPerMB: Number(((nodeCpuSeconds * 1000) / (bytes / 1e6)).toFixed(2)) };
}

async function syncedPutsPerSecond(dir: string, count: number): Promise<number> {
  const db = new Level<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  const value = randomBytes(300);
  const started = performance.now();
  await inParallel(count, 1, (i) => db.put(Buffer.from(`k${i}`), value, { sync: true }));
  const rate = Math.round(count / ((performance.now() - started) / 1000));
  await db.close();
  return rate;
}

function putShard(client: Client, dataId: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = client.PutShard!(auth(), (err: Error | null) => (err ? reject(err) : resolve())) as grpc.ClientWritableStream<pb.IShardWrite>;
    call.write({ header: { dataId, shardIndex: 0, blockSize: BLOCK } });
    let offset = 0;
    const pump = () => {
      while (offset < data.length) {
        const more = call.write({ data: data.subarray(offset, offset + MESSAGE) });
        offset += MESSAGE;
        if (!more) { call.once('drain', pump); return; }
      }
      call.write({ end: { bytes: data.length } });
      call.end();
    };
    pump();
  });
}

async function getShard(client: Client, dataId: string): Promise<number> {
  let bytes = 0;
  for await (const chunk of client.GetShard!({ dataId, shardIndex: 0 }, auth()) as AsyncIterable<pb.ShardChunk>) bytes += chunk.data.length;
  return bytes;
}

async function listKeysPerSecond(client: Client, request: pb.IListRequest): Promise<{ entries: number; keysPerSecond: number }> {
  const started = performance.now();
  let entries = 0;
  for await (const page of client.List!(request, auth()) as AsyncIterable<pb.ListPage>) entries += page.entries.length;
  return { entries, keysPerSecond: Math.round(entries / ((performance.now() - started) / 1000)) };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const metas = Number(flag(args, 'metas') ?? 4000);
  const concurrency = Number(flag(args, 'concurrency') ?? 64);
  const shardBytes = parseSize(flag(args, 'shard') ?? '64MiB');
  const streams = Number(flag(args, 'streams') ?? 4);
  const keys = Number(flag(args, 'keys') ?? 20_000);
  const work = mkdtempSync(join(tmpdir(), 'tessera-bench-node-'));
  const { child, address } = await startNode(join(work, 'node'));
  const pid = child.pid!;
  const client = new StorageNodeClient(address, grpc.credentials.createInsecure(), bulkChannelOptions) as unknown as Client;
  try {
    const version = (i: number, tag: string) => ({ bucket: 'bench', key: `${tag}/${String(i).padStart(8, '0')}`, versionId: 'null', hlc: i + 1, size: 1000, etag: '"x"' });
    const sequentialCount = Math.min(metas, 1000);
    const meta = {
      leveldbSyncedPutsPerSecond: await syncedPutsPerSecond(join(work, 'baseline'), sequentialCount),
      putMetaOneAtATime: await callRate(pid, sequentialCount, 1, (i) => unary(client, 'PutMeta', { versions: [version(i, 'seq')] })),
      putMetaConcurrent: await callRate(pid, metas, concurrency, (i) => unary(client, 'PutMeta', { versions: [version(i, 'par')] })),
      concurrency,
    };
    console.log(`meta: synced LevelDB puts ${meta.leveldbSyncedPutsPerSecond}/s | PutMeta 1 in flight ${meta.putMetaOneAtATime.perSecond}/s ` +
      `(${meta.putMetaOneAtATime.nodeCpuMicrosPerCall} us node CPU/call) | ${concurrency} in flight ${meta.putMetaConcurrent.perSecond}/s ` +
      `(${meta.putMetaConcurrent.nodeCpuMicrosPerCall} us/call)`);

    const data = randomBytes(shardBytes);
    const shards = {
      shardBytes,
      putOneStream: await byteRate(pid, shardBytes, () => putShard(client, 'one', data)),
      getOneStream: await byteRate(pid, shardBytes, () => getShard(client, 'one')),
      streams,
      putParallel: await byteRate(pid, shardBytes * streams, () => Promise.all(Array.from({ length: streams }, (_, i) => putShard(client, `par${i}`, data)))),
      getParallel: await byteRate(pid, shardBytes * streams, () => Promise.all(Array.from({ length: streams }, (_, i) => getShard(client, `par${i}`)))),
    };
    const show = (r: { mbPerSecond: number; nodeCpuMsPerMB: number }) => `${r.mbPerSecond} MB/s (${r.nodeCpuMsPerMB} ms node CPU/MB)`;
    console.log(`shards (${shardBytes / MESSAGE} MiB): put ${show(shards.putOneStream)}, get ${show(shards.getOneStream)}; ` +
      `${streams} streams: put ${show(shards.putParallel)}, get ${show(shards.getParallel)}`);

    for (let i = 0; i < keys; i += 500) {
      const batch = Array.from({ length: Math.min(500, keys - i) }, (_, j) => ({ ...version(i + j, 'list'), key: `list/d${(i + j) % 100}/${i + j}` }));
      await unary(client, 'PutMeta', { versions: batch });
    }
    const flat = await listKeysPerSecond(client, { bucket: 'bench', prefix: 'list/' });
    const rolled = await listKeysPerSecond(client, { bucket: 'bench', prefix: 'list/', delimiter: '/' });
    const list = { keys, flatKeysPerSecond: flat.keysPerSecond, delimiterEntries: rolled.entries };
    console.log(`list: ${flat.entries} keys at ${flat.keysPerSecond} keys/s; with delimiter ${rolled.entries} prefixes`);

    mkdirSync(dirname(RESULTS_FILE), { recursive: true });
    // The machine's load says how far the wall-clock rates can be trusted; node CPU per unit less so.
    const loadAverage = Number(loadavg()[0]!.toFixed(1));
    console.log(`load average during the run: ${loadAverage}`);
    writeFileSync(RESULTS_FILE, JSON.stringify({ date: new Date().toISOString(), loadAverage, meta, shards, list }, null, 2));
    return 0;
  } finally {
    client.close();
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    rmSync(work, { recursive: true, force: true });
  }
}
