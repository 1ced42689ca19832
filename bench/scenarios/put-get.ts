// `npm run bench -- put-get`: end to end through the gateway of a local multi-process cluster
// (or --target / --endpoint): MB/s and each process's peak RSS for PUT then GET of 1 MiB,
// 64 MiB, 256 MiB and 2 GiB objects, and whether the gateway's memory stays flat with object size.
import { randomBytes } from 'node:crypto';
import { flag, parseArgs } from '../../src/cli/args.js';
import { profilesMarkdown, runTargets, type ComparedScenario, type TargetRun } from '../lib/comparison.js';
import { BOOLEAN_FLAGS, newRunId } from '../lib/load-scenario.js';
import { headlineValue, machineNote, markdownGrid, markdownPhases, phaseCharts, reportFolder, textGrid, type PhaseResult } from '../lib/report.js';
import { formatNumber, formatSize } from '../lib/units.js';

const SCENARIOS: ComparedScenario[] = [
  { id: 'put-1m', argv: 'put --size 1MiB --concurrency 16' },
  { id: 'get-1m', argv: 'get --size 1MiB --concurrency 16', readsFrom: 'put-1m' },
  { id: 'put-64m', argv: 'put --size 64MiB --concurrency 4' },
  { id: 'get-64m', argv: 'get --size 64MiB --concurrency 4', readsFrom: 'put-64m' },
  { id: 'put-256m', argv: 'put --size 256MiB --concurrency 2' },
  { id: 'get-256m', argv: 'get --size 256MiB --concurrency 2', readsFrom: 'put-256m' },
  { id: 'put-2g', argv: 'put --size 2GiB --concurrency 1 --count 1' },
  { id: 'get-2g', argv: 'get --size 2GiB --concurrency 1 --count 1', readsFrom: 'put-2g' },
];

/** The gateway may use this much more for a 2 GiB object than for a 64 MiB one and still count as flat. */
const FLAT_ALLOWANCE_BYTES = 64 * 1024 * 1024;

const HELP = `usage: npm run bench -- put-get [options]
  --target NAME | --endpoint URL ...   what to measure (default --target tessera-cluster: 6 nodes, 4+2)
  --pid gateway=PID, --tessera-data DIR   with --endpoint: the processes to report RSS of
  --scenarios a,b,...   subset of: ${SCENARIOS.map((s) => s.id).join(', ')}
  --duration D          per phase (default 10s; the 2 GiB phases move one object)
  --cpu-prof            CPU-profile Tessera's gateway process
  --out DIR             results folder (default bench/results)
`;

function gatewayPeak(phase: PhaseResult | undefined): number | undefined {
  return phase?.processes.find((p) => p.role === 'gateway' || p.role === 'tessera')?.peakRssBytes;
}

/** Whether the gateway's peak RSS for 2 GiB objects stays within the allowance of the 64 MiB ones. */
function memoryVerdict(run: TargetRun): string {
  const lines: string[] = [];
  for (const op of ['put', 'get']) {
    const small = gatewayPeak(run.phases.get(`${op}-64m`));
    const large = gatewayPeak(run.phases.get(`${op}-2g`));
    if (!small || !large) { lines.push(`${op.toUpperCase()}: gateway RSS not measured for both 64 MiB and 2 GiB`); continue; }
    const flat = large <= small + FLAT_ALLOWANCE_BYTES;
    lines.push(`${flat ? 'MET' : 'MISSED'}: gateway peak RSS for a 2 GiB ${op.toUpperCase()} ${formatSize(large)} vs ${formatSize(small)} for 64 MiB ` +
      `(flat means within ${formatSize(FLAT_ALLOWANCE_BYTES)})`);
  }
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, BOOLEAN_FLAGS);
  if (args.flags.has('help')) { process.stdout.write(HELP); return 0; }
  const external = flag(args, 'endpoint') ?? process.env.AWS_ENDPOINT_URL;
  const target = flag(args, 'target') ?? (external ? undefined : 'tessera-cluster');
  const wanted = flag(args, 'scenarios')?.split(',');
  const scenarios = wanted ? SCENARIOS.filter((s) => wanted.includes(s.id)) : SCENARIOS;
  const seed = flag(args, 'seed') ?? randomBytes(8).toString('hex');
  const before = machineNote();
  const [result] = await runTargets([target], scenarios, args, seed, newRunId());
  const machine = { before, after: machineNote() };
  if (!result || result.failure) { process.stderr.write(`${result.failure}\n`); return 1; }

  const phases = scenarios.flatMap((s) => result.phases.get(s.id) ?? []);
  const roles = [...new Set(phases.flatMap((p) => p.processes.map((pr) => pr.role)))];
  const header = ['phase', 'MB/s', ...roles.map((r) => `${r} peak RSS`)];
  const rows = phases.map((p) => [p.scenario, formatNumber(headlineValue(p)), ...roles.map((r) => {
    const usage = p.processes.find((pr) => pr.role === r);
    return usage ? formatSize(usage.peakRssBytes) : '';
  })]);
  const verdict = memoryVerdict(result);
  process.stdout.write(`\n${textGrid([header, ...rows])}\n\n${verdict}\n`);

  const folder = reportFolder('put-get', flag(args, 'out'));
  folder.write('results.json', JSON.stringify({ seed, machine, target: result.target, phases: Object.fromEntries(result.phases), profiles: result.profiles }, null, 2));
  const md = [
    `# put-get against ${result.target}`, '', `Command: \`npm run bench -- put-get ${argv.join(' ')}\``.replace(/ `$/, '`'), '',
    `Machine: ${machine.before} at the start; ${machine.after.replace(/.*, /, '')} at the end.`, '',
    markdownGrid([header, ...rows]), '',
    verdict.split('\n').map((l) => `- ${l}`).join('\n'), '',
    markdownPhases(phases), phaseCharts(folder, 'put-get', 'put-get', phases, (p, o) => `${p.scenario} ${o.op}`), '',
    profilesMarkdown([result]),
  ];
  folder.write('report.md', md.join('\n'));
  process.stdout.write(`\nreport: ${folder.dir}/report.md\n`);
  return phases.some((p) => p.ops.some((o) => o.errors > 0)) ? 3 : 0;
}
