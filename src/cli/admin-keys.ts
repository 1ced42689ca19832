// `tessera admin key create|list|delete|allow`: access keys in the store's "keys" records, the
// format the gateway's key provider reads, plus the per-bucket grants its authorizer checks.
import { randomBytes } from 'node:crypto';
import { KEYS_NAMESPACE } from '../gateway/auth/keys.js';
import { KEY_ACCESS_LEVELS, type KeyAccess, type KeyRecordWithGrants } from '../gateway/acl.js';
import type { ObjectStore } from '../replication/types.js';
import { flag, hasFlag, type ParsedArgs, requireFlag } from './args.js';

export const KEY_HELP = `  key create [--name NAME] [--json]      new access key id and secret (the secret is shown once)
  key list [--json]                        keys, their owners and bucket grants (never secrets)
  key delete KEY_ID                        remove a key
  key allow KEY_ID --bucket B [--bucket B2] --access read|write|owner
                                           give a key rights on buckets (none: revoke)
`;

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function newAccessKeyId(): string {
  return `TK${[...randomBytes(18)].map((b) => ID_ALPHABET[b % ID_ALPHABET.length]).join('')}`;
}

async function readKey(store: ObjectStore, accessKeyId: string): Promise<KeyRecordWithGrants> {
  const raw = await store.getRecord(KEYS_NAMESPACE, accessKeyId);
  if (!raw) throw new Error(`no access key ${accessKeyId}`);
  return JSON.parse(raw.toString('utf8')) as KeyRecordWithGrants;
}

async function writeKey(store: ObjectStore, accessKeyId: string, record: KeyRecordWithGrants | null): Promise<void> {
  await store.putRecord(KEYS_NAMESPACE, accessKeyId, record ? Buffer.from(JSON.stringify(record)) : null);
}

async function createKey(store: ObjectStore, args: ParsedArgs): Promise<number> {
  const accessKeyId = newAccessKeyId();
  const record: KeyRecordWithGrants = {
    secretAccessKey: randomBytes(30).toString('base64'),
    userId: randomBytes(32).toString('hex'), // a canonical user id: stable owner of what the key creates
    displayName: flag(args, 'name') ?? accessKeyId,
    status: 'Active',
    createdMs: Date.now(),
    buckets: {},
  };
  await writeKey(store, accessKeyId, record);
  if (hasFlag(args, 'json')) {
    process.stdout.write(`${JSON.stringify({ accessKeyId, secretAccessKey: record.secretAccessKey, userId: record.userId, displayName: record.displayName })}\n`);
  } else {
    process.stdout.write(`AccessKeyId:     ${accessKeyId}\nSecretAccessKey: ${record.secretAccessKey}\nUserId:          ${record.userId}\nDisplayName:     ${record.displayName}\n`);
  }
  return 0;
}

async function listKeys(store: ObjectStore, args: ParsedArgs): Promise<number> {
  const keys = (await store.listRecords(KEYS_NAMESPACE)).map(({ key, value }) => {
    const record = JSON.parse(value.toString('utf8')) as KeyRecordWithGrants;
    return { accessKeyId: key, userId: record.userId, displayName: record.displayName ?? record.userId, status: record.status ?? 'Active', buckets: record.buckets ?? {} };
  });
  if (hasFlag(args, 'json')) {
    process.stdout.write(`${JSON.stringify(keys, null, 2)}\n`);
    return 0;
  }
  for (const key of keys) {
    const grants = Object.entries(key.buckets).map(([bucket, access]) => `${bucket}:${access}`).join(',') || '-';
    process.stdout.write(`${key.accessKeyId}\t${key.displayName}\t${key.status}\t${grants}\n`);
  }
  return 0;
}

async function deleteKey(store: ObjectStore, accessKeyId: string): Promise<number> {
  await readKey(store, accessKeyId);
  await writeKey(store, accessKeyId, null);
  process.stdout.write(`deleted ${accessKeyId}\n`);
  return 0;
}

async function allowKey(store: ObjectStore, accessKeyId: string, args: ParsedArgs): Promise<number> {
  const access = requireFlag(args, 'access');
  const buckets = args.flags.get('bucket') ?? [];
  if (buckets.length === 0) throw new Error('missing --bucket');
  if (access !== 'none' && !KEY_ACCESS_LEVELS.includes(access as KeyAccess)) throw new Error(`--access must be one of ${KEY_ACCESS_LEVELS.join(', ')} or none`);
  const record = await readKey(store, accessKeyId);
  const grants = { ...record.buckets };
  for (const bucket of buckets) {
    if (access === 'none') delete grants[bucket];
    else grants[bucket] = access as KeyAccess;
  }
  await writeKey(store, accessKeyId, { ...record, buckets: grants });
  process.stdout.write(`${accessKeyId}: ${buckets.map((b) => `${b}=${access}`).join(' ')}\n`);
  return 0;
}

/** `tessera admin key <sub> ...` */
export async function runKeyCommand(store: ObjectStore, sub: string | undefined, args: ParsedArgs): Promise<number> {
  const target = args.positionals[2];
  switch (sub) {
    case 'create': return createKey(store, args);
    case 'list': return listKeys(store, args);
    case 'delete': if (target) return deleteKey(store, target); break;
    case 'allow': if (target) return allowKey(store, target, args); break;
  }
  process.stderr.write(`usage: tessera admin [--data DIR] key ...\n${KEY_HELP}`);
  return 2;
}
