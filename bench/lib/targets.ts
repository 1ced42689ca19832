// S3 servers the bench can start on loopback and measure side by side: the null server (the HTTP
// ceiling), Tessera all-in-one and as a multi-process cluster, s3rver (npm) and moto (python3).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { freePort } from '../../src/cli/launch.js';
import type { WatchedProcess } from './proc-stats.js';
import type { Credentials } from './sigv4.js';

const distRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const repoRoot = join(distRoot, '..');
const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 15_000;

export interface RunningTarget {
  name: string;
  endpoint: string;
  credentials: Credentials;
  /** The server's processes, for RSS and CPU; read when asked, as pid files may appear late. */
  processes(): WatchedProcess[];
  /** Where the server's stdout/stderr and, with --cpu-prof, its CPU profiles go; kept after stop() only with --cpu-prof. */
  workDir: string;
  stop(): Promise<void>;
}

export interface TargetOptions {
  /** Tessera cluster shape. */
  nodes: number;
  ec: string;
  /** Write a V8 CPU profile of Tessera's gateway process into workDir/profiles. */
  cpuProfile: boolean;
}

interface LaunchSpec {
  command: string;
  args: string[];
  credentials: Credentials;
  env?: Record<string, string>;
  /** Server processes besides the launched one (pid files). */
  extraProcesses?: (dataDir: string) => WatchedProcess[];
  mainRole: string;
}

const BENCH_CREDENTIALS = { accessKeyId: 'benchaccesskey', secretAccessKey: 'benchsecretkey0123456789' };

const LAUNCHERS: Record<string, (port: number, dataDir: string, options: TargetOptions) => LaunchSpec> = {
  null: (port) => ({
    command: process.execPath,
    args: [join(distRoot, 'bench', 'main.js'), 'null-server', '--port', String(port)],
    credentials: BENCH_CREDENTIALS,
    mainRole: 'null-server',
  }),
  tessera: (port, dataDir) => ({
    command: process.execPath,
    args: [join(distRoot, 'src', 'cli', 'main.js'), 'start', '--port', String(port), '--data', dataDir],
    credentials: BENCH_CREDENTIALS,
    env: tesseraEnv(),
    extraProcesses: tesseraClusterProcesses,
    mainRole: 'tessera',
  }),
  'tessera-cluster': (port, dataDir, options) => ({
    command: process.execPath,
    args: [join(distRoot, 'src', 'cli', 'main.js'), 'cluster', '--nodes', String(options.nodes), '--ec', options.ec, '--data', dataDir, '--port', String(port)],
    credentials: BENCH_CREDENTIALS,
    env: tesseraEnv(),
    extraProcesses: tesseraClusterProcesses,
    mainRole: 'launcher',
  }),
  s3rver: (port, dataDir) => ({
    command: process.execPath,
    // s3rver makes LIST continuation tokens with DES, which OpenSSL 3 keeps in its legacy provider.
    args: ['--openssl-legacy-provider', join(repoRoot, 'node_modules', 's3rver', 'bin', 's3rver.js'), '-d', dataDir, '-a', '127.0.0.1', '-p', String(port), '--silent'],
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    mainRole: 's3rver',
  }),
  moto: (port) => ({
    command: 'python3',
    args: ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)],
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    mainRole: 'moto',
  }),
};

export const TARGET_NAMES = Object.keys(LAUNCHERS);

function tesseraEnv(): Record<string, string> {
  return { TESSERA_ACCESS_KEY: BENCH_CREDENTIALS.accessKeyId, TESSERA_SECRET_KEY: BENCH_CREDENTIALS.secretAccessKey };
}

/** `tessera cluster` writes DIR/gateway.pid and DIR/<node-id>/node.pid. */
export function tesseraClusterProcesses(dataDir: string): WatchedProcess[] {
  const found: WatchedProcess[] = [];
  const readPid = (file: string) => Number(readFileSync(file, 'utf8').trim());
  if (existsSync(join(dataDir, 'gateway.pid'))) found.push({ role: 'gateway', pid: readPid(join(dataDir, 'gateway.pid')) });
  if (!existsSync(dataDir)) return found;
  for (const entry of readdirSync(dataDir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const pidFile = join(dataDir, entry.name, 'node.pid');
    if (entry.isDirectory() && existsSync(pidFile)) found.push({ role: `node ${entry.name}`, pid: readPid(pidFile) });
  }
  return found;
}

/** Servers started and not yet stopped, so an interrupted bench does not leave them running. */
const running = new Set<() => Promise<void>>();

function stopAllOnSignal(signal: NodeJS.Signals): void {
  process.stderr.write(`\n${signal}: stopping the servers the bench started\n`);
  void Promise.all([...running].map((stop) => stop())).finally(() => process.exit(130));
}

export async function startTarget(name: string, options: TargetOptions): Promise<RunningTarget> {
  if (running.size === 0) {
    process.once('SIGINT', stopAllOnSignal);
    process.once('SIGTERM', stopAllOnSignal);
  }
  const launcher = LAUNCHERS[name];
  if (!launcher) throw new Error(`unknown target '${name}' (known: ${TARGET_NAMES.join(', ')})`);
  const workDir = mkdtempSync(join(tmpdir(), `tessera-bench-${name}-`));
  const dataDir = join(workDir, 'data');
  const port = await freePort();
  const spec = launcher(port, dataDir, options);
  const log = openSync(join(workDir, 'server.log'), 'a');
  // Node refuses --cpu-prof in NODE_OPTIONS, so only the launched process (Tessera's gateway) is profiled.
  const profileFlags = options.cpuProfile && name.startsWith('tessera') ? ['--cpu-prof', `--cpu-prof-dir=${join(workDir, 'profiles')}`] : [];
  const child = spawn(spec.command, [...profileFlags, ...spec.args], {
    stdio: ['ignore', log, log],
    env: { ...process.env, ...spec.env },
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const processes = (): WatchedProcess[] => {
    const fromPidFiles = spec.extraProcesses?.(dataDir) ?? [];
    // The launched process may itself be one of them (Tessera's gateway runs in it).
    return fromPidFiles.some((p) => p.pid === child.pid) ? fromPidFiles : [{ role: spec.mainRole, pid: child.pid! }, ...fromPidFiles];
  };
  const stop = async (): Promise<void> => {
    running.delete(stop);
    if (running.size === 0) {
      process.off('SIGINT', stopAllOnSignal);
      process.off('SIGTERM', stopAllOnSignal);
    }
    await stopProcesses(child, processes());
    rmSync(profileFlags.length ? dataDir : workDir, { recursive: true, force: true });
  };
  running.add(stop);
  try {
    await waitUntilServing(endpoint, child);
  } catch (err) {
    const log = tail(join(workDir, 'server.log'));
    await stop();
    throw new Error(`${(err as Error).message}; log:\n${log}`);
  }
  return { name, endpoint, credentials: spec.credentials, processes, workDir, stop };
}


async function waitUntilServing(endpoint: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before serving`);
    }
    try {
      const res = await request(endpoint, { method: 'GET', headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  throw new Error(`server did not answer on ${endpoint} within ${READY_TIMEOUT_MS / 1000} s`);
}

function tail(file: string): string {
  return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
}

/** SIGTERM the launched process (so profiles get written), then SIGKILL whatever of its processes is left. */
async function stopProcesses(child: ChildProcess, processes: WatchedProcess[]): Promise<void> {
  const exited = child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = new Promise<void>((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS).unref());
  await Promise.race([exited, timer]);
  for (const { pid } of processes) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
