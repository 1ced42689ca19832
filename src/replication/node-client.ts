// A typed client for one storage node: unary calls with deadlines, shard streams with
// backpressure, gRPC failures turned into StoreError kinds the quorum logic can act on.
import * as grpc from '@grpc/grpc-js';
import { AUTH_METADATA_KEY, makeClusterToken } from '../common/cluster-auth.js';
import { StoreError, type StoreErrorKind } from '../common/errors.js';
import { type LocalCalls, localCalls } from '../common/local-calls.js';
import { bulkChannelOptions, pb, storageNodeService as svc, UNARY_DEADLINE_MS, type WriteStamp } from '../common/node-service.js';
import { localShards } from '../common/local-shards.js';
import { nodeChannelCredentials, nodeChannelOptions, type NodeTls } from '../common/node-tls.js';
import { awaitConfirmation, BulkChannel, silentNode } from './bulk-client.js';
import { LocalShardWriter, openLocalReader } from './local-shard-streams.js';
import { CallCoalescer } from './call-coalescer.js';
import { MetaChannel, MetaChannelUnreachable } from './meta-channel.js';

/** How long one cluster token is sent before a fresh one is made (nodes accept minutes of skew). */
const TOKEN_REUSE_MS = 1_000;
/** Blocks queued per shard stream before the writer waits. */
const MAX_IN_FLIGHT = 2;
/** A stream that makes no progress for this long is treated as a dead node. */
export const STREAM_IDLE_MS = 15_000;

type Unary<Req, Res> = grpc.MethodDefinition<Req, Res>;

const statusKinds: Partial<Record<grpc.status, StoreErrorKind>> = {
  [grpc.status.NOT_FOUND]: 'NotFound',
  [grpc.status.DATA_LOSS]: 'Corrupt',
  [grpc.status.RESOURCE_EXHAUSTED]: 'DiskFull',
  [grpc.status.UNAUTHENTICATED]: 'Unauthenticated',
  [grpc.status.INVALID_ARGUMENT]: 'InvalidArgument',
  [grpc.status.FAILED_PRECONDITION]: 'Conflict',
  [grpc.status.ALREADY_EXISTS]: 'Conflict',
};

export function toStoreError(err: unknown, nodeId: string): StoreError {
  if (err instanceof StoreError) return err;
  const e = err as Partial<grpc.ServiceError>;
  const kind = (e.code !== undefined && statusKinds[e.code]) || 'Unavailable';
  return new StoreError(kind, `node ${nodeId}: ${e.details || e.message || String(err)}`, { nodeId });
}

/** A failure the node reported for the request itself (not for being unreachable). */
function refusedByNode(err: unknown): boolean {
  return err instanceof StoreError && err.kind !== 'Unavailable';
}

/** One key's write, named by its stamp, in a coalesced DeleteMeta or ResolveMeta. */
interface StampedKey {
  key: pb.IObjectKey;
  stamp: WriteStamp;
}

/** A coalescer for each value of a call's boolean flag (calls with different flags cannot share). */
function perFlag<Item, Result>(send: (flag: boolean) => (items: Item[], waitedMs: number) => Promise<Result[]>,
  maxInFlight?: number): Array<CallCoalescer<Item, Result>> {
  return [false, true].map((flag) => new CallCoalescer(send(flag), refusedByNode, maxInFlight));
}

/**
 * Metadata reads go one call at a time per node: a GET is one round of them, so under load a
 * fuller batch (fewer gRPC calls, each costing gateway and node far more CPU than a key) beats
 * a second call in flight. Writes keep two, a PUT's phases being back to back.
 */
const META_READS_IN_FLIGHT = 1;

