// Every S3 operation the gateway serves. An operation family is a module exporting
// `operations: OperationSpec[]`; list it here and the router dispatches to it.
import type { OperationSpec } from '../router.js';
import { operations as bucket } from './bucket.js';
import { operations as bucketFeatures } from './bucket-features.js';
import { operations as del } from './delete.js';
import { operations as get } from './get.js';
import { operations as list } from './list.js';
import { operations as put } from './put.js';
import { operations as acl } from './acl.js';
import { operations as copy } from './copy.js';
import { operations as encryption } from './encryption.js';
import { operations as cors } from './cors.js';
import { operations as lifecycle } from './lifecycle.js';
import { operations as multipart } from './multipart.js';
import { operations as objectLock } from './object-lock.js';
import { operations as ownershipControls } from './ownership-controls.js';
import { operations as policy } from './policy.js';
import { operations as postObject } from './post-object.js';
import { operations as publicAccessBlock } from './public-access-block.js';
import { operations as tagging } from './tagging.js';
import { operations as versioning } from './versioning.js';
import { operations as website } from './website.js';

export const ALL_OPERATIONS: readonly OperationSpec[] = [
  ...bucket,
  ...put,
  ...get,
  ...del,
  ...list,
  ...multipart,
  ...copy,
  ...versioning,
  ...objectLock,
  ...tagging,
  ...acl,
  ...policy,
  ...cors,
  ...lifecycle,
  ...encryption,
  ...postObject,
  ...publicAccessBlock,
  ...ownershipControls,
  ...website,
  ...bucketFeatures,
];
