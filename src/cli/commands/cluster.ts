// `tessera cluster --nodes N --ec K+M --data DIR --port P`: N storage-node processes on loopback
// and a gateway in this process. Node ids, ports and the cluster secret persist in DIR/cluster.json
// so a restart brings back the same cluster.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createClusterClient } from '../../replication/cluster-client.js';
import { flag, hasFlag, parseArgs } from '../args.js';
import { initClusterMap, loadOrCreateClusterFile, spawnNode, writePid } from '../launch.js';
import { onShutdown, serveS3 } from '../serve.js';

const HELP = `usage: tessera cluster [--nodes N] [--ec K+M] [--data DIR] [--port P] [--host H]
                       [--region R] [--domain D] [--website-domain W] [--tls-cert F --tls-key F]
                       [--sse-master-key-file F]
Starts N storage node processes (default 6) and an S3 gateway on HOST:PORT (default 127.0.0.1:9000).
`;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['help']);
  if (hasFlag(args, 'help')) { process.stdout.write(HELP); return 0; }
  const dataDir = flag(args, 'data') ?? process.env.TESSERA_DATA_DIR ?? './data';
  const host = '127.0.0.1';
  const file = await loadOrCreateClusterFile(dataDir, Number(flag(args, 'nodes') ?? 6), flag(args, 'ec'), host);
  const children = await Promise.all(file.nodes.map((node) => spawnNode(dataDir, node, file.secret)));
  watchChildren(children, file.nodes.map((n) => n.id));
  const map = await initClusterMap(file);
  const store = await createClusterClient({ seeds: file.nodes.map((n) => n.address), secret: file.secret });
  const gateway = await serveS3(store, args, { host, port: 9000, dataDir });
  writePid(join(dataDir, 'gateway.pid'));
  process.stdout.write(`tessera cluster ready: S3 at ${gateway.url} (${file.nodes.length} nodes, ` +
    `EC ${map.dataShards}+${map.parityShards}, data in ${dataDir})\n`);
  onShutdown(async () => {
    await gateway.close();
    await store.close();
    for (const child of children) child.kill('SIGTERM');
  });
  return 0;
}

/** A node that dies is reported, not restarted: the cluster serves on within its erasure code. */
function watchChildren(children: ChildProcess[], ids: string[]): void {
  children.forEach((child, i) => child.on('exit', (code, signal) => {
    process.stderr.write(`tessera cluster: node ${ids[i]} exited (${signal ?? code})\n`);
  }));
}
