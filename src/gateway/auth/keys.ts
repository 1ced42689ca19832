// Access keys and who they belong to. The root key comes from the gateway options; more keys
// live as JSON records in the store's replicated "keys" namespace (written by `tessera admin key`).
import type { ObjectStore } from '../../replication/types.js';
import { ExpiringCache } from '../expiring-cache.js';

export const KEYS_NAMESPACE = 'keys';

export interface Principal {
  /** Undefined for anonymous requests. */
  accessKeyId?: string;
  /** Canonical user id (bucket ownership, ACL grants). */
  userId: string;
  displayName: string;
  isRoot: boolean;
}

export const ANONYMOUS: Principal = Object.freeze({ userId: 'anonymous', displayName: 'anonymous', isRoot: false });

export interface AccessKey {
  accessKeyId: string;
  secretAccessKey: string;
  principal: Principal;
}

/** The stored form of a key in the "keys" namespace (record key = access key id). */
export interface AccessKeyRecord {
  secretAccessKey: string;
  userId: string;
  displayName?: string;
  status?: 'Active' | 'Inactive';
  createdMs?: number;
}

export interface AccessKeyProvider {
  lookup(accessKeyId: string): Promise<AccessKey | undefined>;
}

export const ROOT_USER_ID = 'tessera-root';

/** The root key first, then store records; store answers are cached briefly (keys change rarely). */
export class StoreKeyProvider implements AccessKeyProvider {
  private readonly cache = new ExpiringCache(5000, (accessKeyId) => this.fromStore(accessKeyId));
  private readonly root: AccessKey;

  constructor(private readonly store: ObjectStore, rootCredentials: { accessKeyId: string; secretAccessKey: string }) {
    this.root = {
      ...rootCredentials,
      principal: { accessKeyId: rootCredentials.accessKeyId, userId: ROOT_USER_ID, displayName: 'root', isRoot: true },
    };
  }

  async lookup(accessKeyId: string): Promise<AccessKey | undefined> {
    if (accessKeyId === this.root.accessKeyId) return this.root;
    return this.cache.get(accessKeyId);
  }

  private async fromStore(accessKeyId: string): Promise<AccessKey | undefined> {
    const raw = await this.store.getRecord(KEYS_NAMESPACE, accessKeyId);
    if (!raw) return undefined;
    const record = JSON.parse(raw.toString('utf8')) as AccessKeyRecord;
    if (record.status === 'Inactive') return undefined;
    return {
      accessKeyId,
      secretAccessKey: record.secretAccessKey,
      principal: { accessKeyId, userId: record.userId, displayName: record.displayName ?? record.userId, isRoot: false },
    };
  }
}
