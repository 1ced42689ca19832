// Where a scenario sends its load: an S3 endpoint given by flags or the AWS_* environment, or a
// server the bench starts itself (--target). Both come back as a Connection with the bucket made.
import { flag, type ParsedArgs } from '../../src/cli/args.js';
import type { WatchedProcess } from './proc-stats.js';
import { LeanS3Client, type S3Target } from './s3-client.js';
import { startTarget, tesseraClusterProcesses, TARGET_NAMES, type TargetOptions } from './targets.js';

export interface Connection {
  name: string;
  target: S3Target;
  processes(): WatchedProcess[];
  /** Folder with the started server's log and CPU profiles; undefined for an external endpoint. */
  workDir?: string;
  close(): Promise<void>;
}

export const CONNECTION_HELP = `connection (an existing endpoint):
  --endpoint URL          S3 endpoint (env AWS_ENDPOINT_URL)
  --access-key KEY        (env AWS_ACCESS_KEY_ID)
  --secret-key SECRET     (env AWS_SECRET_ACCESS_KEY)
  --bucket NAME           bucket to use, created if missing (default tessera-bench)
  --region NAME           SigV4 region (env AWS_REGION, default us-east-1)
  --pid ROLE=PID          a server process to report RSS and CPU of (repeatable)
  --tessera-data DIR      report the gateway and node processes of 'tessera cluster --data DIR'
or a server the bench starts on loopback and stops afterwards:
  --target NAME           one of ${TARGET_NAMES.join(', ')}
  --nodes N --ec K+M      shape of tessera-cluster (default 6 nodes, 4+2)
  --cpu-prof              CPU-profile Tessera's gateway process and summarise its hottest functions
`;

export function targetOptions(args: ParsedArgs): TargetOptions {
  return { nodes: Number(flag(args, 'nodes') ?? 6), ec: flag(args, 'ec') ?? '4+2', cpuProfile: args.flags.has('cpu-prof') };
}

export async function connect(args: ParsedArgs, targetName = flag(args, 'target')): Promise<Connection> {
  const bucket = flag(args, 'bucket') ?? 'tessera-bench';
  const region = flag(args, 'region') ?? process.env.AWS_REGION ?? 'us-east-1';
  const endpoint = flag(args, 'endpoint') ?? process.env.AWS_ENDPOINT_URL;
  let connection: Connection;
  if (targetName) {
    const running = await startTarget(targetName, targetOptions(args));
    connection = {
      name: targetName,
      target: { endpoint: running.endpoint, bucket, region, credentials: running.credentials },
      processes: running.processes,
      workDir: running.workDir,
      close: running.stop,
    };
  } else if (endpoint) {
    const accessKeyId = flag(args, 'access-key') ?? process.env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = flag(args, 'secret-key') ?? process.env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) throw new Error('give --access-key and --secret-key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)');
    const dataDir = flag(args, 'tessera-data');
    const pids = (args.flags.get('pid') ?? []).map((spec) => {
      const [role, pid] = spec.split('=');
      return { role: role!, pid: Number(pid) };
    });
    connection = {
      name: new URL(endpoint).host,
      target: { endpoint, bucket, region, credentials: { accessKeyId, secretAccessKey } },
      processes: () => [...pids, ...(dataDir ? tesseraClusterProcesses(dataDir) : [])],
      close: async () => undefined,
    };
  } else {
    throw new Error('give --endpoint URL (or AWS_ENDPOINT_URL), or --target NAME to start a server');
  }
  try {
    const client = new LeanS3Client(connection.target, 1);
    await client.createBucket();
    await client.close();
  } catch (err) {
    await connection.close();
    throw err;
  }
  return connection;
}
