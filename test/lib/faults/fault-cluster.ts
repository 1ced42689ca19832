// A Tessera cluster built to be hurt: every storage node is its own process (in its own network
// namespace when the machine allows it, else on loopback), the S3 gateway is a separate
// `tessera gateway` process, and each can be killed, paused, restarted, cut off or given a full disk.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClusterFile, initClusterMap } from '../../../src/cli/launch.js';
import { type ClusterClient, createClusterClient } from '../../../src/replication/cluster-client.js';
import { freePort, runTessera, tesseraMain } from '../cluster.js';
import { walk } from '../nodes.js';
import { createTestHosts, netnsAvailable, type TestHost } from './netns.js';

/** Port of a node inside its own namespace (nothing else listens there). */
const NAMESPACED_NODE_PORT = 7480;
const CLUSTER_SECRET = 'fault-suite-cluster-secret-0123456789abcdef';
/** How a storage node names the temp file of a shard write in progress. */
const TEMP_SUFFIX = '.tmp';

export interface FaultClusterOptions {
  nodes: number;
  dataShards: number;
  parityShards: number;
  /** Put each node in a network namespace (default: when available). */
  namespaces?: boolean;
}

export interface NodeState {
  id: string;
  address: string;
  dataDir: string;
  host?: TestHost;
  process?: ChildProcess;
  paused: boolean;
  linkCut: boolean;
  throttled: boolean;
  capacityBytes?: number;
}

export class FaultCluster {
  readonly accessKeyId = 'fault-access-key';
  readonly secretAccessKey = 'fault-secret-key-0123456789';
  readonly region = 'us-east-1';
  private gateway: ChildProcess | undefined;
  private readonly exited = new Set<ChildProcess>();

  private constructor(
    readonly dataDir: string,
    readonly nodes: Map<string, NodeState>,
    readonly gatewayPort: number,
    readonly usesNamespaces: boolean,
    private readonly destroyHosts: () => Promise<void>,
  ) {}

