// Configuration for long-running deployments: every flag of the server and backup commands can
// also come from a file (`--config tessera.yaml`, YAML or JSON, or TESSERA_CONFIG) and from the
// environment (`TESSERA_<FLAG>`, e.g. TESSERA_METRICS_LISTEN for --metrics-listen). The command line wins
// over the environment, which wins over the file. The file is validated against the flags each
// command takes, so a typo fails at start with the line to fix, not silently.
//
//   log-level: info                  # top level: applies to every command that has the flag
//   node:    { id: n1, data: /var/lib/tessera, listen: "10.0.0.1:7070", zone: a }
//   gateway: { seeds: ["10.0.0.1:7070", "10.0.0.2:7070"], port: 9000 }
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** The YAML parser, loaded only for a YAML file: importing it costs every command ~20-40 ms of start-up. */
const parseYaml = (text: string): unknown => (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text);

type Kind = 'string' | 'number' | 'address' | 'list';

const LOGGING: Record<string, Kind> = { 'log-level': 'string' };
/** Mutual TLS on the node network (every command that talks to storage nodes). */
const NODE_TLS: Record<string, Kind> = { 'node-tls-ca': 'string', 'node-tls-cert': 'string', 'node-tls-key': 'string', 'node-tls-crl': 'string' };
const GATEWAY_COMMON: Record<string, Kind> = {
  ...LOGGING, host: 'string', port: 'number', region: 'string', domain: 'string', 'website-domain': 'string', 'tls-cert': 'string', 'tls-key': 'string',
  'metrics-token': 'string', 'sse-master-key-file': 'string',
};

/** Where a backup repository is (every backup command). */
const REPOSITORY: Record<string, Kind> = { bucket: 'string', endpoint: 'string', profile: 'string', region: 'string', 'key-file': 'string' };

/** The flags each command takes that make sense in a file or the environment. */
export const SETTINGS: Record<string, Record<string, Kind>> = {
  node: {
    ...LOGGING, ...NODE_TLS, id: 'string', data: 'string', listen: 'address', secret: 'string', capacity: 'number', zone: 'string',
    'scrub-interval': 'string', 'orphan-grace': 'string', 'scrub-rate': 'number', 'bulk-listen': 'string', 'meta-listen': 'string',
    'metrics-listen': 'address', 'metrics-token': 'string',
  },
  gateway: { ...GATEWAY_COMMON, ...NODE_TLS, seeds: 'list', 'secret-file': 'string' },
  init: NODE_TLS,
  start: { ...GATEWAY_COMMON, data: 'string' },
  cluster: { ...GATEWAY_COMMON, data: 'string', nodes: 'number', ec: 'string' },
  admin: { ...NODE_TLS, data: 'string', seeds: 'list', endpoint: 'string', token: 'string' },
  backup: {
    ...REPOSITORY, 'lock-days': 'number', 'chunk-size': 'number', 'pack-size': 'number', uploads: 'number', reads: 'number',
    'metrics-file': 'string',
  },
  restore: REPOSITORY,
  'serve-nbd': REPOSITORY,
  snapshots: REPOSITORY,
  prune: REPOSITORY,
  gc: REPOSITORY,
  verify: REPOSITORY,
};

export class ConfigError extends Error {}

const envName = (flag: string) => `TESSERA_${flag.toUpperCase().replace(/-/g, '_')}`;

/**
 * `argv` with the file's and the environment's settings for `command` put in front (so the
 * command line, parsed last-wins, overrides them) and `--config` taken out.
 */
export function withConfiguration(command: string, argv: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const { path, rest } = takeConfigFlag(argv);
  const settings = SETTINGS[command];
  const configPath = path ?? env.TESSERA_CONFIG;
  if (!settings) {
    if (path) throw new ConfigError(`tessera ${command} takes no --config (commands that do: ${Object.keys(SETTINGS).join(', ')})`);
    return rest;
  }
  const fromFile = configPath ? settingsFromFile(configPath, command, settings) : [];
  const fromEnv = Object.keys(settings).flatMap((name) => {
    const value = env[envName(name)];
    return value === undefined || value === '' ? [] : toFlags(name, checkValue(settings[name]!, value, envName(name)));
  });
  return [...fromFile, ...fromEnv, ...rest];
}

