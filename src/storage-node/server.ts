// The storage node process: the StorageNode gRPC service (proto/node.proto) over one data
// directory holding shard files (shards/, tmp/) and LevelDB metadata (meta/).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type pino from 'pino';
import { AUTH_METADATA_KEY, verifyClusterToken } from '../common/cluster-auth.js';
import { StoreError } from '../common/errors.js';
import { type LocalCalls, localCalls } from '../common/local-calls.js';
import { createLogger } from '../common/log.js';
import { bulkChannelOptions, encodeMessage, pb, storageNodeService, type WriteStamp } from '../common/node-service.js';
import { nodeServerCredentials, nodeServerOptions, type NodeTls } from '../common/node-tls.js';
import { serializeChunkIntoScratch } from './chunk-serializer.js';
import { serviceError, statusOf } from './grpc-status.js';
import { listEntries, listQueryOf } from './listing.js';
import { MetaStore, withoutInline, type DataSegment } from './meta-store.js';
import { scrub, type ScrubOptions, type ScrubResult } from './scrubber.js';
import { startBulkServer } from './bulk-server.js';
import { startMetaServer } from './meta-server.js';
import { streamShardRange } from './shard-range.js';
import { ShardStore, type ShardCheck, type ShardRef } from './shard-store.js';

export interface StorageNodeOptions {
  id: string;
  dataDir: string;
  /** host:port; port 0 picks a free port (see the returned address). */
  listen: string;
  secret: string;
  /** Mutual TLS: only peers with a certificate from the cluster CA get in (and no plaintext bulk channel). */
  tls?: NodeTls;
  /** Byte limit for shard data (default: the file system's size). */
  capacityBytes?: number;
  zone?: string;
  /** Background scrub period; 0 disables it. Default one hour. */
  scrubIntervalMs?: number;
  /** Age after which unreferenced shard files are orphans for the background scrub. Default one day. */
  orphanGraceMs?: number;
  /** host:port of the bulk shard channel (default: the gRPC host, any free port); 'off' disables it. */
  bulkListen?: string;
  /**
   * host:port of the metadata channel (default: the gRPC host, any free port, where the bulk
   * channel is on); 'off' disables it.
   */
  metaListen?: string;
  /**
   * Whether the bulk channel takes shared-memory rings from clients on this host (see
   * src/common/shm-ring.ts). Default: on, unless the environment sets TESSERA_BULK_SHM=off.
   */
  bulkSharedMemory?: boolean;
  /** Background scrub read rate. Default 32 MiB/s, so it never starves client traffic. */
  scrubBytesPerSecond?: number;
  logger?: pino.Logger;
}

export interface StorageNode {
  address: string;
  close(): Promise<void>;
}

const CHUNK_BYTES = 1024 * 1024;

/** The shared service definition, with GetShard replies serialized without per-chunk garbage. */
/**
 * The shared service definition as this side serializes it: GetShard replies without per-chunk
 * garbage, GetMeta replies in their stored form (StoredMetaResult, wire-identical to GetMetaResult).
 */
const serverSideService = {
  ...storageNodeService,
  GetShard: { ...storageNodeService.GetShard, responseSerialize: serializeChunkIntoScratch },
  GetMeta: { ...storageNodeService.GetMeta, responseSerialize: (result: pb.IStoredMetaResult) => encodeMessage(pb.StoredMetaResult, result) },
} satisfies grpc.ServiceDefinition;

/** A stored record with its inline shard bytes dropped. */
function encodeWithoutInline(stored: Buffer): Buffer {
  return encodeMessage(pb.ObjectVersion, withoutInline(pb.ObjectVersion.decode(stored)));
}
const LIST_PAGE_ENTRIES = 256;

/** A verified token is trusted this long before its HMAC is checked again (clients reuse one for a second). */
const TOKEN_RECHECK_MS = 1_000;

