// Phase timings for finding where an agent command spends its time: with TESSERA_TRACE=1 each
// phase prints, on stderr, the milliseconds since the process started (so start-up counts too).
import { performance } from 'node:perf_hooks';

const enabled = process.env.TESSERA_TRACE === '1';

export function trace(phase: string): void {
  if (enabled) process.stderr.write(`tessera trace: ${performance.now().toFixed(0).padStart(6)} ms ${phase}\n`);
}

/** Runs `work` and traces its start and end. */
export async function traced<T>(phase: string, work: Promise<T> | (() => Promise<T>)): Promise<T> {
  trace(`${phase} ...`);
  const result = await (typeof work === 'function' ? work() : work);
  trace(`${phase} done`);
  return result;
}
