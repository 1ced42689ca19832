// `tessera restore --bucket B --disk NAME (--at TIME | --snapshot ID) --to PATH [--format raw|qcow2]`
import { flag, hasFlag, parseArgs, requireFlag } from '../args.js';
import { formatBytes, openRepository, progressBar, REPO_FLAGS_HELP, selectSnapshot } from '../../backup/cli-support.js';
import { restore } from '../../backup/restore.js';

const HELP = `usage: tessera restore --bucket B --disk NAME (--at TIME | --snapshot ID) --to PATH [--format raw|qcow2] [--json]

Restores the newest snapshot at or before TIME (ISO 8601 or an age: 2h, 3d), or the snapshot ID.
Over an existing image only what differs is written.

  --threads N         threads decrypting, decompressing and verifying (default: one per core, none for small restores)
${REPO_FLAGS_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['json', 'help']);
  if (hasFlag(args, 'help')) { process.stdout.write(HELP); return 0; }
  const format = flag(args, 'format') ?? 'raw';
  if (format !== 'raw' && format !== 'qcow2') throw new Error('--format is raw or qcow2');
  const to = requireFlag(args, 'to');
  const repo = await openRepository(args);
  const bar = progressBar('restore');
  try {
    const snapshot = await selectSnapshot(repo, args);
    const threads = flag(args, 'threads');
    const summary = await restore(repo, { snapshot, to, format, codecThreads: threads === undefined ? undefined : Number(threads), onProgress: (done, total) => bar.update(done, total) });
    bar.end();
    if (hasFlag(args, 'json')) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else process.stdout.write(`restored snapshot ${snapshot.id} (${new Date(snapshot.timeMs).toISOString()}) to ${to}: ` +
      `wrote ${formatBytes(summary.bytesWritten)}, fetched ${formatBytes(summary.bytesFetched)} in ${(summary.durationMs / 1000).toFixed(1)} s\n`);
    return 0;
  } finally {
    repo.store.destroy();
  }
}
