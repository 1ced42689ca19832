// `tessera gc --bucket B [--grace 24h] [--repack 0.5] [--dry-run]`: free the space of packs no
// snapshot needs; safe while backups run (see src/backup/gc.ts).
import { flag, hasFlag, parseArgs } from '../args.js';
import { formatBytes, openRepository, parseTime, REPO_FLAGS_HELP } from '../../backup/cli-support.js';
import { gc } from '../../backup/gc.js';

const HELP = `usage: tessera gc --bucket B [--grace AGE] [--repack FRACTION] [--dry-run] [--json]

  --grace AGE         never touch packs younger than this (default 24h; 0s for none)
  --repack FRACTION   rewrite packs whose needed share is below this (default 0.5; 0 disables)

A pack is deleted by the gc run after the one that condemned it, once every backup that was
running at that time has finished.
${REPO_FLAGS_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['dry-run', 'json', 'help']);
  if (hasFlag(args, 'help')) { process.stdout.write(HELP); return 0; }
  const now = Date.now();
  const graceMs = now - parseTime(flag(args, 'grace') ?? '24h', now);
  const repo = await openRepository(args);
  try {
    const report = await gc(repo, { graceMs, repackBelow: Number(flag(args, 'repack') ?? 0.5), dryRun: hasFlag(args, 'dry-run'), now });
    if (hasFlag(args, 'json')) process.stdout.write(`${JSON.stringify(report)}\n`);
    else process.stdout.write(`${report.snapshots} snapshots use ${report.blobsInUse} blobs in ${report.packs} packs; ` +
      `deleted ${report.deleted} packs (${formatBytes(report.deletedBytes)}), repacked ${report.repacked}, condemned ${report.condemned}` +
      `${report.waitingForBackups ? `, ${report.waitingForBackups} wait for running backups` : ''}${report.locked ? `, ${report.locked} under Object Lock` : ''}\n`);
    return 0;
  } finally {
    repo.store.destroy();
  }
}
