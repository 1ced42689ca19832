// The single-workload scenarios (`npm run bench -- put|get|mixed|stat|delete|list|multipart|ranged-get`):
// flags -> one phase against one connection -> terminal table, results.json, report.md.
import { randomBytes } from 'node:crypto';
import { flag, parseArgs, type ParsedArgs } from '../../src/cli/args.js';
import { connect, CONNECTION_HELP, type Connection } from './connection.js';
import { OP_KINDS, type OpKind } from './load-types.js';
import { cleanup, runPhase, type PhaseSpec } from './phase.js';
import { machineNote, markdownPhases, phaseCharts, reportFolder, terminalTable, type Headline } from './report.js';
import { formatSizeSpec, parseDuration, parseSize, parseSizeSpec, type SizeSpec } from './units.js';

interface ScenarioDefaults {
  mix: Partial<Record<OpKind, number>>;
  size: string;
  concurrency: number;
  /** Objects to create first; 'auto' scales with object size. */
  objects?: number | 'auto';
  headline?: Headline;
}

export const LOAD_SCENARIOS: Record<string, ScenarioDefaults> = {
  put: { mix: { put: 1 }, size: '1MiB', concurrency: 16 },
  get: { mix: { get: 1 }, size: '1MiB', concurrency: 16, objects: 'auto' },
  mixed: { mix: { get: 45, put: 15, stat: 30, delete: 10 }, size: '1MiB', concurrency: 16, objects: 'auto' },
  stat: { mix: { stat: 1 }, size: '1KiB', concurrency: 32, objects: 'auto' },
  delete: { mix: { delete: 1 }, size: '1KiB', concurrency: 16, objects: 10_000, headline: 'keys/s' },
  list: { mix: { list: 1 }, size: '1KiB', concurrency: 8, objects: 10_000, headline: 'keys/s' },
  multipart: { mix: { multipart: 1 }, size: '256MiB', concurrency: 2 },
  'ranged-get': { mix: { 'ranged-get': 1 }, size: '64MiB', concurrency: 16, objects: 'auto' },
};

export const WORKLOAD_HELP = `workload:
  --size S | MIN-MAX      object size, fixed or log-uniform in a range (e.g. 4KiB, 1KiB-64MiB)
  --concurrency N         requests in flight
  --clients N             worker threads generating load (default: 2 when concurrency > 1)
  --duration D            how long to measure (default 10s)
  --warmup D              run the load this long first, unmeasured, so every server is measured
                          warm (JIT, caches, connections; default 2s, 0 for none); phases that
                          delete or stop after --count have none
  --count N               stop after N operations instead
  --objects N             objects to create before reading, listing or deleting
  --mix op=W,...          weights for 'mixed' (put, get, ranged-get, stat, delete, list, multipart)
  --part-size S           multipart part size (default 16MiB); --part-concurrency N (default 4)
  --range-size S          ranged GET length (default 1MiB)
  --batch N               keys per delete: 1 = DeleteObject, up to 1000 = DeleteObjects
  --max-keys N            LIST page size (default 1000)
  --seed TEXT             content seed (default random)
  --out DIR               results folder (default bench/results)
  --no-cleanup            leave the objects in the bucket
`;

const AUTO_PREPARE_BYTES = 1024 ** 3;

function parseMix(text: string): Partial<Record<OpKind, number>> {
  return Object.fromEntries(text.split(',').map((part) => {
    const [op, weight] = part.split('=').map((x) => x.trim());
    if (!OP_KINDS.includes(op as OpKind)) throw new Error(`unknown operation '${op}' in --mix (known: ${OP_KINDS.join(', ')})`);
    return [op, Number(weight ?? 1)];
  }));
}

