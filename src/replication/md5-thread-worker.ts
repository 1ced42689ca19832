// The MD5 worker thread (see md5-thread.ts): one hash per job, fed from shared stripe memory.
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { Md5Reply, Md5Request } from './md5-thread.js';

const hashes = new Map<number, Hash>();
const port = parentPort!;

port.on('message', (request: Md5Request) => {
  const { job } = request;
  if (request.op === 'discard') {
    hashes.delete(job);
    return;
  }
  let hash = hashes.get(job);
  if (!hash) hashes.set(job, (hash = createHash('md5')));
  if (request.op === 'update') {
    hash.update(new Uint8Array(request.memory, request.offset, request.length));
    port.postMessage({ job } satisfies Md5Reply);
  } else {
    hashes.delete(job);
    port.postMessage({ job, hex: hash.digest('hex') } satisfies Md5Reply);
  }
});
