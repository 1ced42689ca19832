// `tessera prune --bucket B [--disk NAME] --keep-last N --keep-daily N ... [--dry-run]`: forget
// snapshots the keep policy does not keep (the space is freed by `tessera gc`).
import { flag, hasFlag, parseArgs } from '../args.js';
import { openRepository, REPO_FLAGS_HELP } from '../../backup/cli-support.js';
import { snapshotKey } from '../../backup/repository.js';
import { applyPolicy, type KeepPolicy, PERIODS } from '../../backup/retention.js';

const HELP = `usage: tessera prune --bucket B [--disk NAME] [--keep-last N] [--keep-hourly N] [--keep-daily N]
                     [--keep-weekly N] [--keep-monthly N] [--keep-yearly N] [--dry-run] [--json]

Snapshots under Object Lock retention are kept whatever the policy says.
${REPO_FLAGS_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['dry-run', 'json', 'help']);
  if (hasFlag(args, 'help')) { process.stdout.write(HELP); return 0; }
  const policy: KeepPolicy = {};
  for (const rule of ['last', ...PERIODS] as const) {
    const value = flag(args, `keep-${rule}`);
    if (value !== undefined) policy[rule] = Number(value);
  }
  const repo = await openRepository(args);
  try {
    const now = Date.now();
    const decisions = applyPolicy(await repo.listSnapshots(flag(args, 'disk')), policy);
    const locked = decisions.filter((d) => !d.keep && d.snapshot.lockUntilMs > now);
    const forget = decisions.filter((d) => !d.keep && d.snapshot.lockUntilMs <= now);
    const refused = hasFlag(args, 'dry-run') ? [] : await repo.store.deleteMany(forget.map((d) => snapshotKey(d.snapshot)));
    const result = {
      dryRun: hasFlag(args, 'dry-run'),
      kept: decisions.filter((d) => d.keep).map((d) => ({ id: d.snapshot.id, disk: d.snapshot.disk, reasons: d.reasons })),
      removed: forget.map((d) => d.snapshot.id).filter((id) => !refused.some((key) => key.endsWith(`/${id}`))),
      locked: [...locked.map((d) => d.snapshot.id), ...refused.map((key) => key.slice(key.lastIndexOf('/') + 1))],
    };
    if (hasFlag(args, 'json')) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else {
      for (const k of result.kept) process.stdout.write(`keep    ${k.disk}/${k.id} (${k.reasons.join(', ')})\n`);
      for (const id of result.removed) process.stdout.write(`${result.dryRun ? 'would remove' : 'remove'}  ${id}\n`);
      for (const id of result.locked) process.stdout.write(`locked  ${id} (Object Lock retention)\n`);
    }
    return 0;
  } finally {
    repo.store.destroy();
  }
}
