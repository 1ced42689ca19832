// The S3 store the backup tests run against, from one place: Tessera's own cluster (dogfooding)
// by default, or moto's server (TESSERA_BACKUP_TEST_STORE=moto, and for features the gateway
// does not offer yet). The backup agent only speaks S3, so the tests do not care which.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort, startCluster } from './cluster.js';

export interface BackupStore {
  endpoint: string;
  kind: 'tessera' | 'moto';
  /** Environment for `tessera` commands and other S3 clients pointed at this store. */
  env: NodeJS.ProcessEnv;
  createBucket(name: string, options?: { objectLock?: boolean }): Promise<string>;
  /** Raw S3 access, to look at or damage what the agent stored. */
  listKeys(bucket: string, prefix: string): Promise<string[]>;
  getObject(bucket: string, key: string): Promise<Buffer>;
  putObject(bucket: string, key: string, body: Buffer): Promise<void>;
  deleteObject(bucket: string, key: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startBackupStore(options: { kind?: 'tessera' | 'moto' } = {}): Promise<BackupStore> {
  const kind = options.kind ?? (process.env.TESSERA_BACKUP_TEST_STORE === 'moto' ? 'moto' : 'tessera');
  if (kind === 'moto') return startMoto();
  const cluster = await startCluster({ nodes: 4 });
  return withBuckets('tessera', cluster.endpoint, cluster.accessKeyId, cluster.secretAccessKey, () => cluster.stop());
}

async function startMoto(): Promise<BackupStore> {
  const port = await freePort();
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  await waitForOutput(child, /Running on/);
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  return withBuckets('moto', `http://127.0.0.1:${port}`, 'test-key', 'test-secret', stop);
}

function withBuckets(kind: 'tessera' | 'moto', endpoint: string, accessKeyId: string, secretAccessKey: string, stop: () => Promise<void>): BackupStore {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
  // The agent's local chunk-id cache, kept out of the user's home.
  const cacheDir = mkdtempSync(join(tmpdir(), 'tessera-backup-cache-'));
  return {
    endpoint,
    kind,
    env: {
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_ENDPOINT_URL: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      TESSERA_CACHE_DIR: cacheDir,
    },
    async createBucket(name, bucketOptions = {}) {
      await client.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: bucketOptions.objectLock || undefined }));
      return name;
    },
    async listKeys(bucket, prefix) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        keys.push(...(page.Contents ?? []).map((o) => o.Key!));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return keys;
    },
    async getObject(bucket, key) {
      const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await response.Body!.transformToByteArray());
    },
    async putObject(bucket, key, body) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    async deleteObject(bucket, key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    async stop() {
      client.destroy();
      await stop();
      rmSync(cacheDir, { recursive: true, force: true });
    },
  };
}

function waitForOutput(child: ChildProcess, pattern: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (pattern.test(output)) { child.stderr!.off('data', onData); child.stderr!.resume(); resolve(); }
    };
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`moto exited (${code}):\n${output}`)));
  });
}
