#!/usr/bin/env node
// `tessera <command> [args]`: each command lives in src/cli/commands/<command>.ts and exports
// `run(argv)`, so commands are added without touching this file.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withConfiguration } from '../common/config.js';

const here = dirname(fileURLToPath(import.meta.url));

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === 'help') {
    const { usage } = await import('./commands/help.js');
    process.stdout.write(usage());
    return command ? 0 : 1;
  }
  if (!/^[a-z][a-z0-9-]*$/.test(command) || !existsSync(join(here, 'commands', `${command}.js`))) {
    process.stderr.write(`tessera: unknown command '${command}' (try 'tessera help')\n`);
    return 2;
  }
  const module = (await import(`./commands/${command}.js`)) as { run(argv: string[]): Promise<number | void> };
  return (await module.run(withConfiguration(command, rest))) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => { if (code) process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`tessera: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
