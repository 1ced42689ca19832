// Turning measurements into the three outputs: a terminal table, results.json, and a Markdown
// report with SVG charts, in one folder under bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult } from './load.js';
import type { OpKind } from './load-types.js';
import type { ProcessUsage } from './proc-stats.js';
import { renderLineChart, type ChartSeries } from './svg.js';
import { formatMicros, formatNumber, formatSize, megabytesPerSecond } from './units.js';

export type Headline = 'ops/s' | 'MB/s' | 'keys/s';

export interface OpSummary {
  op: OpKind;
  ops: number;
  bytes: number;
  items: number;
  opsPerSec: number;
  mbPerSec: number;
  itemsPerSec: number;
  errors: number;
  errorCodes: Record<string, number>;
  errorSamples: Record<string, string>;
  latencyUs: { min: number; mean: number; p50: number; p90: number; p99: number; max: number };
  /** Non-empty histogram buckets: [highest value in µs, count]. */
  histogram: Array<[number, number]>;
  series: Array<{ second: number; ops: number; mbPerSec: number; errors: number }>;
}

export interface PhaseResult {
  target: string;
  scenario: string;
  title: string;
  headline: Headline;
  settings: Record<string, string | number>;
  wallMs: number;
  ops: OpSummary[];
  processes: ProcessUsage[];
  client: { cpuPercent: number; cpuMsPerOp: number };
}

export function summarize(load: LoadResult): Pick<PhaseResult, 'wallMs' | 'ops' | 'client'> {
  const ops: OpSummary[] = [...load.stats].map(([op, s]) => ({
    op,
    ops: s.ops,
    bytes: s.bytes,
    items: s.items,
    opsPerSec: s.ops / (load.wallMs / 1000),
    mbPerSec: megabytesPerSecond(s.bytes, load.wallMs),
    itemsPerSec: s.items / (load.wallMs / 1000),
    errors: Object.values(s.errors).reduce((a, b) => a + b, 0),
    errorCodes: s.errors,
    errorSamples: s.errorSamples,
    latencyUs: {
      min: s.latency.count ? s.latency.min : 0,
      mean: Math.round(s.latency.mean()),
      p50: s.latency.percentile(50),
      p90: s.latency.percentile(90),
      p99: s.latency.percentile(99),
      max: s.latency.max,
    },
    histogram: s.latency.buckets(),
    series: s.series.map((sec, second) => ({ second, ops: sec.ops, mbPerSec: sec.bytes / 1e6, errors: sec.errors })),
  }));
  const totalOps = ops.reduce((a, o) => a + o.ops + o.errors, 0);
  return {
    wallMs: load.wallMs,
    ops,
    client: { cpuPercent: (load.clientCpuMs / load.wallMs) * 100, cpuMsPerOp: totalOps ? load.clientCpuMs / totalOps : 0 },
  };
}

/** The phase's one number: what the scenario is about. */
export function headlineValue(phase: PhaseResult): number {
  const sum = (f: (o: OpSummary) => number) => phase.ops.reduce((a, o) => a + f(o), 0);
  if (phase.headline === 'MB/s') return sum((o) => o.mbPerSec);
  if (phase.headline === 'keys/s') return sum((o) => o.itemsPerSec);
  return sum((o) => o.opsPerSec);
}

export function phaseErrors(phase: PhaseResult): number {
  return phase.ops.reduce((a, o) => a + o.errors, 0);
}

