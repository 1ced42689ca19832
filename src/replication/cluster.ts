// The client's view of the cluster: the newest cluster map it has seen, one NodeClient per node,
// and which nodes answer. Gateways pull the map from the nodes, so an admin change reaches every
// gateway without a restart.
import { StoreError } from '../common/errors.js';
import { pb } from '../common/node-service.js';
import type { NodeTls } from '../common/node-tls.js';
import { NodeClient } from './node-client.js';

const REFRESH_MS = 3_000;
/** A node that failed is skipped for this long before it is tried again. */
const DOWN_BACKOFF_MS = 2_000;
/** A node that held up a read is read from last for this long. */
const SLOW_BACKOFF_MS = 10_000;

export interface ClusterOptions {
  /** Addresses (host:port) of any nodes; the map names the rest. */
  seeds: string[];
  secret: string;
  /** Mutual TLS to the nodes (they must run with it too). */
  tls?: NodeTls;
}

export class Cluster {
  private current: pb.IClusterMap = { epoch: 0, nodes: [] };
  private readonly clients = new Map<string, NodeClient>();
  private readonly downUntil = new Map<string, number>();
  private readonly slowUntil = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<(map: pb.IClusterMap, previous: pb.IClusterMap) => void> = [];

  private constructor(private readonly options: ClusterOptions) {}

  static async connect(options: ClusterOptions): Promise<Cluster> {
    const cluster = new Cluster(options);
    await cluster.refresh();
    if (!cluster.current.nodes?.length) {
      throw new StoreError('Unavailable', `no cluster map from any of ${options.seeds.join(', ')}`);
    }
    cluster.timer = setInterval(() => void cluster.refresh().catch(() => undefined), REFRESH_MS);
    cluster.timer.unref();
    return cluster;
  }

  get map(): pb.IClusterMap {
    return this.current;
  }

  onMapChange(listener: (map: pb.IClusterMap, previous: pb.IClusterMap) => void): void {
    this.listeners.push(listener);
  }

  /** Ask every known node (and the seeds) for its map; adopt the newest epoch. */
  async refresh(): Promise<void> {
    const addresses = new Set([...this.options.seeds, ...(this.current.nodes ?? []).map((n) => n.address!)]);
    const maps = await Promise.all([...addresses].map(async (address) => {
      const known = this.current.nodes?.find((n) => n.address === address);
      const client = known ? this.client(known.id!) : new NodeClient(`seed:${address}`, address, this.options.secret, this.options.tls);
      try {
        return await client.getClusterMap();
      } catch {
        return undefined;
      } finally {
        if (!known) client.close();
      }
    }));
    for (const map of maps) if (map && (map.epoch ?? 0) > (this.current.epoch ?? 0)) this.adopt(map);
    await this.learnChannels();
  }

  /**
   * Ask nodes whose bulk or metadata channel we do not know (yet, or any more: a restarted node
   * listens on new ports) for them (Health advertises them).
   */
  private async learnChannels(): Promise<void> {
    const unknown = this.memberIds().filter((id) => !this.client(id).channelsKnown && this.isLikelyUp(id));
    await this.fanOut(unknown, (client) => client.health());
  }

  /** Use a map (e.g. one an admin command just wrote) if it is newer than ours. */
  adopt(map: pb.IClusterMap): void {
    if ((map.epoch ?? 0) <= (this.current.epoch ?? 0)) return;
    const previous = this.current;
    this.current = map;
    for (const node of map.nodes ?? []) {
      const existing = this.clients.get(node.id!);
      if (existing && existing.address !== node.address) {
        existing.close();
        this.clients.delete(node.id!);
      }
    }
    for (const listener of this.listeners) listener(map, previous);
  }

  node(id: string): pb.INodeInfo | undefined {
    return this.current.nodes?.find((n) => n.id === id);
  }

  /** Nodes that hold data: up or draining (out nodes are gone). */
  memberIds(): string[] {
    return (this.current.nodes ?? []).filter((n) => n.state !== pb.NodeState.OUT).map((n) => n.id!);
  }

