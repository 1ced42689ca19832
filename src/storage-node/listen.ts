// Binding a node's side channels (bulk shards, metadata) to HOST:PORT, where port 0 takes any free one.
import type { Server } from 'node:net';

/** Listens on `address` (host:port); resolves to the address bound, with the port chosen. */
export function listenAt(server: Server, address: string): Promise<string> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(address.slice(colon + 1)), host, () => resolve(`${host}:${(server.address() as { port: number }).port}`));
  });
}