export class NodeClient {
  private readonly client: grpc.Client;
  /** The node's bulk shard channel, once Health has told us; until then shards go over gRPC. */
  bulkAddress = '';
  private token = { value: '', renewAt: 0 };
  private readonly bulk: BulkChannel;
  /** The node's metadata channel, once Health has told us; until then unary calls go over gRPC. */
  private meta: MetaChannel | undefined;
  /**
   * Whether Health has answered since a channel was last given up. What it named may be nothing
   * (node TLS, a channel turned off, an older node): that is known too, and not asked again.
   */
  private channelsLearned = false;

  /**
   * Single-key metadata calls (reads, record writes, deletes, resolutions), coalesced per flag
   * value. Time spent queued counts against the deadline, so a caller still gives up when it
   * always did.
   */
  private readonly metaReads = perFlag((withInline) => async (keys: pb.IObjectKey[], waitedMs: number) =>
    (await this.unary(svc.GetMeta, pb.GetMetaRequest.create({ keys, withInline }), UNARY_DEADLINE_MS - waitedMs)).results,
  META_READS_IN_FLIGHT);
  private readonly metaWrites = perFlag((revertible) => async (versions: pb.IObjectVersion[], waitedMs: number) => {
    const result = await this.unary(svc.PutMeta, pb.PutMetaRequest.create({ versions, revertible }), UNARY_DEADLINE_MS - waitedMs);
    return versions.map((_, i) => pb.PutMetaResult.create({ applied: [result.applied[i]!], keptPrevious: [result.keptPrevious[i]!] }));
  });
  private readonly metaDeletes = perFlag((revertible) => async (deletes: StampedKey[], waitedMs: number) => {
    const request = { keys: deletes.map((d) => d.key), keyHlcs: deletes.map((d) => d.stamp.hlc), revertible };
    const ack = await this.unary(svc.DeleteMeta, pb.DeleteMetaRequest.create(request), UNARY_DEADLINE_MS - waitedMs);
    return deletes.map(() => ack);
  });
  private readonly metaResolves = perFlag((commit) => async (writes: StampedKey[], waitedMs: number) => {
    const request = { keys: writes.map((w) => w.key), keyHlcs: writes.map((w) => w.stamp.hlc), keyRevisions: writes.map((w) => w.stamp.revision), commit };
    const ack = await this.unary(svc.ResolveMeta, pb.ResolveMetaRequest.create(request), UNARY_DEADLINE_MS - waitedMs);
    return writes.map(() => ack);
  });

  constructor(readonly nodeId: string, readonly address: string, private readonly secret: string, private readonly tls?: NodeTls) {
    this.client = new grpc.Client(address, nodeChannelCredentials(tls), { ...bulkChannelOptions, ...nodeChannelOptions(tls) });
    this.bulk = new BulkChannel(nodeId, () => this.clusterToken());
  }

  /** The cluster token is an HMAC of the time: one a second serves every call of that second. */
  private clusterToken(): string {
    const now = Date.now();
    if (now >= this.token.renewAt) this.token = { value: makeClusterToken(this.secret, now), renewAt: now + TOKEN_REUSE_MS };
    return this.token.value;
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(AUTH_METADATA_KEY, this.clusterToken());
    return md;
  }

  /** Health always goes over gRPC: it is how the client learns of (and re-checks) the other channels. */
  private unary<Req, Res>(def: Unary<Req, Res>, request: Req, deadlineMs = UNARY_DEADLINE_MS): Promise<Res> {
    const local = localCalls.at(this.address);
    if (local) return this.localUnary(local, def, request, deadlineMs);
    if (this.meta && def.path !== svc.Health.path) return this.metaUnary(this.meta, def, request, deadlineMs);
    return this.grpcUnary(def, request, deadlineMs);
  }

