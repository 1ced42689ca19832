// The cluster client: implements the gateway's ObjectStore over the storage nodes.
// Writes: shards durable on a write quorum, then metadata on a write quorum, else roll back.
// Reads: metadata from a read quorum of the placement nodes (newest HLC wins), then the data
// shards; degraded reads queue the version for healing.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { StoreError } from '../common/errors.js';
import { HybridClock, hlcToMillis } from '../common/hlc.js';
import { KEPT_TTL_MS, MAX_CLOCK_SKEW_MS, pb, stampOf, UNARY_DEADLINE_MS, writeAgeMs, type WriteStamp } from '../common/node-service.js';
import { Cluster, type ClusterOptions, type FanOutResult } from './cluster.js';
import { HealQueue } from './heal.js';
import { type Layout, layoutOf, makeLayout, readQuorum, writeQuorum } from './layout.js';
import type { NodeClient } from './node-client.js';
import { placeObject } from './placement.js';
import { decodeInline, readSegment } from './reader.js';
import { rebalance, type RebalanceOptions, type RebalanceProgress } from './rebalance.js';
import { BUCKET_NAMESPACE } from './types.js';
import type {
  ByteRange, DataSegment, ErasureChoice, FinalizeVersion, ListItem, ListOptions, ObjectStore, ObjectVersion,
  StreamedBody, UploadRecord, VersionFields, WriteTarget,
} from './types.js';
import { encodeStripe, type WrittenSegment, writeSegment } from './writer.js';

export async function createClusterClient(options: ClusterOptions): Promise<ClusterClient> {
  return new ClusterClient(await Cluster.connect(options));
}

/**
 * Past this age no copy of a write can still be applied anywhere (nodes refuse revertible writes
 * older than the call deadline plus clock skew), so an unfinished one may be reverted; doubled for margin.
 */
const ABANDONED_WRITE_AGE_MS = 2 * (UNARY_DEADLINE_MS + MAX_CLOCK_SKEW_MS);

/**
 * A node call unanswered this long is a slow node's: a metadata read then asks the nodes it skipped,
 * a write with its quorum goes on without it. Far above a healthy node's answer (a few ms, tens
 * under load), far below the call deadline.
 */
const SLOW_ANSWER_MS = 200;

/** Background rebalancing copies at most this many shard bytes per second. */
const DEFAULT_REBALANCE_RATE = 200 * 1024 * 1024;

/** Inline shards seen when a version's metadata was read, by segment then shard index. */
type InlineShards = Array<Array<Uint8Array | null>>;

export class ClusterClient implements ObjectStore {
  readonly clock = new HybridClock();
  readonly heal: HealQueue;
  private readonly inline = new WeakMap<ObjectVersion, InlineShards>();
  /** The running (or last) background rebalance pass. */
  rebalanceProgress: RebalanceProgress | undefined;

  constructor(readonly cluster: Cluster) {
    this.heal = new HealQueue(this);
  }

  // ------------------------------------------------------------------ placement

  defaultLayout(ec?: ErasureChoice): Layout {
    const map = this.cluster.map;
    return makeLayout(ec?.dataShards ?? map.dataShards ?? 1, ec?.parityShards ?? map.parityShards ?? 0);
  }

  /** The nodes holding a key's metadata (and, for new writes, its shards). */
  placement(bucket: string, key: string, layout = this.defaultLayout()): string[] {
    return placeObject(this.cluster.map, bucket, key, layout.dataShards + layout.parityShards);
  }

  private mintVersionId(hlc: number): string {
    return `${hlc.toString(36).padStart(12, '0')}${randomBytes(6).toString('hex')}`;
  }

  // ------------------------------------------------------------------ writes

  async writeObject(target: WriteTarget, body: AsyncIterable<Buffer>, finalize: FinalizeVersion, ec?: ErasureChoice): Promise<ObjectVersion> {
    const layout = this.defaultLayout(ec);
    const nodes = this.placement(target.bucket, target.key, layout);
    const written = await writeSegment(this.cluster, nodes, layout, body);
    const fields = await this.finalizeOrDiscard(written, finalize);
    const version = this.newVersion(target, fields, [written.segment]);
    await this.commitVersion(version, written.inlineShards ? [written.inlineShards] : [], [written]);
    // A node that failed its shard (full disk, stalled stream) may still have taken the record,
    // so commitVersion saw no failure: queue the version so the missing shard is rebuilt.
    if (written.durableOn.length < nodes.length) this.heal.enqueue(target.bucket, target.key, version.versionId);
    return version;
  }

  private async finalizeOrDiscard<T>(written: WrittenSegment, finalize: (body: StreamedBody) => Promise<T> | T): Promise<T> {
    try {
      return await finalize({ size: Number(written.segment.size), md5Hex: written.md5Hex });
    } catch (err) {
      await this.discardSegments([written.segment]);
      throw err;
    }
  }

  private newVersion(target: WriteTarget, fields: VersionFields, segments: DataSegment[]): ObjectVersion {
    const hlc = this.clock.now();
    return {
      ...fields,
      bucket: target.bucket,
      key: target.key,
      versionId: target.versionId === 'null' ? 'null' : this.mintVersionId(hlc),
      hlc,
      lastModifiedMs: hlcToMillis(hlc),
      size: segments.reduce((sum, s) => sum + Number(s.size ?? 0), 0),
      segments,
    };
  }

