// Running the same phases against several connections and presenting them side by side:
// a ratio table against the null server, the issue's targets, charts per scenario, and where
// the time went (CPU profiles) for the Tessera processes.
import { parseArgs, type ParsedArgs } from '../../src/cli/args.js';
import { connect } from './connection.js';
import { summarizeProfiles, type ProfileSummary } from './cpu-profile.js';
import type { ObjectRef } from './load-types.js';
import { phaseSpec } from './load-scenario.js';
import { runPhase, type PhaseSpec } from './phase.js';
import { headlineValue, markdownPhases, phaseCharts, phaseErrors, type PhaseResult, type ReportFolder } from './report.js';
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
const PASSED_THROUGH = ['duration', 'clients', 'bucket'];

export function specFor(scenario: ComparedScenario, userArgs: ParsedArgs): PhaseSpec {
  const passed = PASSED_THROUGH.flatMap((name) => (userArgs.flags.get(name) ?? []).map((v) => `--${name}=${v}`));
  const [name, ...rest] = scenario.argv.split(/\s+/);
  const spec = phaseSpec(name!, parseArgs([...rest, ...passed]));
  return { ...spec, scenario: scenario.id };
}

/**
 * Starts `target` (or connects to the endpoint the flags name), runs every scenario against it,
 * stops it; failures are recorded, not thrown.
 */
export async function runTarget(target: string | undefined, scenarios: ComparedScenario[], userArgs: ParsedArgs, seed: string, runId: string): Promise<TargetRun> {
  const run: TargetRun = { target: target ?? 'endpoint', phases: new Map(), profiles: [] };
  process.stdout.write(`\n== ${run.target}\n`);
  let connection;
  try {
    connection = await connect(userArgs, target);
  } catch (err) {
    run.failure = `could not start: ${(err as Error).message}`;
    process.stdout.write(`${run.failure}\n`);
    return run;
  }
  const written = new Map<string, ObjectRef[]>();
  let roles = connection.processes();
  try {
    for (const scenario of scenarios) {
      const spec = specFor(scenario, userArgs);
      try {
        const reuse = scenario.readsFrom ? written.get(scenario.readsFrom) : undefined;
        const phase = await runPhase(connection, spec, seed, runId, reuse?.length ? reuse : undefined);
        run.phases.set(scenario.id, phase.result);
        written.set(scenario.id, phase.written);
        process.stdout.write(`${scenario.id.padEnd(14)} ${formatNumber(headlineValue(phase.result)).padStart(10)} ${phase.result.headline}` +
          `${phaseErrors(phase.result) ? `  (${phaseErrors(phase.result)} errors)` : ''}\n`);
      } catch (err) {
        process.stdout.write(`${scenario.id.padEnd(14)} failed: ${(err as Error).message}\n`);
      }
    }
    roles = connection.processes();
  } finally {
    await connection.close();
  }
  if (connection.workDir) {
    const roleOf = new Map(roles.map((p) => [p.pid, p.role]));
    run.profiles = summarizeProfiles(join(connection.workDir, 'profiles')).map((p) => ({ ...p, role: roleOf.get(p.pid) ?? `pid ${p.pid}` }));
  }
  return run;
}

export interface TargetCheck {
  claim: string;
  met: boolean | undefined;
  detail: string;
}

const REAL_OTHERS = ['s3rver', 'moto'];

/** The issue's performance targets, judged on this run's figures. */
export function checkTargets(runs: TargetRun[]): TargetCheck[] {
  const value = (target: string, scenario: string) => {
    const phase = runs.find((r) => r.target === target)?.phases.get(scenario);
    return phase ? headlineValue(phase) : undefined;
  };
  const checks: TargetCheck[] = [];
  for (const [scenario, floor] of [['put-64m', 0.28], ['get-64m', 0.35]] as const) {
    const ours = value('tessera-cluster', scenario);
    const ceiling = value('null', scenario);
    const ratio = ours !== undefined && ceiling ? ours / ceiling : undefined;
    checks.push({
      claim: `${scenario} on the cluster >= ${floor}x the null server's MB/s`,
      met: ratio === undefined ? undefined : ratio >= floor,
      detail: ratio === undefined ? 'not measured' : `${ratio.toFixed(2)}x (${formatNumber(ours!)} vs ${formatNumber(ceiling!)} MB/s)`,
    });
  }
  for (const scenario of ['put-4k', 'get-4k']) {
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

export function ratioTable(runs: TargetRun[], scenarios: ComparedScenario[]): string[][] {
  const header = ['scenario', 'unit', ...runs.map((r) => r.target)];
  const rows = scenarios.map((s) => {
    const ceiling = runs.find((r) => r.target === 'null')?.phases.get(s.id);
    const base = ceiling ? headlineValue(ceiling) : undefined;
    const unit = runs.map((r) => r.phases.get(s.id)?.headline).find(Boolean) ?? '';
    return [s.id, unit, ...runs.map((r) => {
      const phase = r.phases.get(s.id);
      if (!phase) return r.failure ? 'n/a' : 'failed';
      const v = headlineValue(phase);
      const ratio = base && r.target !== 'null' ? ` (${(v / base).toFixed(2)}x)` : '';
      return `${formatNumber(v)}${ratio}${phaseErrors(phase) ? ' !' : ''}`;
    })];
  });
  return [header, ...rows];
}

export function comparisonMarkdown(folder: ReportFolder, runs: TargetRun[], scenarios: ComparedScenario[], checks: TargetCheck[], command: string): string {
  const table = ratioTable(runs, scenarios);
  const md: string[] = [
    '# Tessera side by side', '',
    `Command: \`${command}\``, '',
    'Headline figure per scenario; in brackets the ratio to the null server (the HTTP ceiling of Node on this machine). `!` marks a phase with errors.', '',
    `| ${table[0]!.join(' | ')} |`, `|${table[0]!.map(() => ' --- ').join('|')}|`, ...table.slice(1).map((r) => `| ${r.join(' | ')} |`), '',
    '## Targets', '',
    ...checks.map((c) => `- ${c.met === undefined ? 'NOT MEASURED' : c.met ? 'MET' : 'MISSED'}: ${c.claim} — ${c.detail}`), '',
  ];
  const failures = runs.filter((r) => r.failure);
  if (failures.length) md.push('## Targets that did not run', '', ...failures.map((r) => `- ${r.target}: ${r.failure}`), '');
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
