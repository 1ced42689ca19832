// Test helper: an HTTP server that runs the gateway's real addressing, authentication and body
// verification on every request and answers with what it learned (or the S3 error), so auth can
// be tested with real clients before any store is involved.
//   200, ETag: "<sha256 hex of the decoded body>", x-test-user, x-test-checksums (JSON)
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { authenticate } from '../../src/gateway/auth/index.js';
import type { AccessKey, AccessKeyProvider } from '../../src/gateway/auth/keys.js';
import { RequestBody } from '../../src/gateway/body.js';
import { errorXml, toS3Error } from '../../src/gateway/errors.js';
import { resolveAddress } from '../../src/gateway/router.js';

export interface AuthServer {
  endpoint: string;
  port: number;
  close(): Promise<void>;
}

export const TEST_KEY: AccessKey = {
  accessKeyId: 'AKIDTESTTESSERA',
  secretAccessKey: 'tessera/test+secret=key0123456789',
  principal: { accessKeyId: 'AKIDTESTTESSERA', userId: 'tester', displayName: 'tester', isRoot: false },
};

export function keysOf(...keys: AccessKey[]): AccessKeyProvider {
  return { lookup: async (id) => keys.find((k) => k.accessKeyId === id) };
}

export async function startAuthServer(options: { keys?: AccessKeyProvider; now?: () => number; baseDomain?: string; maxBytes?: number } = {}): Promise<AuthServer> {
  const keys = options.keys ?? keysOf(TEST_KEY);
  const server: Server = createServer((request, response) => {
    void (async () => {
      let body: RequestBody | undefined;
      try {
        const address = resolveAddress(request.url ?? '/', request.headers.host, options.baseDomain);
        const auth = await authenticate(request, address, keys, options.now?.() ?? Date.now());
        body = new RequestBody(request, auth.payload);
        const hash = createHash('sha256');
        for await (const part of body.stream(options.maxBytes ?? 64 * 1024 * 1024)) hash.update(part as Buffer);
        response.writeHead(200, {
          etag: `"${hash.digest('hex')}"`,
          'x-test-user': auth.principal.userId,
          'x-test-bucket': address.bucket ?? '',
          'x-test-key': encodeURIComponent(address.key ?? ''),
          'x-test-checksums': JSON.stringify(body.checksums()),
        });
        response.end();
      } catch (err) {
        const error = body?.failure ?? toS3Error(err);
        response.writeHead(error.status, { 'content-type': 'application/xml', connection: 'close', ...error.headers });
        response.end(request.method === 'HEAD' ? undefined : errorXml(error, '/', 'TESTREQUEST', 'TESTHOST'));
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
