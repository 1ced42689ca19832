// `npm run bench -- backup`: VM-disk backup, Tessera side by side with restic and borg on the same
// images in the same run. A generated VM disk (GPT + ext4 of real files) gets several "days" of
// 1-3 % change written through QEMU (qemu-nbd on the qcow2, so its persistent bitmaps are real);
// each day every tool backs it up: Tessera from the qcow2 with its checkpoint bitmaps, restic and
// borg from the raw image as they are used in the field. Then the latest and an older day are
// restored. Reported: time, MB/s, bytes read, bytes stored, CPU seconds (the tool's own and the
// S3 store's), and the issue's targets. The tools take turns going first, so a load that changes
// during a phase does not always hit the same one. Tessera and restic use the same S3 store
// (Tessera all-in-one by default); borg has no S3 backend and writes a local repository.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { parseArgs, flag, hasFlag } from '../../src/cli/args.js';
import { NbdClient } from '../../src/backup/nbd/client.js';
import { serveImage } from '../../src/backup/qemu-tools.js';
import { ProcessSampler } from '../lib/proc-stats.js';
import { reportFolder } from '../lib/report.js';
import { startTarget } from '../lib/targets.js';
import { fillWithRealFiles } from '../../test/lib/backup-images.js';

const MiB = 1024 * 1024;
const PAGE = 4096;
const tesseraMain = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');

const USAGE = `usage: npm run bench -- backup [--disk-mib 4096] [--data-mib 55 % of the disk] [--days 3] [--store tessera|tessera-cluster|moto] [--out DIR]
  (a quick run: --disk-mib 1024 --days 1)`;

type Tool = 'tessera' | 'restic' | 'borg';
const TOOLS: Tool[] = ['tessera', 'restic', 'borg'];

interface Run {
  tool: Tool;
  phase: string;
  wallS: number;
  cpuS: number;
  /** CPU of the S3 store's processes during the phase. */
  storeCpuS: number;
  bytesRead: number;
  /** Repository size after the phase. */
  storedBytes: number;
  /** Bytes the day changed (union of written ranges). */
  changedBytes?: number;
  verified?: boolean;
}

interface Timed {
  wallS: number;
  cpuS: number;
  stdout: string;
}

