// The lifecycle worker: every interval it walks the buckets that have lifecycle rules and carries
// them out — expires current versions (a delete marker in versioned buckets), removes lone
// expired delete markers and old noncurrent versions, and aborts stale multipart uploads.
// Versions under Object Lock are never removed. TESSERA_LIFECYCLE_INTERVAL_MS sets the interval,
// TESSERA_LIFECYCLE_DAY_MS the length of a lifecycle "day" (tests shorten both).
import type { FastifyBaseLogger } from 'fastify';
import type { ObjectStore, ObjectVersion } from '../replication/types.js';
import type { BucketRecord, BucketRegistry } from './bucket-record.js';
import { type LifecycleFilter, type LifecycleRule, lifecycleRulesOf } from './ops/lifecycle.js';
import { isLocked } from './ops/object-lock.js';

export interface LifecycleOptions {
  intervalMs: number;
  dayMs: number;
}

export const DEFAULT_LIFECYCLE_OPTIONS: LifecycleOptions = { intervalMs: 3_600_000, dayMs: 86_400_000 };

export function lifecycleOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): LifecycleOptions {
  const number = (value: string | undefined, fallback: number) => (value !== undefined && Number(value) > 0 ? Number(value) : fallback);
  return {
    intervalMs: number(env.TESSERA_LIFECYCLE_INTERVAL_MS, DEFAULT_LIFECYCLE_OPTIONS.intervalMs),
    dayMs: number(env.TESSERA_LIFECYCLE_DAY_MS, DEFAULT_LIFECYCLE_OPTIONS.dayMs),
  };
}

const PAGE = 1000;

export interface LifecycleWorker {
  /** One pass over every bucket (also what the timer runs). */
  runOnce(): Promise<void>;
  stop(): Promise<void>;
}

function matchesFilter(filter: LifecycleFilter, version: ObjectVersion): boolean {
  const size = Number(version.size ?? 0);
  return version.key.startsWith(filter.prefix)
    && Object.entries(filter.tags).every(([k, v]) => version.tags?.[k] === v)
    && (filter.objectSizeGreaterThan === undefined || size > filter.objectSizeGreaterThan)
    && (filter.objectSizeLessThan === undefined || size < filter.objectSizeLessThan);
}

