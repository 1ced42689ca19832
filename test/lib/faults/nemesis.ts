// The nemesis: rounds of faults chosen from a seed. Each round hurts at most `parityShards` nodes
// (kill -9, SIGSTOP, network cut, a link slowed to a crawl, full disk, corrupted or deleted shard
// files) — damage within
// what the erasure code promises to survive — or changes the cluster map (a node reweighted, so
// the gateway rebalances data onto it and, when the weight is put back, off it again), and
// sometimes kill -9s the gateway; then it undoes the faults and runs a full `tessera admin heal`,
// which must succeed, before the next round.
import { open, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultCluster } from './fault-cluster.js';
import type { Random } from './random.js';

export type NodeFault = 'kill' | 'pause' | 'partition' | 'slow-link' | 'disk-full' | 'corrupt-shard' | 'delete-shard' | 'reweight';

export const NODE_FAULTS: readonly NodeFault[] = ['kill', 'pause', 'partition', 'slow-link', 'disk-full', 'corrupt-shard', 'delete-shard', 'reweight'];

/** A slow link: 8 Mbit/s each way, a hundredth of what its peers move. */
const SLOW_LINK_KBIT = 8_000;

export interface NemesisOptions {
  /** Most nodes hurt at once (the erasure code's parity count). */
  maxVictims: number;
  /** How long a round's faults last. */
  holdMs: [number, number];
  /** Chance that a round also kills and restarts the gateway. */
  gatewayKillChance: number;
  faults?: readonly NodeFault[];
  log?: (line: string) => void;
}

export interface NemesisReport {
  rounds: number;
  faults: Record<NodeFault | 'gateway-kill', number>;
  heals: number;
  healFailures: string[];
  /** Wall time of each full heal pass. */
  healMs: number[];
}

export class Nemesis {
  private stopping = false;
  private running: Promise<void> | undefined;
  /** Nodes whose weight a round changed, to be put back to 1 when the round ends. */
  private readonly reweighted = new Set<string>();
  readonly report: NemesisReport = {
    rounds: 0,
    faults: { 'kill': 0, 'pause': 0, 'partition': 0, 'slow-link': 0, 'disk-full': 0, 'corrupt-shard': 0, 'delete-shard': 0, 'reweight': 0, 'gateway-kill': 0 },
    heals: 0,
    healFailures: [],
    healMs: [],
  };

  constructor(private readonly cluster: FaultCluster, private readonly random: Random, private readonly options: NemesisOptions) {}

  start(): void {
    this.running = this.loop();
  }

