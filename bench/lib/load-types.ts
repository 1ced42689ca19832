// What the load generator's main thread and its worker threads say to each other.
import type { HistogramData } from './histogram.js';
import type { S3Target } from './s3-client.js';
import type { SizeSpec } from './units.js';

export const OP_KINDS = ['put', 'get', 'ranged-get', 'stat', 'delete', 'list', 'multipart'] as const;
export type OpKind = (typeof OP_KINDS)[number];

export interface ObjectRef {
  key: string;
  size: number;
}

export interface WorkloadShape {
  /** Relative weights of the operations to run. */
  mix: Partial<Record<OpKind, number>>;
  sizes: SizeSpec;
  /** Length of each ranged GET. */
  rangeSizes: SizeSpec;
  partSize: number;
  partConcurrency: number;
  /** Keys per delete: 1 is DeleteObject, more is DeleteObjects. */
  deleteBatch: number;
  listPrefix: string;
  listMaxKeys: number;
  /** When set, a full listing that does not find exactly this many keys is an error. */
  listExpectedKeys?: number;
}

export interface WorkerPlan extends WorkloadShape {
  target: S3Target;
  seed: string;
  /** Keys this worker writes start with it. */
  keyPrefix: string;
  concurrency: number;
  /** The objects this worker may read and delete. */
  objects: ObjectRef[];
  durationMs: number;
  maxOps: number;
}

/** The main thread starts every worker at once, when all are ready (set up their client and content). */
export interface StartMessage {
  type: 'start';
  startedAt: number;
}

export interface SecondData {
  ops: number;
  bytes: number;
  errors: number;
}

export interface OpStatsData {
  ops: number;
  bytes: number;
  /** Keys listed or deleted. */
  items: number;
  errors: Record<string, number>;
  errorSamples: Record<string, string>;
  latency: HistogramData;
  /** Per second since startedAt, by completion time. */
  series: SecondData[];
}

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'progress'; ops: number; bytes: number; errors: number }
  | { type: 'done'; stats: Partial<Record<OpKind, OpStatsData>>; written: ObjectRef[] };
