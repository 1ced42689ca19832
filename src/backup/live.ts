// Live backup of a running VM's disk through QMP, the way libvirt's pull-mode backup-begin does:
// one transaction adds the next checkpoint bitmap, freezes (disables) the previous one and starts
// a copy-before-write fleecing job (blockdev-backup sync=none into a temporary qcow2 whose backing
// is the disk); the fleecing node — the disk as it was at that instant — is exported read-only
// over NBD with the frozen bitmap, read by the agent, and torn down afterwards. On failure the
// new bitmap's changes are merged back into the previous one, so the next backup misses nothing.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdClient, type NbdAddress } from './nbd/client.js';
import { BASE_ALLOCATION, dirtyBitmapContext } from './nbd/protocol.js';
import { QmpClient } from './qmp.js';
import { qemuImg } from './qemu-tools.js';
import { checkpointPrefix, type DiskSource, type SourceRequest } from './source.js';

interface NodeBitmap {
  name: string;
  recording: boolean;
  busy: boolean;
  persistent: boolean;
  inconsistent?: boolean;
}

interface BlockNode {
  'node-name': string;
  image: { 'virtual-size': number };
  'dirty-bitmaps'?: NodeBitmap[];
}

export interface LiveOptions {
  /** QEMU's NBD server if it already runs one (HOST:PORT or unix:PATH); else the agent starts one. */
  nbdServer?: string;
}

/** `request.source` names the block node of the VM's disk. */
export async function openLiveSource(qmpSocket: string, request: SourceRequest, options: LiveOptions = {}): Promise<DiskSource> {
  const qmp = await QmpClient.connect(qmpSocket);
  const node = request.source;
  const nodes = await qmp.execute<BlockNode[]>('query-named-block-nodes', { flat: true });
  const disk = nodes.find((n) => n['node-name'] === node);
  if (!disk) { qmp.close(); throw new Error(`QEMU has no block node '${node}'`); }
  const parent = await request.parent.catch((err: Error) => { qmp.close(); throw err; });
  const previous = parent?.checkpoint;
  const bitmap = disk['dirty-bitmaps']?.find((b) => b.name === previous);
  const reason = !parent ? undefined
    : !previous ? `snapshot ${parent.id} has no checkpoint bitmap`
    : !bitmap ? `checkpoint bitmap ${previous} is missing`
    : bitmap.inconsistent ? `checkpoint bitmap ${previous} is inconsistent (unclean shutdown)`
    : !bitmap.recording ? `checkpoint bitmap ${previous} is disabled`
    : bitmap.busy ? `checkpoint bitmap ${previous} is in use by another job`
    : parent.diskSize !== disk.image['virtual-size'] ? 'the disk changed size'
    : undefined;
  const incremental = parent !== undefined && reason === undefined;
  const checkpoint = `${checkpointPrefix(request.disk)}${request.snapshotId}`;
  // QEMU node names are at most 31 characters: use the id's random suffix.
  const tag = `tessera-${request.snapshotId.slice(-8)}`;
  const dir = await mkdtemp(join(tmpdir(), 'tessera-live-'));
  const fleeceFile = join(dir, 'fleece.qcow2');
  const fleece = `${tag}-fleece`;
  const job = `${tag}-cbw`;
  const exportName = tag;

  const teardown: Array<() => Promise<unknown>> = [];
  const undo = async () => {
    for (const step of teardown.reverse()) await step().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await qemuImg(['create', '-q', '-f', 'qcow2', fleeceFile, String(disk.image['virtual-size'])]);
    await qmp.execute('blockdev-add', { driver: 'qcow2', 'node-name': fleece, file: { driver: 'file', filename: fleeceFile }, backing: node });
    teardown.push(() => qmp.execute('blockdev-del', { 'node-name': fleece }));

    await qmp.execute('transaction', {
      actions: [
        { type: 'block-dirty-bitmap-add', data: { node, name: checkpoint, persistent: true } },
        ...(incremental ? [{ type: 'block-dirty-bitmap-disable', data: { node, name: previous } }] : []),
        { type: 'blockdev-backup', data: { device: node, target: fleece, sync: 'none', 'job-id': job } },
      ],
    });
    teardown.push(async () => {
      const cancelled = qmp.waitEvent('BLOCK_JOB_CANCELLED', (d) => d.device === job);
      await qmp.execute('block-job-cancel', { device: job, force: true });
      await cancelled;
    });

    const address = await startExportServer(qmp, dir, options.nbdServer, teardown);
    await qmp.execute('block-export-add', {
      type: 'nbd', id: exportName, 'node-name': fleece, name: exportName, writable: false,
      ...(incremental ? { bitmaps: [previous] } : {}),
    });
    teardown.push(async () => {
      const deleted = qmp.waitEvent('BLOCK_EXPORT_DELETED', (d) => d.id === exportName);
      await qmp.execute('block-export-del', { id: exportName });
      await deleted;
    });

    const context = incremental ? dirtyBitmapContext(previous!) : undefined;
    const client = await NbdClient.connect({ ...address, exportName }, { metaContexts: [BASE_ALLOCATION, ...(context ? [context] : [])] });
    return {
      client,
      description: `live VM node ${node}`,
      dirtyContext: context,
      fullReadReason: reason,
      checkpoint,
      closeReading: () => client.close(),
      finish: async (success) => {
        await client.close();
        await undo();
        try {
          if (success && previous && bitmap) await qmp.execute('block-dirty-bitmap-remove', { node, name: previous });
          if (!success) await restorePreviousCheckpoint(qmp, node, checkpoint, incremental ? previous : undefined);
        } finally {
          qmp.close();
        }
      },
    };
  } catch (err) {
    await undo();
    await restorePreviousCheckpoint(qmp, node, checkpoint, incremental ? previous : undefined).catch(() => undefined);
    qmp.close();
    throw err;
  }
}

/** Undoes the checkpoint switch: changes since it go back into the previous bitmap, which records again. */
async function restorePreviousCheckpoint(qmp: QmpClient, node: string, checkpoint: string, previous: string | undefined): Promise<void> {
  const nodes = await qmp.execute<BlockNode[]>('query-named-block-nodes', { flat: true });
  if (!nodes.find((n) => n['node-name'] === node)?.['dirty-bitmaps']?.some((b) => b.name === checkpoint)) return;
  await qmp.execute('transaction', {
    actions: [
      ...(previous ? [
        { type: 'block-dirty-bitmap-merge', data: { node, target: previous, bitmaps: [checkpoint] } },
        { type: 'block-dirty-bitmap-enable', data: { node, name: previous } },
      ] : []),
      { type: 'block-dirty-bitmap-remove', data: { node, name: checkpoint } },
    ],
  });
}

/** QEMU's running NBD server, or a private one on a unix socket that teardown stops. */
async function startExportServer(qmp: QmpClient, dir: string, existing: string | undefined, teardown: Array<() => Promise<unknown>>): Promise<Omit<NbdAddress, 'exportName'>> {
  if (existing) {
    if (existing.startsWith('unix:')) return { socketPath: existing.slice('unix:'.length) };
    const [host, port] = existing.split(/:(?=\d+$)/);
    return { host, port: Number(port) };
  }
  const socketPath = join(dir, 'nbd.sock');
  await qmp.execute('nbd-server-start', { addr: { type: 'unix', data: { path: socketPath } } });
  teardown.push(() => qmp.execute('nbd-server-stop'));
  return { socketPath };
}
