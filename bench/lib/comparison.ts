// Running the same phases against several connections and presenting them side by side:
// a ratio table against the null server, the issue's targets, charts per scenario, and where
// the time went (CPU profiles) for the Tessera processes.
import { parseArgs, type ParsedArgs } from '../../src/cli/args.js';
import { connect, type Connection } from './connection.js';
import { summarizeProfiles, type ProfileSummary } from './cpu-profile.js';
import type { ObjectRef } from './load-types.js';
import { phaseSpec } from './load-scenario.js';
import { runPhase, type PhaseSpec } from './phase.js';
import { headlineValue, markdownGrid, markdownPhases, phaseCharts, phaseErrors, type PhaseResult, type ReportFolder } from './report.js';
import { formatNumber } from './units.js';
import { join } from 'node:path';

export interface ComparedScenario {
  id: string;
  /** A load scenario's command line, e.g. `put --size 4KiB --concurrency 32`. */
  argv: string;
  /** Reuse the objects this earlier scenario wrote instead of preparing new ones. */
  readsFrom?: string;
}

export interface TargetRun {
  target: string;
  phases: Map<string, PhaseResult>;
  profiles: Array<ProfileSummary & { role: string }>;
  failure?: string;
}

/** Workload flags the user may set for every scenario (appended, so they win). */
const PASSED_THROUGH = ['duration', 'warmup', 'clients', 'bucket'];

export function specFor(scenario: ComparedScenario, userArgs: ParsedArgs): PhaseSpec {
  const passed = PASSED_THROUGH.flatMap((name) => (userArgs.flags.get(name) ?? []).map((v) => `--${name}=${v}`));
  const [name, ...rest] = scenario.argv.split(/\s+/);
  const spec = phaseSpec(name!, parseArgs([...rest, ...passed]));
  return { ...spec, scenario: scenario.id };
}

interface LiveTarget {
  run: TargetRun;
  connection?: Connection;
  written: Map<string, ObjectRef[]>;
}

/**
 * Starts every target (undefined: the endpoint the flags name) and runs each scenario against all
 * of them in turn, so the figures compared sit minutes, not a whole run, apart on a machine whose
 * load drifts; then stops them. Failures are recorded, not thrown.
 */
export async function runTargets(targets: Array<string | undefined>, scenarios: ComparedScenario[], userArgs: ParsedArgs, seed: string, runId: string): Promise<TargetRun[]> {
  const live: LiveTarget[] = [];
  for (const target of targets) {
    const run: TargetRun = { target: target ?? 'endpoint', phases: new Map(), profiles: [] };
    try {
      live.push({ run, connection: await connect(userArgs, target), written: new Map() });
    } catch (err) {
      run.failure = `could not start: ${(err as Error).message}`;
      process.stdout.write(`${run.target}: ${run.failure}\n`);
      live.push({ run, written: new Map() });
    }
  }
  try {
    for (const scenario of scenarios) {
      process.stdout.write(`\n== ${scenario.id}: ${scenario.argv}\n`);
      for (const target of live.filter((t) => t.connection)) await runScenario(target, scenario, userArgs, seed, runId);
    }
  } finally {
    for (const target of live) if (target.connection) await closeAndCollectProfiles(target.run, target.connection);
  }
  return live.map((t) => t.run);
}

async function runScenario(target: LiveTarget, scenario: ComparedScenario, userArgs: ParsedArgs, seed: string, runId: string): Promise<void> {
  const label = target.run.target.padEnd(16);
  try {
    const reuse = scenario.readsFrom ? target.written.get(scenario.readsFrom) : undefined;
    const phase = await runPhase(target.connection!, specFor(scenario, userArgs), seed, runId, reuse?.length ? reuse : undefined);
    target.run.phases.set(scenario.id, phase.result);
    target.written.set(scenario.id, phase.written);
    const errors = phaseErrors(phase.result);
    process.stdout.write(`${label} ${formatNumber(headlineValue(phase.result)).padStart(10)} ${phase.result.headline}${errors ? `  (${errors} errors)` : ''}\n`);
  } catch (err) {
    process.stdout.write(`${label} failed: ${(err as Error).message}\n`);
  }
}

