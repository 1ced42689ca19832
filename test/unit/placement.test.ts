// Placement properties: what the replication layer and an operator rely on when the cluster
// map says where shards go.
import t, { type Test as Tap } from 'tap';
import fc from 'fast-check';
import { pb } from '../../src/common/node-service.js';
import { placeObject, Placement } from '../../src/replication/placement.js';
import { sipHash24 } from '../../src/replication/hash.js';

interface NodeSpec {
  zone?: string;
  weight?: number;
  state?: pb.NodeState;
}

function makeMap(nodes: NodeSpec[], seed: Uint8Array = new Uint8Array(16).fill(7)): pb.IClusterMap {
  return {
    epoch: 1,
    placementSeed: seed,
    nodes: nodes.map((spec, i) => ({ id: `node-${i}`, address: `127.0.0.1:${9000 + i}`, zone: '', weight: 1, state: pb.NodeState.UP, ...spec })),
  };
}

const uniform = (n: number, zones = 0) => makeMap(Array.from({ length: n }, (_, i) => ({ zone: zones ? `z${i % zones}` : '' })));

const objectKey = fc.string({ unit: 'binary', maxLength: 40 });
const bucketName = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{2,20}$/);
const nodeSpec: fc.Arbitrary<NodeSpec> = fc.record({
  zone: fc.constantFrom('', 'a', 'b', 'c', 'd'),
  weight: fc.double({ min: 0.1, max: 10, noNaN: true }),
  state: fc.constantFrom(pb.NodeState.UP, pb.NodeState.UP, pb.NodeState.UP, pb.NodeState.DRAINING, pb.NodeState.OUT),
});
const clusterMap = fc.array(nodeSpec, { minLength: 1, maxLength: 24 }).map((nodes) => makeMap(nodes));
const upIds = (map: pb.IClusterMap) => map.nodes!.filter((n) => n.state === pb.NodeState.UP).map((n) => n.id!);

t.test('SipHash-2-4 matches the reference vectors of the SipHash paper', async (t) => {
  const key = [0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c] as const;
  const hex = (bytes: number) => {
    const d = sipHash24(key, Uint8Array.from({ length: bytes }, (_, i) => i));
    return d.hi.toString(16).padStart(8, '0') + d.lo.toString(16).padStart(8, '0');
  };
  t.equal(hex(0), '726fdb47dd0e0e31');
  t.equal(hex(8), '93f5f5799a932462');
  t.equal(hex(15), 'a129ca6149be45e5');
  t.equal(hex(63), '958a324ceb064572');
  // Strings hash as their UTF-16LE code units.
  const utf16 = (text: string) => Uint8Array.from([...text].flatMap((c) => [c.charCodeAt(0) & 0xff, c.charCodeAt(0) >> 8]));
  for (const text of ['', 'a', 'photos/img-1.jpg', 'ключ→']) t.same(sipHash24(key, text), sipHash24(key, utf16(text)), `'${text}'`);
});

t.test('the same map and object always give the same distinct UP nodes', async () => {
  fc.assert(fc.property(clusterMap, bucketName, objectKey, fc.integer({ min: 1, max: 12 }), (map, bucket, key, count) => {
    const up = new Set(upIds(map));
    if (up.size < count) return;
    const placed = placeObject(map, bucket, key, count);
    // The same map decoded again, its node list in another order.
    const copy = structuredClone(map);
    copy.nodes!.reverse();
    const again = new Placement(copy).place(bucket, key, count);
    return placed.length === count && new Set(placed).size === count
      && placed.every((id) => up.has(id)) && placed.join() === again.join();
  }));
});

t.test('too few UP nodes is Unavailable', async (t) => {
  const map = makeMap([{}, {}, { state: pb.NodeState.DRAINING }, { state: pb.NodeState.OUT }]);
  t.same(placeObject(map, 'b', 'k', 2).sort(), ['node-0', 'node-1']);
  t.throws(() => placeObject(map, 'b', 'k', 3), { name: 'StoreError(Unavailable)' });
});

t.test('a different placement seed places objects differently', async (t) => {
  const a = makeMap(Array.from({ length: 20 }, () => ({})), new Uint8Array(16).fill(1));
  const b = makeMap(Array.from({ length: 20 }, () => ({})), new Uint8Array(16).fill(2));
  let differ = 0;
  for (let i = 0; i < 200; i++) if (placeObject(a, 'b', `k${i}`, 6).join() !== placeObject(b, 'b', `k${i}`, 6).join()) differ++;
  t.ok(differ > 190, `${differ}/200 objects placed differently`);
});

