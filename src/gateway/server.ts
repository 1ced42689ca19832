// The S3 gateway's HTTP server: fastify with body parsing off (bodies stream to the store), one
// catch-all route, and the request pipeline described at the top of router.ts.
import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ObjectStore } from '../replication/types.js';
import { authenticate } from './auth/index.js';
import { authorize, resourceOf } from './auth/authorize.js';
import { ANONYMOUS, type AccessKeyProvider, StoreKeyProvider } from './auth/keys.js';
import { deferContinue, RequestBody, tuneHeapForStreamedBodies } from './body.js';
import { BucketRegistry } from './bucket-record.js';
import { type GatewayConfig, header, type S3Context } from './context.js';
import { errorXml, isServerFault, S3Error, toS3Error } from './errors.js';
import { type AdminOptions, type ConsoleS3Request, mountAdmin } from './admin/index.js';
import { noteOperation } from './admin/metrics.js';
import { lifecycleOptionsFromEnv, startLifecycleWorker } from './lifecycle-worker.js';
import { corsHeadersFor } from './ops/cors.js';
import { ALL_OPERATIONS } from './ops/index.js';
import { bucketFromHost, HTTP_METHODS, OperationTable, resolveAddress } from './router.js';
import type { MasterKeys } from './sse.js';
import { serveWebsite } from './website.js';

export interface GatewayOptions {
  store: ObjectStore;
  host: string;
  port: number;
  region?: string;
  rootCredentials: { accessKeyId: string; secretAccessKey: string };
  /** Enables virtual-hosted-style addressing: `<bucket>.<baseDomain>`. */
  baseDomain?: string;
  /** Enables the static-website endpoint: `<bucket>.<websiteDomain>` (website.ts). */
  websiteDomain?: string;
  tls?: { cert: string; key: string };
  /** Defaults to warnings and errors (failed requests) as JSON on stderr. */
  logger?: FastifyBaseLogger;
  /** Metrics, health, status and console under /_tessera/ (admin/index.ts). */
  admin?: AdminOptions;
  /** Master keys for SSE-S3 (sse.ts loadMasterKeys). */
  sseMasterKeys?: MasterKeys;
}

export interface Gateway {
  port: number;
  url: string;
  close(): Promise<void>;
}

interface Services {
  store: ObjectStore;
  config: GatewayConfig;
  buckets: BucketRegistry;
  keys: AccessKeyProvider;
  operations: OperationTable;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  tuneHeapForStreamedBodies();
  const services: Services = {
    store: options.store,
    config: {
      region: options.region ?? 'us-east-1',
      baseDomain: options.baseDomain,
      websiteDomain: options.websiteDomain,
      hostId: randomBytes(24).toString('base64'),
      sseMasterKeys: options.sseMasterKeys,
    },
    buckets: new BucketRegistry(options.store),
    keys: new StoreKeyProvider(options.store, options.rootCredentials),
    operations: new OperationTable().register(ALL_OPERATIONS),
  };
  const app = createApp(options, services);
  await app.listen({ host: options.host, port: options.port });
  const { port } = app.server.address() as AddressInfo;
  const lifecycle = startLifecycleWorker(options.store, services.buckets, lifecycleOptionsFromEnv(), app.log);
  const hostForUrl = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    port,
    url: `${options.tls ? 'https' : 'http'}://${hostForUrl}:${port}`,
    close: async () => {
      await lifecycle.stop();
      await app.close();
    },
  };
}

/** Request ids need to be unique, not secret: a random per-process prefix and a counter (no RNG call per request). */
const requestIdPrefix = randomBytes(4).toString('hex').toUpperCase();
let requestCount = 0;

function newRequestId(): string {
  requestCount = (requestCount + 1) % 0x100000000;
  return requestIdPrefix + requestCount.toString(16).toUpperCase().padStart(8, '0');
}