async function closeAndCollectProfiles(run: TargetRun, connection: Connection): Promise<void> {
  const roleOf = new Map(connection.processes().map((p) => [p.pid, p.role]));
  await connection.close();
  if (!connection.workDir) return;
  run.profiles = summarizeProfiles(join(connection.workDir, 'profiles')).map((p) => ({ ...p, role: roleOf.get(p.pid) ?? `pid ${p.pid}` }));
}

export interface TargetCheck {
  claim: string;
  met: boolean | undefined;
  detail: string;
}

const REAL_OTHERS = ['s3rver', 'moto'];

/** The issue's performance targets, judged on this run's figures. */
export function checkTargets(runs: TargetRun[], scenarios: ComparedScenario[]): TargetCheck[] {
  const ran = new Set(scenarios.map((s) => s.id));
  const value = (target: string, scenario: string) => {
    const phase = runs.find((r) => r.target === target)?.phases.get(scenario);
    return phase ? headlineValue(phase) : undefined;
  };
  const checks: TargetCheck[] = [];
  for (const [scenario, floor] of [['put-64m', 0.28], ['get-64m', 0.35]] as const) {
    if (!ran.has(scenario)) continue;
    const ours = value('tessera-cluster', scenario);
    const ceiling = value('null', scenario);
    const ratio = ours !== undefined && ceiling ? ours / ceiling : undefined;
    checks.push({
      claim: `${scenario} on the cluster >= ${floor}x the null server's MB/s`,
      met: ratio === undefined ? undefined : ratio >= floor,
      detail: ratio === undefined ? 'not measured' : `${ratio.toFixed(2)}x (${formatNumber(ours!)} vs ${formatNumber(ceiling!)} MB/s)`,
    });
  }
  for (const scenario of ['put-4k', 'get-4k'].filter((s) => ran.has(s))) {
    for (const ours of ['tessera', 'tessera-cluster']) {
      const mine = value(ours, scenario);
      const others = REAL_OTHERS.map((o) => [o, value(o, scenario)] as const).filter(([, v]) => v !== undefined);
      if (mine === undefined || others.length === 0) {
        checks.push({ claim: `${scenario} ops/s of ${ours} ahead of every other real S3 server`, met: undefined, detail: 'not measured' });
        continue;
      }
      const best = others.reduce((a, b) => (b[1]! > a[1]! ? b : a));
      checks.push({
        claim: `${scenario} ops/s of ${ours} ahead of every other real S3 server`,
        met: mine > best[1]!,
        detail: `${formatNumber(mine)} vs ${best[0]} ${formatNumber(best[1]!)} ops/s`,
      });
    }
  }
  return checks;
}

/** Units of the phase's headline (ops, MB, keys) per CPU-second of the server's processes. */
export function perServerCpuSecond(phase: PhaseResult): number | undefined {
  const cpu = phase.processes.reduce((sum, p) => sum + p.cpuSeconds, 0);
  return cpu > 0 ? (headlineValue(phase) * phase.wallMs) / 1000 / cpu : undefined;
}

/** Each target's figure per scenario, with its ratio to the null server's. */
export function ratioTable(runs: TargetRun[], scenarios: ComparedScenario[], metric: (p: PhaseResult) => number | undefined = headlineValue): string[][] {
  const header = ['scenario', 'unit', ...runs.map((r) => r.target)];
  const rows = scenarios.map((s) => {
    const ceiling = runs.find((r) => r.target === 'null')?.phases.get(s.id);
    const base = ceiling ? metric(ceiling) : undefined;
    const unit = runs.map((r) => r.phases.get(s.id)?.headline).find(Boolean) ?? '';
    return [s.id, unit, ...runs.map((r) => {
      const phase = r.phases.get(s.id);
      if (!phase) return r.failure ? 'n/a' : 'failed';
      const v = metric(phase);
      if (v === undefined) return 'n/a';
      const ratio = base && r.target !== 'null' ? ` (${(v / base).toFixed(2)}x)` : '';
      return `${formatNumber(v)}${ratio}${phaseErrors(phase) ? ' !' : ''}`;
    })];
  });
  return [header, ...rows];
}

