// Object placement: which nodes hold the k+m shards of an object.
//
// Weighted rendezvous (HRW) hashing: every UP node draws a score -ln(u)/rate from a keyed hash u
// of (object, node), and the lowest scores win. The scores are exponential races, so adding or
// removing a node only moves the shards that it wins or held. Rates are the nodes' weights,
// calibrated (placement-weights.ts) so that shards follow weight exactly even when a few nodes
// share many shards. With zones, shards go round by round: each round takes the best remaining
// node of every zone (zones ordered by that node's score) until count nodes are chosen, so an
// object spans as many zones as it can, evenly. The hash is keyed by the map's placement seed,
// so crafted keys cannot pile onto one node.
//
// Shard order is the order of picking. The rebalancer keeps shards on nodes that stay in an
// object's placement (reassign() in rebalance.ts), so only the shards of the joining or leaving
// node move; the chosen node ids are recorded in the object's metadata, so reads never depend on
// this function staying the same.
import { StoreError } from '../common/errors.js';
import { pb } from '../common/node-service.js';
import { pairHigh, pairUniform, sipHash24, sipKeyFromSeed, type SipKey } from './hash.js';
import { calibratedRates, zoneShardCounts } from './placement-weights.js';

const TWO_POW_MINUS_32 = 2 ** -32;

/** A cluster map prepared for placement lookups: candidates, their digests and weights. */
export class Placement {
  private readonly ids: string[];
  private readonly weights: number[];
  private readonly digestHi: Uint32Array;
  private readonly digestLo: Uint32Array;
  private readonly zoneOf: Int32Array;
  private readonly zoneMembers: number[][] = [];
  private readonly key: SipKey;
  /** 1 / calibrated rate of every candidate, per shard count. */
  private readonly inverseRates = new Map<number, Float64Array>();

  constructor(map: pb.IClusterMap) {
    this.key = sipKeyFromSeed(map.placementSeed);
    const candidates = upNodes(map);
    const n = candidates.length;
    this.ids = candidates.map((node) => node.id);
    this.weights = candidates.map((node) => node.weight);
    this.digestHi = new Uint32Array(n);
    this.digestLo = new Uint32Array(n);
    this.zoneOf = new Int32Array(n);
    const zones = new Map<string, number>();
    candidates.forEach((node, i) => {
      const digest = sipHash24(this.key, node.id);
      this.digestHi[i] = digest.hi;
      this.digestLo[i] = digest.lo;
      if (!zones.has(node.zone)) {
        zones.set(node.zone, zones.size);
        this.zoneMembers.push([]);
      }
      this.zoneOf[i] = zones.get(node.zone)!;
      this.zoneMembers[this.zoneOf[i]!]!.push(i);
    });
  }

  /** How many nodes can take new placements. */
  get candidateCount(): number {
    return this.ids.length;
  }

  private get zoneCount(): number {
    return this.zoneMembers.length;
  }

  /** The ids of `count` distinct UP nodes for an object, in shard order. */
  place(bucket: string, key: string, count: number): string[] {
    if (!Number.isInteger(count) || count < 1) {
      throw new StoreError('InvalidArgument', `shard count must be a positive integer, got ${count}`);
    }
    if (count > this.ids.length) {
      throw new StoreError('Unavailable', `placement needs ${count} nodes but only ${this.ids.length} are up`,
        { needed: count, up: this.ids.length });
    }
    const best = this.bestPerZone(objectDigestInput(bucket, key), count, this.inverseRatesFor(count));
    return this.pickRoundRobin(best, count).map((i) => this.ids[i]!);
  }

