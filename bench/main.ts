// Entry point of `npm run bench -- <scenario> [options]`; see bench/dispatch.ts.
import { runBench } from './dispatch.js';

runBench(process.argv.slice(2)).then(
  (code) => { if (code) process.exitCode = code; },
  (err: unknown) => { console.error(err); process.exitCode = 1; },
);
