// Operator endpoints under the reserved `/_tessera/` prefix on the S3 port (`_tessera` is no valid
// bucket name, so no bucket can take these paths):
//   GET  /_tessera/metrics         Prometheus text (bearer token when `metricsToken` is set)
//   GET  /_tessera/health/live     200 while the process serves
//   GET  /_tessera/health/ready    200 when a write quorum of nodes answers, else 503
//   GET  /_tessera/status          ClusterStatus JSON (same guard as metrics)
//   /_tessera/console/...          the web console (console-routes.ts), behind S3 credentials
import { readdirSync, readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { bearerAllowed, METRICS_CONTENT_TYPE, onScrape, scrape } from '../../common/metrics.js';
import { ClusterClient } from '../../replication/cluster-client.js';
import { writeQuorum } from '../../replication/layout.js';
import type { ObjectStore } from '../../replication/types.js';
import type { AccessKeyProvider, Principal } from '../auth/keys.js';
import { ConsoleSessions, fromConsolePage } from './console-session.js';
import { observeS3Response, setClusterGauges } from './metrics.js';
import { StatusTracker } from './status.js';

export interface AdminOptions {
  /** When set, /_tessera/metrics and /_tessera/status need `Authorization: Bearer <token>`. */
  metricsToken?: string;
}

/** An S3 request the console makes for its signed-in user: the S3 path plus who is acting. */
export interface ConsoleS3Request {
  path: string;
  principal: Principal;
}

export interface AdminDependencies {
  store: ObjectStore;
  keys: AccessKeyProvider;
  tls: boolean;
  options?: AdminOptions;
  /** Runs the S3 pipeline (routing, authorization, operation) for a console request. */
  serveS3(request: FastifyRequest, reply: FastifyReply, via: ConsoleS3Request): Promise<FastifyReply>;
}

const CONSOLE_PREFIX = '/_tessera/console';
const ASSET_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml',
};

/** Must run before the S3 catch-all route is added. */
export function mountAdmin(app: FastifyInstance, deps: AdminDependencies): void {
  const tracker = deps.store instanceof ClusterClient ? new StatusTracker(deps.store, true) : undefined;
  if (tracker) {
    tracker.startProbing();
    const stopRefresh = onScrape(async () => setClusterGauges(await tracker.status()));
    app.addHook('onClose', async () => { tracker.stop(); stopRefresh(); });
  }
  app.addHook('onResponse', async (request, reply) => observeS3Response(request, reply));
  const guarded = (request: FastifyRequest, reply: FastifyReply): boolean => {
    if (bearerAllowed(request.headers.authorization, deps.options?.metricsToken)) return true;
    void reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'bearer token required' });
    return false;
  };

  app.get('/_tessera/metrics', async (request, reply) => {
    if (!guarded(request, reply)) return reply;
    return reply.header('content-type', METRICS_CONTENT_TYPE).send(await scrape());
  });
  app.get('/_tessera/health/live', async () => ({ status: 'live' }));
  app.get('/_tessera/health/ready', async (_request, reply) => {
    const ready = tracker ? await tracker.writeQuorumReachable() : storeReady(deps.store);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'no write quorum' });
  });
  app.get('/_tessera/status', async (request, reply) => {
    if (!guarded(request, reply)) return reply;
    if (!tracker) return reply.code(404).send({ error: 'this gateway has no cluster to report on' });
    return reply.send(await tracker.status());
  });
  mountConsole(app, deps, tracker);
  // Anything else under the prefix is ours too: never an S3 bucket.
  app.all('/_tessera/*', async (_request, reply) => reply.code(404).send({ error: 'not found' }));
}

function storeReady(store: ObjectStore): boolean {
  const map = store.clusterMap();
  return store.healthyNodeCount() >= writeQuorum(map.dataShards ?? 1, map.parityShards ?? 0);
}