  /**
   * For every zone, its `count` lowest-scoring nodes, best first: zone z's list is at
   * [z * count, (z + 1) * count) of `scores` and `nodes` (empty places score Infinity).
   */
  private bestPerZone(objectName: string, count: number, inverseRate: Float64Array): ZoneRanking {
    const object = sipHash24(this.key, objectName);
    const scores = new Float64Array(this.zoneCount * count).fill(Infinity);
    const nodes = new Int32Array(this.zoneCount * count);
    for (let i = 0; i < this.ids.length; i++) {
      const start = this.zoneOf[i]! * count;
      let at = start + count - 1;
      // -ln(u) >= 1 - u, and u < (high + 1) / 2^32: most nodes lose on this bound alone.
      const high = pairHigh(object.hi, this.digestHi[i]!);
      if ((1 - (high + 1) * TWO_POW_MINUS_32) * inverseRate[i]! >= scores[at]!) continue;
      const u = pairUniform(high, object.lo, this.digestLo[i]!);
      const score = -Math.log(u) * inverseRate[i]!;
      if (score >= scores[at]!) continue;
      // Insertion into the zone's short sorted list.
      for (; at > start && scores[at - 1]! > score; at--) {
        scores[at] = scores[at - 1]!;
        nodes[at] = nodes[at - 1]!;
      }
      scores[at] = score;
      nodes[at] = i;
    }
    return { scores, nodes };
  }

  /** Calibrated per zone for the number of shards the zone takes (see placement-weights.ts). */
  private inverseRatesFor(count: number): Float64Array {
    let inverse = this.inverseRates.get(count);
    if (!inverse) {
      inverse = new Float64Array(this.ids.length);
      const shardCounts = zoneShardCounts(this.zoneMembers.map((members) => members.length), count);
      this.zoneMembers.forEach((members, zone) => {
        const rates = calibratedRates(members.map((i) => this.weights[i]!), shardCounts[zone]!);
        members.forEach((node, j) => { inverse![node] = 1 / rates[j]!; });
      });
      this.inverseRates.set(count, inverse);
    }
    return inverse;
  }

  /** Round r takes the r-th best node of every zone that has one, best score first. */
  private pickRoundRobin({ scores, nodes }: ZoneRanking, count: number): number[] {
    if (this.zoneCount === 1) return Array.from(nodes);
    const picked: number[] = [];
    for (let round = 0; picked.length < count; round++) {
      const contenders: number[] = [];
      for (let zone = 0; zone < this.zoneCount; zone++) {
        const at = zone * count + round;
        if (scores[at]! !== Infinity) contenders.push(at);
      }
      contenders.sort((a, b) => scores[a]! - scores[b]!);
      for (const at of contenders.slice(0, count - picked.length)) picked.push(nodes[at]!);
    }
    return picked;
  }
}

interface ZoneRanking {
  scores: Float64Array;
  nodes: Int32Array;
}

interface Candidate {
  id: string;
  zone: string;
  weight: number;
}

/**
 * The UP nodes of a map, validated, in id order (so the order of the map's list cannot matter,
 * not even to floating-point sums). An unset weight (proto3 reads it as 0) counts as 1.
 */
function upNodes(map: pb.IClusterMap): Candidate[] {
  const seen = new Set<string>();
  const up: Candidate[] = [];
  for (const node of map.nodes ?? []) {
    const id = node.id ?? '';
    if (!id || seen.has(id)) throw new StoreError('InvalidArgument', `cluster map has an empty or duplicate node id '${id}'`);
    seen.add(id);
    const weight = node.weight === undefined || node.weight === null || node.weight === 0 ? 1 : node.weight;
    if (!(weight > 0 && Number.isFinite(weight))) {
      throw new StoreError('InvalidArgument', `node ${id} has an invalid weight ${node.weight}`);
    }
    if ((node.state ?? pb.NodeState.UP) === pb.NodeState.UP) up.push({ id, zone: node.zone ?? '', weight });
  }
  return up.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Bucket names cannot contain '/', so this names an object unambiguously. */
function objectDigestInput(bucket: string, key: string): string {
  return `${bucket}/${key}`;
}

const prepared = new WeakMap<pb.IClusterMap, Placement>();

/**
 * The ids of `count` distinct nodes for an object, in shard order (shard i -> result[i]).
 * Only nodes in state UP are candidates (DRAINING/OUT get no new placements).
 * Throws StoreError('Unavailable') if fewer than `count` candidate nodes exist.
 * The prepared form of each map object is cached, so treat a map as immutable once placed on.
 */
export function placeObject(map: pb.IClusterMap, bucket: string, key: string, count: number): string[] {
  let placement = prepared.get(map);
  if (!placement) {
    placement = new Placement(map);
    prepared.set(map, placement);
  }
  return placement.place(bucket, key, count);
}