/** verifyClusterToken, remembering tokens it just accepted so most calls skip the HMAC. */
function tokenChecker(secret: string): (token: string | undefined) => boolean {
  const recent = new Map<string, number>();
  return (token) => {
    const now = Date.now();
    if (token !== undefined && (recent.get(token) ?? 0) > now) return true;
    if (!verifyClusterToken(secret, token, now)) return false;
    if (recent.size >= 64) recent.clear();
    recent.set(token!, now + TOKEN_RECHECK_MS);
    return true;
  };
}

/** Refuses every call that lacks a valid cluster token, before any handler sees it. */
function authInterceptor(secret: string): grpc.ServerInterceptor {
  const valid = tokenChecker(secret);
  return (_method, call) => new grpc.ServerInterceptingCall(call, {
    start: (next) => next({
      onReceiveMetadata: (metadata, proceed) => {
        const token = metadata.get(AUTH_METADATA_KEY)[0];
        if (valid(typeof token === 'string' ? token : undefined)) proceed(metadata);
        else call.sendStatus({ code: grpc.status.UNAUTHENTICATED, details: 'missing or invalid cluster token' });
      },
    }),
  });
}

function toShardRef(ref: pb.IShardRef | null | undefined): ShardRef {
  return { dataId: ref?.dataId ?? '', shardIndex: ref?.shardIndex ?? 0 };
}

function toShardStatus(check: ShardCheck): pb.IShardStatus {
  return { shard: check.shard, state: pb.ShardStatus.State[check.state], bytes: check.bytes, dataBytes: check.dataBytes, badBlock: check.badBlock };
}

function toScrubReport(result: ScrubResult): pb.IScrubReport {
  return {
    shardsChecked: result.shardsChecked,
    bytesChecked: result.bytesChecked,
    corrupt: result.corrupt.map(toShardStatus),
    missing: result.missing.map(toShardStatus),
    orphans: result.orphans,
    orphansRemoved: result.orphansRemoved,
  };
}

/** Writes one message and waits while the stream's buffer is full (or until the call ends). */
function writeWithBackpressure<T>(call: grpc.ServerWritableStream<unknown, T>, message: T, written?: () => void): Promise<void> {
  const ready = call.write(message, written);
  if (ready || call.cancelled || call.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done).off('cancelled', done).off('close', done);
      resolve();
    };
    call.on('drain', done).on('cancelled', done).on('close', done);
  });
}

class NodeService {
  private readonly startedAt = Date.now();
  /** Set once the bulk shard channel listens; advertised in Health. */
  bulkAddress = '';
  bulkSharedMemory = false;
  /** Set once the metadata channel listens; advertised in Health. */
  metaAddress = '';

  constructor(
    private readonly options: StorageNodeOptions,
    private readonly shards: ShardStore,
    private readonly meta: MetaStore,
    private readonly log: pino.Logger,
  ) {}