function takeConfigFlag(argv: string[]): { path?: string; rest: string[] } {
  const rest: string[] = [];
  let path: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') { rest.push(...argv.slice(i)); break; }
    if (arg === '--config') {
      path = argv[++i];
      if (path === undefined) throw new ConfigError('--config needs a file name');
    } else if (arg.startsWith('--config=')) path = arg.slice('--config='.length);
    else rest.push(arg);
  }
  return { path, rest };
}

/** Parse and validate the file; the flags it sets for `command`. */
export function settingsFromFile(path: string, command: string, settings: Record<string, Kind>): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let document: unknown;
  try {
    document = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
  }
  if (document === null || document === undefined) return [];
  if (!isRecord(document)) throw new ConfigError(`${path}: the top level must be a mapping of settings`);
  const everyFlag = new Set(Object.values(SETTINGS).flatMap((s) => Object.keys(s)));
  const flags: string[] = [];
  for (const [key, value] of Object.entries(document)) {
    if (key in SETTINGS) {
      if (!isRecord(value)) throw new ConfigError(`${path}: '${key}' must be a mapping of ${key} settings`);
      if (key === command) flags.push(...sectionFlags(path, key, value, settings));
    } else if (everyFlag.has(key)) {
      if (key in settings) flags.push(...toFlags(key, checkValue(settings[key]!, value, `${path}: ${key}`)));
    } else {
      throw new ConfigError(`${path}: unknown setting '${key}'${suggestion(key, [...Object.keys(SETTINGS), ...everyFlag])} ` +
        `(sections: ${Object.keys(SETTINGS).join(', ')}; or a setting shared by them)`);
    }
  }
  return flags;
}

function sectionFlags(path: string, section: string, values: Record<string, unknown>, settings: Record<string, Kind>): string[] {
  return Object.entries(values).flatMap(([name, value]) => {
    const kind = settings[name];
    if (!kind) {
      throw new ConfigError(`${path}: ${section}.${name} is not a setting of 'tessera ${section}'${suggestion(name, Object.keys(settings))} ` +
        `(settings: ${Object.keys(settings).join(', ')})`);
    }
    return toFlags(name, checkValue(kind, value, `${path}: ${section}.${name}`));
  });
}

/** The value as flag text, or a ConfigError naming where it came from. */
function checkValue(kind: Kind, value: unknown, where: string): string {
  if (value === null || value === undefined) throw new ConfigError(`${where} has no value`);
  switch (kind) {
    case 'number': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
      if (!Number.isSafeInteger(n) || n < 0) throw new ConfigError(`${where} must be a whole number, got ${JSON.stringify(value)}`);
      return String(n);
    }
    case 'list': {
      const items = Array.isArray(value) ? value : String(value).split(',');
      if (!items.length || items.some((item) => typeof item !== 'string' || !isAddress(item.trim()))) {
        throw new ConfigError(`${where} must be a list of HOST:PORT addresses, got ${JSON.stringify(value)}`);
      }
      return items.map((item: string) => item.trim()).join(',');
    }
    case 'address':
      if (typeof value !== 'string' || !isAddress(value)) throw new ConfigError(`${where} must be HOST:PORT, got ${JSON.stringify(value)}`);
      return value;
    case 'string':
      if (typeof value !== 'string' && typeof value !== 'number') throw new ConfigError(`${where} must be text, got ${JSON.stringify(value)}`);
      return String(value);
  }
}

function isAddress(text: string): boolean {
  const match = /^(\[[0-9a-fA-F:]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(text);
  return match !== null && Number(match[2]) <= 65_535;
}

function toFlags(name: string, value: string): string[] {
  return [`--${name}=${value}`];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** " (did you mean 'port'?)" for a near miss: one edit apart, or a prefix. */
function suggestion(given: string, known: string[]): string {
  const near = known.find((k) => editDistance(given, k) <= 2 || k.startsWith(given) || given.startsWith(k));
  return near ? ` (did you mean '${near}'?)` : '';
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
