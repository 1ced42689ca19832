// Phase timings for finding where an agent command spends its time: with TESSERA_TRACE=1 each
// phase prints, on stderr, the milliseconds since the process started (so start-up counts too)
// and, on Linux, the CPU milliseconds the main thread has used so far.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const enabled = process.env.TESSERA_TRACE === '1';

export function trace(phase: string): void {
  if (enabled) process.stderr.write(`tessera trace: ${performance.now().toFixed(0).padStart(6)} ms ${mainThreadCpu()} ${phase}\n`);
}

/** Runs `work` and traces its start and end. */
export async function traced<T>(phase: string, work: Promise<T> | (() => Promise<T>)): Promise<T> {
  trace(`${phase} ...`);
  const result = await (typeof work === 'function' ? work() : work);
  trace(`${phase} done`);
  return result;
}

/** `(cpu N ms)` of the calling thread (utime + stime, 10 ms ticks), or '' where /proc has no such file. */
function mainThreadCpu(): string {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return `(cpu ${String((Number(fields[11]) + Number(fields[12])) * 10).padStart(4)} ms)`;
  } catch {
    return '';
  }
}