t.test('shards spread over as many zones as possible, evenly', async () => {
  const zonedMap = fc.array(fc.record({ zone: fc.constantFrom('a', 'b', 'c', 'd', 'e'), state: fc.constantFrom(pb.NodeState.UP, pb.NodeState.UP, pb.NodeState.DRAINING) }),
    { minLength: 1, maxLength: 20 }).map((nodes) => makeMap(nodes));
  fc.assert(fc.property(zonedMap, objectKey, fc.integer({ min: 1, max: 12 }), (map, key, count) => {
    const up = map.nodes!.filter((n) => n.state === pb.NodeState.UP);
    if (up.length < count) return;
    const zoneOf = new Map(up.map((n) => [n.id!, n.zone!]));
    const upPerZone = countBy(up.map((n) => n.zone!));
    const placedPerZone = countBy(placeObject(map, 'bucket', key, count).map((id) => zoneOf.get(id)!));
    // A zone may hold two more shards than another only if the other has no UP node left to give.
    for (const [zone, size] of upPerZone) {
      const held = placedPerZone.get(zone) ?? 0;
      for (const other of placedPerZone.values()) if (other >= held + 2 && held < size) return false;
    }
    return placedPerZone.size === Math.min(count, upPerZone.size);
  }));
});

t.test('a node joining or leaving moves only the shards it takes or held (equal weights)', async () => {
  const equalMap = fc.array(fc.record({ zone: fc.constantFrom('', 'a', 'b', 'c') }), { minLength: 2, maxLength: 20 }).map((nodes) => makeMap(nodes));
  const change = fc.record({ join: fc.boolean(), zone: fc.constantFrom('', 'a', 'b', 'c', 'd'), leaver: fc.nat(), leaveAs: fc.constantFrom(pb.NodeState.DRAINING, pb.NodeState.OUT, undefined) });
  fc.assert(fc.property(equalMap, change, fc.array(objectKey, { minLength: 20, maxLength: 20 }), fc.integer({ min: 1, max: 8 }),
    (before, { join, zone, leaver, leaveAs }, keys, count) => {
      const after = structuredClone(before);
      let changed: string;
      if (join) {
        changed = 'newcomer';
        after.nodes!.push({ id: changed, zone, weight: 1, state: pb.NodeState.UP });
      } else {
        const index = leaver % after.nodes!.length;
        changed = after.nodes![index]!.id!;
        if (leaveAs === undefined) after.nodes!.splice(index, 1);
        else after.nodes![index]!.state = leaveAs;
      }
      if (Math.min(upIds(before).length, upIds(after).length) < count) return;
      return keys.every((key) => {
        const old = placeObject(before, 'bucket', key, count);
        const now = placeObject(after, 'bucket', key, count);
        const gained = now.filter((id) => !old.includes(id));
        const lost = old.filter((id) => !now.includes(id));
        return gained.length === lost.length && gained.length <= 1 && (join ? gained : lost).every((id) => id === changed);
      });
    }));
});

/** Shards each node holds over `objects` objects. */
function shardsPerNode(map: pb.IClusterMap, objects: number, count: number): Map<string, number> {
  const placement = new Placement(map);
  const held = new Map<string, number>();
  for (let i = 0; i < objects; i++) for (const id of placement.place('photos', `img/${i}.jpg`, count)) held.set(id, (held.get(id) ?? 0) + 1);
  return held;
}

/** Every UP node holds shards in proportion to its weight, within 5 standard deviations. */
function assertWeightShares(t: Tap, map: pb.IClusterMap, objects: number, count: number): void {
  const up = map.nodes!.filter((n) => n.state === pb.NodeState.UP);
  const totalWeight = up.reduce((sum, n) => sum + n.weight!, 0);
  const held = shardsPerNode(map, objects, count);
  for (const node of up) {
    const share = (count * node.weight!) / totalWeight;
    const expected = objects * share;
    const tolerance = 5 * Math.sqrt(objects * share * (1 - share)) + 1;
    const got = held.get(node.id!) ?? 0;
    if (Math.abs(got - expected) > tolerance) t.fail(`${node.id} (weight ${node.weight}) holds ${got} shards, expected ${expected.toFixed(0)} ± ${tolerance.toFixed(0)}`);
  }
  t.pass(`${up.length} nodes hold shards in proportion to weight`);
}