/** Runs a command under GNU time: wall clock and the CPU of it and all it waited for. */
function timed(command: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Timed {
  const timeFile = join(tmpdir(), `bench-time-${randomBytes(4).toString('hex')}`);
  const result = spawnSync('/usr/bin/time', ['-f', '%e %U %S', '-o', timeFile, command, ...args], { env: { ...process.env, ...env }, cwd, maxBuffer: 256 * MiB });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${result.stderr.toString().slice(-4000)}`);
  const [wall, user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  rmSync(timeFile, { force: true });
  return { wallS: wall!, cpuS: user! + sys!, stdout: result.stdout.toString() };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function duBytes(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir]).toString().split('\t')[0]);
}

/** A GPT disk with one ext4 partition holding real files, as qcow2. */
function buildDisk(work: string, diskMiB: number, dataMiB: number): { qcow2: string; raw: string } {
  const files = join(work, 'files');
  fillWithRealFiles(files, dataMiB * MiB, ['/usr/lib', '/usr/share']);
  const part = join(work, 'part.img');
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', files, part, `${diskMiB - 2}M`]);
  rmSync(files, { recursive: true, force: true });
  const raw = join(work, 'disk.raw');
  execFileSync('truncate', ['-s', `${diskMiB}M`, raw]);
  execFileSync('sfdisk', ['-q', raw], { input: 'label: gpt\nstart=2048, size=' + ((diskMiB - 2) * 2048) + ', type=linux\n' });
  execFileSync('dd', [`if=${part}`, `of=${raw}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
  rmSync(part);
  const qcow2 = join(work, 'disk.qcow2');
  execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
  return { qcow2, raw };
}

/** Writes `bytes` of scattered changes (4 KiB - 1 MiB writes, text and random data) through qemu-nbd. */
async function changeDay(qcow2: string, diskBytes: number, bytes: number, corpus: Buffer): Promise<number> {
  const served = await serveImage(qcow2, { format: 'qcow2', readOnly: false });
  const client = await NbdClient.connect(served.address);
  const written = new Uint8Array(Math.ceil(diskBytes / PAGE));
  const sizes = [4096, 16384, 65536, 65536, 262144, 262144, 1048576];
  try {
    for (let total = 0; total < bytes;) {
      const size = sizes[Math.floor(Math.random() * sizes.length)]!;
      const offset = Math.floor(Math.random() * ((diskBytes - size - 2 * MiB) / PAGE)) * PAGE + MiB;
      const data = Math.random() < 0.5 ? randomBytes(size) : corpus.subarray(Math.floor(Math.random() * (corpus.length - size)) & ~7).subarray(0, size);
      await client.write(offset, Buffer.from(data));
      written.fill(1, offset / PAGE, (offset + size) / PAGE);
      total += size;
    }
    await client.flush();
  } finally {
    await client.close();
    await served.stop();
  }
  return written.reduce((n, w) => n + w, 0) * PAGE;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['help']);
  if (hasFlag(args, 'help')) { process.stdout.write(`${USAGE}\n`); return 0; }
  const diskMiB = Number(flag(args, 'disk-mib') ?? 4096);
  const dataMiB = Number(flag(args, 'data-mib') ?? Math.round(diskMiB * 0.55));
  const days = Number(flag(args, 'days') ?? 3);
  const storeName = flag(args, 'store') ?? 'tessera';
  for (const tool of ['restic', 'borg', 'sfdisk', 'mkfs.ext4', 'qemu-img', 'qemu-nbd']) {
    if (spawnSync('which', [tool]).status !== 0) throw new Error(`${tool} is not installed (apt-get install restic borgbackup fdisk e2fsprogs qemu-utils)`);
  }

  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const loadBefore = loadavg()[0]!;
  const work = mkdtempSync(join(tmpdir(), 'tessera-bench-backup-'));
  const store = await startTarget(storeName, { nodes: 6, ec: '4+2', cpuProfile: false });
  const s3 = new S3Client({ endpoint: store.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: store.credentials });
  const runs: Run[] = [];
  try {
    process.stderr.write(`building a ${diskMiB} MiB GPT+ext4 disk with ${dataMiB} MiB of real files...\n`);
    const { qcow2, raw } = buildDisk(work, diskMiB, dataMiB);
    const diskBytes = diskMiB * MiB;
    const corpus = readFileSync(execFileSync('sh', ['-c', 'ls -S /usr/share/common-licenses/* | head -1']).toString().trim());
    const textCorpus = Buffer.concat(Array.from({ length: Math.ceil(4 * MiB / corpus.length) }, () => corpus)).subarray(0, 4 * MiB);

    for (const bucket of ['tessera-bench', 'restic-bench']) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const bucketBytes = async (bucket: string) => {
      let total = 0;
      let token: string | undefined;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
        total += (page.Contents ?? []).reduce((sum, o) => sum + (o.Size ?? 0), 0);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return total;
    };
    const keyFile = join(work, 'tessera.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex'));
    const s3Env = {
      AWS_ACCESS_KEY_ID: store.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: store.credentials.secretAccessKey,
      AWS_ENDPOINT_URL: store.endpoint, AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-east-1',
    };
    // Tessera's local chunk-id cache, like restic's cache, lives in the bench's work folder.
    const tesseraEnv = { ...s3Env, TESSERA_CACHE_DIR: join(work, 'tessera-cache') };
    const resticEnv = { ...s3Env, RESTIC_REPOSITORY: `s3:${store.endpoint}/restic-bench`, RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: join(work, 'restic-cache') };
    const borgRepo = join(work, 'borg');
    const borgEnv = { BORG_REPO: borgRepo, BORG_PASSPHRASE: 'bench', BORG_BASE_DIR: join(work, 'borg-home'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes' };
    execFileSync('restic', ['init', '-q'], { env: { ...process.env, ...resticEnv } });
    execFileSync('borg', ['init', '-e', 'repokey-blake2'], { env: { ...process.env, ...borgEnv }, stdio: 'pipe' });

    const snapshots: Record<Tool, string[]> = { tessera: [], restic: [], borg: [] };
    const shas: string[] = [];
    /** Runs one tool's command, measuring it and the store's processes (which restic shares). */
    const measure = (command: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string) => {
      const sampler = new ProcessSampler(store.processes());
      sampler.start();
      const result = timed(command, args, env, cwd);
      const storeCpuS = sampler.stop().reduce((sum, p) => sum + p.cpuSeconds, 0);
      return { ...result, storeCpuS };
    };
    let turn = 0;
    /** The tools in a rotating order, one more step each phase. */
    const inTurn = () => { turn++; return TOOLS.map((_, i) => TOOLS[(i + turn) % TOOLS.length]!); };
    /**
     * Each timed run starts with nothing left to write back (`sync`): the 4 GiB image written just
     * before a day's backups, or the previous tool's repository or restored image, would otherwise
     * be flushed inside whichever run comes next — seconds of disk work, which weigh far more on a
     * half-second incremental than on a five-second one.
     */
    const settled = <T>(run: () => T): T => {
      execFileSync('sync');
      return run();
    };

    const backupDay = async (day: number, changedBytes?: number) => {
      const phase = day === 0 ? 'full' : `day ${day}`;
      execFileSync('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', qcow2, raw]);
      shas.push(await sha256File(raw));
      const rawSize = statSync(raw).size;
      const backups: Record<Tool, () => Promise<Run>> = {
        tessera: async () => {
          const t = measure(process.execPath, [tesseraMain, 'backup', '--bucket', 'tessera-bench', '--disk', 'vm', '--encrypt', '--key-file', keyFile, '--json', qcow2], tesseraEnv);
          const summary = JSON.parse(t.stdout) as { snapshot: string; bytesRead: number };
          snapshots.tessera.push(summary.snapshot);
          return { tool: 'tessera', phase, wallS: t.wallS, cpuS: t.cpuS, storeCpuS: t.storeCpuS, bytesRead: summary.bytesRead, storedBytes: await bucketBytes('tessera-bench'), changedBytes };
        },
        restic: async () => {
          const r = measure('restic', ['backup', '--json', '-q', '--host', 'bench', raw], resticEnv);
          const resticSummary = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { message_type: string; snapshot_id?: string }).find((m) => m.message_type === 'summary');
          snapshots.restic.push(resticSummary!.snapshot_id!);
          return { tool: 'restic', phase, wallS: r.wallS, cpuS: r.cpuS, storeCpuS: r.storeCpuS, bytesRead: rawSize, storedBytes: await bucketBytes('restic-bench'), changedBytes };
        },
        borg: async () => {
          const b = timed('borg', ['create', '--compression', 'zstd,3', `::day${day}`, 'disk.raw'], borgEnv, work);
          snapshots.borg.push(`day${day}`);
          return { tool: 'borg', phase, wallS: b.wallS, cpuS: b.cpuS, storeCpuS: 0, bytesRead: rawSize, storedBytes: duBytes(borgRepo), changedBytes };
        },
      };
      process.stderr.write(`${phase}:`);
      for (const tool of inTurn()) {
        process.stderr.write(` ${tool}...`);
        runs.push(await settled(backups[tool]));
      }
      process.stderr.write('\n');
    };

    await backupDay(0);
    for (let day = 1; day <= days; day++) {
      const fraction = [0.01, 0.02, 0.03][(day - 1) % 3]!;
      const changed = await changeDay(qcow2, diskBytes, Math.round(diskBytes * fraction), textCorpus);
      await backupDay(day, changed);
    }
    rmSync(raw, { force: true });

    const out = join(work, 'restore');
    for (const [phase, day] of [['restore latest', days], ['restore day 1', Math.min(1, days)]] as const) {
      const restores: Record<Tool, () => { wallS: number; cpuS: number; storeCpuS: number; file: string }> = {
        tessera: () => ({ ...measure(process.execPath, [tesseraMain, 'restore', '--bucket', 'tessera-bench', '--disk', 'vm', '--key-file', keyFile, '--snapshot', snapshots.tessera[day]!, '--to', join(out, 'disk.raw')], tesseraEnv), file: join(out, 'disk.raw') }),
        // Tessera's restore ends with an fsync; restic's and borg's images are synced as part of
        // their timed command (nothing to do if they already were): every tool is measured until
        // the restored image is on disk.
        restic: () => ({ ...measure('sh', ['-c', `restic restore -q ${snapshots.restic[day]!} --target ${out} && find ${out} -name disk.raw -exec sync {} +`], resticEnv), file: findFile(out, 'disk.raw') }),
        borg: () => ({ ...timed('sh', ['-c', `borg extract ::${snapshots.borg[day]} && sync disk.raw`], borgEnv, out), storeCpuS: 0, file: join(out, 'disk.raw') }),
      };
      process.stderr.write(`${phase}:`);
      for (const tool of inTurn()) {
        process.stderr.write(` ${tool}...`);
        mkdirSync(out, { recursive: true });
        const r = settled(restores[tool]);
        runs.push({ tool, phase, wallS: r.wallS, cpuS: r.cpuS, storeCpuS: r.storeCpuS, bytesRead: 0, storedBytes: 0, verified: (await sha256File(r.file)) === shas[day] });
        rmSync(out, { recursive: true, force: true });
      }
      process.stderr.write('\n');
    }
  } finally {
    s3.destroy();
    await store.stop();
    rmSync(work, { recursive: true, force: true });
  }

  // This box is shared: the load average tells how much the wall-clock figures are to be trusted.
  const load = `${loadBefore.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`;
  const report = renderReport(runs, diskMiB * MiB, { diskMiB, dataMiB, days, store: storeName, load });
  process.stdout.write(report.markdown);
  const folder = reportFolder('backup', flag(args, 'out'));
  folder.write('backup.json', `${JSON.stringify({ config: { diskMiB, dataMiB, days, store: storeName, load }, runs, targets: report.targets }, null, 2)}\n`);
  folder.write('backup.md', report.markdown);
  process.stderr.write(`results in ${folder.dir}\n`);
  return 0;
}