  async writeDeleteMarker(target: WriteTarget, fields: VersionFields = {}): Promise<ObjectVersion> {
    const version = this.newVersion(target, { ...fields, deleteMarker: true }, []);
    await this.commitVersion(version, [], []);
    return version;
  }

  async updateVersion(version: ObjectVersion): Promise<void> {
    let shards = this.inline.get(version);
    if (!shards && version.segments?.some((s) => s.inline)) {
      const fresh = await this.getVersion(version.bucket, version.key, version.versionId);
      shards = fresh && this.inline.get(fresh);
    }
    // Same hlc (the version keeps its place among the key's versions), a newer revision: nodes take it.
    await this.commitVersion({ ...version, revision: this.clock.now() }, shards ?? [], []);
  }

  /**
   * Store a version's record on its placement nodes (each with its own inline shards); needs a
   * write quorum of acknowledgements, else the records and `written` shards are rolled back.
   */
  private async commitVersion(version: ObjectVersion, inline: InlineShards, written: WrittenSegment[]): Promise<void> {
    const layout = this.defaultLayout();
    const nodes = this.placement(version.bucket, version.key, layout);
    const quorum = writeQuorum(layout.dataShards, layout.parityShards);
    const ref = versionKey(version);
    const stamp = stampOf(version);
    const result = await this.cluster.fanOutToQuorum(nodes, (client, id) => client.putMeta([recordFor(version, inline, id)], true),
      quorum, SLOW_ANSWER_MS);
    if (result.ok.size >= quorum) {
      if (result.failed.size || result.late.size) this.heal.enqueue(version.bucket, version.key, version.versionId);
      const keepers = (answers: Map<string, pb.PutMetaResult>) => [...answers].filter(([, res]) => res.keptPrevious?.[0]).map(([id]) => id);
      this.resolveInBackground(keepers(result.ok), ref, stamp);
      for (const late of result.late.values()) void late.then(({ ok }) => this.resolveInBackground(keepers(ok), ref, stamp));
      return;
    }
    await this.cluster.fanOut(nodes, (client) => client.resolveMeta(ref, stamp, false));
    await this.discardSegments(written.map((w) => w.segment));
    throw quorumError('metadata write', result, quorum);
  }

  /**
   * Tells nodes that a revertible write reached its quorum, so they drop what it replaced. Not
   * awaited: the write is already safe, and a node that misses this drops it after KEPT_TTL.
   */
  private resolveInBackground(ids: string[], ref: pb.IObjectKey[], stamp: WriteStamp): void {
    if (ids.length) void this.cluster.fanOut(ids, (client) => client.resolveMeta(ref, stamp, true));
  }

  /** Nodes currently holding a record of this version (for rebalancing). */
  async metadataHolders(version: ObjectVersion): Promise<string[]> {
    const key = versionKey(version);
    const result = await this.cluster.fanOut(this.cluster.memberIds(), (client) => client.getMeta(key, false));
    return [...result.ok].filter(([, res]) => res.results?.[0]?.found).map(([id]) => id);
  }

  /**
   * Store a version with new shard locations on its placement, then drop it from `dropFrom`. The
   * drop is a move, not a delete: it leaves no tombstone (which readers would take for a delete)
   * and spares a newer write of the same version id that arrived there meanwhile.
   */
  async relocateVersion(version: ObjectVersion, segments: DataSegment[], dropFrom: string[]): Promise<void> {
    const inline = await this.completeInlineShards(version);
    // A new revision: the version's shard locations changed, and its stamp is fresh for the nodes.
    await this.commitVersion({ ...version, segments, revision: this.clock.now() }, inline, []);
    const key = versionKey(version);
    await this.cluster.fanOut(dropFrom, (client) => client.moveOutMeta(key, version.hlc));
  }

  /**
   * Write the version's record to placement nodes that lack it: how many it wrote, and the nodes
   * that did not answer.
   * Once every placement node holds it and its writer can no longer be waiting on it, the version
   * is committed whatever became of that writer, so what its revertible write kept can go (a
   * writer that crashed never settled it).
   */
  async repairRecords(version: ObjectVersion): Promise<{ repaired: number; unanswered: Map<string, StoreError> | undefined }> {
    const key = versionKey(version);
    const nodes = this.placement(version.bucket, version.key);
    const result = await this.cluster.fanOut(nodes, (client) => client.getMeta(key, true));
    const stale = [...result.ok].filter(([, res]) => {
      const slot = res.results?.[0];
      return !slot?.found || Number(slot.version?.hlc) < version.hlc
        || (slot.version?.segments ?? []).some((s) => s.inline && !s.inlineShard?.length && Number(s.size) > 0);
    }).map(([id]) => id);
    if (stale.length) {
      const inline = await this.completeInlineShards(version);
      await this.cluster.fanOut(stale, (client, id) => client.putMeta([recordFor(version, inline, id)]));
    }
    if (result.failed.size) return { repaired: stale.length, unanswered: result.failed };
    const stamp = stampOf(version);
    const age = writeAgeMs(stamp);
    if (age > UNARY_DEADLINE_MS + MAX_CLOCK_SKEW_MS && age < KEPT_TTL_MS) {
      await this.cluster.fanOut(nodes, (client) => client.resolveMeta(key, stamp, true));
    }
    return { repaired: stale.length, unanswered: undefined };
  }