  static async start(options: FaultClusterOptions): Promise<FaultCluster> {
    const dataDir = mkdtempSync(join(tmpdir(), 'tessera-faults-'));
    const ids = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    const useNamespaces = options.namespaces ?? netnsAvailable();
    const hosts = useNamespaces ? await createTestHosts(ids) : undefined;
    const nodes = new Map<string, NodeState>();
    for (const id of ids) {
      const host = hosts?.hosts.get(id);
      const address = host ? `${host.address}:${NAMESPACED_NODE_PORT}` : `127.0.0.1:${await freePort()}`;
      nodes.set(id, { id, address, dataDir: join(dataDir, id), host, paused: false, linkCut: false, throttled: false });
    }
    const cluster = new FaultCluster(dataDir, nodes, await freePort(), useNamespaces, hosts?.destroy ?? (async () => undefined));
    try {
      await Promise.all(ids.map((id) => cluster.startNode(id)));
      const file: ClusterFile = {
        secret: CLUSTER_SECRET,
        dataShards: options.dataShards,
        parityShards: options.parityShards,
        nodes: [...nodes.values()].map((n) => ({ id: n.id, address: n.address, zone: '' })),
      };
      await initClusterMap(file);
      await cluster.startGateway();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.gatewayPort}`;
  }

  get nodeIds(): string[] {
    return [...this.nodes.keys()];
  }

  private node(id: string): NodeState {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  private env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      TESSERA_CLUSTER_SECRET: CLUSTER_SECRET,
      TESSERA_ACCESS_KEY: this.accessKeyId,
      TESSERA_SECRET_KEY: this.secretAccessKey,
    };
  }

  /** Start a node process (again); `capacityBytes` simulates a disk of that size. */
  async startNode(id: string, capacityBytes?: number): Promise<void> {
    const node = this.node(id);
    if (node.process) throw new Error(`node ${id} is already running`);
    const args = [tesseraMain, 'node', '--id', id, '--data', node.dataDir, '--listen', node.address];
    if (capacityBytes !== undefined) args.push('--capacity', String(capacityBytes));
    // A node in a namespace stands for another host: shard bytes must cross its link, not shared memory.
    const command = node.host ? ['ip', ['netns', 'exec', node.host.namespace, 'env', 'TESSERA_BULK_SHM=off', process.execPath, ...args]] as const
      : [process.execPath, args] as const;
    node.process = await this.spawnReady(command[0], [...command[1]], /listening/, join(this.dataDir, `${id}.log`));
    node.capacityBytes = capacityBytes;
    node.paused = false;
  }

  /** Kill a node process (SIGKILL: no cleanup, like a power cut; SIGTERM: a clean stop). */
  async killNode(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const node = this.node(id);
    const child = node.process;
    if (!child) return;
    if (node.paused && signal !== 'SIGKILL') child.kill('SIGCONT');
    await this.killChild(child, signal);
    node.process = undefined;
    node.paused = false;
  }

  async restartNode(id: string, capacityBytes?: number): Promise<void> {
    await this.killNode(id);
    await this.startNode(id, capacityBytes);
  }

  /** SIGSTOP: the node keeps its connections but answers nothing, like a machine stuck in swap. */
  pauseNode(id: string): void {
    const node = this.node(id);
    node.process?.kill('SIGSTOP');
    node.paused = true;
  }

  resumeNode(id: string): void {
    const node = this.node(id);
    node.process?.kill('SIGCONT');
    node.paused = false;
  }

  /** Partition the node away (link down in its namespace; SIGSTOP stands in without namespaces). */
  async cutNode(id: string): Promise<void> {
    const node = this.node(id);
    if (node.host) await node.host.cut();
    else this.pauseNode(id);
    node.linkCut = true;
  }

  async reconnectNode(id: string): Promise<void> {
    const node = this.node(id);
    if (node.host) await node.host.restore();
    else this.resumeNode(id);
    node.linkCut = false;
  }

  /** Slow the node's link to `kbitPerSecond` each way; needs network namespaces. */
  async throttleNode(id: string, kbitPerSecond: number): Promise<void> {
    const node = this.node(id);
    if (!node.host) throw new Error('throttling a node needs network namespaces');
    await node.host.throttle(kbitPerSecond);
    node.throttled = true;
  }

  async unthrottleNode(id: string): Promise<void> {
    const node = this.node(id);
    await node.host?.unthrottle();
    node.throttled = false;
  }

  /** Bytes the node has sent over its link (needs network namespaces). */
  async bytesSentBy(id: string): Promise<number> {
    const { host } = this.node(id);
    if (!host) throw new Error('counting a node\'s traffic needs network namespaces');
    return host.bytesSent();
  }

  isRunning(id: string): boolean {
    return this.node(id).process !== undefined;
  }

  /** Every shard file the node holds (not temp files). */
  shardFiles(id: string): string[] {
    return walk(join(this.node(id).dataDir, 'shards')).filter((path) => !path.endsWith(TEMP_SUFFIX));
  }

  /** Temp files of shard writes that never finished (beside the shard files, or in tmp/ from older versions). */
  tempFiles(id: string): string[] {
    const { dataDir } = this.node(id);
    return [...walk(join(dataDir, 'shards')), ...walk(join(dataDir, 'tmp'))].filter((path) => path.endsWith(TEMP_SUFFIX));
  }

  /** Bytes of shard files on the node's disk. */
  usedBytes(id: string): number {
    return this.shardFiles(id).reduce((sum, path) => sum + (statSync(path, { throwIfNoEntry: false })?.size ?? 0), 0);
  }

  async startGateway(): Promise<void> {
    if (this.gateway) throw new Error('gateway already running');
    this.gateway = await this.spawnReady(process.execPath,
      [tesseraMain, 'gateway', '--seeds', this.seeds().join(','), '--host', '127.0.0.1', '--port', String(this.gatewayPort)],
      /tessera gateway ready/, join(this.dataDir, 'gateway.log'));
  }

  async killGateway(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.gateway) return;
    await this.killChild(this.gateway, signal);
    this.gateway = undefined;
  }

  private seeds(): string[] {
    return [...this.nodes.values()].map((n) => n.address);
  }

  /** Run `tessera admin <args>` against the cluster from the root namespace. */
  admin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return runTessera(['admin', '--seeds', this.seeds().join(','), ...args], { TESSERA_CLUSTER_SECRET: CLUSTER_SECRET });
  }

  /** A replication-layer client (what `tessera admin` uses), for checks below the S3 API. */
  connectStore(): Promise<ClusterClient> {
    return createClusterClient({ seeds: this.seeds(), secret: CLUSTER_SECRET });
  }

  /** Undo every fault: reconnect, resume and (re)start every node without a capacity limit. */
  async restoreAll(): Promise<void> {
    for (const node of this.nodes.values()) {
      if (node.linkCut) await this.reconnectNode(node.id);
      if (node.throttled) await this.unthrottleNode(node.id);
      if (node.paused) this.resumeNode(node.id);
      if (!node.process) await this.startNode(node.id);
      else if (node.capacityBytes !== undefined) await this.restartNode(node.id);
    }
    if (!this.gateway) await this.startGateway();
  }

  async stop(): Promise<void> {
    await this.killGateway();
    for (const node of this.nodes.values()) await this.killNode(node.id);
    await this.destroyHosts();
    if (!process.env.KEEP_FAULT_DIR) rmSync(this.dataDir, { recursive: true, force: true });
  }

  private async spawnReady(command: string, args: string[], ready: RegExp, logPath: string): Promise<ChildProcess> {
    const log = openSync(logPath, 'a');
    const child = spawn(command, args, { env: this.env(), stdio: ['ignore', 'pipe', log] });
    closeSync(log);
    child.once('exit', () => this.exited.add(child));
    return new Promise((resolve, reject) => {
      let output = '';
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (!ready.test(output)) return;
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        child.off('exit', onExit);
        resolve(child);
      };
      const onExit = (code: number | null) => reject(new Error(`${args.slice(0, 3).join(' ')} exited (${code}) before it was ready; see ${logPath}`));
      child.stdout!.on('data', onData);
      child.once('exit', onExit);
    });
  }

  private async killChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
    if (this.exited.has(child)) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    if (signal === 'SIGTERM') child.kill('SIGCONT');
    await gone;
  }
}
