// Every S3 operation the gateway serves. An operation family is a module exporting
// `operations: OperationSpec[]`; list it here and the router dispatches to it.
import type { OperationSpec } from '../router.js';
import { operations as bucket } from './bucket.js';
import { operations as del } from './delete.js';
import { operations as get } from './get.js';
import { operations as list } from './list.js';
import { operations as put } from './put.js';

export const ALL_OPERATIONS: readonly OperationSpec[] = [
  ...bucket,
  ...put,
  ...get,
  ...del,
  ...list,
];
