// `tessera snapshots --bucket B [--disk NAME]`: list snapshots with their time, size and change.
import { flag, hasFlag, parseArgs } from '../args.js';
import { formatBytes, openRepository, REPO_FLAGS_HELP } from '../../backup/cli-support.js';

const HELP = `usage: tessera snapshots --bucket B [--disk NAME] [--json]\n${REPO_FLAGS_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['json', 'help']);
  if (hasFlag(args, 'help')) { process.stdout.write(HELP); return 0; }
  const repo = await openRepository(args);
  const snapshots = await repo.listSnapshots(flag(args, 'disk')).finally(() => repo.store.destroy());
  if (hasFlag(args, 'json')) {
    process.stdout.write(`${JSON.stringify(snapshots.map((s) => ({
      id: s.id, disk: s.disk, time: new Date(s.timeMs).toISOString(), diskSize: s.diskSize, allocatedBytes: s.allocatedBytes,
      bytesChanged: s.bytesChanged, bytesUploaded: s.bytesUploaded, incremental: s.incremental, parent: s.parent,
      lockedUntil: s.lockUntilMs ? new Date(s.lockUntilMs).toISOString() : undefined,
    })))}\n`);
    return 0;
  }
  const rows = snapshots.map((s) => [
    s.id, s.disk, new Date(s.timeMs).toISOString(), formatBytes(s.diskSize), formatBytes(s.allocatedBytes),
    formatBytes(s.bytesChanged), s.incremental ? 'incremental' : 'full',
  ]);
  const header = ['ID', 'DISK', 'TIME', 'SIZE', 'USED', 'CHANGED', 'READ'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  for (const row of [header, ...rows]) process.stdout.write(`${row.map((v, c) => v.padEnd(widths[c]!)).join('  ').trimEnd()}\n`);
  return 0;
}