  /**
   * A write still in flight, as far as anyone can tell: an inline version read from fewer than k
   * nodes (so not acknowledged yet), too young to be judged abandoned — its writer may still be
   * adding copies. Heal leaves it for later; once it is old enough, reads and heal revert it.
   */
  isUnfinishedWrite(version: ObjectVersion): boolean {
    const gathered = this.inline.get(version);
    return gathered !== undefined && !enoughInlineShards(version, gathered) && writeAgeMs(stampOf(version)) <= ABANDONED_WRITE_AGE_MS;
  }

  /** Every inline shard of a version, rebuilt from the ones the nodes still hold. */
  private async completeInlineShards(version: ObjectVersion): Promise<InlineShards> {
    if (!version.segments?.some((s) => s.inline)) return [];
    let gathered = this.inline.get(version);
    if (!gathered) {
      const fresh = await this.getVersion(version.bucket, version.key, version.versionId);
      gathered = (fresh && this.inline.get(fresh)) ?? [];
    }
    return (version.segments ?? []).map((segment, i) => {
      if (!segment.inline) return [];
      const shards = gathered![i] ?? [];
      if (shards.every((s) => s !== null) && shards.length === segment.nodes!.length) return shards;
      return encodeStripe(decodeInline(segment, shards), layoutOf(segment));
    });
  }

  /**
   * Delete a segment's shard files wherever they are (best effort; the scrubber catches the rest).
   * Needing no quorum, it waits for no slow node: those delete in the background.
   */
  async discardSegments(segments: DataSegment[]): Promise<void> {
    const byNode = new Map<string, pb.IShardRef[]>();
    for (const segment of segments) {
      if (segment.inline) continue;
      segment.nodes?.forEach((id, shardIndex) => {
        if (id) byNode.set(id, [...(byNode.get(id) ?? []), { dataId: segment.dataId, shardIndex }]);
      });
    }
    await this.cluster.fanOutToQuorum([...byNode.keys()], (client, id) => client.deleteShards(byNode.get(id)!), 0, SLOW_ANSWER_MS);
  }

  /** Purges a version on a write quorum; short of one, the nodes that purged it put it back. */
  async deleteVersion(bucket: string, key: string, versionId: string): Promise<void> {
    const existing = await this.getVersion(bucket, key, versionId);
    const layout = this.defaultLayout();
    const nodes = this.placement(bucket, key, layout);
    const quorum = writeQuorum(layout.dataShards, layout.parityShards);
    const ref = [{ bucket, key, versionId }];
    const stamp = { hlc: this.clock.now(), revision: 0 };
    const result = await this.cluster.fanOutToQuorum(nodes, (client) => client.deleteMeta(ref, stamp.hlc, true), quorum, SLOW_ANSWER_MS);
    if (result.ok.size < quorum) {
      await this.cluster.fanOut(nodes, (client) => client.resolveMeta(ref, stamp, false));
      throw quorumError('delete', result, quorum);
    }
    if (result.late.size) this.heal.enqueue(bucket, key, versionId);
    this.resolveInBackground([...result.ok.keys()], ref, stamp);
    for (const late of result.late.values()) void late.then(({ ok }) => this.resolveInBackground([...ok.keys()], ref, stamp));
    // A multipart version's data may still be named by its upload (a complete whose end never
    // arrived): its nodes free that data themselves, where no part record names it any more.
    if (existing) await this.discardSegments((existing.segments ?? []).filter((s) => !s.partNumber));
  }

  // ------------------------------------------------------------------ reads

