// The hash class @smithy/signature-v4 (the AWS SDK's signer) takes, over node:crypto: used to
// measure the lean signer against the SDK's and to check they agree.
import { createHash, createHmac } from 'node:crypto';
import type { Hash, SourceData } from '@smithy/types';

export class NodeSha256 implements Hash {
  private readonly hash;

  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }

  update(data: SourceData): void {
    this.hash.update(bytes(data));
  }

  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
}

function bytes(data: SourceData): string | Uint8Array {
  if (typeof data === 'string') return data;
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}
