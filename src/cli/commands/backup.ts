// `tessera backup --bucket B --disk NAME SOURCE`: back up a VM disk (raw or qcow2 image, block
// device, NBD export, or a running VM through QMP) as a new snapshot.
// Only light modules load before the source starts opening (see run); the backup and repository
// code (protobuf, zstd, ~35 ms to load) are imported while the qemu tools work.
import { setFlagsFromString } from 'node:v8';
import { flag, hasFlag, parseArgs } from '../args.js';
import type { Snapshot } from '../../backup/format.js';
import { newId } from '../../backup/ids.js';
import { type DiskSource, openSource, type SourceRequest } from '../../backup/source.js';
import { trace, traced } from '../../backup/trace.js';

const help = (repoFlags: string) => `usage: tessera backup --bucket B --disk NAME [options] SOURCE

SOURCE is a raw or qcow2 image, a block device, nbd://host:port/export or
nbd+unix:///export?socket=PATH, or with --qmp the block node of a running VM.

  --disk NAME         name of the disk in the repository (required)
  --bitmap NAME       NBD sources: dirty bitmap holding the changes since the last snapshot
  --qmp SOCKET        live backup of a running VM through its QMP socket; SOURCE is the block node
  --nbd-server ADDR   with --qmp: QEMU's already running NBD server (HOST:PORT or unix:PATH)
  --lock-days N       write with S3 Object Lock (COMPLIANCE) retention of N days
  --encrypt           create the repository encrypted (needs --key-file)
  --chunk-size BYTES  chunk size of a new repository (65536..262144, default 65536)
  --pack-size BYTES   bytes per pack object (default 16 MiB)
  --uploads N         pack uploads in flight (default 4)
  --reads N           NBD reads in flight (default 8)
  --threads N         batches of chunks hashed, compressed and encrypted at once (default: one per core, at most 4; 0: inline)
  --json              print a JSON summary
  --metrics-file PATH write the outcome for node_exporter's textfile collector (one file per disk)
${repoFlags}`;

export async function run(argv: string[]): Promise<number> {
  // Without V8's optimising compiler (TurboFan): its compiles, on helper threads of a 2-core box,
  // were ~15 % of an incremental's CPU and pay off only in long runs. Set before any hot code runs
  // (flags are per process). Paired runs: agent CPU per
  // incremental -8 to -13 % at 2-3 % change; a full backup's +0-3 % (its CPU is zstd, SHA and AES).
  setFlagsFromString('--no-opt');
  const args = parseArgs(argv, ['json', 'encrypt', 'help']);
  if (hasFlag(args, 'help') || args.positionals.length !== 1) {
    const { REPO_FLAGS_HELP } = await import('../../backup/cli-support.js');
    process.stdout.write(help(REPO_FLAGS_HELP));
    return hasFlag(args, 'help') ? 0 : 2;
  }
  const disk = flag(args, 'disk');
  if (!disk || !/^[A-Za-z0-9._-]+$/.test(disk)) throw new Error('--disk NAME is required (letters, digits, . _ -)');
  const source = args.positionals[0]!;
  const qmp = flag(args, 'qmp');
  const number = (name: string) => { const v = flag(args, name); return v === undefined ? undefined : Number(v); };
  trace('command');
  const snapshotId = newId();
  const early = qmp ? undefined : openEarly({ source, disk, snapshotId, bitmap: flag(args, 'bitmap') });
  const load = async () => {
    const [{ backup }, cli] = await Promise.all([import('../../backup/backup.js'), import('../../backup/cli-support.js')]);
    const repo = await traced('open repository', cli.openRepository(args, { encrypted: hasFlag(args, 'encrypt'), chunkSize: number('chunk-size') }));
    return { backup, cli, repo };
  };
  const { backup, cli, repo } = await load().catch(async (err: unknown) => {
    await early?.abandon();
    throw err;
  });
  const { formatBytes, progressBar } = cli;
  const open = early?.open ?? (async (request: SourceRequest) => (await import('../../backup/live.js')).openLiveSource(qmp!, request, { nbdServer: flag(args, 'nbd-server') }));
  const bar = progressBar(`backup ${disk}`);
  const snapshot = await backup(repo, {
    disk,
    source,
    snapshotId,
    bitmap: flag(args, 'bitmap'),
    open,
    lockDays: number('lock-days'),
    packSize: number('pack-size'),
    maxUploads: number('uploads'),
    readConcurrency: number('reads'),
    codecThreads: number('threads'),
    onProgress: (p) => bar.update(p.bytesRead, p.bytesToRead, `${formatBytes(p.bytesRead)} read, ${formatBytes(p.bytesUploaded)} up`),
    onNotice: (message) => process.stderr.write(`tessera backup: ${message}\n`),
  }).finally(() => { bar.end(); repo.store.destroy(); });

  const summary = {
    snapshot: snapshot.id,
    disk,
    time: new Date(snapshot.timeMs).toISOString(),
    incremental: snapshot.incremental,
    diskSize: snapshot.diskSize,
    bytesRead: snapshot.bytesRead,
    bytesChanged: snapshot.bytesChanged,
    bytesUploaded: snapshot.bytesUploaded,
    chunksNew: snapshot.chunksNew,
    chunksReused: snapshot.chunksReused,
    durationMs: snapshot.durationMs,
  };
  const metricsFile = flag(args, 'metrics-file');
  if (metricsFile) {
    // Loaded only when asked for: prom-client costs every backup's start-up time otherwise.
    const { writeBackupMetrics } = await import('../backup-metrics.js');
    await writeBackupMetrics(metricsFile, { ...summary, bucket: repo.store.bucket, timeMs: snapshot.timeMs });
  }
  if (hasFlag(args, 'json')) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    process.stdout.write(`snapshot ${snapshot.id} of ${disk}: ${snapshot.incremental ? 'incremental' : 'full read'}, ` +
      `read ${formatBytes(snapshot.bytesRead)}, changed ${formatBytes(snapshot.bytesChanged)}, uploaded ${formatBytes(snapshot.bytesUploaded)} ` +
      `(${snapshot.chunksNew} new chunks, ${snapshot.chunksReused} reused) in ${(snapshot.durationMs / 1000).toFixed(1)} s\n`);
  }
  return 0;
}

/**
 * Starts opening the source (a qcow2's checkpoint and qemu-nbd) before the backup code has loaded
 * and the repository opened; the parent snapshot it waits for comes with `open`. `abandon` closes
 * it (undoing the checkpoint) when the backup never starts.
 */
function openEarly(request: Omit<SourceRequest, 'parent'>): { open: (request: SourceRequest) => Promise<DiskSource>; abandon: () => Promise<void> } {
  let giveParent!: (parent: Promise<Snapshot | undefined>) => void;
  const parent = new Promise<Snapshot | undefined>((resolve) => { giveParent = resolve; });
  const opening = openSource({ ...request, parent });
  opening.catch(() => undefined); // awaited by the backup, or by abandon
  return {
    open: (later) => {
      giveParent(later.parent);
      return opening;
    },
    abandon: async () => {
      giveParent(Promise.resolve(undefined));
      const source = await opening.catch(() => undefined);
      await source?.finish(false);
    },
  };
}