  /** Finish the current round (faults undone, healed) and stop. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  get faultCount(): number {
    return Object.values(this.report.faults).reduce((a, b) => a + b, 0);
  }

  private log(line: string): void {
    this.options.log?.(line);
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      await this.round();
      await sleep(this.random.int(200, 1000));
    }
  }

  private async round(): Promise<void> {
    const { maxVictims, holdMs, gatewayKillChance } = this.options;
    const candidates = [...this.cluster.nodeIds];
    const victims = Array.from({ length: this.random.int(1, maxVictims) }, () =>
      candidates.splice(this.random.int(0, candidates.length - 1), 1)[0]!);
    // A link can be slowed only in a network namespace.
    const faults = (this.options.faults ?? NODE_FAULTS).filter((f) => f !== 'slow-link' || this.cluster.usesNamespaces);
    const plan = victims.map((id) => ({ id, fault: this.random.pick(faults) }));
    const killGateway = this.random.next() < gatewayKillChance;
    const hold = this.random.int(holdMs[0], holdMs[1]);
    this.report.rounds++;
    this.log(`round ${this.report.rounds}: ${plan.map((p) => `${p.fault} ${p.id}`).join(', ')}${killGateway ? ', gateway-kill' : ''} for ${hold} ms`);
    for (const { id, fault } of plan) {
      await this.inject(id, fault);
      this.report.faults[fault]++;
    }
    if (killGateway) {
      await sleep(this.random.int(0, hold));
      await this.cluster.killGateway('SIGKILL');
      this.report.faults['gateway-kill']++;
      await sleep(this.random.int(100, 1500));
      await this.cluster.startGateway();
    } else {
      await sleep(hold);
    }
    await this.cluster.restoreAll();
    await this.restoreWeights();
    await this.heal();
    this.log(`round ${this.report.rounds}: faults undone, healed in ${this.report.healMs.at(-1)} ms`);
  }

  private async inject(id: string, fault: NodeFault): Promise<void> {
    switch (fault) {
      case 'kill': return this.cluster.killNode(id, 'SIGKILL');
      case 'pause': return this.cluster.pauseNode(id);
      case 'partition': return this.cluster.cutNode(id);
      case 'slow-link': return this.cluster.throttleNode(id, SLOW_LINK_KBIT);
      case 'disk-full': return this.cluster.restartNode(id, this.cluster.usedBytes(id));
      case 'corrupt-shard': return this.damageShard(id, corruptFile);
      case 'delete-shard': return this.damageShard(id, unlink);
      case 'reweight': await this.setWeight(id, this.random.int(2, 4)); return;
    }
  }

  /**
   * A map change: the gateway sees the new epoch and rebalances in the background. The map is
   * written to every node, so with another victim of the round already down it may not happen:
   * whether it did is returned.
   */
  private async setWeight(id: string, weight: number): Promise<boolean> {
    const result = await this.cluster.admin(['node', 'set', '--id', id, '--weight', String(weight)]);
    if (result.code !== 0) {
      this.log(`node set --id ${id} --weight ${weight} refused: ${result.stderr.trim()}`);
      return false;
    }
    if (weight === 1) this.reweighted.delete(id);
    else this.reweighted.add(id);
    return true;
  }

  /** With every node back, the weights go back to 1 (a few tries: nodes may still be starting). */
  private async restoreWeights(): Promise<void> {
    for (const id of [...this.reweighted]) {
      for (let attempt = 1; !(await this.setWeight(id, 1)); attempt++) {
        if (attempt === 5) throw new Error(`node ${id}: its weight could not be put back`);
        await sleep(1_000);
      }
    }
  }

  /** Apply `damage` to a few shard files of the node, chosen by the seed. */
  private async damageShard(id: string, damage: (path: string, random: Random) => Promise<void>): Promise<void> {
    const files = this.cluster.shardFiles(id).sort();
    for (let n = Math.min(files.length, this.random.int(1, 3)); n > 0; n--) {
      const path = files.splice(this.random.int(0, files.length - 1), 1)[0]!;
      await damage(path, this.random).catch(() => undefined); // the file may have gone meanwhile
    }
  }

  /** A full heal pass; it must finish without failures once every node is back. */
  private async heal(): Promise<void> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      const result = await this.cluster.admin(['heal']);
      if (result.code === 0) break;
      const failure = `round ${this.report.rounds}: ${result.stdout.trim().split('\n').at(-1)} ${result.stderr.trim()}`;
      this.log(`heal attempt ${attempt} failed: ${failure}`);
      if (attempt === 3) {
        this.report.healFailures.push(failure);
        break;
      }
      await sleep(2_000); // gateways and nodes may not have seen a restarted node yet
    }
    this.report.heals++;
    this.report.healMs.push(Date.now() - started);
  }
}

/** Overwrite a few bytes somewhere in the file with seeded garbage (bit rot, a torn sector). */
async function corruptFile(path: string, random: Random): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const { size } = await file.stat();
    if (size === 0) return;
    const garbage = Buffer.from(Array.from({ length: Math.min(size, random.int(1, 64)) }, () => random.int(0, 255)));
    await file.write(garbage, 0, garbage.length, random.int(0, size - garbage.length));
  } finally {
    await file.close();
  }
}