  /** The handler table grpc-js serves, every handler turning failures into statuses. */
  handlers(): grpc.UntypedServiceImplementation {
    return {
      PutShard: this.clientStream((call) => this.putShard(call)),
      GetShard: this.serverStream((call: grpc.ServerWritableStream<pb.IShardRead, pb.IShardChunk>) => this.getShard(call)),
      DeleteShards: this.unary((req: pb.IShardRefs) => this.deleteShards(req)),
      VerifyShards: this.unary((req: pb.IShardRefs) => this.verifyShards(req)),
      PutMeta: this.unary((req: pb.IPutMetaRequest) =>
        this.meta.putVersions((req.versions ?? []).map((v) => pb.ObjectVersion.create(v)), { revertible: req.revertible ?? false })),
      GetMeta: this.unary((req: pb.IGetMetaRequest) => this.getMeta(req)),
      DeleteMeta: this.unary(async (req: pb.IDeleteMetaRequest) => {
        const stamps = stampsOf(req.keys ?? [], req.hlc, 0, req.keyHlcs, []);
        const deletes = (req.keys ?? []).map((key, i) => ({ ref: versionRefOf(key), hlc: stamps[i]!.hlc }));
        await this.meta.deleteVersions(deletes, { revertible: req.revertible ?? false, moved: req.moved ?? false });
        return { ok: true };
      }),
      ResolveMeta: this.unary(async (req: pb.IResolveMetaRequest) => {
        const stamps = stampsOf(req.keys ?? [], req.hlc, req.revision, req.keyHlcs, req.keyRevisions);
        await this.meta.resolveWrites((req.keys ?? []).map((key, i) => ({ ref: versionRefOf(key), stamp: stamps[i]! })), req.commit ?? false);
        return { ok: true };
      }),
      List: this.serverStream((call: grpc.ServerWritableStream<pb.IListRequest, pb.IListPage>) => this.list(call)),
      PutUpload: this.unary(async (req: pb.IUploadRecord) => ({ ok: await this.meta.putUpload(req) })),
      GetUpload: this.unary((req: pb.IUploadKey) => this.meta.getUpload(req)),
      DeleteUpload: this.unary(async (req: pb.IUploadKey) => { await this.meta.deleteUpload(req); return { ok: true }; }),
      ListUploads: this.unary(async (req: pb.IListUploadsRequest) => ({ uploads: await this.meta.listUploads(req) })),
      PutRecords: this.unary(async (req: pb.IRecordList) => { await this.meta.putRecords(req.records ?? []); return { ok: true }; }),
      GetRecord: this.unary((req: pb.IRecordKey) => this.meta.getRecord(req.namespace ?? '', req.key ?? '')),
      ListRecords: this.unary(async (req: pb.IRecordQuery) => ({
        records: await this.meta.listRecords(req.namespace ?? '', req.prefix ?? '', { includeDeleted: req.includeDeleted ?? false }),
      })),
      GetClusterMap: this.unary(() => this.meta.getClusterMap()),
      SetClusterMap: this.unary(async (req: pb.IClusterMap) => ({ ok: await this.meta.setClusterMap(req) })),
      Health: this.unary(() => this.health()),
      Scrub: this.unary(async (req: pb.IScrubRequest) => toScrubReport(await this.scrub({
        orphanGraceMs: req.orphanGraceMs ?? 0,
        removeOrphans: req.removeOrphans ?? false,
      }))),
    };
  }

  private reportFailure(method: string, err: unknown): grpc.ServiceError {
    const status = statusOf(err);
    if (status.unexpected) this.log.error({ err, method }, 'call failed');
    return serviceError(status);
  }

  /** Runs `work` and answers with its result or its failure as a status (sync throws included). */
  private answer<Res>(method: string, work: () => Promise<Res>, callback: grpc.sendUnaryData<Res>): void {
    Promise.resolve().then(work).then(
      (result) => callback(null, result),
      (err: unknown) => callback(this.reportFailure(method, err)),
    );
  }

