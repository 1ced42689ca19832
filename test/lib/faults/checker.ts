// Checks a fault run's history against what a linearizable register per key allows.
// A write w is *superseded* once an acknowledged write to the same key started after w ended
// (w's end: its answer; never, for a write that got no answer — it may still be in flight).
// A read may return the value of any write that began before the read ended and was not
// superseded before the read began; 404 counts as the value of a delete (or of no write yet).
import type { History, ReadOp, WriteOp } from './history.js';

export interface Violation {
  kind: 'corrupt-read' | 'stale-read' | 'lost-write' | 'deleted-came-back' | 'unexpected-error' | 'listing';
  key: string;
  detail: string;
}

/** The state a key starts in: absent, as if deleted before time began. */
const INITIAL: Omit<WriteOp, 'key'> = {
  kind: 'delete', value: null, invokedAt: -Infinity, completedAt: -Infinity, outcome: 'ok', answered: true, status: '204',
};

/** When a write can no longer take effect (its answer), or never known for an unanswered one. */
const settledAt = (w: Pick<WriteOp, 'answered' | 'completedAt'>) => (w.answered ? w.completedAt : Infinity);

export class RegisterChecker {
  private readonly writesByKey = new Map<string, WriteOp[]>();

  constructor(private readonly history: History) {
    for (const w of history.writes) {
      const list = this.writesByKey.get(w.key) ?? [{ ...INITIAL, key: w.key }];
      list.push(w);
      this.writesByKey.set(w.key, list);
    }
  }

  private writes(key: string): WriteOp[] {
    return this.writesByKey.get(key) ?? [{ ...INITIAL, key }];
  }

  /** Writes whose value a read over [invokedAt, completedAt] may return. */
  allowed(key: string, invokedAt: number, completedAt: number): WriteOp[] {
    const writes = this.writes(key);
    return writes.filter((w) => w.invokedAt < completedAt && !writes.some((later) =>
      later.outcome === 'ok' && later.invokedAt > settledAt(w) && later.completedAt < invokedAt));
  }

  /**
   * Check one observed value of `key` (null: absent) read over [invokedAt, completedAt]; a
   * `settled` read comes after every write, so what it misses is lost rather than stale.
   */
  checkValue(key: string, value: string | null, invokedAt: number, completedAt: number, settled = false): Violation | undefined {
    const allowed = this.allowed(key, invokedAt, completedAt);
    if (allowed.some((w) => this.sameContent(w.value, value))) return undefined;
    const what = value === null ? 'absent' : `value ${value}`;
    const expected = allowed.map((w) => w.value ?? 'absent').join(' | ');
    // Times (seconds since the history began) let a stale read be matched with the nemesis log.
    const window = (from: number, to: number) => `${(from / 1000).toFixed(1)}-${(to / 1000).toFixed(1)} s`;
    const writes = allowed.map((w) => `${w.value ?? 'absent'} ${w.outcome} ${window(w.invokedAt, w.completedAt)}`).join(', ');
    if (!settled) return { kind: 'stale-read', key, detail: `read ${what} over ${window(invokedAt, completedAt)}, allowed: ${expected} (${writes})` };
    const kind = value !== null && allowed.every((w) => w.value === null) ? 'deleted-came-back' : 'lost-write';
    return { kind, key, detail: `final state ${what}, allowed: ${expected}` };
  }

  /** Values with equal bytes (e.g. two empty objects) are indistinguishable to a reader, and equally right. */
  private sameContent(a: string | null, b: string | null): boolean {
    return a === b || (a !== null && b !== null && this.history.values.get(a)?.sha256 === this.history.values.get(b)?.sha256);
  }

  /** Every read of the run: no wrong bytes, nothing older than an acknowledged write allows. */
  checkReads(): Violation[] {
    const violations: Violation[] = [];
    for (const read of this.history.reads) {
      if (read.corrupt) violations.push({ kind: 'corrupt-read', key: read.key, detail: `read at ${read.invokedAt.toFixed(0)} ms returned bytes no write sent` });
      else if (read.value !== undefined) pushIf(violations, this.checkValue(read.key, read.value, read.invokedAt, read.completedAt));
    }
    return violations;
  }

  /** The settled state (read after every fault is undone and healed): one value per key. */
  checkFinal(finalReads: ReadOp[]): Violation[] {
    const violations: Violation[] = [];
    for (const read of finalReads) {
      if (read.corrupt) violations.push({ kind: 'corrupt-read', key: read.key, detail: 'final read returned bytes no write sent' });
      else if (read.value === undefined) violations.push({ kind: 'unexpected-error', key: read.key, detail: `final read failed: ${read.status}` });
      else pushIf(violations, this.checkValue(read.key, read.value, read.invokedAt, read.completedAt, true));
    }
    return violations;
  }
}

/** Keys a settled listing must show: those whose settled read found a value, with its size. */
export function checkListing(history: History, finalReads: ReadOp[], listed: Array<{ key: string; size: number }>): Violation[] {
  const expected = new Map(finalReads.filter((r) => r.value).map((r) => [r.key, history.values.get(r.value!)!.size]));
  const seen = new Map(listed.map((o) => [o.key, o.size]));
  const violations: Violation[] = [];
  for (const [key, size] of expected) {
    if (seen.get(key) !== size) violations.push({ kind: 'listing', key, detail: `readable with ${size} bytes, listed as ${seen.get(key) ?? 'missing'}` });
  }
  for (const key of seen.keys()) {
    if (!expected.has(key)) violations.push({ kind: 'listing', key, detail: 'listed but not readable' });
  }
  return violations;
}

/**
 * Errors a client may see while faults are on: 503 (too few nodes answered), 507 on writes when
 * full disks cost the quorum, and no answer at all (gateway killed, timeouts). Anything else —
 * above all a 500 — is a defect.
 */
export function checkErrors(history: History): Violation[] {
  const allowedWrite = /^(200|204|503|507|[A-Z_]+|Truncated)$/;
  const allowedRead = /^(200|204|404|503|[A-Z_]+|Truncated)$/;
  const violations: Violation[] = [];
  for (const w of history.writes) {
    if (!allowedWrite.test(w.status)) violations.push({ kind: 'unexpected-error', key: w.key, detail: `${w.kind} answered ${w.status}` });
  }
  for (const r of history.reads) {
    if (!allowedRead.test(r.status)) violations.push({ kind: 'unexpected-error', key: r.key, detail: `GET answered ${r.status}` });
  }
  for (const l of history.lists) {
    if (!allowedRead.test(l.status)) violations.push({ kind: 'unexpected-error', key: '', detail: `LIST answered ${l.status}` });
  }
  return violations;
}

function pushIf(list: Violation[], violation: Violation | undefined): void {
  if (violation) list.push(violation);
}
