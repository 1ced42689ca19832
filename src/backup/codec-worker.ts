// A codec thread of codec-pool.ts: runs the decode batches it is sent with a codec built from the
// repository's derived keys, and sends each result back without copying it.
import { parentPort, workerData } from 'node:worker_threads';
import { StoreError } from '../common/errors.js';
import { BlobCodec, type CodecKeys } from './blob-codec.js';
import { type CodecTask, movable, runCodecTask } from './codec-tasks.js';

const { keys } = workerData as { keys?: { enc: Uint8Array; mac: Uint8Array; idBound: boolean } };
const codec = BlobCodec.withKeys(keys ? { enc: Buffer.from(keys.enc), mac: Buffer.from(keys.mac), idBound: keys.idBound } satisfies CodecKeys : undefined);

parentPort!.on('message', ({ job, task }: { job: number; task: CodecTask }) => {
  try {
    const result = runCodecTask(codec, task);
    // The result and the handed-back input move to the main thread, not copied.
    parentPort!.postMessage({ job, result }, movable([result.data, result.input]));
  } catch (err) {
    const error = err instanceof StoreError ? { kind: err.kind, message: err.message } : { message: (err as Error).message };
    parentPort!.postMessage({ job, error });
  }
});
