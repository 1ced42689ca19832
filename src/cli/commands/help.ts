import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export function usage(): string {
  const commands = readdirSync(dirname(fileURLToPath(import.meta.url)))
    .filter((f) => f.endsWith('.js') && f !== 'help.js')
    .map((f) => f.replace(/\.js$/, ''));
  return `usage: tessera <command> [options]\n\ncommands:\n${commands.map((c) => `  ${c}`).join('\n')}\n\n` +
    `Run 'tessera <command> --help' for a command's options.\n`;
}

export async function run(): Promise<number> {
  process.stdout.write(usage());
  return 0;
}
