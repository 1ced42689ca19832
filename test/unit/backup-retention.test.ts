import t from 'tap';
import { Snapshot } from '../../src/backup/format.js';
import { applyPolicy } from '../../src/backup/retention.js';
import { parseTime } from '../../src/backup/cli-support.js';

const at = (iso: string, disk = 'vm') => Snapshot.create({ id: iso, disk, timeMs: Date.parse(iso) });
const kept = (snapshots: Snapshot[], policy: Parameters<typeof applyPolicy>[1]) =>
  applyPolicy(snapshots, policy).filter((d) => d.keep).map((d) => d.snapshot.id).sort();

// Two snapshots a day for ten days of March 2026, plus one in January and one a year earlier.
const snapshots = [
  at('2025-03-01T10:00:00Z'),
  at('2026-01-15T10:00:00Z'),
  ...Array.from({ length: 10 }, (_, d) => [`2026-03-${String(d + 1).padStart(2, '0')}T06:00:00Z`, `2026-03-${String(d + 1).padStart(2, '0')}T18:00:00Z`]).flat().map((iso) => at(iso)),
];

t.test('keep-last keeps the newest N per disk', async (t) => {
  t.same(kept(snapshots, { last: 3 }), ['2026-03-09T18:00:00Z', '2026-03-10T06:00:00Z', '2026-03-10T18:00:00Z']);
  t.same(kept([...snapshots, at('2020-01-01T00:00:00Z', 'other')], { last: 1 }), ['2020-01-01T00:00:00Z', '2026-03-10T18:00:00Z'], 'each disk keeps its own');
});

t.test('periods keep the newest snapshot of each of the last N periods', async (t) => {
  t.same(kept(snapshots, { daily: 2 }), ['2026-03-09T18:00:00Z', '2026-03-10T18:00:00Z']);
  t.same(kept(snapshots, { monthly: 3 }), ['2025-03-01T10:00:00Z', '2026-01-15T10:00:00Z', '2026-03-10T18:00:00Z']);
  t.same(kept(snapshots, { yearly: 5 }), ['2025-03-01T10:00:00Z', '2026-03-10T18:00:00Z']);
  // 2026-03-08 is a Sunday: the ISO week of Mar 2..8 ends there.
  t.same(kept(snapshots, { weekly: 2 }), ['2026-03-08T18:00:00Z', '2026-03-10T18:00:00Z']);
  t.same(kept(snapshots, { hourly: 1, last: 1 }), ['2026-03-10T18:00:00Z']);
});

t.test('rules combine and report why a snapshot stays', async (t) => {
  const decisions = applyPolicy(snapshots, { last: 1, daily: 1, monthly: 2 });
  const newest = decisions.find((d) => d.snapshot.id === '2026-03-10T18:00:00Z')!;
  t.same(newest.reasons, ['last', 'daily', 'monthly']);
  t.throws(() => applyPolicy(snapshots, {}), /at least one/, 'an empty policy would forget everything');
});

t.test('TIME is ISO 8601 or an age', async (t) => {
  const now = Date.parse('2026-03-10T12:00:00Z');
  t.equal(parseTime('2h', now), Date.parse('2026-03-10T10:00:00Z'));
  t.equal(parseTime('3d', now), Date.parse('2026-03-07T12:00:00Z'));
  t.equal(parseTime('2026-03-01T00:00:00Z', now), Date.parse('2026-03-01T00:00:00Z'));
  t.throws(() => parseTime('yesterday', now));
});
