// Test helper: one real `tessera node` process and a gRPC client on it, with helpers for the
// shard streams, so tests talk to a node exactly as the replication layer does.
import { type ChildProcess, spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { AUTH_METADATA_KEY, makeClusterToken } from '../../src/common/cluster-auth.js';
import { StorageNodeClient, bulkChannelOptions, pb } from '../../src/common/node-service.js';
import { tesseraMain } from './cluster.js';

export interface NodeProcess {
  address: string;
  child: ChildProcess;
  client: grpc.Client;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Call metadata carrying a valid cluster token. */
  auth(): grpc.Metadata;
  /** A unary call with auth, as a promise. */
  call<Res>(method: string, request: object, metadata?: grpc.Metadata): Promise<Res>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export const TEST_SECRET = 'test-cluster-secret';

/** Starts `tessera node` on a free port; resolves once it printed its listening line. */
export async function spawnStorageNode(id: string, dataDir: string, extraArgs: string[] = []): Promise<NodeProcess> {
  const child = spawn(process.execPath, [tesseraMain, 'node', '--id', id, '--data', dataDir, '--listen', '127.0.0.1:0', ...extraArgs],
    { env: { ...process.env, TESSERA_CLUSTER_SECRET: TEST_SECRET }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const address = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = new RegExp(`tessera node ${id} listening on (\\S+)`).exec(output);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`node exited (${code}) before listening:\n${output}`)));
  });
  const client = new StorageNodeClient(address, grpc.credentials.createInsecure(), bulkChannelOptions);
  const auth = () => {
    const metadata = new grpc.Metadata();
    metadata.set(AUTH_METADATA_KEY, makeClusterToken(TEST_SECRET));
    return metadata;
  };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    address,
    child,
    client,
    output: () => output,
    auth,
    call<Res>(method: string, request: object, metadata = auth()) {
      return new Promise<Res>((resolve, reject) => {
        const invoke = (client as unknown as Record<string, Function>)[method]!.bind(client);
        invoke(request, metadata, (err: grpc.ServiceError | null, result: Res) => (err ? reject(err) : resolve(result)));
      });
    },
    async stop(signal = 'SIGTERM') {
      client.close();
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** Streams `data` into a PutShard call in `chunkBytes` messages. */
export function putShard(node: NodeProcess, header: pb.IShardHeader, data: Buffer, chunkBytes = 64 * 1024): Promise<pb.ShardWriteResult> {
  return new Promise((resolve, reject) => {
    const call = (node.client as unknown as { PutShard: Function }).PutShard(node.auth(),
      (err: grpc.ServiceError | null, result: pb.ShardWriteResult) => (err ? reject(err) : resolve(result))) as grpc.ClientWritableStream<pb.IShardWrite>;
    call.write({ header });
    for (let offset = 0; offset < data.length; offset += chunkBytes) call.write({ data: data.subarray(offset, offset + chunkBytes) });
    call.write({ end: { bytes: data.length } });
    call.end();
  });
}

/** Reads [offset, offset+length) of a shard through GetShard. */
export async function getShard(node: NodeProcess, read: pb.IShardRead): Promise<Buffer> {
  const call = (node.client as unknown as { GetShard: Function }).GetShard(read, node.auth()) as grpc.ClientReadableStream<pb.ShardChunk>;
  const chunks: Buffer[] = [];
  for await (const chunk of call) chunks.push(Buffer.from((chunk as pb.ShardChunk).data));
  return Buffer.concat(chunks);
}
