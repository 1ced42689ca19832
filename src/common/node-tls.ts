// Mutual TLS on the node network (optional; `--node-tls-ca/-cert/-key`). Every storage node,
// gateway and admin tool holds a certificate from the cluster's own CA: nodes accept only peers
// that present one, and peers accept only nodes that do. A certificate from that CA is what makes
// a member, so host names are not checked (cluster maps address nodes by IP). The cluster secret
// is still required on every call; TLS adds encryption and a second factor.
//
// Revocation: with `--node-tls-crl` (a PEM CRL the cluster CA signed, `openssl ca -gencrl`) every
// handshake checks the peer's certificate against it, in OpenSSL. Nodes re-read the file when it
// changes and end each connection after CONNECTION_AGE_WITH_CRL_MS, so a revoked peer is cut off
// within about a minute without restarts. A CRL past its nextUpdate fails every handshake, as
// OpenSSL does: renew it before then.
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';

export interface NodeTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** The CRL file, re-read by nodes when it changes. */
  crlFile?: string;
}

export interface NodeTlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
  crl?: string;
}

/** A connection lives at most this long when a CRL is in force, so revocations reach open connections. */
export const CONNECTION_AGE_WITH_CRL_MS = 60_000;
const CRL_POLL_MS = 2_000;

/** The three PEM files, all or none (a partial set is a configuration mistake, not "no TLS"); a CRL only with them. */
export function loadNodeTls(files: NodeTlsFiles): NodeTls | undefined {
  const given = [files.ca, files.cert, files.key].filter((f) => f !== undefined).length;
  if (given === 0 && files.crl === undefined) return undefined;
  if (given < 3) throw new Error('node TLS needs all of --node-tls-ca, --node-tls-cert and --node-tls-key');
  const tls = { ca: readFileSync(files.ca!), cert: readFileSync(files.cert!), key: readFileSync(files.key!), crlFile: files.crl };
  createSecureContext(contextOptions(tls)); // a CRL that does not parse fails at start, not at the first handshake
  return tls;
}

function contextOptions(tls: NodeTls): SecureContextOptions {
  return { ca: tls.ca, cert: tls.cert, key: tls.key, ...(tls.crlFile ? { crl: readFileSync(tls.crlFile) } : {}) };
}

/**
 * Server credentials that require a client certificate and follow the CRL file: grpc-js applies
 * updated context options to new handshakes.
 */
class NodeServerCredentials extends grpc.ServerCredentials {
  private readonly reload = () => {
    try {
      const options = contextOptions(this.tls);
      createSecureContext(options);
      this.updateSecureContextOptions(options);
    } catch {
      // A half-written or broken file keeps the last good CRL in force until the next change.
    }
  };

  constructor(private readonly tls: NodeTls) {
    super({ requestCert: true, rejectUnauthorized: true }, contextOptions(tls));
    if (tls.crlFile) watchFile(tls.crlFile, { interval: CRL_POLL_MS, persistent: false }, this.reload);
  }

  stopWatching(): void {
    if (this.tls.crlFile) unwatchFile(this.tls.crlFile, this.reload);
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** A node's server credentials, and how to stop following the CRL file when the node closes. */
export function nodeServerCredentials(tls: NodeTls | undefined): { credentials: grpc.ServerCredentials; close(): void } {
  if (!tls) return { credentials: grpc.ServerCredentials.createInsecure(), close: () => {} };
  const credentials = new NodeServerCredentials(tls);
  return { credentials, close: () => credentials.stopWatching() };
}

/** Server options that go with the credentials: a bounded connection age while a CRL is in force. */
export function nodeServerOptions(tls: NodeTls | undefined): grpc.ServerOptions {
  return tls?.crlFile ? { 'grpc.max_connection_age_ms': CONNECTION_AGE_WITH_CRL_MS, 'grpc.max_connection_age_grace_ms': CONNECTION_AGE_WITH_CRL_MS } : {};
}

/** Nodes are dialled by IP, which TLS may not name (RFC 6066): send a fixed server name instead. */
export function nodeChannelOptions(tls: NodeTls | undefined): grpc.ChannelOptions {
  return tls ? { 'grpc.ssl_target_name_override': 'tessera-node' } : {};
}

export function nodeChannelCredentials(tls: NodeTls | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createFromSecureContext(createSecureContext(contextOptions(tls)), { checkServerIdentity: () => undefined });
}
