// `npm run bench -- <scenario> [options]`: each scenario lives in bench/scenarios/<name>.ts and
// exports `run(argv)`; results go to bench/results/.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const scenarios = join(dirname(fileURLToPath(import.meta.url)), 'scenarios');

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const known = readdirSync(scenarios).filter((f) => f.endsWith('.js')).map((f) => f.replace(/\.js$/, ''));
  if (!name || !known.includes(name) || !existsSync(join(scenarios, `${name}.js`))) {
    process.stderr.write(`usage: npm run bench -- <scenario> [options]\nscenarios: ${known.join(', ')}\n`);
    return name ? 2 : 1;
  }
  const module = (await import(`./scenarios/${name}.js`)) as { run(argv: string[]): Promise<number | void> };
  return (await module.run(rest)) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => { if (code) process.exitCode = code; },
  (err: unknown) => { console.error(err); process.exitCode = 1; },
);