t.test('nodes hold shards in proportion to their weight, even when few nodes share many shards', async (t) => {
  // 10 nodes, 6 shards: a weight-10 node must be in 91% of objects; plain HRW gives it 77%.
  assertWeightShares(t, makeMap([4, 6, 8, 10, 4, 6, 8, 10, 4, 6].map((weight) => ({ weight }))), 6000, 6);
  fc.assert(fc.property(fc.array(fc.double({ min: 1, max: 5, noNaN: true }), { minLength: 8, maxLength: 40 }), fc.integer({ min: 1, max: 6 }), (weights, count) => {
    const total = weights.reduce((a, b) => a + b, 0);
    if ((count * Math.max(...weights)) / total > 0.95) return;
    assertWeightShares(t, makeMap(weights.map((weight) => ({ weight }))), 3000, count);
  }), { numRuns: 8, seed: 20261128 });
});

t.test('a node weighing more than its share of one shard per object is in every placement', async (t) => {
  const map = makeMap([12, 1, 1, 1, 1, 1, 1].map((weight) => ({ weight })));
  const held = shardsPerNode(map, 3000, 3);
  t.equal(held.get('node-0'), 3000);
  // The other two shards of each object go evenly to the six light nodes: 1000 each.
  for (let i = 1; i < 7; i++) t.ok(Math.abs(held.get(`node-${i}`)! - 1000) < 5 * Math.sqrt(1000), `node-${i} holds ${held.get(`node-${i}`)}`);
});

t.test('with zones of equal make-up, every zone takes its even part and nodes share it by weight', async (t) => {
  const nodes = ['a', 'b', 'c'].flatMap((zone) => [1, 2, 3, 4].map((weight) => ({ zone, weight })));
  const map = makeMap(nodes);
  const zoneOf = new Map(map.nodes!.map((n) => [n.id!, n.zone!]));
  for (let i = 0; i < 500; i++) {
    const zones = countBy(placeObject(map, 'vm-backups', `chunk-${i}`, 6).map((id) => zoneOf.get(id)!));
    if ([...zones.values()].some((n) => n !== 2)) t.fail(`object ${i} spreads ${JSON.stringify([...zones])}`);
  }
  assertWeightShares(t, map, 6000, 6);
});

t.test('DRAINING and OUT nodes get no shards', async (t) => {
  const map = makeMap(Array.from({ length: 12 }, (_, i) => ({ state: i % 3 === 0 ? pb.NodeState.DRAINING : i % 3 === 1 ? pb.NodeState.OUT : pb.NodeState.UP })));
  const held = shardsPerNode(map, 300, 4);
  t.same([...held.keys()].sort(), upIds(map).sort());
});

t.test('without the seed, keys cannot be crafted to pile onto one node', async (t) => {
  // Keys an attacker found to land on node-0 under one seed spread evenly under the cluster's seed.
  const guessed = makeMap(Array.from({ length: 10 }, () => ({})), new Uint8Array(16).fill(1));
  const actual = makeMap(Array.from({ length: 10 }, () => ({})), crypto.getRandomValues(new Uint8Array(16)));
  const crafted: string[] = [];
  for (let i = 0; crafted.length < 300; i++) if (placeObject(guessed, 'b', `k${i}`, 1)[0] === 'node-0') crafted.push(`k${i}`);
  const onNode0 = crafted.filter((key) => placeObject(actual, 'b', key, 1)[0] === 'node-0').length;
  t.ok(onNode0 < 70, `${onNode0}/300 crafted keys on node-0 (about 30 expected)`);
});

t.test('the map is checked: unset weights count as 1, bad weights and duplicate ids are refused', async (t) => {
  const unset = makeMap([{ weight: 0 }, { weight: undefined }, { weight: 1 }]);
  t.equal(new Placement(unset).candidateCount, 3);
  t.same(shardsPerNode(unset, 600, 1).size, 3);
  t.throws(() => new Placement(makeMap([{ weight: -1 }])), { name: 'StoreError(InvalidArgument)' });
  t.throws(() => new Placement(makeMap([{ weight: Number.NaN }])), { name: 'StoreError(InvalidArgument)' });
  const duplicate = makeMap([{}, {}]);
  duplicate.nodes![1]!.id = duplicate.nodes![0]!.id;
  t.throws(() => new Placement(duplicate), { name: 'StoreError(InvalidArgument)' });
  t.throws(() => placeObject(makeMap([{}]), 'b', 'k', 0), { name: 'StoreError(InvalidArgument)' });
});

function countBy<T>(items: T[]): Map<T, number> {
  const counts = new Map<T, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return counts;
}
