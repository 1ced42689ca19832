// The node-network TLS flags every command that talks to storage nodes takes.
import { loadNodeTls, type NodeTls } from '../common/node-tls.js';
import { flag, type ParsedArgs } from './args.js';

export const NODE_TLS_HELP = `  --node-tls-ca F --node-tls-cert F --node-tls-key F
                      mutual TLS on the node network: the cluster CA and this process's
                      certificate and key, PEM (env TESSERA_NODE_TLS_CA, _CERT, _KEY)
  --node-tls-crl F    revoked node-network certificates: a PEM CRL from the cluster CA, checked
                      on every handshake; nodes follow changes to the file (env TESSERA_NODE_TLS_CRL)
`;

export function nodeTlsFrom(args: ParsedArgs): NodeTls | undefined {
  return loadNodeTls({ ca: flag(args, 'node-tls-ca'), cert: flag(args, 'node-tls-cert'), key: flag(args, 'node-tls-key'), crl: flag(args, 'node-tls-crl') });
}
