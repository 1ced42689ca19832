// Which snapshots a keep policy keeps (per disk): the newest N, and the newest one of each of the
// last N hours, days, weeks, months and years that have snapshots (UTC calendar periods).
import type { Snapshot } from './format.js';

export const PERIODS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type Period = (typeof PERIODS)[number];
export type KeepPolicy = Partial<Record<Period | 'last', number>>;

export interface RetentionDecision {
  snapshot: Snapshot;
  keep: boolean;
  /** Rules that keep it, e.g. ['last', 'daily']. */
  reasons: string[];
}

function periodKey(period: Period, ms: number): string {
  const d = new Date(ms);
  const iso = d.toISOString();
  switch (period) {
    case 'hourly': return iso.slice(0, 13);
    case 'daily': return iso.slice(0, 10);
    case 'monthly': return iso.slice(0, 7);
    case 'yearly': return iso.slice(0, 4);
    case 'weekly': {
      // ISO week: the Thursday of the week decides its year.
      const thursday = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 3 - ((d.getUTCDay() + 6) % 7)));
      const yearStart = Date.UTC(thursday.getUTCFullYear(), 0, 1);
      const week = Math.ceil(((thursday.getTime() - yearStart) / 86_400_000 + 1) / 7);
      return `${thursday.getUTCFullYear()}-W${week}`;
    }
  }
}

/** Decides for every snapshot of every disk; a policy that keeps nothing is refused. */
export function applyPolicy(snapshots: Snapshot[], policy: KeepPolicy): RetentionDecision[] {
  if (!Object.values(policy).some((n) => (n ?? 0) > 0)) throw new Error('a keep policy needs at least one --keep-* rule above zero');
  const byDisk = new Map<string, Snapshot[]>();
  for (const s of snapshots) byDisk.set(s.disk, [...(byDisk.get(s.disk) ?? []), s]);
  const decisions: RetentionDecision[] = [];
  for (const list of byDisk.values()) {
    const newestFirst = [...list].sort((a, b) => b.timeMs - a.timeMs || b.id.localeCompare(a.id));
    const kept = newestFirst.map(() => [] as string[]);
    newestFirst.slice(0, policy.last ?? 0).forEach((_, i) => kept[i]!.push('last'));
    for (const period of PERIODS) {
      let remaining = policy[period] ?? 0;
      let lastKey: string | undefined;
      newestFirst.forEach((s, i) => {
        const key = periodKey(period, s.timeMs);
        if (remaining > 0 && key !== lastKey) {
          kept[i]!.push(period);
          remaining--;
          lastKey = key;
        }
      });
    }
    newestFirst.forEach((snapshot, i) => decisions.push({ snapshot, keep: kept[i]!.length > 0, reasons: kept[i]! }));
  }
  return decisions;
}
