// `tessera verify --bucket B [--disk NAME] [--snapshot ID]`: check that every chunk of every (or
// one) snapshot is stored and matches its hash. Exits 1 if anything is missing or corrupt.
import { flag, hasFlag, parseArgs } from '../args.js';
import { formatBytes, openRepository, REPO_FLAGS_HELP } from '../../backup/cli-support.js';
import { verify } from '../../backup/verify.js';

const HELP = `usage: tessera verify --bucket B [--disk NAME] [--snapshot ID] [--json]\n${REPO_FLAGS_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['json', 'help']);
  if (hasFlag(args, 'help')) { process.stdout.write(HELP); return 0; }
  const repo = await openRepository(args);
  try {
    const id = flag(args, 'snapshot');
    const snapshots = (await repo.listSnapshots(flag(args, 'disk'))).filter((s) => !id || s.id === id);
    if (id && snapshots.length === 0) throw new Error(`no snapshot ${id}`);
    const report = await verify(repo, snapshots);
    if (hasFlag(args, 'json')) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      for (const p of report.problems) process.stdout.write(`${p.kind.padEnd(8)} ${p.disk}/${p.snapshot}: ${p.what}\n`);
      process.stdout.write(`${report.snapshots} snapshots, ${report.blobsChecked} chunks (${formatBytes(report.bytesChecked)} stored) checked: ` +
        `${report.problems.length === 0 ? 'all present and intact' : `${report.problems.length} problems`}\n`);
    }
    return report.problems.length === 0 ? 0 : 1;
  } finally {
    repo.store.destroy();
  }
}