  /**
   * The version asked for (or the newest) as a read quorum of its placement nodes sees it. Only
   * as many nodes are asked as a read needs: a read quorum, and k for an inline object's shards
   * (data-shard nodes first, so no decoding); the others only when those fall short, or when one
   * of them has not answered within SLOW_ANSWER_MS — a node stalled by its disk, a pause or a
   * congested link would otherwise hold the read for the whole call deadline. Then the read goes
   * on as soon as the answers at hand make a quorum that can serve it. Heal asks every node
   * (`askEveryNode`) and waits for each.
   */
  async getVersion(bucket: string, key: string, versionId?: string, { askEveryNode = false } = {}): Promise<ObjectVersion | undefined> {
    const layout = this.defaultLayout();
    const nodes = this.placement(bucket, key, layout);
    const request = [{ bucket, key, versionId: versionId ?? '' }];
    const needed = readQuorum(layout.dataShards, layout.parityShards);
    const askedFirst = askEveryNode ? nodes : this.preferResponsive(nodes).slice(0, Math.max(needed, layout.dataShards));
    const answers: FanOutResult<pb.GetMetaResult> = { ok: new Map(), failed: new Map() };
    const found = new Map<string, pb.IObjectVersion>();
    const asked = new Set<string>();
    let deciding = true; // answers arriving once the read has gone on are left out
    let answered = () => {};
    const ask = (ids: string[]) => Promise.all(ids.map(async (id) => {
      asked.add(id);
      const result = await this.cluster.fanOut([id], (client) => client.getMeta(request, true));
      if (!deciding) return;
      for (const [id, error] of result.failed) answers.failed.set(id, error);
      for (const [id, res] of result.ok) {
        answers.ok.set(id, res);
        const slot = res.results?.[0];
        if (slot?.found && slot.version) found.set(id, slot.version);
      }
      answered();
    }));
    const canServe = () => {
      const newest = pickNewest([...found.values()]);
      return answers.ok.size >= needed && (!newest || inlineShardsComplete(newest, found));
    };
    const first = ask(askedFirst);
    if (askEveryNode) {
      await first;
    } else {
      await settlesWithin(first, SLOW_ANSWER_MS); // every answer, or those in before a slow node's
      if (!canServe()) {
        const everyone = Promise.all([first, ask(nodes.filter((id) => !asked.has(id)))]);
        await new Promise<void>((resolve) => {
          answered = () => canServe() && resolve();
          void everyone.then(() => resolve());
        });
      }
    }
    deciding = false;
    let newest = pickNewest([...found.values()]);
    if (answers.ok.size < needed) throw quorumError('metadata read', answers, needed);
    newest = await this.skipDeleted(request[0]!.versionId, newest, found, answers);
    newest = this.skipAbandonedInline(newest, found, asked.size - answers.ok.size, layout);
    if (!newest) {
      newest = await this.findOffPlacement(nodes, request, found);
      newest = await this.skipDeleted(request[0]!.versionId, newest, found, answers, { offPlacement: true });
    }
    if (!newest) return undefined;
    // Nodes that failed or lack this version need healing; so do unasked ones that seem down.
    const answeredBy = (id: string) => answers.ok.has(id) || answers.failed.has(id);
    const stale = nodes.filter((id) => (answeredBy(id) ? !holds(found.get(id), newest) : !this.cluster.isLikelyUp(id)));
    if (stale.length) this.heal.enqueue(bucket, key, newest.versionId!);
    const version = stripInline(newest);
    this.inline.set(version, gatherInline(newest, found));
    return version;
  }

  /**
   * An inline version whose records (with their shards) are on fewer than k nodes, counting every
   * node that did not answer, was never acknowledged — an acknowledged write reached W >= k nodes —
   * and, once no copy of it can still arrive anywhere, never will be: its writer died between its
   * record writes. Read past it to the version before, and revert it on the nodes that hold it.
   * A younger one may still be in flight and is returned as it is. The nodes that held a skipped
   * version may keep the one before it, so they count as unanswered for the next candidate.
   */
  private skipAbandonedInline(newest: pb.IObjectVersion | undefined, found: Map<string, pb.IObjectVersion>,
    unanswered: number, layout: Layout): pb.IObjectVersion | undefined {
    let unknown = unanswered;
    while (newest && !inlineShardsComplete(newest, found)) {
      const candidate = newest;
      const holders = holdersOf(found, candidate);
      if (holders.length + unknown >= layout.dataShards) return candidate;
      const stamp = stampOf(candidate);
      if (writeAgeMs(stamp) <= ABANDONED_WRITE_AGE_MS) return candidate;
      const ref = versionKey(candidate);
      void this.cluster.fanOut(holders, (client) => client.resolveMeta(ref, stamp, false));
      for (const id of holders) found.delete(id);
      unknown += holders.length;
      newest = pickNewest([...found.values()]);
    }
    return newest;
  }

  /**
   * A version that a node still holds because it was away when the version was deleted: the delete
   * reached a write quorum, so the read quorum that answered includes a node that purged it. Once
   * that delete is final (settled, or too old to be reverted), read past the version and pass the
   * delete on to the nodes that missed it.
   * `offPlacement`: the holders are off the version's placement (a map change the rebalancer has
   * not finished), so the delete went to the placement nodes alone. There even a delete that may
   * still be reverted hides the copy: the placement nodes are where the version lives now.
   */
  private async skipDeleted(askedFor: string, newest: pb.IObjectVersion | undefined, found: Map<string, pb.IObjectVersion>,
    answers: FanOutResult<pb.GetMetaResult>, { offPlacement = false } = {}): Promise<pb.IObjectVersion | undefined> {
    while (newest) {
      const candidate = newest;
      const holders = holdersOf(found, candidate);
      const others = [...answers.ok.keys()].filter((id) => !holders.includes(id));
      if (!others.length) return candidate;
      const ref = versionKey(candidate);
      // Asked for this very version, the nodes without it said when they purged it; else ask them.
      const said = askedFor === candidate.versionId ? others.map((id) => answers.ok.get(id)!)
        : [...(await this.cluster.fanOut(others, (client) => client.getMeta(ref, false))).ok.values()];
      const slots = said.map((r) => r.results?.[0]);
      const deletedAt = Math.max(0, ...slots.map(finalTombstone));
      const hiddenAt = offPlacement ? Math.max(0, ...slots.map((slot) => Number(slot?.tombstoneHlc ?? 0))) : deletedAt;
      if (hiddenAt < Number(candidate.hlc)) return candidate;
      if (deletedAt >= Number(candidate.hlc)) await this.cluster.fanOut(holders, (client) => client.deleteMeta(ref, deletedAt));
      for (const id of holders) found.delete(id);
      newest = pickNewest([...found.values()]);
    }
    return newest;
  }

