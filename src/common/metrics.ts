// Prometheus metrics shared by the gateway and the storage nodes: one registry per process
// (prom-client), the text exposition, and the optional bearer token that guards it.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import client from 'prom-client';

/** Every Tessera metric lives here, so one scrape of a process sees all of them. */
export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry, prefix: 'tessera_process_' });

/** Metrics are module singletons: prom-client refuses a name registered twice. */
export function counter<L extends string>(name: string, help: string, labelNames: readonly L[]): client.Counter<L> {
  return new client.Counter({ name, help, labelNames, registers: [registry] });
}

export function gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): client.Gauge<L> {
  return new client.Gauge({ name, help, labelNames, registers: [registry] });
}

export function histogram<L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]): client.Histogram<L> {
  return new client.Histogram({ name, help, labelNames, buckets, registers: [registry] });
}

/** Refreshers run before each scrape (gauges read from live state). */
const refreshers = new Set<() => Promise<void>>();

export function onScrape(refresh: () => Promise<void>): () => void {
  refreshers.add(refresh);
  return () => refreshers.delete(refresh);
}

export const METRICS_CONTENT_TYPE = registry.contentType;

/** The exposition text after every refresher ran (a failing one leaves its gauges as they were). */
export async function scrape(): Promise<string> {
  await Promise.all([...refreshers].map((refresh) => refresh().catch(() => undefined)));
  return registry.metrics();
}

/** True when no token is configured, or the request carries `Authorization: Bearer <token>`. */
export function bearerAllowed(authorization: string | undefined, token: string | undefined): boolean {
  if (!token) return true;
  const match = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
  if (!match) return false;
  const given = Buffer.from(match[1]!.trim());
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** A tiny HTTP server answering `/_tessera/metrics` (storage nodes: their gRPC port speaks no HTTP). */
export async function serveMetrics(listen: string, token?: string): Promise<{ address: string; close(): Promise<void> }> {
  const separator = listen.lastIndexOf(':');
  if (separator < 0) throw new Error(`metrics address must be HOST:PORT, got '${listen}'`);
  const host = listen.slice(0, separator).replace(/^\[|\]$/g, '');
  const server: Server = createServer((request, response) => void answer(request, token).then(({ status, type, body }) => {
    response.writeHead(status, { 'content-type': type }).end(body);
  }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(listen.slice(separator + 1)), host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: `${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

async function answer(request: IncomingMessage, token: string | undefined): Promise<{ status: number; type: string; body: string }> {
  const path = (request.url ?? '').split('?')[0];
  if (path !== '/_tessera/metrics' && path !== '/metrics') return { status: 404, type: 'text/plain', body: 'not found\n' };
  if (!bearerAllowed(request.headers.authorization, token)) return { status: 401, type: 'text/plain', body: 'bearer token required\n' };
  return { status: 200, type: METRICS_CONTENT_TYPE, body: await scrape() };
}
