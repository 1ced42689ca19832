// `tessera restore-bucket`: bring a bucket (or a prefix of it) back to its state at time T from
// its versions, over S3 only (works against any versioned S3 store). For every key, the version
// that was current at T is made current again by a server-side copy; keys that did not exist at T
// get a delete marker. Nothing is destroyed: the present state stays reachable as older versions.
import {
  CopyObjectCommand, DeleteObjectCommand, GetBucketVersioningCommand, ListObjectsV2Command, ListObjectVersionsCommand, S3Client,
} from '@aws-sdk/client-s3';
import { mapLimited } from '../../common/concurrency.js';
import { flag, hasFlag, parseArgs, requireFlag } from '../args.js';

const HELP = `usage: tessera restore-bucket --bucket B --at TIME [--prefix P] [--to-bucket B2] [--dry-run]
                              [--endpoint URL] [--region R] [--concurrency N]
  Restore B (or the keys under P) to their state at TIME: ISO 8601 (2026-11-28T09:00:00Z) or
  relative to now (90s, 30m, 2h, 3d, 1w ago). With --to-bucket the state is written to B2 instead.
  Endpoint and credentials as for the aws tools: --endpoint or AWS_ENDPOINT_URL,
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_REGION.
`;

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `2h` (ago) or an ISO 8601 date, as epoch milliseconds. */
export function parsePointInTime(value: string, now = Date.now()): number {
  const relative = /^(\d+(?:\.\d+)?)\s*([smhdw])(?:\s*ago)?$/i.exec(value.trim());
  if (relative) return now - Number(relative[1]) * UNIT_MS[relative[2]!.toLowerCase()]!;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new Error(`--at: not an ISO 8601 time or a duration like 2h: ${value}`);
  return ms;
}

/** One key's history entry: a version or a delete marker. */
export interface HistoryEntry {
  key: string;
  versionId: string;
  lastModifiedMs: number;
  deleteMarker: boolean;
  isLatest: boolean;
  etag?: string;
  size?: number;
}

export type RestoreAction =
  | { kind: 'copy'; key: string; from: HistoryEntry }
  | { kind: 'delete'; key: string }
  | { kind: 'unchanged'; key: string };

/**
 * What to do with one key. `history` is every version and marker of the key in the source;
 * `targetCurrent` is what the target holds now (the source's latest entry when restoring in place).
 */
export function planKey(key: string, history: HistoryEntry[], atMs: number, targetCurrent: HistoryEntry | undefined): RestoreAction {
  const then = history.filter((e) => e.lastModifiedMs <= atMs).sort((a, b) => b.lastModifiedMs - a.lastModifiedMs)[0];
  const wanted = then && !then.deleteMarker ? then : undefined;
  const present = targetCurrent && !targetCurrent.deleteMarker ? targetCurrent : undefined;
  if (!wanted) return present ? { kind: 'delete', key } : { kind: 'unchanged', key };
  // The same version, or a copy of it (an earlier restore, or another bucket listed without ids).
  const same = present && (present.versionId === wanted.versionId || (present.etag === wanted.etag && present.size === wanted.size));
  return same ? { kind: 'unchanged', key } : { kind: 'copy', key, from: wanted };
}

async function sourceHistory(s3: S3Client, bucket: string, prefix: string | undefined): Promise<Map<string, HistoryEntry[]>> {
  const byKey = new Map<string, HistoryEntry[]>();
  const add = (entry: HistoryEntry) => byKey.set(entry.key, [...(byKey.get(entry.key) ?? []), entry]);
  let markers: { KeyMarker?: string; VersionIdMarker?: string } = {};
  for (;;) {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix, ...markers }));
    for (const v of page.Versions ?? []) {
      add({ key: v.Key!, versionId: v.VersionId ?? 'null', lastModifiedMs: v.LastModified!.getTime(), deleteMarker: false, isLatest: Boolean(v.IsLatest), etag: v.ETag, size: v.Size });
    }
    for (const m of page.DeleteMarkers ?? []) {
      add({ key: m.Key!, versionId: m.VersionId ?? 'null', lastModifiedMs: m.LastModified!.getTime(), deleteMarker: true, isLatest: Boolean(m.IsLatest) });
    }
    if (!page.IsTruncated) return byKey;
    markers = { KeyMarker: page.NextKeyMarker, VersionIdMarker: page.NextVersionIdMarker };
  }
}

