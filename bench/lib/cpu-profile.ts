// Where a Node process spent its CPU: the hottest functions by self time in the V8 profiles
// that `node --cpu-prof` writes on exit.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

export interface HotFunction {
  name: string;
  selfPercent: number;
}

export interface ProfileSummary {
  pid: number;
  file: string;
  totalMs: number;
  hottest: HotFunction[];
}

function shortLocation(url: string, line: number): string {
  const path = url.replace(/^file:\/\//, '');
  const inRepo = path.match(/\/(dist\/.*|node_modules\/.*)$/)?.[1];
  return path ? `${inRepo ?? path}:${line + 1}` : '';
}

export function summarizeProfile(file: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const selfHits = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = `${functionName || '(anonymous)'} ${shortLocation(url, lineNumber)}`.trim();
    selfHits.set(name, (selfHits.get(name) ?? 0) + hits);
    total += hits;
  }
  const hottest = [...selfHits].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([name, hits]) => ({ name, selfPercent: (100 * hits) / Math.max(1, total) }));
  const pid = Number(/\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(file)?.[1] ?? 0);
  return { pid, file, totalMs: (profile.endTime - profile.startTime) / 1000, hottest };
}

export function summarizeProfiles(dir: string): ProfileSummary[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => summarizeProfile(join(dir, f)));
}
