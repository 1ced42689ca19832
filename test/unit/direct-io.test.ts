// The shared direct-I/O helpers: a refusal (EINVAL, as from a file system without O_DIRECT) yields
// undefined instead of an error, a file system that takes O_DIRECT gives a handle, and other
// errors still surface. (storage-node-shards.test.ts drives a refused direct write end to end.)
import { constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { openDirect, unlessRefused } from '../../src/common/direct-io.js';

t.test('a file system that takes O_DIRECT gives a handle', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-direct-io-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const handle = await openDirect(join(dir, 'f'), constants.O_WRONLY | constants.O_CREAT, 0o600);
  if (!handle) {
    t.comment(`${tmpdir()} refuses O_DIRECT here`);
    return;
  }
  await handle.close();
  t.pass('direct handle opened');
});

t.test('only the refusal is swallowed', async (t) => {
  const refusal = Object.assign(new Error('refused'), { code: 'EINVAL' });
  t.equal(await unlessRefused(Promise.reject(refusal)), undefined);
  t.equal(await unlessRefused(Promise.resolve(7)), 7);
  await t.rejects(unlessRefused(Promise.reject(Object.assign(new Error('gone'), { code: 'ENOENT' }))), /gone/);
  await t.rejects(openDirect('/nonexistent-dir/f', constants.O_RDONLY), { code: 'ENOENT' });
});
