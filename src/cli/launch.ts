// Starting a local cluster: the cluster file (node ids, ports, secret) under the data directory,
// storage-node child processes, the first cluster map, and the gateway on top.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pb } from '../common/node-service.js';
import type { NodeTls } from '../common/node-tls.js';
import { defaultErasure } from '../replication/layout.js';
import { NodeClient } from '../replication/node-client.js';

export interface ClusterFile {
  secret: string;
  dataShards: number;
  parityShards: number;
  nodes: Array<{ id: string; address: string; zone: string }>;
}

const CLUSTER_FILE = 'cluster.json';
const mainScript = fileURLToPath(new URL('./main.js', import.meta.url));

export function readClusterFile(dataDir: string): ClusterFile | undefined {
  const path = join(dataDir, CLUSTER_FILE);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as ClusterFile) : undefined;
}

/** Parse "K+M". */
export function parseErasure(text: string): { dataShards: number; parityShards: number } {
  const match = /^(\d+)\+(\d+)$/.exec(text);
  if (!match) throw new Error(`--ec takes K+M (e.g. 4+2), got '${text}'`);
  return { dataShards: Number(match[1]), parityShards: Number(match[2]) };
}

/**
 * Ports the nodes keep (they are written into the cluster file) come from below Linux's ephemeral
 * range (32768 up): a port the kernel handed out for listen(0) could be taken, before the node
 * binds it, as the source port of any outgoing connection on the host.
 */
const KEPT_PORTS = { first: 10_000, last: 32_767 };

export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = KEPT_PORTS.first + Math.floor(Math.random() * (KEPT_PORTS.last - KEPT_PORTS.first + 1));
    if (await canListen(host, port)) return port;
    if (attempt === 100) throw new Error(`no free port between ${KEPT_PORTS.first} and ${KEPT_PORTS.last} on ${host}`);
  }
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** The cluster file of `dataDir`, created on first start (a restart reuses ids, ports and secret). */
export async function loadOrCreateClusterFile(dataDir: string, nodes: number, ec: string | undefined, host: string): Promise<ClusterFile> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const existing = readClusterFile(dataDir);
  if (existing) return existing;
  const erasure = ec ? parseErasure(ec) : defaultErasure(nodes);
  if (erasure.dataShards + erasure.parityShards > nodes) {
    throw new Error(`--ec ${erasure.dataShards}+${erasure.parityShards} needs at least ${erasure.dataShards + erasure.parityShards} nodes`);
  }
  const file: ClusterFile = {
    secret: process.env.TESSERA_CLUSTER_SECRET ?? randomBytes(32).toString('hex'),
    ...erasure,
    nodes: [],
  };
  for (let i = 1; i <= nodes; i++) file.nodes.push({ id: `n${i}`, address: `${host}:${await freePort(host)}`, zone: '' });
  writeFileSync(join(dataDir, CLUSTER_FILE), JSON.stringify(file, null, 2), { mode: 0o600 });
  return file;
}

/** Start one `tessera node` process; resolves once it listens. */
export function spawnNode(dataDir: string, node: ClusterFile['nodes'][number], secret: string): Promise<ChildProcess> {
  // The launcher's own Node flags (e.g. --cpu-prof) reach the nodes too.
  const child = spawn(process.execPath, [...process.execArgv, mainScript, 'node', '--id', node.id, '--data', join(dataDir, node.id), '--listen', node.address],
    { env: { ...process.env, TESSERA_CLUSTER_SECRET: secret }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('listening')) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`node ${node.id} exited with code ${code} before listening`)));
  });
}

/** Give every node the first cluster map unless they already have one. */
export async function initClusterMap(file: ClusterFile, tls?: NodeTls): Promise<pb.IClusterMap> {
  const clients = file.nodes.map((n) => new NodeClient(n.id, n.address, file.secret, tls));
  try {
    const maps = await Promise.all(clients.map((c) => c.getClusterMap().catch(() => undefined)));
    const newest = maps.reduce<pb.IClusterMap | undefined>((best, m) => (m && Number(m.epoch) > Number(best?.epoch ?? 0) ? m : best), undefined);
    if (newest && Number(newest.epoch) > 0) return newest;
    const map: pb.IClusterMap = {
      epoch: 1,
      dataShards: file.dataShards,
      parityShards: file.parityShards,
      placementSeed: randomBytes(16),
      nodes: file.nodes.map((n) => ({ id: n.id, address: n.address, zone: n.zone, weight: 1, state: pb.NodeState.UP })),
    };
    await Promise.all(clients.map((c) => c.setClusterMap(map)));
    return map;
  } finally {
    for (const c of clients) c.close();
  }
}

/** S3 credentials of the root key: from the environment, or printed defaults. */
export function rootCredentials(): { accessKeyId: string; secretAccessKey: string; isDefault: boolean } {
  const accessKeyId = process.env.TESSERA_ACCESS_KEY;
  const secretAccessKey = process.env.TESSERA_SECRET_KEY;
  if (accessKeyId && secretAccessKey) return { accessKeyId, secretAccessKey, isDefault: false };
  return { accessKeyId: 'tesseraadmin', secretAccessKey: 'tesseraadmin', isDefault: true };
}

export function writePid(path: string): void {
  writeFileSync(path, `${process.pid}\n`);
}
