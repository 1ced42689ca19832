// Memory and CPU of server processes the bench started, read from /proc: VmRSS sampled during a
// phase for its peak, VmHWM for the lifetime peak, utime+stime for CPU.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface WatchedProcess {
  role: string;
  pid: number;
}

export interface ProcessUsage extends WatchedProcess {
  /** Highest VmRSS seen while sampling this phase. */
  peakRssBytes: number;
  /** VmHWM at the end: the peak over the process's life. */
  lifetimePeakRssBytes: number;
  cpuSeconds: number;
  /** CPU seconds per wall second, in percent of one core. */
  cpuPercent: number;
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const SAMPLE_INTERVAL_MS = 200;

function statusField(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may itself hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime
}

function readOr<T>(read: () => T, fallback: T): T {
  try {
    return read();
  } catch {
    return fallback; // the process has exited
  }
}

/** Samples a set of processes from start() to stop(). */
export class ProcessSampler {
  private readonly peaks = new Map<number, number>();
  private readonly cpuAtStart = new Map<number, number>();
  private timer?: NodeJS.Timeout;
  private startedAt = 0;

  constructor(private readonly processes: readonly WatchedProcess[]) {}

  start(): void {
    this.startedAt = Date.now();
    for (const { pid } of this.processes) this.cpuAtStart.set(pid, readOr(() => cpuSeconds(pid), 0));
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): ProcessUsage[] {
    clearInterval(this.timer);
    this.sample();
    const wallSeconds = Math.max(0.001, (Date.now() - this.startedAt) / 1000);
    return this.processes.map(({ role, pid }) => {
      const cpu = readOr(() => cpuSeconds(pid), 0) - (this.cpuAtStart.get(pid) ?? 0);
      return {
        role,
        pid,
        peakRssBytes: this.peaks.get(pid) ?? 0,
        lifetimePeakRssBytes: readOr(() => statusField(pid, 'VmHWM'), 0),
        cpuSeconds: cpu,
        cpuPercent: (cpu / wallSeconds) * 100,
      };
    });
  }

  private sample(): void {
    for (const { pid } of this.processes) {
      const rss = readOr(() => statusField(pid, 'VmRSS'), 0);
      if (rss > (this.peaks.get(pid) ?? 0)) this.peaks.set(pid, rss);
    }
  }
}