class Worker implements LifecycleWorker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly store: ObjectStore, private readonly buckets: BucketRegistry, private readonly options: LifecycleOptions,
    private readonly log: FastifyBaseLogger) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.runOnce().finally(() => { this.running = undefined; });
    }, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  async runOnce(): Promise<void> {
    for (const bucket of await this.buckets.list()) {
      if (this.stopped) return;
      const rules = lifecycleRulesOf(bucket).filter((r) => r.enabled);
      if (rules.length === 0) continue;
      try {
        await this.expireVersions(bucket, rules);
        await this.abortStaleUploads(bucket, rules);
      } catch (err) {
        this.log.warn({ err, bucket: bucket.name }, 'lifecycle pass failed; retried next interval');
      }
    }
  }

  private ageInDays(sinceMs: number, now: number): number {
    return (now - sinceMs) / this.options.dayMs;
  }

  /** Walk every key's versions (newest first) and apply the rules to each key. */
  private async expireVersions(bucket: BucketRecord, rules: LifecycleRule[]): Promise<void> {
    let position: { startAfter?: string; startAfterVersion?: string } = {};
    let pending: ObjectVersion[] = [];
    for (;;) {
      const page = await this.store.list(bucket.name, { allVersions: true, includeDeleteMarkers: true, limit: PAGE, ...position });
      for (const item of page.items) {
        const version = item.version;
        if (!version) continue;
        if (pending.length > 0 && pending[0]!.key !== version.key) {
          await this.applyToKey(bucket, rules, pending);
          pending = [];
        }
        pending.push(version);
      }
      const last = page.items[page.items.length - 1]?.version;
      if (!page.truncated || !last || this.stopped) break;
      position = { startAfter: last.key, startAfterVersion: last.versionId };
    }
    if (pending.length > 0) await this.applyToKey(bucket, rules, pending);
  }

  private async applyToKey(bucket: BucketRecord, rules: LifecycleRule[], unordered: ObjectVersion[]): Promise<void> {
    const versions = [...unordered].sort((a, b) => Number(b.hlc) - Number(a.hlc));
    const now = Date.now();
    const [current, ...noncurrent] = versions;
    if (!current) return;
    if (current.deleteMarker) {
      const removeMarker = noncurrent.length === 0 && rules.some((r) => r.expiration?.expiredObjectDeleteMarker && matchesFilter(r.filter, current));
      if (removeMarker) await this.store.deleteVersion(bucket.name, current.key, current.versionId);
    } else if (rules.some((r) => this.currentExpired(r, current, now)) && !(bucket.versioning === undefined && isLocked(current, now))) {
      await this.expireCurrent(bucket, current);
    }
    await this.expireNoncurrent(bucket, rules, versions, now);
  }

  private currentExpired(rule: LifecycleRule, version: ObjectVersion, now: number): boolean {
    const expiration = rule.expiration;
    if (!expiration || !matchesFilter(rule.filter, version)) return false;
    if (expiration.days !== undefined) return this.ageInDays(Number(version.lastModifiedMs ?? 0), now) >= expiration.days;
    return expiration.dateMs !== undefined && now >= expiration.dateMs;
  }

  /** As S3 does: unversioned buckets lose the object; versioned ones get a delete marker. */
  private async expireCurrent(bucket: BucketRecord, current: ObjectVersion): Promise<void> {
    if (bucket.versioning === undefined) {
      await this.store.deleteVersion(bucket.name, current.key, current.versionId);
      return;
    }
    await this.store.writeDeleteMarker({ bucket: bucket.name, key: current.key, versionId: bucket.versioning === 'Enabled' ? 'new' : 'null' }, { lastModifiedMs: Date.now() });
  }

  /**
   * A version is noncurrent from the moment its successor was written. It expires after
   * NoncurrentDays, keeping the NewerNoncurrentVersions newest noncurrent versions.
   */
  private async expireNoncurrent(bucket: BucketRecord, rules: LifecycleRule[], versions: ObjectVersion[], now: number): Promise<void> {
    for (let i = 1; i < versions.length; i++) {
      const version = versions[i]!;
      const noncurrentSince = Number(versions[i - 1]!.lastModifiedMs ?? 0);
      const expired = rules.some((rule) => {
        const spec = rule.noncurrentVersionExpiration;
        if (!spec || !matchesFilter(rule.filter, version)) return false;
        if ((i - 1) < (spec.newerNoncurrentVersions ?? 0)) return false;
        return spec.noncurrentDays === undefined || this.ageInDays(noncurrentSince, now) >= spec.noncurrentDays;
      });
      if (expired && !isLocked(version, now)) await this.store.deleteVersion(bucket.name, version.key, version.versionId);
    }
  }

  private async abortStaleUploads(bucket: BucketRecord, rules: LifecycleRule[]): Promise<void> {
    const aborting = rules.filter((r) => r.abortIncompleteMultipartUpload);
    if (aborting.length === 0) return;
    const now = Date.now();
    let position: { keyMarker?: string; uploadIdMarker?: string } = {};
    for (;;) {
      const uploads = await this.store.listUploads(bucket.name, { ...position, limit: PAGE });
      for (const upload of uploads.slice(0, PAGE)) {
        const stale = aborting.some((r) => upload.key!.startsWith(r.filter.prefix)
          && this.ageInDays(Number(upload.initiatedMs ?? 0), now) >= r.abortIncompleteMultipartUpload!.daysAfterInitiation);
        if (stale) await this.store.abortUpload(bucket.name, upload.key!, upload.uploadId!);
      }
      const last = uploads[PAGE - 1];
      if (uploads.length <= PAGE || !last || this.stopped) return;
      position = { keyMarker: last.key!, uploadIdMarker: last.uploadId! };
    }
  }
}

export function startLifecycleWorker(store: ObjectStore, buckets: BucketRegistry, options: LifecycleOptions, log: FastifyBaseLogger): LifecycleWorker {
  const worker = new Worker(store, buckets, options, log);
  worker.start();
  return worker;
}