/** Rows as aligned text: the first `leftColumns` columns flush left, numbers flush right. */
export function textGrid(rows: string[][], leftColumns = 1): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => (c < leftColumns ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

/** Rows (the first is the header) as a Markdown table. */
export function markdownGrid(rows: string[][]): string {
  const align = rows[0]!.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|');
  return [`| ${rows[0]!.join(' | ')} |`, `|${align}|`, ...rows.slice(1).map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function opRows(phase: PhaseResult): string[][] {
  return phase.ops.map((o) => [
    `${phase.target} ${phase.title} ${o.op}`,
    formatNumber(o.opsPerSec), formatNumber(o.mbPerSec), formatNumber(o.itemsPerSec),
    formatMicros(o.latencyUs.p50), formatMicros(o.latencyUs.p90), formatMicros(o.latencyUs.p99), formatMicros(o.latencyUs.max),
    o.errors ? `${o.errors} (${Object.entries(o.errorCodes).map(([c, n]) => `${c}: ${n}`).join(', ')})` : '0',
  ]);
}

const OP_HEADER = ['phase', 'ops/s', 'MB/s', 'keys/s', 'p50', 'p90', 'p99', 'max', 'errors'];

function processRows(phase: PhaseResult): string[][] {
  return [
    ...phase.processes.map((p) => [
      `${phase.target} ${p.role} (pid ${p.pid})`, formatSize(p.peakRssBytes), formatSize(p.lifetimePeakRssBytes),
      `${p.cpuPercent.toFixed(0)}%`,
    ]),
    [`${phase.target} bench client`, '', '', `${phase.client.cpuPercent.toFixed(0)}% (${phase.client.cpuMsPerOp.toFixed(3)} ms/op)`],
  ];
}

const PROCESS_HEADER = ['process', 'peak RSS', 'VmHWM', 'CPU'];

export function terminalTable(phases: PhaseResult[]): string {
  const ops = textGrid([OP_HEADER, ...phases.flatMap(opRows)]);
  const processes = textGrid([PROCESS_HEADER, ...phases.flatMap(processRows)]);
  return `${ops}\n\n${processes}\n`;
}

export interface ReportFolder {
  dir: string;
  write(name: string, text: string): string;
}

export function reportFolder(label: string, outDir?: string): ReportFolder {
  const root = outDir ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench', 'results');
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const dir = join(root, `${label}-${stamp}`);
  mkdirSync(dir, { recursive: true });
  return { dir, write: (name, text) => { writeFileSync(join(dir, name), text); return join(dir, name); } };
}

/** Per-second throughput and latency CDF charts for a set of phases that belong together. */
export function phaseCharts(folder: ReportFolder, file: string, title: string, phases: PhaseResult[], nameOf: (p: PhaseResult, o: OpSummary) => string): string {
  const mb = phases.some((p) => p.headline === 'MB/s');
  const throughput: ChartSeries[] = phases.flatMap((p) => p.ops.map((o) => ({
    name: nameOf(p, o),
    points: o.series.map((s) => [s.second + 1, mb ? s.mbPerSec : s.ops] as [number, number]),
  })));
  const latency: ChartSeries[] = phases.flatMap((p) => p.ops.map((o) => {
    let seen = 0;
    return { name: nameOf(p, o), points: o.histogram.map(([us, n]) => [us / 1000, (100 * (seen += n)) / o.ops] as [number, number]) };
  }));
  folder.write(`${file}-throughput.svg`, renderLineChart({ title: `${title}: throughput`, xLabel: 'second', yLabel: mb ? 'MB/s' : 'ops/s', series: throughput }));
  folder.write(`${file}-latency.svg`, renderLineChart({ title: `${title}: latency CDF`, xLabel: 'latency (ms, log)', yLabel: '% of requests at or below', series: latency, logX: true }));
  return `![throughput](${file}-throughput.svg)\n![latency](${file}-latency.svg)\n`;
}

export function markdownPhases(phases: PhaseResult[]): string {
  const ops = markdownGrid([OP_HEADER, ...phases.flatMap(opRows)]);
  const processes = markdownGrid([PROCESS_HEADER, ...phases.flatMap(processRows)]);
  const samples = phases.flatMap((p) => p.ops.flatMap((o) => Object.entries(o.errorSamples).map(([code, m]) => `- ${p.target} ${p.title} ${o.op} \`${code}\`: ${m}`)));
  return `${ops}\n\nServer processes (peak RSS sampled during the phase, VmHWM over the process's life, CPU as % of one core) and the bench client:\n\n${processes}\n` +
    (samples.length ? `\nFirst error of each kind:\n\n${samples.join('\n')}\n` : '');
}

/** The machine and how busy it is: on a shared box, figures only mean something next to this. */
export function machineNote(): string {
  const cores = cpus();
  return `${cores.length} x ${cores[0]?.model.trim() ?? 'unknown CPU'}, 1-minute load average ${loadavg()[0]!.toFixed(1)}`;
}

/** Rewrites `\r` progress in place on a terminal; silent when stdout is not a TTY. */
export function progressLine(label: string): { update(text: string): void; done(): void } {
  if (!process.stdout.isTTY) return { update: () => undefined, done: () => undefined };
  return {
    update: (text) => process.stdout.write(`\r\x1b[2K${label} ${text}`),
    done: () => process.stdout.write('\r\x1b[2K'),
  };
}