function findFile(dir: string, name: string): string {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isFile() && entry.name === name) return path;
    if (entry.isDirectory()) {
      const found = findFile(path, name);
      if (existsSync(found)) return found;
    }
  }
  return join(dir, name);
}

interface TargetCheck {
  target: string;
  value: string;
  met: boolean;
}

function renderReport(runs: Run[], diskBytes: number, config: Record<string, unknown>): { markdown: string; targets: TargetCheck[] } {
  const mb = (b: number) => (b / 1e6).toFixed(1);
  const phases = [...new Set(runs.map((r) => r.phase))];
  const storedBefore = (r: Run) => {
    const own = runs.filter((x) => x.tool === r.tool && x.storedBytes > 0);
    const i = own.indexOf(r);
    return i > 0 ? own[i - 1]!.storedBytes : 0;
  };
  const rows = runs.map((r) => {
    const restore = r.phase.startsWith('restore');
    return [
      r.phase, r.tool, r.wallS.toFixed(2), (diskBytes / 1e6 / Math.max(r.wallS, 0.01)).toFixed(0),
      restore ? '' : mb(r.bytesRead), r.changedBytes ? mb(r.changedBytes) : '', r.changedBytes ? (r.bytesRead / r.changedBytes).toFixed(2) : '',
      restore ? '' : mb(r.storedBytes - storedBefore(r)), r.cpuS.toFixed(1), r.tool === 'borg' ? '' : r.storeCpuS.toFixed(1),
      r.verified === undefined ? '' : r.verified ? 'yes' : 'NO',
    ];
  });
  const header = ['phase', 'tool', 'seconds', 'disk MB/s', 'MB read', 'MB changed', 'read/changed', 'MB stored', 'CPU s', 'store CPU s', 'sha256 ok'];
  const table = [`| ${header.join(' | ')} |`, `|${header.map(() => ' --- ').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

  const get = (tool: Tool, phase: string) => runs.find((r) => r.tool === tool && r.phase === phase)!;
  const days = phases.filter((p) => p.startsWith('day '));
  const sum = (tool: Tool, f: (r: Run) => number) => days.reduce((s, p) => s + f(get(tool, p)), 0);
  const stored = (tool: Tool) => sum(tool, (r) => r.storedBytes - storedBefore(r));
  const worstReadRatio = Math.max(...days.map((p) => get('tessera', p).bytesRead / get('tessera', p).changedBytes!));
  const incTimeRatio = sum('tessera', (r) => r.wallS) / sum('restic', (r) => r.wallS);
  // CPU seconds of the tool and the store together: what the wall clock follows on a loaded box.
  const cpu = (r: Run) => r.cpuS + r.storeCpuS;
  const incCpuRatio = sum('tessera', cpu) / sum('restic', cpu);
  const restores = ['restore latest', 'restore day 1'];
  const restoreRatio = Math.min(...restores.map((p) => get('restic', p).wallS / get('tessera', p).wallS));
  const restoreCpuRatio = Math.min(...restores.map((p) => cpu(get('restic', p)) / cpu(get('tessera', p))));
  const full = { tessera: get('tessera', 'full'), restic: get('restic', 'full') };
  const targets: TargetCheck[] = [
    { target: 'incremental reads <= 2x the changed bytes', value: `worst day ${worstReadRatio.toFixed(2)}x`, met: worstReadRatio <= 2 },
    { target: "incremental time <= 1/10 of restic's", value: `${(incTimeRatio * 100).toFixed(1)} % of restic's (CPU incl. store: ${(incCpuRatio * 100).toFixed(1)} %)`, met: incTimeRatio <= 0.1 },
    { target: "stored bytes per day <= restic's", value: `${mb(stored('tessera') / days.length)} vs ${mb(stored('restic') / days.length)} MB/day`, met: stored('tessera') <= stored('restic') },
    { target: "full backup faster than restic's", value: `${full.tessera.wallS.toFixed(1)} s vs ${full.restic.wallS.toFixed(1)} s (CPU incl. store: ${cpu(full.tessera).toFixed(1)} vs ${cpu(full.restic).toFixed(1)} s)`, met: full.tessera.wallS < full.restic.wallS },
    { target: "restore >= 2x restic's speed", value: `${restoreRatio.toFixed(2)}x (worst of latest / day 1; by CPU incl. store ${restoreCpuRatio.toFixed(2)}x)`, met: restoreRatio >= 2 },
  ];
  const markdown = `# Backup benchmark\n\n${Object.entries(config).map(([k, v]) => `${k}: ${v}`).join(', ')}; ${new Date().toISOString()}\n\n` +
    `Tessera backs up the qcow2 (checkpoint bitmaps, encrypted, zstd); restic and borg (encrypted, zstd) back up the raw image.\n` +
    `"MB read" for restic and borg is the raw image they read whole. "disk MB/s" = disk size / seconds.\n` +
    `"CPU s" is the tool's (with its children: qemu-img, qemu-nbd); "store CPU s" the S3 store's processes during the phase ` +
    `(Tessera and restic use the same store; borg writes a local repository). The tools take turns going first.\n` +
    `Every timed run starts after a \`sync\` (nothing left to write back). Restores are timed until the image is on disk (Tessera fsyncs it; restic's and borg's are synced right after them).\n\n${table}\n\n` +
    `| target | measured | met |\n| --- | --- | --- |\n${targets.map((t) => `| ${t.target} | ${t.value} | ${t.met ? 'yes' : 'NO'} |`).join('\n')}\n`;
  return { markdown, targets };
}
