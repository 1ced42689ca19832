// `tessera serve-nbd --bucket B --disk NAME (--at TIME | --snapshot ID) --listen ADDR`: a
// read-only NBD export of a snapshot that qemu-img, nbdinfo or a VM can read at once; chunks are
// fetched on demand. The export is named after the disk; the default export serves it too.
import { flag, hasFlag, parseArgs, requireFlag } from '../args.js';
import { openRepository, REPO_FLAGS_HELP, selectSnapshot } from '../../backup/cli-support.js';
import { NbdServer, type ListenAddress } from '../../backup/nbd/server.js';
import { snapshotExport } from '../../backup/snapshot-export.js';

const HELP = `usage: tessera serve-nbd --bucket B --disk NAME (--at TIME | --snapshot ID) --listen ADDR [--cache-mib N]

ADDR is HOST:PORT (port 0 picks one) or unix:PATH. Runs until interrupted.
${REPO_FLAGS_HELP}`;

export function parseListen(text: string): ListenAddress {
  if (text.startsWith('unix:')) return { path: text.slice('unix:'.length) };
  const match = /^\[?([^\]]*)\]?:(\d+)$/.exec(text);
  if (!match) throw new Error(`--listen ${text}: expected HOST:PORT or unix:PATH`);
  return { host: match[1] || '127.0.0.1', port: Number(match[2]) };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['help']);
  if (hasFlag(args, 'help')) { process.stdout.write(HELP); return 0; }
  const listen = parseListen(requireFlag(args, 'listen'));
  const disk = requireFlag(args, 'disk');
  const repo = await openRepository(args);
  const snapshot = await selectSnapshot(repo, args);
  const index = await repo.loadIndex();
  const cacheMiB = Number(flag(args, 'cache-mib') ?? 256);
  const exported = await snapshotExport(repo, index, snapshot, cacheMiB * 1024 * 1024);
  const server = await NbdServer.listen(listen, new Map([[disk, exported]]), disk);
  process.stdout.write(`serving snapshot ${snapshot.id} of ${disk} (${new Date(snapshot.timeMs).toISOString()}) on ${server.address} as export '${disk}'\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  repo.store.destroy();
  return 0;
}
