// restore-bucket's planning: the version current at T per key, against what the target holds now.
import t from 'tap';
import { type HistoryEntry, parsePointInTime, planKey } from '../../src/cli/commands/restore-bucket.js';

const entry = (versionId: string, lastModifiedMs: number, extra: Partial<HistoryEntry> = {}): HistoryEntry =>
  ({ key: 'k', versionId, lastModifiedMs, deleteMarker: false, isLatest: false, etag: `"${versionId}"`, size: 1, ...extra });

t.test('point in time: ISO 8601 and relative durations', async (t) => {
  const now = Date.parse('2026-11-28T12:00:00Z');
  t.equal(parsePointInTime('2h', now), now - 7_200_000);
  t.equal(parsePointInTime('3d ago', now), now - 3 * 86_400_000);
  t.equal(parsePointInTime('90s', now), now - 90_000);
  t.equal(parsePointInTime('2026-11-28T09:00:00Z', now), Date.parse('2026-11-28T09:00:00Z'));
  t.throws(() => parsePointInTime('soon', now), /ISO 8601/);
});

t.test('plan per key', async (t) => {
  const v1 = entry('v1', 100);
  const v2 = entry('v2', 200, { isLatest: true });
  t.same(planKey('k', [v1, v2], 150, v2), { kind: 'copy', key: 'k', from: v1 }, 'older version restored');
  t.same(planKey('k', [v1, v2], 250, v2), { kind: 'unchanged', key: 'k' }, 'already current');
  t.same(planKey('k', [v1, v2], 50, v2), { kind: 'delete', key: 'k' }, 'did not exist then');
  const marker = entry('m', 300, { deleteMarker: true, isLatest: true });
  t.same(planKey('k', [v1, marker], 150, marker), { kind: 'copy', key: 'k', from: v1 }, 'deleted since: brought back');
  t.same(planKey('k', [v1, marker], 350, marker), { kind: 'unchanged', key: 'k' }, 'deleted then and now');
  t.same(planKey('k', [v1], 50, undefined), { kind: 'unchanged', key: 'k' }, 'absent then and now');
  const copyInTarget = { ...v1, versionId: '' };
  t.same(planKey('k', [v1, v2], 150, copyInTarget), { kind: 'unchanged', key: 'k' }, 'another bucket already holding the same content');
});