export function comparisonMarkdown(folder: ReportFolder, runs: TargetRun[], scenarios: ComparedScenario[], checks: TargetCheck[], command: string, machine: { before: string; after: string }): string {
  const table = ratioTable(runs, scenarios);
  const md: string[] = [
    '# Tessera side by side', '',
    `Command: \`${command}\``, '',
    `Machine: ${machine.before} at the start; ${machine.after.replace(/.*, /, '')} at the end.`, '',
    'Headline figure per scenario; in brackets the ratio to the null server (the HTTP ceiling of Node on this machine). `!` marks a phase with errors.', '',
    markdownGrid(table), '',
    'The same per CPU-second of the server\'s processes (ops, MB or keys per CPU-second): steadier than rates on a shared machine whose load drifts.', '',
    markdownGrid(ratioTable(runs, scenarios, perServerCpuSecond)), '',
  ];
  if (checks.length) md.push('## Performance targets', '', ...checks.map((c) => `- ${c.met === undefined ? 'NOT MEASURED' : c.met ? 'MET' : 'MISSED'}: ${c.claim} — ${c.detail}`), '');
  const failures = runs.filter((r) => r.failure);
  if (failures.length) md.push('## Servers that did not run', '', ...failures.map((r) => `- ${r.target}: ${r.failure}`), '');
  md.push(clientEvidence(runs), '');
  for (const scenario of scenarios) {
    const phases = runs.flatMap((r) => r.phases.get(scenario.id) ?? []);
    if (phases.length === 0) continue;
    md.push(`## ${scenario.id}: \`${scenario.argv}\``, '', markdownPhases(phases), phaseCharts(folder, scenario.id, scenario.id, phases, (p, o) => `${p.target} ${o.op}`), '');
  }
  md.push(profilesMarkdown(runs));
  return md.join('\n');
}

/** Where the time goes in the profiled processes (--cpu-prof). */
export function profilesMarkdown(runs: TargetRun[]): string {
  const profiled = runs.filter((r) => r.profiles.length);
  if (profiled.length === 0) return '';
  const md: string[] = ['## Where the time goes (CPU profiles, self time over the whole run)', ''];
  for (const run of profiled) {
    for (const p of run.profiles) {
      md.push(`### ${run.target} ${p.role}: busy ${p.busyPercent.toFixed(0)}% of ${(p.totalMs / 1000).toFixed(0)} s profiled`, '',
        'Self time as % of the busy time, per function and per file or package:', '',
        '| function | self % |', '| --- | ---: |', ...p.hottest.map((h) => `| \`${h.name}\` | ${h.selfPercent.toFixed(1)} |`), '',
        '| file or package | self % |', '| --- | ---: |', ...p.hottestFiles.map((h) => `| \`${h.name}\` | ${h.selfPercent.toFixed(1)} |`), '');
    }
  }
  return md.join('\n');
}

/** Against the null server, is the client or the server the limit? */
function clientEvidence(runs: TargetRun[]): string {
  const nullRun = runs.find((r) => r.target === 'null');
  if (!nullRun) return '';
  const rows = [...nullRun.phases.values()].map((p) => {
    const server = p.processes.reduce((a, s) => a + s.cpuPercent, 0);
    return `| ${p.scenario} | ${server.toFixed(0)}% | ${p.client.cpuPercent.toFixed(0)}% | ${p.client.cpuMsPerOp.toFixed(3)} |`;
  });
  return ['## Is the client the bottleneck?', '',
    'Against the null server, CPU of the server process and of the bench client (all its worker threads), as % of one core, on this 2-core machine. ' +
    'The null server is one process, so near 100% it is the limit; the client is the limit only if it nears 200%.', '',
    '| scenario | null server CPU | client CPU | client CPU ms/op |', '| --- | ---: | ---: | ---: |', ...rows].join('\n');
}
