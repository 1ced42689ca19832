// The restore's GET client that reads bodies straight into the caller's buffer, against a real
// node:http server: bodies of every size land intact over one keep-alive connection (also when the
// server writes them in small pieces), error answers come back in a buffer of their own, chunked
// answers are refused with ChunkedBodyError, and a connection cut mid-body, or silent too long, fails the GET.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { BodyIntoClient, ChunkedBodyError } from '../../src/backup/body-into.js';

const OBJECT = randomBytes(3 * 1024 * 1024 + 17);
const IDLE_TIMEOUT_MS = 60_000;

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** Serves OBJECT's byte range `?start-end` (end exclusive), in pieces of `?piece` bytes. */
function objectServer(connections: Set<unknown>): Server {
  return createServer((req, res) => {
    connections.add(req.socket);
    const url = new URL(req.url!, 'http://x');
    if (url.pathname === '/missing') {
      const xml = '<Error><Code>NoSuchKey</Code></Error>';
      res.writeHead(404, { 'content-type': 'application/xml', 'content-length': String(xml.length) }).end(xml);
      return;
    }
    if (url.pathname === '/chunked') {
      res.writeHead(200);
      res.write('a');
      res.end('b');
      return;
    }
    if (url.pathname === '/stall') {
      res.writeHead(206, { 'content-length': '1000' });
      res.write(Buffer.alloc(10));
      return;
    }
    if (url.pathname === '/cut') {
      res.writeHead(206, { 'content-length': '1000' });
      res.write(Buffer.alloc(10));
      setTimeout(() => req.socket.destroy(), 10);
      return;
    }
    const start = Number(url.searchParams.get('start'));
    const end = Number(url.searchParams.get('end'));
    const piece = Number(url.searchParams.get('piece') ?? end - start);
    res.writeHead(206, { 'content-length': String(end - start) });
    const send = (at: number) => {
      if (at >= end) { res.end(); return; }
      res.write(OBJECT.subarray(at, Math.min(end, at + piece)));
      setImmediate(() => send(at + piece));
    };
    send(start);
  });
}

t.test('bodies land in the given buffer over one keep-alive connection', async (t) => {
  const connections = new Set<unknown>();
  const server = objectServer(connections);
  const port = await listen(server);
  const client = new BodyIntoClient('127.0.0.1', port, IDLE_TIMEOUT_MS);
  t.teardown(() => { client.destroy(); server.close(); });
  const into = Buffer.alloc(OBJECT.length);
  for (const [start, end, piece] of [[0, 0, 1], [0, 1, 1], [5, 70_000, 1000], [0, OBJECT.length, 1 << 20], [100, 200_000, 7], [OBJECT.length - 3, OBJECT.length, 1]]) {
    const response = await client.get(`/object?start=${start}&end=${end}&piece=${piece}`, { host: `127.0.0.1:${port}` }, into);
    t.equal(response.status, 206);
    t.equal(response.body.buffer, into.buffer, 'the body is the start of the given buffer');
    t.ok(response.body.equals(OBJECT.subarray(start!, end!)), `bytes ${start}-${end} in pieces of ${piece}`);
  }
  t.equal(connections.size, 1, 'one connection carried every GET');
});

t.test('GETs in parallel each get their own connection and their own bytes', async (t) => {
  const server = objectServer(new Set());
  const port = await listen(server);
  const client = new BodyIntoClient('127.0.0.1', port, IDLE_TIMEOUT_MS);
  t.teardown(() => { client.destroy(); server.close(); });
  const ranges = Array.from({ length: 6 }, (_, i) => [i * 300_000, i * 300_000 + 250_000 + i] as const);
  const results = await Promise.all(ranges.map(([start, end]) => client.get(`/object?start=${start}&end=${end}&piece=65536`, { host: 'x' }, Buffer.alloc(end - start))));
  results.forEach((response, i) => t.ok(response.body.equals(OBJECT.subarray(ranges[i]![0], ranges[i]![1])), `range ${i}`));
});

t.test('an error answer comes back in a buffer of its own; chunked answers and cut connections fail', async (t) => {
  const server = objectServer(new Set());
  const port = await listen(server);
  const client = new BodyIntoClient('127.0.0.1', port, IDLE_TIMEOUT_MS);
  t.teardown(() => { client.destroy(); server.close(); });
  const into = Buffer.alloc(1024);
  const missing = await client.get('/missing', { host: 'x' }, into);
  t.equal(missing.status, 404);
  t.not(missing.body.buffer, into.buffer);
  t.match(missing.body.toString(), /NoSuchKey/);
  const chunked = await client.get('/chunked', { host: 'x' }, into).catch((err: Error) => err);
  t.ok(chunked instanceof ChunkedBodyError, 'a chunked answer is refused as such');
  await t.rejects(client.get('/cut', { host: 'x' }, into), /closed before the answer was complete/);
  const after = await client.get('/object?start=0&end=10', { host: 'x' }, into);
  t.ok(after.body.equals(OBJECT.subarray(0, 10)), 'the client works after a failed connection');
});

t.test('a store that goes silent mid-answer fails the GET after the idle timeout', async (t) => {
  const server = objectServer(new Set());
  const port = await listen(server);
  const client = new BodyIntoClient('127.0.0.1', port, 200);
  t.teardown(() => { client.destroy(); server.closeAllConnections(); server.close(); });
  await t.rejects(client.get('/stall', { host: 'x' }, Buffer.alloc(1024)), /sent nothing for 0.2 s/);
  const after = await client.get('/object?start=0&end=10', { host: 'x' }, Buffer.alloc(10));
  t.ok(after.body.equals(OBJECT.subarray(0, 10)), 'the next GET gets a new connection');
});