  /** Placement nodes, those seen up recently first, lately slow ones after them (in placement order otherwise). */
  private preferResponsive(nodes: string[]): string[] {
    const rank = (id: string) => (!this.cluster.isLikelyUp(id) ? 2 : this.cluster.isLikelySlow(id) ? 1 : 0);
    return [...nodes].sort((a, b) => rank(a) - rank(b)); // stable: placement order within a rank
  }

  /**
   * A version not on its placement nodes may still sit where an older map put it, until the
   * rebalancer moves it: ask the other members before answering "not found".
   */
  private async findOffPlacement(placement: string[], request: pb.IObjectKey[], found: Map<string, pb.IObjectVersion>): Promise<pb.IObjectVersion | undefined> {
    const others = this.cluster.memberIds().filter((id) => !placement.includes(id));
    if (!others.length) return undefined;
    const result = await this.cluster.fanOut(others, (client) => client.getMeta(request, true));
    for (const [id, res] of result.ok) {
      const slot = res.results?.[0];
      if (slot?.found && slot.version) found.set(id, slot.version);
    }
    return pickNewest([...found.values()]);
  }

  readObject(version: ObjectVersion, range?: ByteRange): Readable {
    return Readable.from(this.readBytes(version, range), { objectMode: false });
  }

  private async *readBytes(version: ObjectVersion, range?: ByteRange): AsyncGenerator<Buffer> {
    const size = Number(version.size ?? 0);
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? size - 1, size - 1);
    let inline = this.inline.get(version);
    if (!inline && version.segments?.some((s) => s.inline)) {
      const fresh = await this.getVersion(version.bucket, version.key, version.versionId);
      inline = fresh && this.inline.get(fresh);
    }
    let offset = 0;
    for (const [index, segment] of (version.segments ?? []).entries()) {
      const segmentSize = Number(segment.size ?? 0);
      const from = Math.max(start, offset);
      const to = Math.min(end, offset + segmentSize - 1);
      if (from <= to) {
        yield* readSegment(this.cluster, { segment, start: from - offset, end: to - offset, inlineShards: inline?.[index] },
          () => this.heal.enqueue(version.bucket, version.key, version.versionId));
      }
      offset += segmentSize;
      if (offset > end) break;
    }
  }

  async list(bucket: string, options: ListOptions): Promise<{ items: ListItem[]; truncated: boolean }> {
    const request: pb.IListRequest = {
      bucket,
      prefix: options.prefix ?? '',
      delimiter: options.delimiter ?? '',
      startAfter: options.startAfter ?? '',
      startAfterVersion: options.startAfterVersion ?? '',
      limit: options.limit + 1,
      allVersions: options.allVersions ?? false,
      includeDeleteMarkers: true,
    };
    const result = await this.requireMembers('list', (client) => client.list(request));
    const merged = mergeListings([...result.ok.values()], options.allVersions ?? false)
      .filter((item) => options.includeDeleteMarkers || options.allVersions || !item.version?.deleteMarker);
    return { items: merged.slice(0, options.limit), truncated: merged.length > options.limit };
  }

  /** Fan out to every member node; tolerate as many failures as the erasure code does. */
  private async requireMembers<T>(what: string, call: (client: NodeClient) => Promise<T>): Promise<FanOutResult<T>> {
    const members = this.cluster.memberIds();
    const layout = this.defaultLayout();
    const tolerated = layout.dataShards + layout.parityShards - writeQuorum(layout.dataShards, layout.parityShards);
    const result = await this.cluster.fanOutToQuorum(members, (client) => call(client), members.length - tolerated, SLOW_ANSWER_MS);
    if (result.failed.size > tolerated) throw quorumError(what, result, members.length - tolerated);
    return result;
  }

  // ------------------------------------------------------------------ multipart

  async createUpload(record: UploadRecord & { bucket: string; key: string; uploadId: string }): Promise<void> {
    await this.onPlacementQuorum('create upload', record.bucket, record.key,
      (client) => client.putUpload({ ...record, hlc: this.clock.now(), initiatedMs: record.initiatedMs ?? Date.now() }));
  }

  async writePart(upload: { bucket: string; key: string; uploadId: string }, partNumber: number, body: AsyncIterable<Buffer>,
    finalize: (body: StreamedBody) => Promise<Pick<DataSegment, 'checksums'>> | Pick<DataSegment, 'checksums'>): Promise<DataSegment> {
    const layout = this.defaultLayout();
    const nodes = this.placement(upload.bucket, upload.key, layout);
    const written = await writeSegment(this.cluster, nodes, layout, body, { allowInline: false });
    const extra = await this.finalizeOrDiscard(written, finalize);
    const part: DataSegment = { ...written.segment, ...extra, partNumber, etag: `"${written.md5Hex}"` };
    // Short of a quorum the part stays where its record landed, shards and all: a node holding the
    // record must be able to heal it, and completing or aborting the upload frees it. Shards that
    // no record names are orphans the scrubber removes.
    await this.onPlacementQuorum('upload part', upload.bucket, upload.key,
      (client) => client.putUpload({ ...upload, parts: [part], hlc: this.clock.now() }));
    return part;
  }

  async getUpload(bucket: string, key: string, uploadId: string): Promise<UploadRecord | undefined> {
    const layout = this.defaultLayout();
    const nodes = this.placement(bucket, key, layout);
    const needed = readQuorum(layout.dataShards, layout.parityShards);
    const result = await this.cluster.fanOutToQuorum(nodes, async (client) => {
      try {
        return await client.getUpload({ bucket, key, uploadId });
      } catch (err) {
        if (err instanceof StoreError && err.kind === 'NotFound') return undefined;
        throw err;
      }
    }, needed, SLOW_ANSWER_MS);
    if (result.ok.size < needed) throw quorumError('upload read', result, needed);
    if ([...result.ok.values()].some((r) => r?.ended)) {
      await this.endUploadWhereLeft(result.ok, { bucket, key, uploadId });
      return undefined;
    }
    const records = [...result.ok.values()].filter((r): r is pb.UploadRecord => r !== undefined);
    if (!records.length) return undefined;
    const parts = new Map<number, DataSegment>();
    for (const part of records.flatMap((r) => r.parts ?? [])) {
      const seen = parts.get(part.partNumber!);
      if (!seen || String(part.dataId) > String(seen.dataId)) parts.set(part.partNumber!, part);
    }
    return { ...records[0], parts: [...parts.values()].sort((a, b) => a.partNumber! - b.partNumber!) };
  }

  /**
   * An upload completed or aborted while some of its nodes were away lingers on them, naming parts
   * whose shards may be gone by now: end it there too.
   */
  private async endUploadWhereLeft(records: Map<string, pb.UploadRecord | undefined>, upload: pb.IUploadKey): Promise<void> {
    const lingering = [...records].filter(([, r]) => r && !r.ended).map(([id]) => id);
    await this.cluster.fanOut(lingering, (client) => client.deleteUpload(upload));
  }

  async listUploads(bucket: string, options: { prefix?: string; keyMarker?: string; uploadIdMarker?: string; limit: number }): Promise<UploadRecord[]> {
    const result = await this.requireMembers('list uploads', (client) => client.listUploads({ bucket, ...options, limit: options.limit + 1 }));
    const uploads = new Map<string, UploadRecord>();
    for (const list of result.ok.values()) for (const u of list.uploads ?? []) uploads.set(`${u.key}\u0000${u.uploadId}`, u);
    return [...uploads.values()]
      .sort((a, b) => compareBytes(a.key!, b.key!) || compareBytes(a.uploadId!, b.uploadId!))
      .slice(0, options.limit + 1);
  }

  async completeUpload(upload: UploadRecord, parts: DataSegment[], target: WriteTarget, fields: VersionFields): Promise<ObjectVersion> {
    const version = this.newVersion(target, fields, parts);
    await this.commitVersion(version, [], []);
    // The upload ends before its unused parts go: should this gateway die in between, the upload
    // still names every part it has, and heal ends it (endCompletedUpload).
    await this.cluster.fanOut(this.placement(target.bucket, target.key), (client) =>
      client.deleteUpload({ bucket: upload.bucket, key: upload.key, uploadId: upload.uploadId }));
    const used = new Set(parts.map((p) => p.dataId));
    await this.discardSegments((upload.parts ?? []).filter((p) => !used.has(p.dataId)));
    return version;
  }

  async abortUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    const upload = await this.getUpload(bucket, key, uploadId);
    if (!upload) throw new StoreError('NotFound', `no upload ${uploadId}`);
    // A complete that crashed before dropping the upload may have stitched its parts into a
    // version already: those parts are that version's data now and must stay.
    await this.endUpload({ ...upload, bucket, key, uploadId }, await this.dataIdsOfKey(bucket, key));
  }

  /**
   * An upload some of whose parts a version of its key is made of was completed, whatever its
   * records still say (the completing gateway died before ending it): end it. True if it was.
   */
  async endCompletedUpload(upload: UploadRecord & { bucket: string; key: string; uploadId: string }): Promise<boolean> {
    const inUse = await this.dataIdsOfKey(upload.bucket, upload.key);
    if (!(upload.parts ?? []).some((p) => inUse.has(p.dataId!))) return false;
    await this.endUpload(upload, inUse);
    return true;
  }

  /** Drops the upload's records, then the shards of its parts no version uses. */
  private async endUpload(upload: UploadRecord & { bucket: string; key: string; uploadId: string }, inUse: Set<string>): Promise<void> {
    const { bucket, key, uploadId } = upload;
    // The record goes first: shards freed under a record that survives would leave parts no heal can rebuild.
    await this.onPlacementQuorum('end upload', bucket, key, (client) => client.deleteUpload({ bucket, key, uploadId }));
    await this.discardSegments((upload.parts ?? []).filter((p) => !inUse.has(p.dataId!)));
  }

  /** The data ids every stored version of a key refers to. */
  private async dataIdsOfKey(bucket: string, key: string): Promise<Set<string>> {
    const ids = new Set<string>();
    for (let startAfterVersion = ''; ;) {
      const page = await this.list(bucket, { prefix: key, startAfter: startAfterVersion ? key : '', startAfterVersion, allVersions: true, limit: 1000 });
      const versions = page.items.flatMap((item) => (item.version?.key === key ? [item.version] : []));
      for (const segment of versions.flatMap((v) => v.segments ?? [])) ids.add(segment.dataId!);
      // Versions of one key come together; an item of another key means they are all seen.
      if (!page.truncated || versions.length < page.items.length) return ids;
      startAfterVersion = versions.at(-1)!.versionId;
    }
  }

  private async onPlacementQuorum(what: string, bucket: string, key: string,
    call: (client: NodeClient) => Promise<unknown>): Promise<void> {
    const layout = this.defaultLayout();
    const quorum = writeQuorum(layout.dataShards, layout.parityShards);
    const result = await this.cluster.fanOutToQuorum(this.placement(bucket, key, layout), (client) => call(client), quorum, SLOW_ANSWER_MS);
    if (result.ok.size < quorum) throw quorumError(what, result, quorum);
  }

  // ------------------------------------------------------------------ replicated records

  async putRecord(namespace: string, key: string, value: Buffer | null): Promise<void> {
    const record: pb.IRecord = { namespace, key, value: value ?? Buffer.alloc(0), hlc: this.clock.now(), deleted: value === null };
    const members = this.cluster.memberIds();
    const majority = Math.floor(members.length / 2) + 1;
    const result = await this.cluster.fanOutToQuorum(members, (client) => client.putRecords([record]), majority, SLOW_ANSWER_MS);
    if (result.ok.size < majority) throw quorumError(`record ${namespace}/${key} write`, result, majority);
  }

  async getRecord(namespace: string, key: string): Promise<Buffer | undefined> {
    const members = this.cluster.memberIds();
    const majority = Math.floor(members.length / 2) + 1;
    const result = await this.cluster.fanOutToQuorum(members, async (client) => {
      try {
        return await client.getRecord({ namespace, key });
      } catch (err) {
        if (err instanceof StoreError && err.kind === 'NotFound') return undefined;
        throw err;
      }
    }, majority, SLOW_ANSWER_MS);
    if (result.ok.size < majority) throw quorumError(`record ${namespace}/${key} read`, result, majority);
    let newest: pb.Record | undefined;
    for (const r of result.ok.values()) if (r && (!newest || r.hlc > newest.hlc)) newest = r;
    if (newest) this.clock.observe(newest.hlc);
    return newest && !newest.deleted ? Buffer.from(newest.value) : undefined;
  }

  async listRecords(namespace: string, prefix = ''): Promise<Array<{ key: string; value: Buffer }>> {
    const members = this.cluster.memberIds();
    const majority = Math.floor(members.length / 2) + 1;
    // With tombstones: a node that missed a delete must not bring the record back into the merge.
    const result = await this.cluster.fanOutToQuorum(members, (client) => client.listRecords({ namespace, prefix, includeDeleted: true }),
      majority, SLOW_ANSWER_MS);
    if (result.ok.size < majority) throw quorumError(`record ${namespace} list`, result, majority);
    const newest = new Map<string, pb.IRecord>();
    for (const list of result.ok.values()) {
      for (const r of list.records ?? []) {
        const seen = newest.get(r.key!);
        if (!seen || Number(r.hlc) > Number(seen.hlc)) newest.set(r.key!, r);
      }
    }
    return [...newest.values()].filter((r) => !r.deleted)
      .sort((a, b) => compareBytes(a.key!, b.key!))
      .map((r) => ({ key: r.key!, value: Buffer.from(r.value ?? []) }));
  }

  // ------------------------------------------------------------------ cluster

  async listBucketNames(): Promise<string[]> {
    return (await this.listRecords(BUCKET_NAMESPACE)).map((r) => r.key);
  }

  /** Run a rebalance pass in the background after every map change (one pass at a time). */
  rebalanceOnMapChange(options: RebalanceOptions = { bytesPerSecond: DEFAULT_REBALANCE_RATE }): void {
    let running: Promise<unknown> | undefined;
    let again = false;
    const pass = (): void => {
      if (running) { again = true; return; }
      this.rebalanceProgress = undefined;
      running = rebalance(this, { ...options, onProgress: (p) => { this.rebalanceProgress = p; } })
        .catch(() => undefined)
        .finally(() => {
          running = undefined;
          if (again) { again = false; pass(); }
        });
    };
    this.cluster.onMapChange(pass);
  }

  clusterMap(): pb.IClusterMap {
    return this.cluster.map;
  }

  healthyNodeCount(): number {
    return this.cluster.memberIds().filter((id) => this.cluster.isLikelyUp(id)).length;
  }

  async close(): Promise<void> {
    this.heal.stop();
    this.cluster.close();
  }
}

