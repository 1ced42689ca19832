// Placement properties: what the replication layer and an operator rely on when the cluster
// map says where shards go.
import t from 'tap';
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
});

t.test('the same map and object always give the same distinct UP nodes', async () => {
  fc.assert(fc.property(clusterMap, bucketName, objectKey, fc.integer({ min: 1, max: 12 }), (map, bucket, key, count) => {
    const up = new Set(upIds(map));
    if (up.size < count) return;
    const placed = placeObject(map, bucket, key, count);
    const again = new Placement(structuredClone(map)).place(bucket, key, count);
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
