// `tessera admin ...`: change the cluster map (add, reweight, drain, remove nodes) and run the
// cluster's maintenance passes (heal, rebalance, scrub) in the foreground with progress.
import { StoreError } from '../../common/errors.js';
import { pb } from '../../common/node-service.js';
import { type ClusterClient, createClusterClient } from '../../replication/cluster-client.js';
import { scanAndHeal } from '../../replication/heal.js';
import { rebalance } from '../../replication/rebalance.js';
import { flag, hasFlag, type ParsedArgs, parseArgs, requireFlag } from '../args.js';
import { readClusterFile } from '../launch.js';
import { runKeyCommand } from '../admin-keys.js';
import { NODE_TLS_HELP, nodeTlsFrom } from '../node-tls-flags.js';
import { runStatus, STATUS_HELP } from '../status.js';
import { parseDuration } from './node.js';

const HELP = `usage: tessera admin [--data DIR | --seeds HOST:PORT,...] <command>
  map                                      print the cluster map (JSON)
  node add --id ID --address HOST:PORT [--zone Z] [--weight W]
  node set --id ID [--zone Z] [--weight W]
  node drain --id ID                       stop placing data on ID and move its data away
  node remove --id ID                      take ID out of the cluster (its shards are rebuilt elsewhere)
${STATUS_HELP}
  rebalance [--rate MB/s]                  move data to where the current map places it
  heal                                     rebuild every missing or corrupt shard and record
  scrub [--remove-orphans] [--orphan-grace DURATION]
                                           verify every shard on every node; orphans are
                                           unreferenced shards older than the grace (default 1h)
The cluster secret comes from DIR/cluster.json or TESSERA_CLUSTER_SECRET.
${NODE_TLS_HELP}
`;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['help', 'remove-orphans', 'json']);
  const [command, sub] = args.positionals;
  if (!command || hasFlag(args, 'help')) {
    process.stdout.write(HELP);
    return command ? 0 : 2;
  }
  if (command === 'status') return runStatus(args, () => connect(args));
  const store = await connect(args);
  try {
    switch (command) {
      case 'map': return printMap(store);
      case 'key': return await runKeyCommand(store, sub, args);
      case 'node': return await changeNode(store, sub, args);
      case 'rebalance': return await runRebalance(store, args);
      case 'heal': return await runHeal(store);
      case 'scrub': return await runScrub(store, hasFlag(args, 'remove-orphans'), parseDuration(flag(args, 'orphan-grace') ?? '1h'));
      default:
        process.stderr.write(`tessera admin: unknown command '${command}'\n${HELP}`);
        return 2;
    }
  } finally {
    await store.close();
  }
}

async function connect(args: ParsedArgs): Promise<ClusterClient> {
  const dataDir = flag(args, 'data') ?? process.env.TESSERA_DATA_DIR;
  const file = dataDir ? readClusterFile(dataDir) : undefined;
  const seeds = flag(args, 'seeds')?.split(',') ?? file?.nodes.map((n) => n.address) ?? process.env.TESSERA_SEEDS?.split(',');
  const secret = process.env.TESSERA_CLUSTER_SECRET ?? file?.secret;
  if (!seeds?.length || !secret) throw new Error('name the cluster with --data DIR, or --seeds and TESSERA_CLUSTER_SECRET');
  return createClusterClient({ seeds, secret, tls: nodeTlsFrom(args) });
}

function printMap(store: ClusterClient): number {
  const map = store.clusterMap();
  const printable = {
    ...map,
    placementSeed: Buffer.from(map.placementSeed ?? []).toString('hex'),
    nodes: (map.nodes ?? []).map((n) => ({ ...n, state: pb.NodeState[n.state ?? pb.NodeState.UP] })),
  };
  process.stdout.write(`${JSON.stringify(printable, null, 2)}\n`);
  return 0;
}