  private unary<Req, Res>(handle: (request: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => this.answer(call.getPath(), () => handle(call.request), callback);
  }

  private clientStream<Req, Res>(handle: (call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>): grpc.handleClientStreamingCall<Req, Res> {
    return (call, callback) => this.answer(call.getPath(), () => handle(call), callback);
  }

  private serverStream<Req, Res>(handle: (call: grpc.ServerWritableStream<Req, Res>) => Promise<void>): grpc.handleServerStreamingCall<Req, Res> {
    return (call) => {
      Promise.resolve().then(() => handle(call)).then(
        () => call.end(),
        (err: unknown) => { if (!call.cancelled) call.emit('error', this.reportFailure(call.getPath(), err)); },
      );
    };
  }

  // ------------------------------------------------------------ shards

  private async putShard(call: grpc.ServerReadableStream<pb.IShardWrite, pb.IShardWriteResult>): Promise<pb.IShardWriteResult> {
    const messages = call[Symbol.asyncIterator]() as AsyncIterator<pb.IShardWrite>;
    const first = await messages.next();
    const header = first.done ? undefined : first.value.header;
    if (!header) throw new StoreError('InvalidArgument', 'PutShard must start with a header');
    async function* data(): AsyncGenerator<Uint8Array> {
      let received = 0;
      for (let next = await messages.next(); !next.done; next = await messages.next()) {
        const { data, end } = next.value;
        if (end) {
          if (Number(end.bytes) !== received) throw new StoreError('InvalidArgument', `PutShard sent ${received} bytes but ended at ${end.bytes}`);
          return;
        }
        if (data) {
          received += data.length;
          yield data;
        }
      }
      throw new StoreError('Unavailable', 'PutShard ended without its end message (the call was cancelled)');
    }
    return this.shards.write(toShardRef(header), header.blockSize ?? 0, data());
  }

  private async getShard(call: grpc.ServerWritableStream<pb.IShardRead, pb.IShardChunk>): Promise<void> {
    const request = call.request;
    await streamShardRange(this.shards, toShardRef(request), request.offset ?? 0, request.length ?? 0,
      (bytes, release) => this.sendSlices(call, bytes, release), () => call.cancelled);
  }

  /** Sends bytes as chunk messages of at most 1 MiB; `release` runs once all are serialized. */
  private async sendSlices(call: grpc.ServerWritableStream<unknown, pb.IShardChunk>, bytes: Buffer, release: () => void): Promise<void> {
    const count = Math.max(1, Math.ceil(bytes.length / CHUNK_BYTES));
    let pending = count;
    const oneWritten = () => { if (--pending === 0) release(); };
    for (let i = 0; i < count; i++) {
      await writeWithBackpressure(call, { data: bytes.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES) }, oneWritten);
    }
  }

  private async deleteShards(request: pb.IShardRefs): Promise<pb.IAck> {
    for (const ref of request.shards ?? []) await this.shards.delete(toShardRef(ref));
    return { ok: true };
  }

  private async verifyShards(request: pb.IShardRefs): Promise<pb.IShardVerifyResult> {
    const shards: pb.IShardStatus[] = [];
    for (const ref of request.shards ?? []) shards.push(toShardStatus(await this.shards.verify(toShardRef(ref))));
    return { shards };
  }

  /** Deletes the local shard files of segments no metadata refers to any more. */
  async releaseSegments(segments: DataSegment[]): Promise<void> {
    for (const segment of segments) {
      const shardCount = (segment.layout?.dataShards ?? 0) + (segment.layout?.parityShards ?? 0) || (segment.nodes?.length ?? 0);
      for (let shardIndex = 0; shardIndex < shardCount; shardIndex++) {
        await this.shards.delete({ dataId: segment.dataId ?? '', shardIndex }).catch(() => false);
      }
    }
  }

  // ------------------------------------------------------------ metadata

  /** Records go out as stored (see StoredMetaResult), stripped of inline shards only when asked. */
  private async getMeta(request: pb.IGetMetaRequest): Promise<pb.IStoredMetaResult> {
    const results = await Promise.all((request.keys ?? []).map(async (key): Promise<pb.IStoredMetaSlot> => {
      const ref = versionRefOf(key);
      const stored = await this.meta.getVersionBytes(ref);
      if (stored) return { found: true, version: request.withInline ? stored : encodeWithoutInline(stored) };
      const tombstone = ref.versionId ? this.meta.tombstoneOf(ref) : undefined;
      return { found: false, tombstoneHlc: tombstone?.hlc ?? 0, tombstonePending: tombstone?.pending ?? false };
    }));
    return { results };
  }

  private async list(call: grpc.ServerWritableStream<pb.IListRequest, pb.IListPage>): Promise<void> {
    const limit = call.request.limit || Infinity;
    let page: pb.IListEntry[] = [];
    let sent = 0;
    let truncated = false;
    for await (const entry of listEntries(this.meta.db, listQueryOf(call.request))) {
      if (sent === limit) { truncated = true; break; }
      if (call.cancelled) return;
      page.push(entry);
      sent++;
      if (page.length === LIST_PAGE_ENTRIES) {
        await writeWithBackpressure(call, { entries: page, truncated: false });
        page = [];
      }
    }
    await writeWithBackpressure(call, { entries: page, truncated });
  }

  // ------------------------------------------------------------ node

  private async health(): Promise<pb.IHealthResult> {
    const usage = await this.shards.usage();
    const map = await this.meta.getClusterMap();
    return {
      nodeId: this.options.id,
      mapEpoch: map.epoch,
      capacityBytes: usage.capacityBytes,
      usedBytes: usage.usedBytes,
      freeBytes: usage.freeBytes,
      shardCount: usage.shardCount,
      objectCount: this.meta.objectVersionCount,
      uptimeMs: Date.now() - this.startedAt,
      bulkAddress: this.bulkAddress,
      bulkSharedMemory: this.bulkSharedMemory,
      metaAddress: this.metaAddress,
    };
  }

  /** A requested scrub runs at once, beside a (throttled, possibly hour-long) background one. */
  scrub(options: ScrubOptions): Promise<ScrubResult> {
    return scrub(this.shards, this.meta, this.options.id, options);
  }
}

function versionRefOf(key: pb.IObjectKey): { bucket: string; key: string; versionId: string } {
  return { bucket: key.bucket ?? '', key: key.key ?? '', versionId: key.versionId ?? '' };
}

/**
 * Each key's write stamp: its own when the call coalesces several writes (per-key lists), else the
 * call's single stamp.
 */
function stampsOf(keys: readonly unknown[], hlc: number | null | undefined, revision: number | null | undefined,
  keyHlcs: readonly number[] | null | undefined, keyRevisions: readonly number[] | null | undefined): WriteStamp[] {
  if (!keyHlcs?.length) return keys.map(() => ({ hlc: Number(hlc ?? 0), revision: Number(revision ?? 0) }));
  if (keyHlcs.length !== keys.length || (keyRevisions?.length && keyRevisions.length !== keys.length)) {
    throw new StoreError('InvalidArgument', 'per-key stamps must match the keys one to one');
  }
  return keys.map((_, i) => ({ hlc: Number(keyHlcs[i]), revision: Number(keyRevisions?.[i] ?? 0) }));
}

function bindAsync(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Starts a node serving `options.dataDir` on `options.listen`. */
export async function startStorageNode(options: StorageNodeOptions): Promise<StorageNode> {
  const log = options.logger ?? createLogger({ name: `tessera-node-${options.id}` });
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const shards = await ShardStore.open(options.dataDir, { capacityBytes: options.capacityBytes });
  let service: NodeService | undefined;
  const meta = await MetaStore.open(join(options.dataDir, 'meta'), {
    releaseSegments: (segments) => service!.releaseSegments(segments),
  });
  service = new NodeService(options, shards, meta, log);
  const handlers = service.handlers();
  const server = new grpc.Server({ ...bulkChannelOptions, ...nodeServerOptions(options.tls), interceptors: [authInterceptor(options.secret)] });
  server.addService(serverSideService, handlers);
  const tls = nodeServerCredentials(options.tls);
  let port: number;
  try {
    port = await bindAsync(server, options.listen, tls.credentials);
  } catch (err) {
    tls.close();
    await meta.close();
    throw err;
  }
  const host = options.listen.slice(0, options.listen.lastIndexOf(':'));
  const bulk = options.bulkListen === 'off' || options.tls ? undefined
    : await startBulkServer(options.bulkListen ?? `${host}:0`, options.secret, shards, log,
      options.bulkSharedMemory ?? process.env.TESSERA_BULK_SHM !== 'off');
  service.bulkAddress = bulk?.address ?? '';
  service.bulkSharedMemory = bulk?.sharedMemory ?? false;
  const calls = localCallsOf(handlers);
  // Plaintext like the bulk channel: off under node TLS, and by default where the bulk channel is off.
  const metaListen = options.tls ? 'off' : options.metaListen ?? (bulk ? `${host}:0` : 'off');
  const metaChannel = metaListen === 'off' ? undefined
    : await startMetaServer(metaListen, { nodeId: options.id, tokenValid: tokenChecker(options.secret) }, calls, log);
  service.metaAddress = metaChannel?.address ?? '';
  const background = startBackgroundWork(service, meta, options, log);
  const address = `${host}:${port}`;
  const unregisterLocal = localCalls.register(address, calls);
  log.info({ nodeId: options.id, zone: options.zone, address, bulkAddress: bulk?.address, metaAddress: metaChannel?.address, capacityBytes: options.capacityBytes }, 'storage node started');
  return {
    address,
    async close() {
      unregisterLocal();
      await background.stop();
      await bulk?.close();
      await metaChannel?.close();
      await shutdown(server);
      tls.close();
      await meta.close();
    },
  };
}

/** The unary handlers, for callers in this process (local-calls.ts): no interceptor, as no socket. */
function localCallsOf(handlers: grpc.UntypedServiceImplementation): LocalCalls {
  const unary = new Map(Object.entries(serverSideService)
    .filter(([, def]) => !def.requestStream && !def.responseStream)
    .map(([name, def]) => [def.path, { def: def as grpc.MethodDefinition<unknown, unknown>, handle: handlers[name] as grpc.handleUnaryCall<unknown, unknown> }]));
  return {
    unary: (path, bytes) => new Promise((resolve, reject) => {
      const method = unary.get(path);
      if (!method) return reject({ code: grpc.status.UNIMPLEMENTED, details: `${path} is not a unary method` });
      const call = { request: method.def.requestDeserialize(bytes), getPath: () => path } as grpc.ServerUnaryCall<unknown, unknown>;
      method.handle(call, (err, value) => (err ? reject(err) : resolve(method.def.responseSerialize(value))));
    }),
  };
}

const HOUR_MS = 3600_000;
const SHUTDOWN_GRACE_MS = 5_000;

/** Lets calls in flight finish, then cuts whatever is still open (a stalled client stream). */
async function shutdown(server: grpc.Server): Promise<void> {
  const graceful = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  const timer = setTimeout(() => server.forceShutdown(), SHUTDOWN_GRACE_MS);
  await graceful;
  clearTimeout(timer);
}

/** Periodic scrub (throttled) and tombstone expiry, logging what they find; stop() waits for them. */
function startBackgroundWork(service: NodeService, meta: MetaStore, options: StorageNodeOptions, log: pino.Logger): { stop(): Promise<void> } {
  const interval = options.scrubIntervalMs ?? HOUR_MS;
  if (!interval) return { stop: async () => {} };
  const stopping = new AbortController();
  let running: Promise<void> = Promise.resolve();
  const pass = async () => {
    const purged = await meta.purgeExpiredTombstones();
    const result = await service.scrub({
      orphanGraceMs: options.orphanGraceMs ?? 24 * HOUR_MS,
      removeOrphans: true,
      bytesPerSecond: options.scrubBytesPerSecond ?? 32 * 1024 * 1024,
      signal: stopping.signal,
    });
    const findings = { corrupt: result.corrupt.length, missing: result.missing.length, orphansRemoved: result.orphansRemoved };
    const level = result.corrupt.length || result.missing.length ? 'warn' : 'info';
    log[level]({ ...findings, shardsChecked: result.shardsChecked, tombstonesPurged: purged }, 'scrub finished');
  };
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return; // a slow pass is not stacked up behind itself
    busy = true;
    running = pass()
      .catch((err: unknown) => { if (!stopping.signal.aborted) log.error({ err }, 'background scrub failed'); })
      .finally(() => { busy = false; });
  }, interval);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      stopping.abort();
      await running;
    },
  };
}
