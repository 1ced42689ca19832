// `npm run bench -- md5 [--seconds 1] [--streams 1,2,3,4,8,16] [--stripe-kib 1024]`
// The gateway's body MD5: N bodies hashed at once through ThreadedMd5 (the addon's hasher thread,
// native/erasure/md5_hasher.c), each fed stripe after stripe with two stripes in flight as the PUT
// path feeds it, in each of the hasher's modes; beside it node:crypto's MD5 (OpenSSL, the kernel
// the gateway used before) of one body on the event loop. MB/s is wall clock, all bodies together
// and per body; CPU is the whole process's (event loop and hasher thread) in ms per MB hashed,
// the figure to trust on a busy machine. MB = 1e6 bytes.
import { createHash, randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flag, parseArgs } from '../../src/cli/args.js';
import { nativeAddon } from '../../src/common/native-addon.js';
import { ThreadedMd5 } from '../../src/replication/md5-thread.js';

const RESULTS_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench', 'results', 'md5.json');
const STRIPES_PER_BODY = 3;
const STRIPES_IN_FLIGHT = 2;
const OPENSSL = 'openssl-event-loop';

interface Result {
  mode: string;
  streams: number;
  mbPerSecond: number;
  mbPerSecondPerStream: number;
  cpuMsPerMb: number;
}

/** Feeds one body's stripes until the deadline; the bytes hashed. */
async function feedBody(stripes: Buffer[], deadline: bigint): Promise<number> {
  const md5 = new ThreadedMd5();
  const inFlight: Array<Promise<void>> = [];
  let bytes = 0;
  for (let i = 0; process.hrtime.bigint() < deadline; i++) {
    const stripe = stripes[i % stripes.length]!;
    inFlight.push(md5.update(stripe));
    bytes += stripe.length;
    if (inFlight.length >= STRIPES_IN_FLIGHT) await inFlight.shift();
  }
  await md5.digest();
  return bytes;
}

/** node:crypto on the event loop, one body. */
async function feedOpenssl(stripes: Buffer[], deadline: bigint): Promise<number> {
  const md5 = createHash('md5');
  let bytes = 0;
  for (let i = 0; process.hrtime.bigint() < deadline; i++) {
    md5.update(stripes[i % stripes.length]!);
    bytes += stripes[i % stripes.length]!.length;
  }
  md5.digest();
  return bytes;
}

async function measure(mode: string, bodies: Buffer[][], seconds: number): Promise<Result> {
  const cpuBefore = process.cpuUsage();
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  const feed = mode === OPENSSL ? feedOpenssl : feedBody;
  const bytes = (await Promise.all(bodies.map((stripes) => feed(stripes, deadline)))).reduce((a, b) => a + b, 0);
  const wallSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  const mb = bytes / 1e6;
  const round = (x: number, digits: number) => Number(x.toFixed(digits));
  return {
    mode,
    streams: bodies.length,
    mbPerSecond: round(mb / wallSeconds, 0),
    mbPerSecondPerStream: round(mb / wallSeconds / bodies.length, 0),
    cpuMsPerMb: round((cpu.user + cpu.system) / 1000 / mb, 3),
  };
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const seconds = Number(flag(args, 'seconds') ?? 1);
  const streamCounts = (flag(args, 'streams') ?? '1,2,3,4,8,16').split(',').map(Number);
  const stripeBytes = Math.round(Number(flag(args, 'stripe-kib') ?? 1024) * 1024);
  if (!(seconds > 0) || !(stripeBytes > 0) || !streamCounts.every((n) => Number.isInteger(n) && n > 0)) {
    throw new Error('--seconds, --stripe-kib and --streams (a list) want positive numbers');
  }
  const allBodies = Array.from({ length: Math.max(...streamCounts) }, () =>
    Array.from({ length: STRIPES_PER_BODY }, () => randomFillSync(Buffer.allocUnsafe(stripeBytes))));

  console.log(`MD5 of N bodies at once, ${stripeBytes} B stripes, ${STRIPES_IN_FLIGHT} in flight per body (${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores)`);
  console.log(`${'mode'.padEnd(20)} ${'bodies'.padStart(6)} ${'MB/s all'.padStart(9)} ${'MB/s each'.padStart(10)} ${'CPU ms/MB'.padStart(10)}`);
  const results: Result[] = [];
  const cells = [{ mode: OPENSSL, streams: 1 }, ...nativeAddon.md5Modes().flatMap((mode) => streamCounts.map((streams) => ({ mode, streams })))];
  for (const { mode, streams } of cells) {
    if (mode !== OPENSSL) nativeAddon.md5SetMode(mode);
    const result = await measure(mode, allBodies.slice(0, streams), seconds);
    results.push(result);
    console.log(`${mode.padEnd(20)} ${String(streams).padStart(6)} ${String(result.mbPerSecond).padStart(9)} ${String(result.mbPerSecondPerStream).padStart(10)} ${result.cpuMsPerMb.toFixed(3).padStart(10)}`);
  }
  nativeAddon.md5SetMode('auto');

  writeFileSync(RESULTS_FILE, `${JSON.stringify({
    scenario: 'md5',
    date: new Date().toISOString(),
    command: `npm run bench -- md5 ${argv.join(' ')}`.trim(),
    machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
    settings: { stripeBytes, stripesInFlight: STRIPES_IN_FLIGHT, secondsPerCell: seconds },
    results,
  }, null, 2)}\n`);
  console.log(`results written to ${RESULTS_FILE}`);
  return 0;
}