async function changeNode(store: ClusterClient, sub: string | undefined, args: ParsedArgs): Promise<number> {
  const id = requireFlag(args, 'id');
  const current = store.clusterMap();
  const nodes = (current.nodes ?? []).map((n) => ({ ...n }));
  const existing = nodes.find((n) => n.id === id);
  if (sub === 'add') {
    if (existing) throw new StoreError('InvalidArgument', `node ${id} is already in the map`);
    nodes.push({ id, address: requireFlag(args, 'address'), zone: flag(args, 'zone') ?? '', weight: Number(flag(args, 'weight') ?? 1), state: pb.NodeState.UP });
  } else {
    if (!existing) throw new StoreError('InvalidArgument', `node ${id} is not in the map`);
    if (sub === 'set') {
      existing.zone = flag(args, 'zone') ?? existing.zone;
      existing.weight = Number(flag(args, 'weight') ?? existing.weight);
      existing.address = flag(args, 'address') ?? existing.address;
    } else if (sub === 'drain') existing.state = pb.NodeState.DRAINING;
    else if (sub === 'remove') existing.state = pb.NodeState.OUT;
    else throw new StoreError('InvalidArgument', `unknown node command '${sub}' (add, set, drain, remove)`);
  }
  if (nodes.some((n) => !(Number(n.weight) > 0))) throw new StoreError('InvalidArgument', 'weights must be positive');
  const map: pb.IClusterMap = { ...current, epoch: Number(current.epoch) + 1, nodes };
  const targets = [...new Set(nodes.map((n) => n.id!))];
  store.cluster.adopt(map);
  const { ok, failed } = await store.cluster.fanOut(targets, (client) => client.setClusterMap(map));
  process.stdout.write(`cluster map epoch ${map.epoch}: ${sub} ${id} (stored on ${ok.size} of ${targets.length} nodes)\n`);
  for (const [node, err] of failed) process.stderr.write(`  ${node}: ${err.message}\n`);
  return ok.size > targets.length / 2 ? 0 : 1;
}

async function runRebalance(store: ClusterClient, args: ParsedArgs): Promise<number> {
  const rate = Number(flag(args, 'rate') ?? 0) * 1024 * 1024;
  const result = await rebalance(store, {
    bytesPerSecond: rate,
    onProgress: (p) => progressLine(`rebalance: ${p.scanned} versions scanned, ${p.moved} moved, ${p.shardsMoved} shards, ${mib(p.bytesMoved)} MiB`),
  });
  process.stdout.write(`\nrebalance done: ${JSON.stringify(result)}\n`);
  return result.failed ? 1 : 0;
}

async function runHeal(store: ClusterClient): Promise<number> {
  const result = await scanAndHeal(store, (p) =>
    progressLine(`heal: ${p.scanned} versions scanned, ${p.report.healedShards} shards and ${p.report.healedRecords} records rebuilt`));
  process.stdout.write(`\nheal done: ${JSON.stringify({ scanned: result.scanned, ...result.report })}\n`);
  for (const problem of result.unhealed) process.stderr.write(`  not healed: ${problem}\n`);
  return result.report.failed ? 1 : 0;
}

async function runScrub(store: ClusterClient, removeOrphans: boolean, orphanGraceMs: number): Promise<number> {
  const ids = store.cluster.memberIds();
  const { ok, failed } = await store.cluster.fanOut(ids, (client) => client.scrub({ orphanGraceMs, removeOrphans }));
  let problems = failed.size;
  for (const [id, report] of ok) {
    problems += (report.corrupt?.length ?? 0) + (report.missing?.length ?? 0);
    process.stdout.write(`${id}: ${report.shardsChecked} shards checked, ${report.corrupt?.length ?? 0} corrupt, ` +
      `${report.missing?.length ?? 0} missing, ${report.orphans?.length ?? 0} orphans (${report.orphansRemoved} removed)\n`);
  }
  for (const [id, err] of failed) process.stdout.write(`${id}: unreachable (${err.message})\n`);
  return problems ? 1 : 0;
}

function progressLine(text: string): void {
  if (process.stdout.isTTY) process.stdout.write(`\r${text}`);
}

const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
