// `npm run bench -- <scenario> [options]` and `tessera bench <scenario>`: the single-workload
// scenarios (put, get, mixed, ...) are built in; every other scenario lives in
// bench/scenarios/<name>.ts and exports `run(argv)`. Results go to bench/results/.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOAD_SCENARIOS, runLoadScenario } from './lib/load-scenario.js';

const scenarios = join(dirname(fileURLToPath(import.meta.url)), 'scenarios');

export async function runBench(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name && name in LOAD_SCENARIOS) return runLoadScenario(name, rest);
  const files = readdirSync(scenarios).filter((f) => f.endsWith('.js')).map((f) => f.replace(/\.js$/, ''));
  if (!name || !files.includes(name) || !existsSync(join(scenarios, `${name}.js`))) {
    const known = [...Object.keys(LOAD_SCENARIOS), ...files];
    process.stderr.write(`usage: npm run bench -- <scenario> [options]   (<scenario> --help for its options)\nscenarios: ${known.join(', ')}\n`);
    return name ? 2 : 1;
  }
  const module = (await import(`./scenarios/${name}.js`)) as { run(argv: string[]): Promise<number | void> };
  return (await module.run(rest)) ?? 0;
}