  private grpcUnary<Req, Res>(def: Unary<Req, Res>, request: Req, deadlineMs: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, request,
        this.metadata(), { deadline: Date.now() + deadlineMs },
        (err, res) => (err ? reject(toStoreError(err, this.nodeId)) : resolve(res!)));
    });
  }

  /**
   * A unary call over the metadata channel. One the node never saw (no connection could be made:
   * it restarted on another port, or is going away) goes over gRPC, which reports what is wrong.
   */
  private async metaUnary<Req, Res>(channel: MetaChannel, def: Unary<Req, Res>, request: Req, deadlineMs: number): Promise<Res> {
    try {
      return def.responseDeserialize(await channel.call(def.path, def.requestSerialize(request), deadlineMs));
    } catch (err) {
      if (!(err instanceof MetaChannelUnreachable)) throw toStoreError(err, this.nodeId);
      if (this.meta === channel) {
        this.useMetaChannel('');
        this.channelsLearned = false;
      }
      return this.grpcUnary(def, request, deadlineMs);
    }
  }

  /** Whether Health told us of the bulk and metadata channels (and no failure has voided them since). */
  get channelsKnown(): boolean {
    return this.channelsLearned;
  }

  /** A restarted node may listen for bulk transfers elsewhere: shards go over gRPC until Health is asked again. */
  forgetBulkChannel(): void {
    this.bulkAddress = '';
    this.channelsLearned = false;
  }

  private useMetaChannel(address: string): void {
    if (address === (this.meta?.address ?? '')) return;
    this.meta?.close();
    this.meta = address ? new MetaChannel(address, this.nodeId, () => this.clusterToken()) : undefined;
  }

  /** A unary call to a node in this process, with the same deadline a gRPC call has. */
  private async localUnary<Req, Res>(local: LocalCalls, def: Unary<Req, Res>, request: Req, deadlineMs: number): Promise<Res> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject({ code: grpc.status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' }), deadlineMs);
    });
    try {
      return def.responseDeserialize(await Promise.race([local.unary(def.path, def.requestSerialize(request)), deadline]));
    } catch (err) {
      throw toStoreError(err, this.nodeId);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Several versions are applied in one batch on the node; a single one shares a call with others. */
  async putMeta(versions: pb.IObjectVersion[], revertible = false): Promise<pb.PutMetaResult> {
    if (versions.length === 1) return this.metaWrites[Number(revertible)]!.call(versions[0]!);
    return this.unary(svc.PutMeta, pb.PutMetaRequest.create({ versions, revertible }));
  }

  async getMeta(keys: pb.IObjectKey[], withInline: boolean): Promise<pb.GetMetaResult> {
    if (keys.length === 1) return pb.GetMetaResult.create({ results: [await this.metaReads[Number(withInline)]!.call(keys[0]!)] });
    return this.unary(svc.GetMeta, pb.GetMetaRequest.create({ keys, withInline }));
  }
  async deleteMeta(keys: pb.IObjectKey[], hlc: number, revertible = false): Promise<pb.Ack> {
    if (keys.length === 1) return this.metaDeletes[Number(revertible)]!.call({ key: keys[0]!, stamp: { hlc, revision: 0 } });
    return this.unary(svc.DeleteMeta, pb.DeleteMetaRequest.create({ keys, hlc, revertible }));
  }
  /** Drops records that moved to other nodes (rebalance): purged at or before `hlc`, with no tombstone. */
  moveOutMeta(keys: pb.IObjectKey[], hlc: number): Promise<pb.Ack> {
    return this.unary(svc.DeleteMeta, pb.DeleteMetaRequest.create({ keys, hlc, moved: true }));
  }
  async resolveMeta(keys: pb.IObjectKey[], stamp: WriteStamp, commit: boolean): Promise<pb.Ack> {
    if (keys.length === 1) return this.metaResolves[Number(commit)]!.call({ key: keys[0]!, stamp });
    return this.unary(svc.ResolveMeta, pb.ResolveMetaRequest.create({ keys, hlc: stamp.hlc, revision: stamp.revision, commit }));
  }
  deleteShards(shards: pb.IShardRef[]) { return this.unary(svc.DeleteShards, pb.ShardRefs.create({ shards })); }
  verifyShards(shards: pb.IShardRef[]) { return this.unary(svc.VerifyShards, pb.ShardRefs.create({ shards }), 120_000); }
  putUpload(record: pb.IUploadRecord) { return this.unary(svc.PutUpload, pb.UploadRecord.create(record)); }
  getUpload(key: pb.IUploadKey) { return this.unary(svc.GetUpload, pb.UploadKey.create(key)); }
  deleteUpload(key: pb.IUploadKey) { return this.unary(svc.DeleteUpload, pb.UploadKey.create(key)); }
  listUploads(req: pb.IListUploadsRequest) { return this.unary(svc.ListUploads, pb.ListUploadsRequest.create(req)); }
  putRecords(records: pb.IRecord[]) { return this.unary(svc.PutRecords, pb.RecordList.create({ records })); }
  getRecord(key: pb.IRecordKey) { return this.unary(svc.GetRecord, pb.RecordKey.create(key)); }
  listRecords(query: pb.IRecordQuery) { return this.unary(svc.ListRecords, pb.RecordQuery.create(query)); }
  getClusterMap() { return this.unary(svc.GetClusterMap, pb.Empty.create()); }
  setClusterMap(map: pb.IClusterMap) { return this.unary(svc.SetClusterMap, pb.ClusterMap.create(map)); }
  async health(deadlineMs = 2_000): Promise<pb.HealthResult> {
    const result = await this.unary(svc.Health, pb.Empty.create(), deadlineMs);
    // The bulk and metadata channels are plaintext: under node TLS everything stays on gRPC.
    this.bulkAddress = this.tls ? '' : result.bulkAddress;
    this.useMetaChannel(this.tls ? '' : result.metaAddress);
    this.bulk.sharedMemory = result.bulkSharedMemory;
    this.channelsLearned = true;
    return result;
  }
  scrub(req: pb.IScrubRequest) { return this.unary(svc.Scrub, pb.ScrubRequest.create(req), 600_000); }

  /** All pages of a listing, up to `limit` entries. */
  async list(req: pb.IListRequest): Promise<pb.IListEntry[]> {
    const entries: pb.IListEntry[] = [];
    for await (const page of this.serverStream(svc.List, pb.ListRequest.create(req), 30_000)) {
      entries.push(...(page.entries ?? []));
    }
    return entries;
  }

  /** Stream a shard's bytes; errors surface as StoreError from `next()`; `cancel` ends the call at once. */
  openShardReader(read: pb.IShardRead): ShardReader {
    const local = localShards.at(this.bulkAddress);
    if (local) return openLocalReader(this.nodeId, local, read);
    if (this.bulkAddress) return this.bulk.openReader(this.bulkAddress, read);
    const def = svc.GetShard;
    const call = this.client.makeServerStreamRequest(def.path, def.requestSerialize, def.responseDeserialize,
      pb.ShardRead.create(read), this.metadata(), {});
    const iterator = call[Symbol.asyncIterator]() as AsyncIterator<pb.ShardChunk>;
    return {
      next: async () => {
        try {
          const item = await iterator.next();
          if (item.done) return undefined;
          const data = item.value.data;
          return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        } catch (err) {
          throw toStoreError(err, this.nodeId);
        }
      },
      cancel: () => call.cancel(),
    };
  }

  private async *serverStream<Req, Res>(def: Unary<Req, Res>, request: Req, deadlineMs?: number): AsyncGenerator<Res> {
    const options = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
    const call = this.client.makeServerStreamRequest(def.path, def.requestSerialize, def.responseDeserialize,
      request, this.metadata(), options);
    try {
      for await (const message of call) yield message as Res;
    } catch (err) {
      throw toStoreError(err, this.nodeId);
    } finally {
      call.cancel();
    }
  }

  /** Open a shard upload: over the bulk channel where the node has one, else gRPC PutShard. */
  openShardWriter(header: pb.IShardHeader): ShardSink {
    const local = localShards.at(this.bulkAddress);
    if (local) return new LocalShardWriter(this.nodeId, local, header, STREAM_IDLE_MS);
    if (this.bulkAddress) return this.bulk.openWriter(this.bulkAddress, header, STREAM_IDLE_MS);
    return new GrpcShardWriter(this.nodeId, (callback) => this.client.makeClientStreamRequest(
      svc.PutShard.path, svc.PutShard.requestSerialize, svc.PutShard.responseDeserialize,
      this.metadata(), {}, callback), header);
  }

  close(): void {
    this.useMetaChannel('');
    this.bulk.close();
    this.client.close();
  }
}

