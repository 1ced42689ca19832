// A small flag parser shared by the commands: `--name value`, `--name=value`, `--flag`,
// repeated flags collect into arrays; bare words are positionals.
export interface ParsedArgs {
  flags: Map<string, string[]>;
  positionals: string[];
}

export function parseArgs(argv: string[], booleanFlags: readonly string[] = []): ParsedArgs {
  const flags = new Map<string, string[]>();
  const positionals: string[] = [];
  const add = (name: string, value: string) => flags.set(name, [...(flags.get(name) ?? []), value]);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (!arg.startsWith('--')) { positionals.push(arg); continue; }
    const eq = arg.indexOf('=');
    if (eq > 0) { add(arg.slice(2, eq), arg.slice(eq + 1)); continue; }
    const name = arg.slice(2);
    const next = argv[i + 1];
    if (booleanFlags.includes(name) || next === undefined || next.startsWith('--')) add(name, 'true');
    else { add(name, next); i++; }
  }
  return { flags, positionals };
}

export function flag(args: ParsedArgs, name: string): string | undefined {
  const values = args.flags.get(name);
  return values?.[values.length - 1];
}

export function requireFlag(args: ParsedArgs, name: string): string {
  const value = flag(args, name);
  if (value === undefined || value === 'true') throw new Error(`missing --${name}`);
  return value;
}

export function hasFlag(args: ParsedArgs, name: string): boolean {
  return args.flags.has(name);
}