// ------------------------------------------------------------------ helpers

function quorumError(what: string, result: FanOutResult<unknown>, needed: number): StoreError {
  const failures = [...result.failed.values()];
  // Every node refused the request itself (e.g. a name with NUL): the caller's fault, not the cluster's.
  if (failures.length > 0 && result.ok.size === 0 && failures.every((e) => e.kind === 'InvalidArgument')) return new StoreError('InvalidArgument', failures[0]!.message);
  const full = failures.filter((e) => e.kind === 'DiskFull').length;
  const kind = full > 0 && result.ok.size + full >= needed ? 'DiskFull' : 'QuorumFailed';
  return new StoreError(kind, `${what}: ${result.ok.size} of ${needed} needed nodes answered (${failures.map((e) => e.message).join('; ')})`);
}

function pickNewest(versions: pb.IObjectVersion[]): pb.IObjectVersion | undefined {
  let newest: pb.IObjectVersion | undefined;
  for (const v of versions) {
    if (!newest || Number(v.hlc) > Number(newest.hlc) || (v.hlc === newest.hlc && String(v.versionId) > String(newest.versionId))
      || (v.hlc === newest.hlc && v.versionId === newest.versionId && Number(v.revision ?? 0) > Number(newest.revision ?? 0))) newest = v;
  }
  return newest;
}

