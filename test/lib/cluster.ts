// Test helper: a real multi-process Tessera cluster on loopback (`tessera cluster`), with the
// handles tests need to hurt it: kill, pause and restart storage nodes, find their files.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/cli/launch.js';

export const tesseraMain = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface TestCluster {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  dataDir: string;
  nodeIds: string[];
  /** Environment for real S3 clients (aws CLI, boto3) pointed at this cluster. */
  clientEnv: NodeJS.ProcessEnv;
  nodePid(id: string): number;
  killNode(id: string, signal?: NodeJS.Signals): Promise<void>;
  restartNode(id: string): Promise<void>;
  /** Start a node process that is not in the map yet; resolves with its address. */
  startExtraNode(id: string): Promise<string>;
  /** Run `tessera <args>` against this cluster; resolves with its output. */
  tessera(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/** Test processes take ports from the range `tessera start` gives its nodes (see launch.ts). */
export { freePort };

function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (pattern.test(output)) { child.stdout!.off('data', onData); child.stdout!.resume(); resolve(); }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready:\n${output}`)));
  });
}

export function runTessera(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [tesseraMain, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function killStartedNodes(dataDir: string): void {
  for (const entry of readdirSync(dataDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    try {
      process.kill(Number(readFileSync(join(dataDir, entry.name, 'node.pid'), 'utf8').trim()), 'SIGKILL');
    } catch { /* no pid file yet, or already gone */ }
  }
}

/** `env`: extra environment for the launcher (gateway settings such as TESSERA_WEBSITE_DOMAIN). */
export async function startCluster(options: { nodes?: number; ec?: string; env?: Record<string, string> } = {}): Promise<TestCluster> {
  const nodes = options.nodes ?? 6;
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-test-'));
  const port = await freePort();
  const accessKeyId = 'test-access-key';
  const secretAccessKey = 'test-secret-key-0123456789';
  const args = ['cluster', '--nodes', String(nodes), '--data', dataDir, '--port', String(port)];
  if (options.ec) args.push('--ec', options.ec);
  const env = { ...process.env, ...options.env, TESSERA_ACCESS_KEY: accessKeyId, TESSERA_SECRET_KEY: secretAccessKey };
  const launcher = spawn(process.execPath, [tesseraMain, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  // A launcher that never gets ready must not outlive the test, nor must the nodes it started.
  await waitForLine(launcher, /tessera cluster ready/, 'tessera cluster').catch((err: unknown) => {
    launcher.kill('SIGKILL');
    killStartedNodes(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  });
  const clusterFile = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as {
    secret: string; nodes: Array<{ id: string; address: string }>;
  };
  const restarted = new Map<string, ChildProcess>();
  const endpoint = `http://127.0.0.1:${port}`;
  const nodePid = (id: string) => Number(readFileSync(join(dataDir, id, 'node.pid'), 'utf8').trim());
  const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

  const startNodeProcess = async (id: string, address: string) => {
    const child = spawn(process.execPath, [tesseraMain, 'node', '--id', id, '--data', join(dataDir, id), '--listen', address],
      { env: { ...process.env, TESSERA_CLUSTER_SECRET: clusterFile.secret }, stdio: ['ignore', 'pipe', 'inherit'] });
    restarted.set(id, child);
    await waitForLine(child, /listening/, `node ${id}`);
  };

  const cluster: TestCluster = {
    endpoint,
    accessKeyId,
    secretAccessKey,
    region: 'us-east-1',
    dataDir,
    nodeIds: clusterFile.nodes.map((n) => n.id),
    clientEnv: {
      ...process.env,
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_ENDPOINT_URL: endpoint,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    },
    nodePid,
    async killNode(id, signal = 'SIGKILL') {
      const pid = nodePid(id);
      process.kill(pid, signal);
      if (signal === 'SIGKILL' || signal === 'SIGTERM') {
        while (alive(pid)) await new Promise((r) => setTimeout(r, 20));
      }
    },
    async restartNode(id) {
      await startNodeProcess(id, clusterFile.nodes.find((n) => n.id === id)!.address);
    },
    async startExtraNode(id) {
      const address = `127.0.0.1:${await freePort()}`;
      await startNodeProcess(id, address);
      return address;
    },
    tessera: (extra) => runTessera(extra, { TESSERA_CLUSTER_SECRET: clusterFile.secret }),
    async stop() {
      const pids = clusterFile.nodes.map((n) => { try { return nodePid(n.id); } catch { return 0; } });
      launcher.kill('SIGTERM');
      await new Promise((r) => (launcher.exitCode !== null ? r(undefined) : launcher.once('exit', r)));
      for (const child of restarted.values()) child.kill('SIGKILL');
      for (const pid of pids) if (pid && alive(pid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return cluster;
}
