// `npm run bench -- compare`: start each S3 server on loopback in turn (the null server, Tessera
// all-in-one and as a multi-process cluster, s3rver, moto), run the same scenarios against each,
// and print the ratios; results.json and report.md go to bench/results/compare-<time>/.
import { randomBytes } from 'node:crypto';
import { flag, parseArgs } from '../../src/cli/args.js';
import { checkTargets, comparisonMarkdown, perServerCpuSecond, ratioTable, runTargets, type ComparedScenario } from '../lib/comparison.js';
import { BOOLEAN_FLAGS, newRunId } from '../lib/load-scenario.js';
import { machineNote, reportFolder, textGrid } from '../lib/report.js';
import { TARGET_NAMES } from '../lib/targets.js';

const SCENARIOS: ComparedScenario[] = [
  { id: 'put-4k', argv: 'put --size 4KiB --concurrency 32' },
  { id: 'get-4k', argv: 'get --size 4KiB --concurrency 32 --objects 1000' },
  { id: 'put-1m', argv: 'put --size 1MiB --concurrency 16' },
  { id: 'get-1m', argv: 'get --size 1MiB --concurrency 16 --objects 256' },
  { id: 'put-64m', argv: 'put --size 64MiB --concurrency 4' },
  { id: 'get-64m', argv: 'get --size 64MiB --concurrency 4 --objects 16', readsFrom: 'put-64m' },
  { id: 'list-10k', argv: 'list --objects 10000 --concurrency 4' },
  { id: 'delete-1k', argv: 'delete --objects 3000 --batch 1000 --concurrency 1' },
  { id: 'multipart-1g', argv: 'multipart --size 1GiB --part-size 16MiB --part-concurrency 4 --concurrency 1 --count 1' },
];

const DEFAULT_TARGETS = ['null', 'tessera', 'tessera-cluster', 's3rver', 'moto'];

const HELP = `usage: npm run bench -- compare [options]
  --targets a,b,...     servers to compare (default ${DEFAULT_TARGETS.join(',')}; known: ${TARGET_NAMES.join(', ')})
  --scenarios a,b,...   subset of: ${SCENARIOS.map((s) => s.id).join(', ')}
  --duration D          per scenario (default 10s)
  --clients N           load-generator worker threads
  --nodes N --ec K+M    tessera-cluster shape (default 6 nodes, 4+2)
  --cpu-prof            CPU-profile Tessera's gateway process and report its hottest functions
  --out DIR             results folder (default bench/results)
`;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, BOOLEAN_FLAGS);
  if (args.flags.has('help')) { process.stdout.write(HELP); return 0; }
  const targets = (flag(args, 'targets') ?? DEFAULT_TARGETS.join(',')).split(',');
  const wanted = flag(args, 'scenarios')?.split(',');
  const scenarios = wanted ? SCENARIOS.filter((s) => wanted.includes(s.id)) : SCENARIOS;
  const seed = flag(args, 'seed') ?? randomBytes(8).toString('hex');
  const runId = newRunId();
  const before = machineNote();
  const runs = await runTargets(targets, scenarios, args, seed, runId);
  const machine = { before, after: machineNote() };

  const checks = checkTargets(runs, scenarios);
  process.stdout.write(`\n${textGrid(ratioTable(runs, scenarios), 2)}\n\nper CPU-second of the server's processes:\n${textGrid(ratioTable(runs, scenarios, perServerCpuSecond), 2)}\n\n`);
  for (const c of checks) process.stdout.write(`${c.met === undefined ? 'NOT MEASURED' : c.met ? 'MET   ' : 'MISSED'}  ${c.claim}: ${c.detail}\n`);

  const folder = reportFolder('compare', flag(args, 'out'));
  const json = runs.map((r) => ({ target: r.target, failure: r.failure, phases: Object.fromEntries(r.phases), profiles: r.profiles }));
  folder.write('results.json', JSON.stringify({ seed, machine, scenarios, checks, runs: json }, null, 2));
  folder.write('report.md', comparisonMarkdown(folder, runs, scenarios, checks, `npm run bench -- compare ${argv.join(' ')}`.trim(), machine));
  process.stdout.write(`\nreport: ${folder.dir}/report.md\n`);
  return 0;
}
