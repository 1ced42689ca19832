// Where a backup reads a disk from. Every source ends up as one NBD connection:
//  - an NBD URL: read as given; `--bitmap NAME` is trusted only if the parent snapshot recorded
//    that bitmap as its checkpoint;
//  - a qcow2 file (VM shut down): the agent keeps its own persistent checkpoint bitmaps with
//    qemu-img and serves the image through qemu-nbd, so every backup after the first is incremental;
//  - a raw image or block device: served through qemu-nbd (SEEK_DATA/SEEK_HOLE via base:allocation).
// A bitmap that is missing, disabled, in-use or not ours means a full read, never a wrong backup.
import type { Snapshot } from './format.js';
import { NbdClient, type NbdAddress, parseNbdUrl } from './nbd/client.js';
import { BASE_ALLOCATION, dirtyBitmapContext, type Extent } from './nbd/protocol.js';
import { readQcow2Info } from './qcow2-header.js';
import { bitmapRemover, imageInfo, type ImageInfo, serveImage, type ImageBitmap, type ServedImage } from './qemu-tools.js';
import { traced } from './trace.js';

export interface DiskSource {
  client: NbdClient;
  description: string;
  /** Meta context listing every change since the parent snapshot; undefined means read it all. */
  dirtyContext?: string;
  /** The extents of dirtyContext over the whole disk, if asked for already (a qcow2's, as it opens). */
  dirtyExtents?: Promise<Extent[]>;
  /** Why the backup reads everything although a parent exists. */
  fullReadReason?: string;
  /** Bitmap that tracks changes from this snapshot on ('' if none); stored in the snapshot. */
  checkpoint: string;
  /** Closes the NBD connection and what serves it, once reading is done (finish does it too). */
  closeReading(): Promise<void>;
  /** Closes the source; on success retires the old checkpoint, on failure undoes the new one. */
  finish(success: boolean): Promise<void>;
}

export interface SourceRequest {
  source: string;
  disk: string;
  snapshotId: string;
  /** The disk's newest snapshot, being looked up: a qcow2 starts its checkpoint and server meanwhile. */
  parent: Promise<Snapshot | undefined>;
  /** For NBD URLs: the bitmap holding the changes since the parent snapshot. */
  bitmap?: string;
}

const isNbdUrl = (source: string) => /^nbd(\+unix)?:\/\//.test(source);

/**
 * What can be learnt of a source before its parent snapshot is known (an image file's format and
 * bitmaps: a qcow2's from its header, others' from qemu-img info; nothing for an NBD URL), to start
 * early and hand to openSource.
 */
export function inspectSource(source: string): Promise<ImageInfo> | undefined {
  if (isNbdUrl(source)) return undefined;
  const inspecting = traced('inspect image', async () => (await readQcow2Info(source)) ?? imageInfo(source));
  inspecting.catch(() => undefined); // reported by openSource, which awaits it
  return inspecting;
}

export async function openSource(request: SourceRequest, inspected = inspectSource(request.source)): Promise<DiskSource> {
  if (!inspected) return openNbdUrl(request);
  const info = await inspected;
  if (info.format === 'qcow2') return openQcow2(request, info.bitmaps);
  const parent = await request.parent;
  const served = await serveImage(request.source, { format: info.format, readOnly: true });
  const client = await connectOrStop(served.address, [BASE_ALLOCATION], served.stop);
  const closeReading = once(async () => { await client.close(); await served.stop(); });
  return {
    client,
    description: `${info.format} image ${request.source}`,
    fullReadReason: parent ? `${info.format} images have no dirty bitmap` : undefined,
    checkpoint: '',
    closeReading,
    finish: closeReading,
  };
}

async function openNbdUrl(request: SourceRequest): Promise<DiskSource> {
  const { bitmap } = request;
  const parent = await request.parent;
  const context = bitmap ? dirtyBitmapContext(bitmap) : undefined;
  const client = await NbdClient.connect(parseNbdUrl(request.source), { metaContexts: [BASE_ALLOCATION, ...(context ? [context] : [])] });
  const reason = !parent ? undefined
    : !bitmap ? 'no --bitmap given'
    : parent.checkpoint !== bitmap ? `bitmap ${bitmap} is not the checkpoint of snapshot ${parent.id} ('${parent.checkpoint}')`
    : !client.hasContext(context!) ? `the export offers no bitmap ${bitmap}`
    : parent.diskSize !== client.size ? 'the disk changed size'
    : undefined;
  return {
    client,
    description: request.source,
    dirtyContext: parent && !reason ? context : undefined,
    fullReadReason: reason,
    checkpoint: bitmap ?? '',
    closeReading: () => client.close(),
    finish: () => client.close(),
  };
}

export const checkpointPrefix = (disk: string) => `tessera-${disk}-`;

