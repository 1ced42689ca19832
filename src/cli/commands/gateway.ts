// `tessera gateway --seeds HOST:PORT[,HOST:PORT...]`: an S3 gateway for a multi-host cluster.
// The cluster secret comes from TESSERA_CLUSTER_SECRET (or --secret-file).
import { readFileSync } from 'node:fs';
import { createClusterClient } from '../../replication/cluster-client.js';
import { flag, hasFlag, parseArgs, requireFlag } from '../args.js';
import { NODE_TLS_HELP, nodeTlsFrom } from '../node-tls-flags.js';
import { onShutdown, serveS3 } from '../serve.js';

const HELP = `usage: tessera gateway --seeds HOST:PORT[,...] [--secret-file F] [--host H] [--port P]
                       [--region R] [--domain D] [--website-domain W] [--tls-cert F --tls-key F]
                       [--sse-master-key-file F]
--website-domain W serves buckets with a website configuration as static sites at <bucket>.W.
SSE-S3 needs the same master key on every gateway: TESSERA_SSE_MASTER_KEY or --sse-master-key-file.
${NODE_TLS_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['help']);
  if (hasFlag(args, 'help')) { process.stdout.write(HELP); return 0; }
  const secretFile = flag(args, 'secret-file');
  const secret = secretFile ? readFileSync(secretFile, 'utf8').trim() : process.env.TESSERA_CLUSTER_SECRET;
  if (!secret) throw new Error('set TESSERA_CLUSTER_SECRET or --secret-file');
  const store = await createClusterClient({ seeds: requireFlag(args, 'seeds').split(','), secret, tls: nodeTlsFrom(args) });
  const gateway = await serveS3(store, args, { host: '0.0.0.0', port: 9000 });
  process.stdout.write(`tessera gateway ready: S3 at ${gateway.url}\n`);
  onShutdown(async () => {
    await gateway.close();
    await store.close();
  });
  return 0;
}