/** The record a node stores: the version with that node's own inline shards. */
function recordFor(version: ObjectVersion, inline: InlineShards, nodeId: string): pb.IObjectVersion {
  return {
    ...version,
    segments: (version.segments ?? []).map((segment, i) => {
      if (!segment.inline) return segment;
      const index = segment.nodes?.indexOf(nodeId) ?? -1;
      return { ...segment, inlineShard: index >= 0 ? inline[i]?.[index] ?? undefined : undefined };
    }),
  };
}

function stripInline(version: pb.IObjectVersion): ObjectVersion {
  return {
    ...version,
    segments: (version.segments ?? []).map((s) => (s.inline ? { ...s, inlineShard: undefined } : s)),
  } as ObjectVersion;
}

/** Whether a node's record is this very version. */
/** When a node purged the version, if that delete can no longer be reverted (else 0). */
function finalTombstone(slot: pb.IMetaSlot | undefined): number {
  const hlc = Number(slot?.tombstoneHlc ?? 0);
  if (!hlc || (slot?.tombstonePending && writeAgeMs({ hlc, revision: 0 }) <= ABANDONED_WRITE_AGE_MS)) return 0;
  return hlc;
}

/** The one-key request that names exactly this version. */
function versionKey(version: pb.IObjectVersion): pb.IObjectKey[] {
  return [{ bucket: version.bucket, key: version.key, versionId: version.versionId }];
}