/** Why a qcow2 checkpoint bitmap cannot be trusted, or undefined if it can. */
export function bitmapProblem(name: string, bitmap: ImageBitmap | undefined): string | undefined {
  if (!bitmap) return `checkpoint bitmap ${name} is missing`;
  if (bitmap.flags.includes('in-use')) return `checkpoint bitmap ${name} is in-use (the image was not closed cleanly)`;
  if (!bitmap.flags.includes('auto')) return `checkpoint bitmap ${name} is disabled`;
  return undefined;
}

/**
 * The checkpoint bitmap is added, qemu-nbd started and connected to, and its dirty extents asked
 * for while the parent snapshot is still being looked up: qemu-nbd exports our newest usable
 * checkpoint, which is the parent's in all but rare cases (then it restarts with the parent's).
 */
async function openQcow2(request: SourceRequest, bitmaps: ImageBitmap[]): Promise<DiskSource> {
  const { source: path } = request;
  const checkpoint = `${checkpointPrefix(request.disk)}${request.snapshotId}`;
  const remover = bitmapRemover(path);
  // The new checkpoint (if it was added) goes again when the backup fails before it started.
  const removeCheckpoint = () => remover.remove([checkpoint]).catch(() => undefined);
  const serve = async (bitmap: string | undefined, addBitmap?: string) => {
    const served = await traced(addBitmap ? 'qemu-img bitmap --add, qemu-nbd' : 'qemu-nbd', () => serveImage(path, { format: 'qcow2', readOnly: true, bitmap, addBitmap }));
    const client = await connectOrStop(served.address, [BASE_ALLOCATION, ...(bitmap ? [dirtyBitmapContext(bitmap)] : [])], served.stop);
    // Asked for at once: the bitmap is the parent's in all but rare cases.
    const dirtyExtents = bitmap ? client.extents(dirtyBitmapContext(bitmap)) : undefined;
    dirtyExtents?.catch(() => undefined); // awaited by the backup, if the bitmap is the parent's
    return { served, client, bitmap, dirtyExtents };
  };
  const likely = newestCheckpoint(request.disk, bitmaps);
  // Start tracking before reading: writes that land after this point belong to the next backup.
  const [looked, started] = await Promise.allSettled([request.parent, serve(likely, checkpoint)]);
  let parent: Snapshot | undefined;
  let opened: Awaited<ReturnType<typeof serve>>;
  try {
    if (looked.status === 'rejected') throw looked.reason;
    if (started.status === 'rejected') throw started.reason;
    parent = looked.value;
    opened = started.value;
  } catch (err) {
    if (started.status === 'fulfilled') await stopServing(started.value);
    await removeCheckpoint();
    throw err;
  }
  const previous = parent?.checkpoint;
  const reason = !parent ? undefined
    : !previous ? `snapshot ${parent.id} has no checkpoint bitmap`
    : bitmapProblem(previous, bitmaps.find((b) => b.name === previous));
  const incremental = parent !== undefined && reason === undefined;
  if (incremental && previous !== opened.bitmap) {
    await stopServing(opened);
    opened = await serve(previous).catch(async (err: Error) => {
      await removeCheckpoint();
      throw err;
    });
  }
  const { client } = opened;
  const closeReading = once(() => stopServing(opened));
  return {
    client,
    description: `qcow2 image ${path}`,
    dirtyContext: incremental ? dirtyBitmapContext(previous!) : undefined,
    dirtyExtents: incremental ? opened.dirtyExtents : undefined,
    fullReadReason: reason,
    checkpoint,
    closeReading,
    finish: async (success) => {
      await closeReading();
      // On success the previous checkpoints (and broken leftovers) go; on failure the new one does.
      const retire = success ? bitmaps.map((b) => b.name).filter((name) => name.startsWith(checkpointPrefix(request.disk))) : [checkpoint];
      await remover.remove(retire);
    },
  };
}

/** Closes the connection to qemu-nbd, then stops it. */
async function stopServing({ client, served }: { client: NbdClient; served: ServedImage }): Promise<void> {
  await client.close();
  await served.stop();
}

/** Our newest checkpoint bitmap that qemu-nbd can export (its name ends in a time-ordered snapshot id). */
function newestCheckpoint(disk: string, bitmaps: ImageBitmap[]): string | undefined {
  return bitmaps.filter((b) => b.name.startsWith(checkpointPrefix(disk)) && !bitmapProblem(b.name, b)).map((b) => b.name).sort().at(-1);
}

/** `close`, run once however often it is called. */
function once(close: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => (closing ??= close());
}

async function connectOrStop(address: NbdAddress, metaContexts: string[], stop: () => Promise<void>): Promise<NbdClient> {
  try {
    return await NbdClient.connect(address, { metaContexts });
  } catch (err) {
    await stop();
    throw err;
  }
}
