// The benchmark harness end to end against its null S3 server (a real process on loopback):
// `tessera bench` runs PUT and GET scenarios and writes its reports, and the GET checker catches
// content that is not what was written.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { connect } from '../../bench/lib/connection.js';
import { runPhase } from '../../bench/lib/phase.js';
import { phaseSpec } from '../../bench/lib/load-scenario.js';
import { parseArgs } from '../../src/cli/args.js';
import { runTessera } from '../lib/cluster.js';

interface ResultsFile {
  phases: Array<{ ops: Array<{ op: string; ops: number; bytes: number; errors: number; latencyUs: { p50: number; p99: number } }> }>;
}

function onlyReport(outDir: string): { results: ResultsFile; markdown: string; files: string[] } {
  const [run] = readdirSync(outDir);
  const dir = join(outDir, run!);
  return {
    results: JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as ResultsFile,
    markdown: readFileSync(join(dir, 'report.md'), 'utf8'),
    files: readdirSync(dir).map((f) => join(dir, f)),
  };
}

for (const [scenario, size] of [['put', '4KiB'], ['get', '1MiB'], ['ranged-get', '3MiB']] as const) {
  t.test(`tessera bench ${scenario} against the null server reports what it did`, async (t) => {
    const out = mkdtempSync(join(tmpdir(), 'bench-test-'));
    t.teardown(() => rmSync(out, { recursive: true, force: true }));
    const { code, stdout, stderr } = await runTessera(['bench', scenario, '--target', 'null', '--size', size, '--concurrency', '4',
      '--objects', '8', '--range-size', '100KiB', '--duration', '2s', '--out', out]);
    t.equal(code, 0, stderr);
    t.match(stdout, new RegExp(`null ${scenario} ${size.replace('KiB', ' KiB').replace('MiB', ' MiB')} c4`));
    const { results, markdown, files } = onlyReport(out);
    const [summary] = results.phases[0]!.ops;
    t.equal(summary!.op, scenario);
    t.ok(summary!.ops > 0, 'ran operations');
    t.equal(summary!.errors, 0, 'every operation succeeded, every GET verified');
    t.ok(summary!.latencyUs.p50 > 0 && summary!.latencyUs.p99 >= summary!.latencyUs.p50, 'latency percentiles');
    t.match(markdown, /\| null null-server \(pid \d+\) \| [\d.]+ MiB/, 'server RSS in the report');
    const svgs = files.filter((f) => f.endsWith('.svg'));
    t.equal(svgs.length, 2, 'throughput and latency charts');
    for (const svg of svgs) t.match(readFileSync(svg, 'utf8'), /^<svg [^>]*>[\s\S]*<polyline|<circle/);
  });
}

t.test('a GET whose content is not what was written counts as an integrity error', async (t) => {
  const connection = await connect(parseArgs([]), 'null');
  t.teardown(() => connection.close());
  const args = parseArgs(['--size', '256KiB', '--concurrency', '2', '--count', '6', '--clients', '1']);
  const written = await runPhase(connection, phaseSpec('put', args), 'seed-one', 'itest');
  t.equal(written.result.ops[0]!.errors, 0);
  const read = await runPhase(connection, phaseSpec('get', args), 'seed-two', 'itest', written.written);
  const [get] = read.result.ops;
  t.equal(get!.ops, 0, 'no GET passed');
  t.same(Object.keys(get!.errorCodes), ['Integrity']);
  t.match(Object.values(get!.errorSamples)[0], /content differs/);
});

t.test('a warm-up runs the load unmeasured first, and what it wrote is cleaned up with the rest', async (t) => {
  const connection = await connect(parseArgs([]), 'null');
  t.teardown(() => connection.close());
  const args = parseArgs(['--size', '4KiB', '--concurrency', '2', '--clients', '1', '--duration', '1s', '--warmup', '1s']);
  const run = await runPhase(connection, phaseSpec('put', args), 'seed-warm', 'itest');
  const [put] = run.result.ops;
  const warm = run.written.filter((o) => o.key.includes('/warmup/'));
  t.ok(warm.length > 0, 'the warm-up wrote objects');
  t.equal(put!.ops, run.written.length - warm.length, 'only the measured run counts');
  const counted = await runPhase(connection, phaseSpec('put', parseArgs(['--size', '4KiB', '--count', '5', '--warmup', '1s'])), 'seed-warm', 'itest');
  t.equal(counted.written.length, 5, 'a phase that stops after a count has no warm-up');
});