function mountConsole(app: FastifyInstance, deps: AdminDependencies, tracker: StatusTracker | undefined): void {
  const sessions = new ConsoleSessions(deps.keys, deps.tls);
  const assets = loadAssets();
  const signedIn = (request: FastifyRequest, reply: FastifyReply): Principal | undefined => {
    const principal = sessions.principalOf(request);
    if (!principal) void reply.code(401).send({ error: 'sign in first' });
    return principal;
  };

  app.get(CONSOLE_PREFIX, async (_request, reply) => reply.redirect(`${CONSOLE_PREFIX}/`));
  app.get(`${CONSOLE_PREFIX}/`, async (_request, reply) => sendAsset(reply, assets, 'index.html'));
  app.get(`${CONSOLE_PREFIX}/assets/:name`, async (request, reply) => sendAsset(reply, assets, (request.params as { name: string }).name));

  app.post(`${CONSOLE_PREFIX}/login`, async (request, reply) => {
    // JSON only: a cross-site form cannot send it without the browser asking this origin first.
    if (!request.headers['content-type']?.startsWith('application/json')) return reply.code(415).send({ error: 'send JSON' });
    if (sessions.throttled(request.ip)) return reply.code(429).send({ error: 'too many failed sign-ins; wait a minute' });
    const { accessKeyId, secretAccessKey } = await readJson(request);
    const id = typeof accessKeyId === 'string' && typeof secretAccessKey === 'string'
      ? await sessions.login(request.ip, accessKeyId, secretAccessKey) : undefined;
    if (!id) return reply.code(403).send({ error: 'the access key or secret is wrong' });
    return reply.header('set-cookie', sessions.cookie(id)).send({ accessKeyId });
  });
  app.post(`${CONSOLE_PREFIX}/logout`, async (request, reply) => {
    if (fromConsolePage(request)) sessions.logout(request);
    return reply.header('set-cookie', sessions.cookie(undefined)).send({});
  });
  app.get(`${CONSOLE_PREFIX}/api/whoami`, async (request, reply) => {
    const principal = signedIn(request, reply);
    return principal && reply.send({ accessKeyId: principal.accessKeyId, displayName: principal.displayName });
  });
  app.get(`${CONSOLE_PREFIX}/api/status`, async (request, reply) => {
    if (!signedIn(request, reply)) return reply;
    if (!tracker) return reply.code(404).send({ error: 'this gateway has no cluster to report on' });
    return reply.send(await tracker.status());
  });
  // S3 for the signed-in user: /_tessera/console/s3/<bucket>/<key>?<query> is /<bucket>/<key>?<query>.
  app.route({
    method: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'],
    url: `${CONSOLE_PREFIX}/s3/*`,
    handler: async (request, reply) => {
      const principal = signedIn(request, reply);
      if (!principal) return reply;
      // Downloads are plain links; anything that changes state must come from the page's own scripts.
      const reads = request.method === 'GET' || request.method === 'HEAD';
      if (!reads && !fromConsolePage(request)) return reply.code(403).send({ error: 'console requests that change state carry x-tessera-console: 1' });
      const path = (request.raw.url ?? '').slice(`${CONSOLE_PREFIX}/s3`.length) || '/';
      return deps.serveS3(request, reply, { path, principal });
    },
  });
}

/** The console is plain files (no build step), read once at start. */
function loadAssets(): Map<string, Buffer> {
  // Compiled to dist/src/gateway/admin/; the files stay in src/gateway/admin/console/.
  const dir = new URL('../../../../src/gateway/admin/console/', import.meta.url);
  const assets = new Map<string, Buffer>();
  for (const name of readdirSync(dir)) assets.set(name, readFileSync(new URL(name, dir)));
  return assets;
}

function sendAsset(reply: FastifyReply, assets: Map<string, Buffer>, name: string): FastifyReply {
  const body = assets.get(name);
  const type = ASSET_TYPES[name.split('.').pop() ?? ''];
  if (!body || !type) return reply.code(404).send({ error: 'not found' });
  return reply.header('content-type', type).header('cache-control', 'no-cache')
    .header('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self'").send(body);
}

/** The gateway parses no bodies (S3 streams them); admin bodies are small JSON. */
async function readJson(request: FastifyRequest): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of request.raw) {
    text += String(chunk);
    if (text.length > 64 * 1024) throw Object.assign(new Error('body too large'), { statusCode: 413 });
  }
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
