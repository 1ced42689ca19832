// `tessera init`: give the storage nodes of a new multi-host cluster their first cluster map
// (`tessera admin` changes a map; it needs one to exist). Does nothing to a cluster that has one.
import { defaultErasure } from '../../replication/layout.js';
import { hasFlag, parseArgs } from '../args.js';
import { type ClusterFile, initClusterMap, parseErasure } from '../launch.js';
import { NODE_TLS_HELP, nodeTlsFrom } from '../node-tls-flags.js';

const HELP = `usage: tessera init --node ID=HOST:PORT[@ZONE] --node ... [--ec K+M]
Writes the first cluster map (epoch 1) to every listed node. The nodes must be running with the
same TESSERA_CLUSTER_SECRET as this command. The erasure code defaults by node count (3: 2+1).
${NODE_TLS_HELP}`;

/** "a1=10.0.0.1:7000@rack-a" */
export function parseNodeSpec(spec: string): ClusterFile['nodes'][number] {
  const match = /^([A-Za-z0-9_.-]+)=([^@\s]+:\d{1,5})(?:@([A-Za-z0-9_.-]+))?$/.exec(spec);
  if (!match) throw new Error(`--node takes ID=HOST:PORT[@ZONE], got '${spec}'`);
  return { id: match[1]!, address: match[2]!, zone: match[3] ?? '' };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['help']);
  const specs = args.flags.get('node') ?? [];
  if (hasFlag(args, 'help') || !specs.length) {
    process.stdout.write(HELP);
    return hasFlag(args, 'help') ? 0 : 2;
  }
  const secret = process.env.TESSERA_CLUSTER_SECRET;
  if (!secret) throw new Error('set TESSERA_CLUSTER_SECRET (the nodes\' secret)');
  const nodes = specs.map(parseNodeSpec);
  if (new Set(nodes.map((n) => n.id)).size !== nodes.length) throw new Error('node ids must be distinct');
  const ec = args.flags.get('ec')?.at(-1);
  const erasure = ec ? parseErasure(ec) : defaultErasure(nodes.length);
  if (erasure.dataShards + erasure.parityShards > nodes.length) {
    throw new Error(`--ec ${erasure.dataShards}+${erasure.parityShards} needs at least ${erasure.dataShards + erasure.parityShards} nodes`);
  }
  const map = await initClusterMap({ secret, ...erasure, nodes }, nodeTlsFrom(args));
  const fresh = Number(map.epoch) === 1 && (map.nodes ?? []).every((n, i) => n.id === nodes[i]?.id);
  process.stdout.write(fresh
    ? `cluster map epoch 1: ${nodes.map((n) => n.id).join(', ')}, erasure ${map.dataShards}+${map.parityShards}\n`
    : `the cluster already has a map (epoch ${map.epoch}); change it with 'tessera admin node ...'\n`);
  return 0;
}
