// Concurrent clients doing PUT / GET / DELETE / multipart / LIST on a small key space (so writes
// to one key overlap), recording every operation in the history. Errors are data here: the
// workload never retries, it records what the client saw and moves on.
import { setTimeout as sleep } from 'node:timers/promises';
import type { History, ReadOp, WriteKind, WriteOp } from './history.js';
import type { Random } from './random.js';
import { completedOk, type FaultS3Client, type S3Reply, TransportError } from './s3.js';

const KiB = 1024;
const MIN_PART_BYTES = 5 * 1024 * KiB;
const BACKOFF_MS = 100;

export interface WorkloadOptions {
  bucket: string;
  keys: number;
  workers: number;
  /** Largest single-PUT body; half the PUTs are small enough to be stored inline. */
  maxObjectBytes: number;
}

const OPERATIONS = { put: 30, multipart: 8, delete: 12, get: 42, list: 8 } as const;

export const keyName = (i: number) => `obj-${String(i).padStart(3, '0')}`;

export class Workload {
  private stopping = false;
  private running: Promise<void> | undefined;
  operations = 0;

  constructor(
    private readonly client: FaultS3Client,
    private readonly history: History,
    private readonly options: WorkloadOptions,
    private readonly random: Random,
  ) {}

  start(): void {
    this.running = Promise.all(Array.from({ length: this.options.workers }, (_, i) => this.worker(i, this.random.fork(i))))
      .then(() => undefined);
  }

  /** Let in-flight operations finish and stop. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  private async worker(index: number, random: Random): Promise<void> {
    for (let seq = 0; !this.stopping; seq++) {
      const key = keyName(random.int(0, this.options.keys - 1));
      const name = `${key}@w${index}.${seq}`;
      switch (random.weighted(OPERATIONS)) {
        case 'put': await this.put(key, name, this.objectSize(random)); break;
        case 'multipart': await this.multipart(key, name, this.partSizes(random)); break;
        case 'delete': await this.delete(key); break;
        case 'get': await this.get(key); break;
        case 'list': await this.list(); break;
      }
      this.operations++;
    }
  }

  /** One small part, or S3's smallest non-last part (5 MiB) and a small last one. */
  private partSizes(random: Random): number[] {
    const last = random.int(1, 400) * KiB;
    return random.next() < 0.25 ? [MIN_PART_BYTES, last] : [last];
  }

  private objectSize(random: Random): number {
    return random.next() < 0.5 ? random.int(0, 100 * KiB) : random.int(200 * KiB, this.options.maxObjectBytes);
  }

  private async put(key: string, name: string, size: number): Promise<void> {
    const body = this.history.newValue(key, name, size);
    await recordWrite(this.history, 'put', key, name, () => this.client.putObject(this.options.bucket, key, body));
  }

  private async delete(key: string): Promise<void> {
    await recordWrite(this.history, 'delete', key, null, () => this.client.deleteObject(this.options.bucket, key));
  }

  /** Create, upload parts, complete. Only a complete that was sent is a write that may take effect. */
  private async multipart(key: string, name: string, partSizes: number[]): Promise<void> {
    const { bucket } = this.options;
    const body = this.history.newValue(key, name, partSizes.reduce((a, b) => a + b, 0));
    const invokedAt = this.history.now();
    let uploadId: string | S3Reply;
    try {
      uploadId = await this.client.createUpload(bucket, key);
    } catch {
      return;
    }
    if (typeof uploadId !== 'string') return;
    const etags: string[] = [];
    for (let part = 0, offset = 0; part < partSizes.length; offset += partSizes[part]!, part++) {
      const reply = await this.client.uploadPart(bucket, key, uploadId, part + 1, body.subarray(offset, offset + partSizes[part]!))
        .catch(() => undefined);
      if (reply?.status !== 200) {
        await this.client.abortUpload(bucket, key, uploadId).catch(() => undefined);
        return;
      }
      etags.push(String(reply.headers.etag));
    }
    await recordWrite(this.history, 'multipart', key, name, () => this.client.completeUpload(bucket, key, uploadId, etags), invokedAt);
  }

  private async get(key: string): Promise<void> {
    const read = await readKey(this.client, this.history, this.options.bucket, key);
    this.history.reads.push(read);
    if (!/^\d+$/.test(read.status)) await sleep(BACKOFF_MS);
  }

  private async list(): Promise<void> {
    const invokedAt = this.history.now();
    let status = '200';
    try {
      await this.client.listObjects(this.options.bucket);
    } catch (err) {
      status = err instanceof TransportError && err.code.startsWith('HTTP ') ? err.code.slice(5) : transportCode(err);
      await backOff(err);
    }
    this.history.lists.push({ invokedAt, completedAt: this.history.now(), status });
  }
}

/** Send a write and record it: acknowledged, answered with an error, or not answered at all. */
export async function recordWrite(history: History, kind: WriteKind, key: string, value: string | null,
  send: () => Promise<S3Reply>, invokedAt = history.now()): Promise<WriteOp> {
  let op: WriteOp;
  try {
    const reply = await send();
    const ok = kind === 'multipart' ? completedOk(reply) : reply.status === 200 || reply.status === 204;
    op = { kind, key, value, invokedAt, completedAt: history.now(), outcome: ok ? 'ok' : 'unknown', answered: true, status: String(reply.status) };
  } catch (err) {
    op = { kind, key, value, invokedAt, completedAt: history.now(), outcome: 'unknown', answered: false, status: transportCode(err) };
    await backOff(err);
  }
  history.writes.push(op);
  return op;
}

/** GET a key and name what came back: a written value, absent (404), corrupt bytes, or a failure. */
export async function readKey(client: FaultS3Client, history: History, bucket: string, key: string): Promise<ReadOp> {
  const invokedAt = history.now();
  try {
    const reply = await client.getObject(bucket, key);
    const read: ReadOp = { key, invokedAt, completedAt: history.now(), status: String(reply.status) };
    if (reply.status === 404) return { ...read, value: null };
    if (reply.status !== 200) return read;
    const value = history.identify(key, reply.body);
    return value === undefined ? { ...read, corrupt: true } : { ...read, value };
  } catch (err) {
    return { key, invokedAt, completedAt: history.now(), status: transportCode(err) };
  }
}

/** Pause after a request the gateway did not answer (it may be down), so workers do not spin. */
async function backOff(err: unknown): Promise<void> {
  if (!(err instanceof TransportError && err.code.startsWith('HTTP '))) await sleep(BACKOFF_MS);
}

function transportCode(err: unknown): string {
  return err instanceof TransportError ? err.code : 'ERROR';
}
