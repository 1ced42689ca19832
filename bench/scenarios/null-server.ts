// `npm run bench -- null-server [--port P]`: run the null S3 server (bench/lib/null-server.ts) until
// SIGINT/SIGTERM, for measuring the client or the HTTP ceiling by hand.
import { flag, parseArgs } from '../../src/cli/args.js';
import { startNullServer } from '../lib/null-server.js';

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const server = await startNullServer(Number(flag(args, 'port') ?? 0), flag(args, 'host') ?? '127.0.0.1');
  process.stdout.write(`null S3 server listening on http://127.0.0.1:${server.port}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  return 0;
}
