// `tessera bench <scenario> [options]`: the benchmark harness, same as `npm run bench -- ...`.
import { runBench } from '../../../bench/dispatch.js';

export async function run(argv: string[]): Promise<number> {
  return runBench(argv);
}
