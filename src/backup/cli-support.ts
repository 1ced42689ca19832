// What the backup commands share: opening the repository from flags, picking a snapshot by
// time or id, and human-readable output (progress bar, sizes).
import type { ParsedArgs } from '../cli/args.js';
import { flag, hasFlag, requireFlag } from '../cli/args.js';
import type { Snapshot } from './format.js';
import { ObjectStore } from './object-store.js';
import { Repository } from './repository.js';

export const REPO_FLAGS_HELP = `repository:
  --bucket B          bucket holding the backups (required)
  --endpoint URL      S3 endpoint (default: AWS_ENDPOINT_URL or AWS)
  --profile NAME      AWS shared-config profile (credentials otherwise from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
  --region R          region (default: AWS_REGION or us-east-1)
  --key-file PATH     key of an encrypted repository (32 bytes, raw or hex)
`;

export async function openRepository(args: ParsedArgs, create?: { encrypted: boolean; chunkSize?: number }): Promise<Repository> {
  const store = ObjectStore.connect({
    bucket: requireFlag(args, 'bucket'),
    endpoint: flag(args, 'endpoint'),
    profile: flag(args, 'profile'),
    region: flag(args, 'region'),
  });
  return Repository.open(store, { keyFile: flag(args, 'key-file'), create });
}

/** TIME is ISO 8601 or a relative age: `90s`, `30m`, `2h`, `3d`, `1w` ago. */
export function parseTime(text: string, now = Date.now()): number {
  const relative = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(text.trim());
  if (relative) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[relative[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return now - Number(relative[1]) * unit;
  }
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new Error(`'${text}' is neither an ISO 8601 time nor an age like 2h or 3d`);
  return ms;
}

/** The snapshot named by --snapshot ID, or the newest at or before --at TIME. */
export async function selectSnapshot(repo: Repository, args: ParsedArgs): Promise<Snapshot> {
  const disk = requireFlag(args, 'disk');
  const id = flag(args, 'snapshot');
  if (id) {
    const found = await repo.readSnapshot(disk, id);
    if (!found) throw new Error(`disk ${disk} has no snapshot ${id}`);
    return found;
  }
  const snapshots = await repo.listSnapshots(disk);
  const at = hasFlag(args, 'at') ? parseTime(requireFlag(args, 'at')) : Date.now();
  const found = snapshots.filter((s) => s.timeMs <= at).at(-1);
  if (!found) throw new Error(`disk ${disk} has no snapshot at or before ${new Date(at).toISOString()}`);
  return found;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** A one-line progress bar on stderr when it is a terminal; silent otherwise. */
export function progressBar(label: string): { update(done: number, total: number, extra?: string): void; end(): void } {
  const tty = process.stderr.isTTY;
  let last = 0;
  return {
    update(done, total, extra = '') {
      if (!tty || Date.now() - last < 100) return;
      last = Date.now();
      const fraction = total > 0 ? Math.min(1, done / total) : 1;
      const width = 30;
      const filled = Math.round(fraction * width);
      process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${extra}\x1b[K`);
    },
    end() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}
