// Soak mode of the fault suite: `npm run soak -- --minutes N [--seed S] [--nodes N] [--loopback] [--verbose]`.
// Runs the same workload, nemesis and checker as the CI test for N minutes on a fresh 4+2 cluster
// of 6 nodes (or --nodes: with more than 6, the nemesis's reweighted nodes make the gateway move
// data) and prints the figures; exits non-zero if anything was lost or read back wrong.
import { flag, hasFlag, parseArgs } from '../../src/cli/args.js';
import { runChaos } from '../lib/faults/chaos.js';
import { FaultCluster } from '../lib/faults/fault-cluster.js';

const args = parseArgs(process.argv.slice(2), ['loopback', 'verbose']);
const minutes = Number(flag(args, 'minutes') ?? 5);
const seed = Number(flag(args, 'seed') ?? Date.now() % 1_000_000);
const nodeCount = Number(flag(args, 'nodes') ?? 6);
if (!(minutes > 0) || !Number.isInteger(seed) || !(Number.isInteger(nodeCount) && nodeCount >= 6)) {
  process.stderr.write('usage: soak [--minutes N] [--seed S] [--nodes N>=6] [--loopback] [--verbose]\n');
  process.exit(2);
}

const started = Date.now();
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function healFigures(times: number[]): string {
  if (!times.length) return 'no rounds';
  const sorted = [...times].sort((a, b) => a - b);
  return `${times.length} passes, median ${seconds(sorted[Math.floor(sorted.length / 2)]!)}, max ${seconds(sorted.at(-1)!)}`;
}
const log = (line: string) => process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
const cluster = await FaultCluster.start({ nodes: nodeCount, dataShards: 4, parityShards: 2, namespaces: hasFlag(args, 'loopback') ? false : undefined });
log(`seed ${seed}: ${nodeCount} nodes at 4+2 ${cluster.usesNamespaces ? 'in network namespaces' : 'on loopback'}, ${minutes} min`);
let failed = true;
try {
  const summary = await runChaos(cluster, {
    seed,
    durationMs: minutes * 60_000,
    workload: { keys: 64, workers: 6, maxObjectBytes: 3 * 1024 * 1024 },
    nemesis: { maxVictims: 2, holdMs: [2_000, 10_000], gatewayKillChance: 0.25 },
    log: hasFlag(args, 'verbose') ? log : undefined,
  });
  const rows: Array<[string, string | number]> = [
    ['operations', summary.operations],
    ['faults injected', `${summary.faultsInjected} ${JSON.stringify(summary.faults)}`],
    ['acknowledged writes', summary.acknowledgedWrites],
    ['acknowledged writes checked', summary.acknowledgedWritesChecked],
    ['lost (must be 0)', summary.lost],
    ['corrupt reads (must be 0)', summary.corruptReads],
    ['other violations', summary.violations.length - summary.lost - summary.corruptReads],
    ['heal failures', summary.healFailures.length],
    ['heal time between rounds', healFigures(summary.roundHealMs)],
    ['final heal time', seconds(summary.finalHealMs)],
    ['redundancy restored', summary.redundancyRestored ? 'yes' : 'NO'],
    ['survives 2 nodes down', summary.survivesParityLoss ? 'yes' : 'NO'],
    ['answers', JSON.stringify(summary.errorsByStatus)],
  ];
  for (const [name, value] of rows) process.stdout.write(`${name.padEnd(28)} ${value}\n`);
  for (const v of summary.violations.slice(0, 20)) process.stdout.write(`  ${v.kind} ${v.key}: ${v.detail}\n`);
  for (const f of summary.healFailures) process.stdout.write(`  heal failure: ${f}\n`);
  failed = summary.violations.length > 0 || summary.healFailures.length > 0 || !summary.redundancyRestored || !summary.survivesParityLoss;
} finally {
  await cluster.stop();
}
process.exit(failed ? 1 : 0);
