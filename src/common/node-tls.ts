// Mutual TLS on the node network (optional; `--node-tls-ca/-cert/-key`). Every storage node,
// gateway and admin tool holds a certificate from the cluster's own CA: nodes accept only peers
// that present one, and peers accept only nodes that do. A certificate from that CA is what makes
// a member, so host names are not checked (cluster maps address nodes by IP). The cluster secret
// is still required on every call; TLS adds encryption and a second factor.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';

export interface NodeTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export interface NodeTlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** The three PEM files, all or none (a partial set is a configuration mistake, not "no TLS"). */
export function loadNodeTls(files: NodeTlsFiles): NodeTls | undefined {
  const given = [files.ca, files.cert, files.key].filter((f) => f !== undefined).length;
  if (given === 0) return undefined;
  if (given < 3) throw new Error('node TLS needs all of --node-tls-ca, --node-tls-cert and --node-tls-key');
  return { ca: readFileSync(files.ca!), cert: readFileSync(files.cert!), key: readFileSync(files.key!) };
}

export function nodeServerCredentials(tls: NodeTls | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], true);
}

/** Nodes are dialled by IP, which TLS may not name (RFC 6066): send a fixed server name instead. */
export function nodeChannelOptions(tls: NodeTls | undefined): grpc.ChannelOptions {
  return tls ? { 'grpc.ssl_target_name_override': 'tessera-node' } : {};
}

export function nodeChannelCredentials(tls: NodeTls | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(tls.ca, tls.key, tls.cert, { checkServerIdentity: () => undefined });
}
