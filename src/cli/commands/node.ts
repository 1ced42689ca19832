// `tessera node`: one storage node process serving one data directory.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger, parseLogLevel } from '../../common/log.js';
import { NodeClient } from '../../replication/node-client.js';
import { serveNodeMetrics } from '../../storage-node/metrics.js';
import { startStorageNode } from '../../storage-node/server.js';
import type { NodeTls } from '../../common/node-tls.js';
import { flag, hasFlag, type ParsedArgs, parseArgs, requireFlag } from '../args.js';
import { NODE_TLS_HELP, nodeTlsFrom } from '../node-tls-flags.js';

const HELP = `usage: tessera node --id ID --data DIR --listen HOST:PORT [--secret S] [--capacity BYTES] [--zone Z]
                    [--scrub-interval DURATION] [--orphan-grace DURATION] [--scrub-rate BYTES_PER_S] [--bulk-listen HOST:PORT|off]
                    [--meta-listen HOST:PORT|off]
                    [--log-level LEVEL]
  --secret            cluster secret (default: env TESSERA_CLUSTER_SECRET)
  --metrics-listen    serve Prometheus metrics at http://HOST:PORT/_tessera/metrics (default off)
  --metrics-token     require \`Authorization: Bearer TOKEN\` for metrics (default: env TESSERA_METRICS_TOKEN)
  --capacity          byte limit for shard data; writes beyond it fail as disk full
  --bulk-listen       address of the bulk shard channel (default: the --listen host, a free port)
  --meta-listen       address of the metadata channel (default: the --listen host, a free port;
                      off by default where the bulk channel is off)
  --scrub-interval    background scrub period, e.g. 30m, 1h (default 1h; 0 disables)
  --orphan-grace      age after which unreferenced shard files are removed (default 24h)
  --scrub-rate        background scrub read rate in bytes/s (default 33554432, 32 MiB/s)
  --log-level         fatal|error|warn|info|debug|trace|silent (default: env TESSERA_LOG_LEVEL or warn)
${NODE_TLS_HELP}Env TESSERA_BULK_SHM=off: take no shared-memory rings from gateways on this host (shard bytes then
  come over the bulk socket, as from gateways on other hosts).
Prints "tessera node ID listening on HOST:PORT" when ready; stops cleanly on SIGTERM/SIGINT.
`;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };

/** "90s", "30m", "1h", or plain milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text);
  if (!match) throw new Error(`bad duration '${text}' (use e.g. 500ms, 30s, 10m, 1h)`);
  return Number(match[1]) * UNIT_MS[match[2] ?? 'ms']!;
}

function optionalNumber(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`--${name} must be a byte count`);
  return value;
}

/**
 * Handlers turn every failure into a gRPC status; should anything still slip past them, one bad
 * call must not take the node (and every other call on it) down: log it and keep serving.
 */
function keepServingOnStrayErrors(): void {
  const report = (what: string) => (err: unknown) => {
    process.stderr.write(`tessera node: ${what}: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  };
  process.on('uncaughtException', report('uncaught exception'));
  process.on('unhandledRejection', report('unhandled rejection'));
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, ['help']);
  if (hasFlag(args, 'help')) { process.stdout.write(HELP); return 0; }
  const id = requireFlag(args, 'id');
  const dataDir = requireFlag(args, 'data');
  const secret = flag(args, 'secret') ?? process.env.TESSERA_CLUSTER_SECRET;
  if (!secret) throw new Error('a cluster secret is required (--secret or TESSERA_CLUSTER_SECRET)');
  const scrubInterval = flag(args, 'scrub-interval');
  const orphanGrace = flag(args, 'orphan-grace');

  const tls = nodeTlsFrom(args);
  keepServingOnStrayErrors();
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const node = await startStorageNode({
    id,
    dataDir,
    listen: requireFlag(args, 'listen'),
    secret,
    tls,
    capacityBytes: optionalNumber(flag(args, 'capacity'), 'capacity'),
    zone: flag(args, 'zone'),
    bulkListen: flag(args, 'bulk-listen'),
    metaListen: flag(args, 'meta-listen'),
    scrubIntervalMs: scrubInterval === undefined ? undefined : parseDuration(scrubInterval),
    orphanGraceMs: orphanGrace === undefined ? undefined : parseDuration(orphanGrace),
    scrubBytesPerSecond: optionalNumber(flag(args, 'scrub-rate'), 'scrub-rate'),
    logger: createLogger({ name: `tessera-node-${id}`, level: parseLogLevel(flag(args, 'log-level') ?? process.env.TESSERA_LOG_LEVEL) }),
  });
  // Written once the node holds the data directory (LevelDB's lock), so a second node started
  // on the same directory by mistake fails without clobbering the running one's pid.
  const pidFile = join(dataDir, 'node.pid');
  await writeFile(pidFile, `${process.pid}\n`);
  const metrics = await startMetrics(args, id, node.address, secret, tls);
  process.stdout.write(`tessera node ${id} listening on ${node.address}\n`);

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await metrics?.close();
  await node.close();
  await rm(pidFile, { force: true });
  return 0;
}

/** `--metrics-listen`: disk gauges come from the node's own Health call, as the cluster sees it. */
async function startMetrics(args: ParsedArgs, id: string, address: string, secret: string, tls: NodeTls | undefined): Promise<{ close(): Promise<void> } | undefined> {
  const listen = flag(args, 'metrics-listen');
  if (!listen) return undefined;
  const self = new NodeClient(id, address, secret, tls);
  const server = await serveNodeMetrics(listen, () => self.health(), flag(args, 'metrics-token') ?? process.env.TESSERA_METRICS_TOKEN);
  process.stdout.write(`tessera node ${id} metrics at http://${server.address}/_tessera/metrics\n`);
  return { close: async () => { await server.close(); self.close(); } };
}
