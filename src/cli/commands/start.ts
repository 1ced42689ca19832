// `tessera start` (`npm start`): the embedded single-machine default — one storage node and the
// S3 gateway in this process, data in ./data, S3 on 127.0.0.1:9000.
import { join } from 'node:path';
import { localCalls } from '../../common/local-calls.js';
import { localShards } from '../../common/local-shards.js';
import { createClusterClient } from '../../replication/cluster-client.js';
import { startStorageNode } from '../../storage-node/server.js';
import { flag, hasFlag, parseArgs } from '../args.js';
import { initClusterMap, loadOrCreateClusterFile, writePid } from '../launch.js';
import { onShutdown, serveS3 } from '../serve.js';

const HELP = `usage: tessera start [--port P] [--data DIR] [--host H] [--region R] [--tls-cert F --tls-key F]
                     [--domain D] [--website-domain W]
Env: TESSERA_PORT, TESSERA_DATA_DIR, TESSERA_ACCESS_KEY, TESSERA_SECRET_KEY.
--website-domain W serves buckets with a website configuration as static sites at <bucket>.W.
`;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['help']);
  if (hasFlag(args, 'help')) { process.stdout.write(HELP); return 0; }
  const dataDir = flag(args, 'data') ?? process.env.TESSERA_DATA_DIR ?? './data';
  const file = await loadOrCreateClusterFile(dataDir, 1, '1+0', '127.0.0.1');
  const node = file.nodes[0]!;
  // The gateway and its node share this process: shard bytes go to the store directly, not over loopback.
  localShards.enable();
  // Metadata calls to the node in this process skip gRPC (local-calls.ts).
  localCalls.enable();
  const storage = await startStorageNode({ id: node.id, dataDir: join(dataDir, node.id), listen: node.address, secret: file.secret });
  await initClusterMap(file);
  const store = await createClusterClient({ seeds: [node.address], secret: file.secret });
  const gateway = await serveS3(store, args, { host: '127.0.0.1', port: 9000, dataDir });
  writePid(join(dataDir, 'gateway.pid'));
  process.stdout.write(`tessera ready: S3 at ${gateway.url} (data in ${dataDir})\n`);
  onShutdown(async () => {
    await gateway.close();
    await store.close();
    await storage.close();
  });
  return 0;
}