/** The nodes whose record (in `found`, by node) is this version. */
/** Whether `work` settles within `ms` (it goes on either way). */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([work.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

function holdersOf(found: Map<string, pb.IObjectVersion>, version: pb.IObjectVersion): string[] {
  return [...found].filter(([, record]) => holds(record, version)).map(([id]) => id);
}

function holds(record: pb.IObjectVersion | undefined, version: pb.IObjectVersion): record is pb.IObjectVersion {
  return record !== undefined && record.hlc === version.hlc && record.versionId === version.versionId;
}

/** Whether the records at hand carry enough inline shards (k per segment) to serve the version. */
function inlineShardsComplete(version: pb.IObjectVersion, byNode: Map<string, pb.IObjectVersion>): boolean {
  return enoughInlineShards(version, gatherInline(version, byNode));
}

/** Whether every inline segment of the version has at least k of its shards among `gathered`. */
function enoughInlineShards(version: pb.IObjectVersion, gathered: InlineShards): boolean {
  return (version.segments ?? []).every((segment, i) => !segment.inline || Number(segment.size ?? 0) === 0
    || (gathered[i] ?? []).filter((shard) => shard !== null).length >= layoutOf(segment).dataShards);
}

/** Collect each node's inline shard of the chosen version, by segment and shard index. */
function gatherInline(chosen: pb.IObjectVersion, byNode: Map<string, pb.IObjectVersion>): InlineShards {
  return (chosen.segments ?? []).map((segment, s) => (segment.nodes ?? []).map((id) => {
    const record = byNode.get(id);
    if (!holds(record, chosen)) return null;
    const shard = record.segments?.[s]?.inlineShard;
    return shard ? shard : null;
  }));
}

export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** k-way merge of node listings: byte order of keys, newest version first, duplicates dropped. */
function mergeListings(lists: pb.IListEntry[][], allVersions: boolean): ListItem[] {
  const byName = new Map<string, ListItem>();
  for (const entries of lists) {
    for (const entry of entries) {
      if (entry.commonPrefix) {
        byName.set(`p\u0000${entry.commonPrefix}`, { commonPrefix: entry.commonPrefix });
        continue;
      }
      const v = entry.version as ObjectVersion;
      const name = allVersions ? `v\u0000${v.key}\u0000${v.versionId}` : `v\u0000${v.key}`;
      const seen = byName.get(name)?.version;
      if (!seen || Number(v.hlc) > Number(seen.hlc)) byName.set(name, { version: v });
    }
  }
  const nameOf = (item: ListItem) => item.commonPrefix ?? item.version!.key;
  return [...byName.values()].sort((a, b) => compareBytes(nameOf(a), nameOf(b))
    || Number(b.version?.hlc ?? 0) - Number(a.version?.hlc ?? 0));
}