/** The phase a scenario's defaults and the flags describe. */
export function phaseSpec(scenario: string, args: ParsedArgs, overrides: Partial<ScenarioDefaults> = {}): PhaseSpec {
  const defaults = { ...LOAD_SCENARIOS[scenario]!, ...overrides };
  const mix = flag(args, 'mix') ? parseMix(flag(args, 'mix')!) : defaults.mix;
  const sizes = parseSizeSpec(flag(args, 'size') ?? defaults.size);
  const concurrency = Number(flag(args, 'concurrency') ?? defaults.concurrency);
  const rangeSizes = parseSizeSpec(flag(args, 'range-size') ?? '1MiB');
  const needsObjects = ['get', 'ranged-get', 'stat', 'delete', 'list'].some((op) => mix[op as OpKind]);
  const objectsFlag = flag(args, 'objects');
  const objects = objectsFlag ? Number(objectsFlag) : defaults.objects === 'auto' || defaults.objects === undefined
    ? autoObjectCount(sizes, concurrency) : defaults.objects;
  const deleteBatch = Math.min(1000, Number(flag(args, 'batch') ?? 1));
  // A delete-only phase also ends when its objects run out.
  const count = flag(args, 'count') ? Number(flag(args, 'count')) : Infinity;
  const typicalBytes = mix['ranged-get'] ? rangeSizes.max : sizes.max;
  return {
    scenario,
    title: `${scenario} ${formatSizeSpec(sizes)}${deleteBatch > 1 ? ` batch ${deleteBatch}` : ''} c${concurrency}`,
    headline: defaults.headline ?? (typicalBytes >= 256 * 1024 ? 'MB/s' : 'ops/s'),
    mix,
    sizes,
    rangeSizes,
    concurrency,
    clients: Number(flag(args, 'clients') ?? (concurrency > 1 ? 2 : 1)),
    durationMs: parseDuration(flag(args, 'duration') ?? '10s'),
    warmupMs: parseDuration(flag(args, 'warmup') ?? '2s'),
    count,
    partSize: parseSize(flag(args, 'part-size') ?? '16MiB'),
    partConcurrency: Number(flag(args, 'part-concurrency') ?? 4),
    deleteBatch,
    listPrefix: '',
    listMaxKeys: Number(flag(args, 'max-keys') ?? 1000),
    listExpectedKeys: mix.list && !mix.put && !mix.delete && !mix.multipart ? objects : undefined,
    prepare: needsObjects ? { count: objects, sizes } : undefined,
  };
}

function autoObjectCount(sizes: SizeSpec, concurrency: number): number {
  const average = (sizes.min + sizes.max) / 2;
  return Math.max(2 * concurrency, Math.min(1000, Math.floor(AUTO_PREPARE_BYTES / Math.max(1, average))));
}

export const BOOLEAN_FLAGS = ['cpu-prof', 'no-cleanup', 'help'];

export function newRunId(): string {
  return randomBytes(4).toString('hex');
}

export async function runLoadScenario(scenario: string, argv: string[]): Promise<number> {
  const args = parseArgs(argv, BOOLEAN_FLAGS);
  if (args.flags.has('help')) {
    process.stdout.write(`usage: npm run bench -- ${scenario} [options]\n\n${CONNECTION_HELP}\n${WORKLOAD_HELP}`);
    return 0;
  }
  const spec = phaseSpec(scenario, args);
  const seed = flag(args, 'seed') ?? randomBytes(8).toString('hex');
  const connection: Connection = await connect(args);
  try {
    const { result, written } = await runPhase(connection, spec, seed, newRunId());
    process.stdout.write(`\n${terminalTable([result])}`);
    const folder = reportFolder(scenario, flag(args, 'out'));
    folder.write('results.json', JSON.stringify({ seed, endpoint: connection.target.endpoint, phases: [result] }, null, 2));
    const charts = phaseCharts(folder, scenario, result.title, [result], (_, o) => o.op);
    folder.write('report.md', `# Bench: ${result.title} against ${connection.name}\n\nMachine: ${machineNote()}\n\n${markdownPhases([result])}\n${charts}`);
    process.stdout.write(`\nreport: ${folder.dir}/report.md\n`);
    if (!args.flags.has('no-cleanup')) await cleanup(connection, written, seed);
    return result.ops.some((o) => o.errors > 0) ? 3 : 0;
  } finally {
    await connection.close();
  }
}
