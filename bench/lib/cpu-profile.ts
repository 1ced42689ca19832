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
  /** Share of the profile not idle: how busy the process's main thread was. */
  busyPercent: number;
  /** Self time as a share of the busy time. */
  hottest: HotFunction[];
  /** The same, added up per source file or package. */
  hottestFiles: HotFunction[];
}

const NOT_WORK = new Set(['(idle)']);

function shortLocation(url: string, line: number): string {
  const path = url.replace(/^file:\/\//, '');
  const inRepo = path.match(/\/(dist\/.*|node_modules\/.*)$/)?.[1];
  return path ? `${inRepo ?? path}:${line + 1}` : '';
}

export function summarizeProfile(file: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  let busy = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    total += hits;
    if (hits === 0 || NOT_WORK.has(functionName)) continue;
    busy += hits;
    const location = shortLocation(url, lineNumber);
    add(byFunction, `${functionName || '(anonymous)'} ${location}`.trim(), hits);
    add(byFile, fileGroup(location) || functionName, hits);
  }
  const ranked = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([name, hits]) => ({ name, selfPercent: (100 * hits) / Math.max(1, busy) }));
  const pid = Number(/\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(file)?.[1] ?? 0);
  return {
    pid, file, totalMs: (profile.endTime - profile.startTime) / 1000,
    busyPercent: (100 * busy) / Math.max(1, total), hottest: ranked(byFunction), hottestFiles: ranked(byFile),
  };
}

function add(map: Map<string, number>, key: string, hits: number): void {
  map.set(key, (map.get(key) ?? 0) + hits);
}

/** `node_modules/@grpc/grpc-js/...` -> `@grpc/grpc-js`; `dist/src/x/y.js:12` -> `dist/src/x/y.js`; builtins by name. */
function fileGroup(location: string): string {
  const path = location.replace(/:\d+$/, '');
  const pkg = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1];
  return pkg ?? path;
}

export function summarizeProfiles(dir: string): ProfileSummary[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => summarizeProfile(join(dir, f)));
}
