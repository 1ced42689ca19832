// The gRPC service definition of a storage node, built from the generated protobuf classes.
// Shared by the node (server) and the replication layer (client): the proto is their contract.
import * as grpc from '@grpc/grpc-js';
import { hlcToMillis } from './hlc.js';
import './protobuf-numbers.js';
import { tessera } from '../generated/node.js';

import pb = tessera.node;
export { pb };

/** A generated message class: encodes its plain interface (`In`), decodes to its class (`Out`). */
interface MessageClass<In, Out extends In> {
  encode(message: In): { finish(): Uint8Array };
  decode(data: Uint8Array): Out;
}

/** A message's protobuf encoding as a Buffer over the encoder's bytes (no copy). */
export function encodeMessage<In>(cls: { encode(message: In): { finish(): Uint8Array } }, message: In): Buffer {
  const bytes = cls.encode(message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function method<ReqIn, Req extends ReqIn, ResIn, Res extends ResIn>(
  name: string,
  req: MessageClass<ReqIn, Req>,
  res: MessageClass<ResIn, Res>,
  requestStream = false,
  responseStream = false,
): grpc.MethodDefinition<ReqIn, Res> {
  const encode = <In, Out extends In>(cls: MessageClass<In, Out>) => (value: In) => encodeMessage(cls, value);
  return {
    path: `/tessera.node.StorageNode/${name}`,
    requestStream,
    responseStream,
    requestSerialize: encode(req),
    requestDeserialize: (b: Buffer) => req.decode(b) as ReqIn,
    responseSerialize: encode(res) as (value: Res) => Buffer,
    responseDeserialize: (b: Buffer) => res.decode(b),
  };
}

export const storageNodeService = {
  PutShard: method('PutShard', pb.ShardWrite, pb.ShardWriteResult, true, false),
  GetShard: method('GetShard', pb.ShardRead, pb.ShardChunk, false, true),
  DeleteShards: method('DeleteShards', pb.ShardRefs, pb.Ack),
  VerifyShards: method('VerifyShards', pb.ShardRefs, pb.ShardVerifyResult),
  PutMeta: method('PutMeta', pb.PutMetaRequest, pb.PutMetaResult),
  GetMeta: method('GetMeta', pb.GetMetaRequest, pb.GetMetaResult),
  DeleteMeta: method('DeleteMeta', pb.DeleteMetaRequest, pb.Ack),
  ResolveMeta: method('ResolveMeta', pb.ResolveMetaRequest, pb.Ack),
  List: method('List', pb.ListRequest, pb.ListPage, false, true),
  PutUpload: method('PutUpload', pb.UploadRecord, pb.Ack),
  GetUpload: method('GetUpload', pb.UploadKey, pb.UploadRecord),
  DeleteUpload: method('DeleteUpload', pb.UploadKey, pb.Ack),
  ListUploads: method('ListUploads', pb.ListUploadsRequest, pb.UploadList),
  PutRecords: method('PutRecords', pb.RecordList, pb.Ack),
  GetRecord: method('GetRecord', pb.RecordKey, pb.Record),
  ListRecords: method('ListRecords', pb.RecordQuery, pb.RecordList),
  GetClusterMap: method('GetClusterMap', pb.Empty, pb.ClusterMap),
  SetClusterMap: method('SetClusterMap', pb.ClusterMap, pb.Ack),
  Health: method('Health', pb.Empty, pb.HealthResult),
  Scrub: method('Scrub', pb.ScrubRequest, pb.ScrubReport),
} satisfies grpc.ServiceDefinition;

export type StorageNodeService = typeof storageNodeService;

/** A typed client constructor for the storage node service. */
export const StorageNodeClient = grpc.makeGenericClientConstructor(storageNodeService, 'StorageNode');

/** gRPC channel options tuned for bulk shard traffic (large windows, large messages). */
export const bulkChannelOptions: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc-node.max_session_memory': 256,
  'grpc.http2.lookahead_bytes': 8 * 1024 * 1024,
  // A restarted node must be usable again within a second or two, not after minutes of backoff.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
};

/** Names one revertible metadata write: a put by its version's (hlc, revision), a delete by (hlc, 0). */
export interface WriteStamp {
  hlc: number;
  revision: number;
}

/** The stamp of a put of this version. */
export function stampOf(version: pb.IObjectVersion): WriteStamp {
  return { hlc: Number(version.hlc ?? 0), revision: Number(version.revision ?? 0) };
}

/** Milliseconds since a write was stamped (a metadata update is as new as its revision). */
export function writeAgeMs({ hlc, revision }: WriteStamp, now = Date.now()): number {
  return now - hlcToMillis(Math.max(hlc, revision));
}

/** How long a unary node call may take before the caller gives up (and reverts a revertible write). */
export const UNARY_DEADLINE_MS = 8_000;

/** Clock difference between hosts that a node allows for when it judges how old a write is. */
export const MAX_CLOCK_SKEW_MS = 5_000;

/**
 * A record kept for a revertible write outlives the write's resolution by this much at most: the
 * writer settles or reverts within one request, so an entry this old lost its writer (a crash).
 */
export const KEPT_TTL_MS = 10 * 60_000;
