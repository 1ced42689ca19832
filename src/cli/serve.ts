// Serving S3 on top of a cluster client: flags shared by `cluster`, `start` and `gateway`,
// background rebalancing when the map changes, and a clean shutdown on SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import { createLogger, parseLogLevel } from '../common/log.js';
import { startGateway } from '../gateway/server.js';
import { loadMasterKeys } from '../gateway/sse.js';
import type { ClusterClient } from '../replication/cluster-client.js';
import { type ParsedArgs, flag } from './args.js';
import { rootCredentials } from './launch.js';

export interface Served {
  url: string;
  close(): Promise<void>;
}

/** `defaults.dataDir`: where an SSE-S3 master key is generated when none is configured. */
export async function serveS3(store: ClusterClient, args: ParsedArgs, defaults: { host: string; port: number; dataDir?: string }): Promise<Served> {
  const credentials = rootCredentials();
  const cert = flag(args, 'tls-cert') ?? process.env.TESSERA_TLS_CERT;
  const key = flag(args, 'tls-key') ?? process.env.TESSERA_TLS_KEY;
  const gateway = await startGateway({
    store,
    host: flag(args, 'host') ?? process.env.TESSERA_HOST ?? defaults.host,
    port: Number(flag(args, 'port') ?? process.env.TESSERA_PORT ?? defaults.port),
    region: flag(args, 'region') ?? process.env.TESSERA_REGION,
    baseDomain: flag(args, 'domain') ?? process.env.TESSERA_DOMAIN,
    websiteDomain: flag(args, 'website-domain') ?? process.env.TESSERA_WEBSITE_DOMAIN,
    rootCredentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey },
    tls: cert && key ? { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') } : undefined,
    logger: createLogger({ name: 'tessera-gateway', level: parseLogLevel(flag(args, 'log-level') ?? process.env.TESSERA_LOG_LEVEL) }),
    admin: { metricsToken: flag(args, 'metrics-token') ?? process.env.TESSERA_METRICS_TOKEN },
    sseMasterKeys: loadMasterKeys({ envValue: process.env.TESSERA_SSE_MASTER_KEY, keyFile: flag(args, 'sse-master-key-file'), dataDir: defaults.dataDir }),
  });
  store.rebalanceOnMapChange();
  if (credentials.isDefault) {
    process.stdout.write(`credentials: access key '${credentials.accessKeyId}', secret key '${credentials.secretAccessKey}' ` +
      `(defaults: set TESSERA_ACCESS_KEY and TESSERA_SECRET_KEY)\n`);
  }
  return gateway;
}

/** Run `shutdown` once on SIGINT or SIGTERM, then exit. */
export function onShutdown(shutdown: () => Promise<void>): void {
  let closing = false;
  const handler = () => {
    if (closing) return;
    closing = true;
    shutdown().finally(() => process.exit(0));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