/** Presigned URLs are bearer credentials: keep their signatures out of logs. */
function redactUrl(url: string): string {
  return url.replace(/((?:X-Amz-Signature|Signature|X-Amz-Credential|AWSAccessKeyId)=)[^&]*/gi, '$1REDACTED');
}

function createApp(options: GatewayOptions, services: Services): FastifyInstance {
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: { level: 'warn', stream: process.stderr } }),
    ...(options.tls ? { https: { cert: options.tls.cert, key: options.tls.key } } : {}),
    exposeHeadRoutes: false,
    genReqId: newRequestId,
    requestIdHeader: false,
    logController: new LogController({ disableRequestLogging: true }), // logged below, presigned URLs redacted
    keepAliveTimeout: 65_000,
    connectionTimeout: 300_000, // a socket idle this long mid-request is dropped (stalled uploads)
    forceCloseConnections: true,
    routerOptions: { ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, maxParamLength: 65_535 },
    // A path that is not valid percent-encoded UTF-8 never reaches the route: answer it as S3 does.
    frameworkErrors: (err, request, reply) => {
      void reply.header('x-amz-request-id', request.id).header('x-amz-id-2', services.config.hostId);
      sendError(request, reply, services, new S3Error('InvalidURI', { cause: err }));
    },
    clientErrorHandler: (err, socket) => answerClientError(err, socket, services.config.hostId),
  }) as unknown as FastifyInstance;

  app.server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    deferContinue(request, () => response.writeContinue());
    app.server.emit('request', request, response);
  });
  // Bodies are streamed by the operations themselves; fastify must not touch them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-amz-request-id', request.id).header('x-amz-id-2', services.config.hostId).header('server', 'Tessera');
    done();
  });

  // Request lines are debug output: without debug logging the hook is not installed at all.
  if (app.log.level === 'debug' || app.log.level === 'trace') {
    app.addHook('onResponse', async (request, reply) => {
      request.log.debug({ method: request.method, url: redactUrl(request.raw.url ?? ''), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    });
  }

  mountAdmin(app, {
    store: services.store, keys: services.keys, tls: options.tls !== undefined, options: options.admin,
    serveS3: (request, reply, via) => handleS3Request(request, reply, services, via),
  });
  app.route({
    method: [...HTTP_METHODS],
    url: '*',
    handler: (request, reply) => handleS3Request(request, reply, services),
  });
  // Errors fastify raises itself (malformed URL, unsupported method) still answer in S3's format.
  app.setErrorHandler((err, request, reply) => sendError(request, reply, services, err instanceof S3Error ? err : clientOrServerError(err)));
  app.setNotFoundHandler((request, reply) => sendError(request, reply, services, new S3Error('MethodNotAllowed')));
  return app;
}

/** Bytes that never became a request (not HTTP, oversized header block, idle timeout) still get an S3 error. */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket, hostId: string): void {
  // A response already under way on this connection cannot be followed by another.
  const pending = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || pending?.headersSent) {
    socket.destroy();
    return;
  }
  const error = err.code === 'HPE_HEADER_OVERFLOW' ? new S3Error('RequestHeaderSectionTooLarge')
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? new S3Error('RequestTimeout')
      : new S3Error('InvalidRequest', { message: 'The request is not well-formed HTTP.' });
  const requestId = newRequestId();
  const body = errorXml(error, '/', requestId, hostId);
  socket.end(`HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\ncontent-type: application/xml\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `x-amz-request-id: ${requestId}\r\nx-amz-id-2: ${hostId}\r\nconnection: close\r\n\r\n${body}`);
  setTimeout(() => socket.destroy(), 2000).unref(); // the parser is done with this connection
}

function clientOrServerError(err: unknown): S3Error {
  const status = (err as { statusCode?: number }).statusCode;
  if (status !== undefined && status >= 400 && status < 500) return new S3Error('InvalidRequest', { cause: err });
  return toS3Error(err);
}

function contextFor(request: FastifyRequest, reply: FastifyReply, services: Services, fields: Pick<S3Context, 'address' | 'operation' | 'principal' | 'body'>): S3Context {
  return {
    requestId: request.id,
    method: request.method,
    request: request.raw,
    reply,
    log: request.log,
    store: services.store,
    config: services.config,
    buckets: services.buckets,
    keys: services.keys,
    ...fields,
  };
}

const WEBSITE_OPERATION = ALL_OPERATIONS.find((op) => op.name === 'GetObject')!;

/** A request for `<bucket>.<websiteDomain>`: anonymous, answered by website.ts. */
async function handleWebsiteRequest(request: FastifyRequest, reply: FastifyReply, services: Services): Promise<FastifyReply> {
  try {
    const address = resolveAddress(request.raw.url ?? '/', header(request.raw, 'host'), services.config.websiteDomain);
    noteOperation(request.raw, 'WebsiteGet');
    await serveWebsite(contextFor(request, reply, services, { address, operation: WEBSITE_OPERATION, principal: ANONYMOUS, body: new RequestBody(request.raw, { mode: 'unsigned' }) }));
    return reply;
  } catch (err) {
    return sendError(request, reply, services, toS3Error(err));
  }
}

/** `viaConsole`: a request from the web console, whose user signed in with a session instead of a signature. */
async function handleS3Request(request: FastifyRequest, reply: FastifyReply, services: Services, viaConsole?: ConsoleS3Request): Promise<FastifyReply> {
  if (!viaConsole && bucketFromHost(header(request.raw, 'host'), services.config.websiteDomain) !== undefined) {
    return handleWebsiteRequest(request, reply, services);
  }
  let body: RequestBody | undefined;
  try {
    const address = resolveAddress(viaConsole?.path ?? request.raw.url ?? '/', header(request.raw, 'host'), services.config.baseDomain);
    const origin = header(request.raw, 'origin');
    // Cross-origin responses (errors included) carry the bucket's CORS headers; preflights answer their own.
    if (origin !== undefined && address.bucket !== undefined && request.method !== 'OPTIONS') {
      void reply.headers(corsHeadersFor(await services.buckets.get(address.bucket), origin, request.method));
    }
    const { principal, payload } = viaConsole
      ? { principal: viaConsole.principal, payload: { mode: 'unsigned' } as const }
      : await authenticate(request.raw, address, services.keys);
    const headerOf = (name: string) => header(request.raw, name);
    const operation = services.operations.select(request.method, address, headerOf);
    noteOperation(request.raw, operation.name);
    body = new RequestBody(request.raw, payload);
    const ctx = contextFor(request, reply, services, { address, operation, principal, body });
    if (operation.action !== undefined) await authorize(ctx, principal, operation.action, resourceOf(address.bucket, address.key));
    await operation.handle(ctx);
    return reply;
  } catch (err) {
    // A verification failure inside the body stream is the real cause of whatever the store reported.
    return sendError(request, reply, services, body?.failure ?? toS3Error(err));
  }
}

function sendError(request: FastifyRequest, reply: FastifyReply, services: Services, err: S3Error): FastifyReply {
  if (isServerFault(err)) {
    request.log.error({ err: err.cause ?? err, code: err.code, url: redactUrl(request.raw.url ?? '') }, 'request failed');
  } else {
    request.log.info({ code: err.code }, 'request rejected');
  }
  if (reply.sent) {
    request.raw.destroy();
    return reply;
  }
  void reply.code(err.status).headers(err.headers);
  // An unread request body could be gigabytes: close the connection rather than drain it.
  if (!request.raw.complete) void reply.header('connection', 'close');
  if (request.method === 'HEAD' || err.status === 304) return reply.send();
  const resource = (request.raw.url ?? '/').split('?')[0]!;
  return reply.header('content-type', 'application/xml').send(errorXml(err, resource, request.id, services.config.hostId));
}