export interface ShardReader {
  /** The next chunk, or undefined at the end of the shard range; valid until the next call. */
  next(): Promise<Buffer | undefined>;
  cancel(): void;
}

type ClientStreamOpener = (cb: grpc.requestCallback<pb.ShardWriteResult>) => grpc.ClientWritableStream<pb.IShardWrite>;

/** One shard upload in flight. `failed` is set as soon as the node errs; the writer then skips it. */
export interface ShardSink {
  readonly nodeId: string;
  readonly failed: StoreError | undefined;
  /**
   * Send one block; resolves when more may be sent. `data` stays in use until `release` is
   * called (the transport may still be sending it), so the caller reuses it only then.
   */
  write(data: Uint8Array, release?: () => void): Promise<void>;
  /** End the stream; the node's result, or undefined if the shard did not become durable. */
  finish(): Promise<pb.IShardWriteResult | undefined>;
  abort(): void;
}

class GrpcShardWriter implements ShardSink {
  private readonly call: grpc.ClientWritableStream<pb.IShardWrite>;
  readonly result: Promise<pb.ShardWriteResult>;
  failed: StoreError | undefined;
  private readonly inFlight: Array<Promise<void>> = [];
  private sentBytes = 0;

  constructor(readonly nodeId: string, open: ClientStreamOpener, header: pb.IShardHeader) {
    let settle!: (err: grpc.ServiceError | null, res?: pb.ShardWriteResult) => void;
    this.result = new Promise((resolve, reject) => {
      settle = (err, res) => (err ? reject(toStoreError(err, nodeId)) : resolve(res!));
    });
    this.result.catch((err: StoreError) => { this.failed ??= err; });
    this.call = open((err, res) => settle(err, res));
    this.call.on('error', () => { /* reported through the callback */ });
    this.call.write({ header });
  }