  client(id: string): NodeClient {
    let client = this.clients.get(id);
    if (!client) {
      const info = this.node(id);
      if (!info) throw new StoreError('Unavailable', `node ${id} is not in the cluster map`, { nodeId: id });
      client = new NodeClient(id, info.address!, this.options.secret, this.options.tls);
      this.clients.set(id, client);
    }
    return client;
  }

  isLikelyUp(id: string): boolean {
    return (this.downUntil.get(id) ?? 0) <= Date.now() && this.node(id) !== undefined;
  }

  markDown(id: string): void {
    this.downUntil.set(id, Date.now() + DOWN_BACKOFF_MS);
    this.clients.get(id)?.forgetBulkChannel();
  }

  markUp(id: string): void {
    this.downUntil.delete(id);
  }

  /** The node answers, but far behind its peers (a failing disk, a congested link). */
  markSlow(id: string): void {
    this.slowUntil.set(id, Date.now() + SLOW_BACKOFF_MS);
  }

  isLikelySlow(id: string): boolean {
    return (this.slowUntil.get(id) ?? 0) > Date.now();
  }

  /**
   * Run `call` on each node in parallel; failures are collected, not thrown. Nodes recently seen
   * down are skipped (answering at once) so a dead node does not slow every request.
   */
  async fanOut<T>(ids: readonly string[], call: (client: NodeClient, id: string) => Promise<T>): Promise<FanOutResult<T>> {
    const results = await Promise.all(ids.map(async (id): Promise<[string, T | undefined, StoreError | undefined]> => {
      if (!this.isLikelyUp(id)) return [id, undefined, new StoreError('Unavailable', `node ${id} is down`, { nodeId: id })];
      try {
        const value = await call(this.client(id), id);
        this.markUp(id);
        return [id, value, undefined];
      } catch (err) {
        const error = err instanceof StoreError ? err : new StoreError('Unavailable', String(err), { nodeId: id });
        if (error.kind === 'Unavailable') this.markDown(id);
        return [id, undefined, error];
      }
    }));
    const ok = new Map<string, T>();
    const failed = new Map<string, StoreError>();
    for (const [id, value, error] of results) {
      if (error) failed.set(id, error);
      else ok.set(id, value as T);
    }
    return { ok, failed };
  }

  /**
   * fanOut for calls that need `quorum` successes (a write's acknowledgements, a quorum read): once
   * that many have succeeded, calls still out `slowAfterMs` after the start are not waited for — a
   * frozen node would hold the caller for the whole call deadline — and come back in `late`.
   */
  async fanOutToQuorum<T>(ids: readonly string[], call: (client: NodeClient, id: string) => Promise<T>, quorum: number,
    slowAfterMs: number): Promise<FanOutResult<T> & { late: Map<string, Promise<FanOutResult<T>>> }> {
    const ok = new Map<string, T>();
    const failed = new Map<string, StoreError>();
    const calls = new Map(ids.map((id) => [id, this.fanOut([id], call)] as const));
    const outstanding = new Map(calls);
    let slow = false;
    await new Promise<void>((resolve) => {
      const check = () => {
        if (!outstanding.size || (slow && ok.size >= quorum)) resolve();
      };
      const timer = setTimeout(() => { slow = true; check(); }, slowAfterMs);
      for (const [id, pending] of calls) {
        void pending.then((result) => {
          outstanding.delete(id);
          for (const [node, value] of result.ok) ok.set(node, value);
          for (const [node, error] of result.failed) failed.set(node, error);
          check();
        });
      }
      check();
      void Promise.all(calls.values()).then(() => clearTimeout(timer));
    });
    return { ok: new Map(ok), failed: new Map(failed), late: new Map(outstanding) };
  }

  /** Nodes answering Health now. */
  async probe(): Promise<Map<string, pb.HealthResult>> {
    const ids = (this.current.nodes ?? []).map((n) => n.id!);
    const { ok } = await this.fanOut(ids, (client) => client.health());
    for (const id of ids) if (!ok.has(id)) this.markDown(id);
    return ok;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}

export interface FanOutResult<T> {
  ok: Map<string, T>;
  failed: Map<string, StoreError>;
}