/** The target bucket's current objects (for restores into another bucket). */
async function currentObjects(s3: S3Client, bucket: string, prefix: string | undefined): Promise<Map<string, HistoryEntry>> {
  const objects = new Map<string, HistoryEntry>();
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      objects.set(o.Key!, { key: o.Key!, versionId: '', lastModifiedMs: o.LastModified!.getTime(), deleteMarker: false, isLatest: true, etag: o.ETag, size: o.Size });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return objects;
}

class Progress {
  private done = 0;
  private readonly counts = { copy: 0, delete: 0, unchanged: 0, failed: 0 };
  constructor(private readonly total: number, private readonly tty: boolean) {}

  note(kind: keyof Progress['counts']): void {
    this.counts[kind]++;
    this.done++;
    if (!this.tty) return;
    const width = 30;
    const filled = this.total === 0 ? width : Math.round((this.done / this.total) * width);
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.done}/${this.total}  copied ${this.counts.copy}  deleted ${this.counts.delete}`);
  }

  summary(): typeof this.counts {
    if (this.tty) process.stderr.write('\n');
    return this.counts;
  }
}

function copySourceOf(bucket: string, entry: HistoryEntry): string {
  return `${bucket}/${entry.key.split('/').map(encodeURIComponent).join('/')}?versionId=${encodeURIComponent(entry.versionId)}`;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['dry-run', 'help']);
  if (hasFlag(args, 'help')) {
    process.stdout.write(HELP);
    return 0;
  }
  const bucket = requireFlag(args, 'bucket');
  const atMs = parsePointInTime(requireFlag(args, 'at'));
  const prefix = flag(args, 'prefix');
  const target = flag(args, 'to-bucket') ?? bucket;
  const dryRun = hasFlag(args, 'dry-run');
  const endpoint = flag(args, 'endpoint') ?? process.env.AWS_ENDPOINT_URL;
  const region = flag(args, 'region') ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  const s3 = new S3Client({ endpoint, region, forcePathStyle: true });
  try {
    const versioning = await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }));
    if (!versioning.Status) {
      process.stderr.write(`tessera restore-bucket: ${bucket} has never been versioned, so it has no history to restore from\n`);
      return 1;
    }
    const history = await sourceHistory(s3, bucket, prefix);
    const inPlace = target === bucket;
    const targetNow = inPlace ? undefined : await currentObjects(s3, target, prefix);
    const keys = new Set([...history.keys(), ...(targetNow?.keys() ?? [])]);
    const plan = [...keys].sort().map((key) => {
      const entries = history.get(key) ?? [];
      return planKey(key, entries, atMs, inPlace ? entries.find((e) => e.isLatest) : targetNow!.get(key));
    });
    const progress = new Progress(plan.length, process.stderr.isTTY === true && !dryRun);
    await mapLimited(plan, Number(flag(args, 'concurrency') ?? 8), async (action) => {
      try {
        if (dryRun) {
          if (action.kind !== 'unchanged') process.stdout.write(`${action.kind === 'copy' ? `restore ${action.key} (version ${action.from.versionId})` : `delete  ${action.key}`}\n`);
        } else if (action.kind === 'copy') {
          await s3.send(new CopyObjectCommand({ Bucket: target, Key: action.key, CopySource: copySourceOf(bucket, action.from), MetadataDirective: 'COPY', TaggingDirective: 'COPY' }));
        } else if (action.kind === 'delete') {
          await s3.send(new DeleteObjectCommand({ Bucket: target, Key: action.key }));
        }
        progress.note(action.kind);
      } catch (err) {
        progress.note('failed');
        process.stderr.write(`\n${action.key}: ${(err as Error).message}\n`);
      }
    });
    const counts = progress.summary();
    const when = new Date(atMs).toISOString();
    process.stdout.write(`${dryRun ? 'would restore' : 'restored'} ${target}${prefix ? `/${prefix}` : ''} to ${when}: `
      + `${counts.copy} ${dryRun ? 'to restore' : 'restored'}, ${counts.delete} ${dryRun ? 'to delete' : 'deleted'}, ${counts.unchanged} unchanged${counts.failed ? `, ${counts.failed} FAILED` : ''}\n`);
    return counts.failed > 0 ? 1 : 0;
  } finally {
    s3.destroy();
  }
}