  /**
   * Write one block; resolves when the stream can take more. grpc-js may serialize a message
   * after write() returns, so the caller must not reuse `data`; at most MAX_IN_FLIGHT blocks
   * are queued per stream, which bounds memory.
   */
  async write(data: Uint8Array, release?: () => void): Promise<void> {
    if (this.failed) { release?.(); return; }
    this.sentBytes += data.length;
    this.inFlight.push(new Promise<void>((resolve) => this.call.write({ data }, () => { release?.(); resolve(); })));
    if (this.inFlight.length <= MAX_IN_FLIGHT) return;
    const oldest = this.inFlight.shift()!;
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.failed ??= new StoreError('Unavailable', `node ${this.nodeId}: shard stream stalled`, { nodeId: this.nodeId });
        this.call.cancel();
        resolve();
      }, STREAM_IDLE_MS);
    });
    await Promise.race([oldest, stalled, this.result.then(() => undefined, () => undefined)]);
    clearTimeout(timer);
  }

  /** End the stream; a node that does not confirm within the idle limit (paused, cut off) failed. */
  async finish(): Promise<pb.IShardWriteResult | undefined> {
    if (!this.failed) {
      this.call.write({ end: { bytes: this.sentBytes } });
      this.call.end();
    }
    return awaitConfirmation(this.result, STREAM_IDLE_MS, () => {
      this.failed ??= silentNode(this.nodeId);
      this.call.cancel();
    });
  }

  abort(): void {
    this.call.cancel();
  }
}
