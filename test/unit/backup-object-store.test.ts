// The backup agent's S3 client against a real HTTP server: many requests share keep-alive
// connections without piling up timeout listeners, and a store that stops answering fails a
// request after its retries instead of hanging the backup or restore.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { ObjectStore } from '../../src/backup/object-store.js';

process.env.AWS_ACCESS_KEY_ID = 'test-access-key';
process.env.AWS_SECRET_ACCESS_KEY = 'test-secret-key';

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('requests on keep-alive connections each get an idle timeout, and no listeners pile up', async (t) => {
  const sockets = new Set<unknown>();
  const server = createServer((req, res) => {
    sockets.add(req.socket);
    req.resume().on('end', () => res.writeHead(200, { 'content-length': '2' }).end('ok'));
  });
  const endpoint = await listen(server);
  const store = ObjectStore.connect({ bucket: 'b', endpoint, idleTimeoutMs: 5_000 });
  t.teardown(() => { store.destroy(); server.close(); });
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  for (let i = 0; i < 40; i++) await store.put(`k${i}`, Buffer.from('x'));
  t.ok(sockets.size <= 2, `40 PUTs over ${sockets.size} connection(s)`);
  await new Promise((resolve) => setImmediate(resolve));
  t.same(warnings, [], 'no MaxListenersExceededWarning');
});

t.test('a store that stops answering fails the request after its retries', async (t) => {
  const server = createServer(() => { /* never answers */ });
  const endpoint = await listen(server);
  const store = ObjectStore.connect({ bucket: 'b', endpoint, idleTimeoutMs: 100 });
  t.teardown(() => { store.destroy(); server.closeAllConnections(); server.close(); });
  await t.rejects(store.put('k', Buffer.from('x')), /sent nothing for 0.1 s/);
  await t.rejects(store.get('k', { start: 0, end: 9 }, Buffer.alloc(10)), /sent nothing for 0.1 s/, 'a GET into a buffer too');
});
