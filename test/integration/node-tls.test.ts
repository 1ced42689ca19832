// Mutual TLS on the node network: three `tessera node` processes, `tessera init` and a
// `tessera gateway`, all with certificates from one cluster CA. S3 works end to end (shards travel
// over gRPC under TLS; the plaintext bulk channel is off), and a node refuses a peer that knows
// the cluster secret but has no certificate, or one from another CA, or one its CRL revokes.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, PutObjectCommand, CreateBucketCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { loadNodeTls, type NodeTls } from '../../src/common/node-tls.js';
import { NodeClient } from '../../src/replication/node-client.js';
import { freePort, runTessera, tesseraMain } from '../lib/cluster.js';
import { s3Client } from '../lib/s3-sdk.js';
import { spawnStorageNode, TEST_SECRET } from '../lib/storage-node.js';

const execFileAsync = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'tessera-node-tls-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

/** A CA and one certificate it signs, as PEM files named `<name>-ca.pem`, `<name>.pem`, `<name>.key`. */
async function makeCa(name: string): Promise<{ ca: string; cert: string; key: string }> {
  const file = (suffix: string) => join(work, `${name}${suffix}`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'];
  await execFileAsync('openssl', ['req', '-x509', ...ec, '-subj', `/CN=${name} CA`, '-keyout', file('-ca.key'), '-out', file('-ca.pem')]);
  await execFileAsync('openssl', ['req', ...ec.filter((a) => a !== '-days' && a !== '1'), '-subj', `/CN=${name} member`, '-keyout', file('.key'), '-out', file('.csr')]);
  await execFileAsync('openssl', ['x509', '-req', '-in', file('.csr'), '-CA', file('-ca.pem'), '-CAkey', file('-ca.key'), '-CAcreateserial', '-days', '1', '-out', file('.pem')]);
  return { ca: file('-ca.pem'), cert: file('.pem'), key: file('.key') };
}

const cluster = await makeCa('cluster');
const rogue = await makeCa('rogue');
const tlsFlags = ['--node-tls-ca', cluster.ca, '--node-tls-cert', cluster.cert, '--node-tls-key', cluster.key];
const memberTls = loadNodeTls(cluster)!;

const nodes = await Promise.all(['t1', 't2', 't3'].map((id) => spawnStorageNode(id, join(work, id), tlsFlags)));
t.teardown(() => Promise.all(nodes.map((n) => n.stop())));

async function refusal(secret: string, tls: NodeTls | undefined): Promise<string> {
  const client = new NodeClient('t1', nodes[0]!.address, secret, tls);
  try {
    await client.getClusterMap();
    return 'served';
  } catch (err) {
    return (err as { kind?: string }).kind ?? String(err);
  } finally {
    client.close();
  }
}

t.test('init needs a member certificate; with one the map is written', async (t) => {
  const nodeSpecs = nodes.flatMap((n, i) => ['--node', `t${i + 1}=${n.address}`]);
  const env = { TESSERA_CLUSTER_SECRET: TEST_SECRET };
  t.not((await runTessera(['init', ...nodeSpecs], env)).code, 0, 'without TLS the nodes answer nothing');
  const init = await runTessera(['init', ...nodeSpecs, ...tlsFlags], env);
  t.equal(init.code, 0, init.stderr);
  t.match(init.stdout, /cluster map epoch 1/);
});

t.test('S3 through a gateway that reaches the nodes over mutual TLS', async (t) => {
  const port = await freePort();
  const gateway = spawn(process.execPath, [tesseraMain, 'gateway', '--seeds', nodes.map((n) => n.address).join(','),
    '--host', '127.0.0.1', '--port', String(port), ...tlsFlags],
  { env: { ...process.env, TESSERA_CLUSTER_SECRET: TEST_SECRET, TESSERA_ACCESS_KEY: 'tlsadmin', TESSERA_SECRET_KEY: 'tls-secret-key' } });
  t.teardown(() => { gateway.kill('SIGKILL'); });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    gateway.stdout.on('data', (c: Buffer) => { output += c.toString(); if (output.includes('tessera gateway ready')) resolve(); });
    gateway.stderr.on('data', (c: Buffer) => { output += c.toString(); });
    gateway.once('exit', (code) => reject(new Error(`gateway exited (${code}): ${output}`)));
  });
  const s3 = s3Client(t, `http://127.0.0.1:${port}`, { accessKeyId: 'tlsadmin', secretAccessKey: 'tls-secret-key' });
  const body = randomBytes(3 * 1024 * 1024 + 17);
  await s3.send(new CreateBucketCommand({ Bucket: 'tls' }));
  await s3.send(new PutObjectCommand({ Bucket: 'tls', Key: 'big', Body: body }));
  const got = await s3.send(new GetObjectCommand({ Bucket: 'tls', Key: 'big' }));
  t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(body), 'a 3 MiB object (shards, not inline) reads back');

  const member = new NodeClient('t1', nodes[0]!.address, TEST_SECRET, memberTls);
  t.teardown(() => member.close());
  t.equal((await member.health()).bulkAddress, '', 'the node offers no plaintext bulk channel');
});

t.test('a node refuses peers without a cluster certificate, whatever secret they know', async (t) => {
  t.equal(await refusal(TEST_SECRET, memberTls), 'served', 'a member is served');
  t.not(await refusal(TEST_SECRET, undefined), 'served', 'plaintext with the right secret is refused');
  t.not(await refusal(TEST_SECRET, loadNodeTls(rogue)), 'served', 'a certificate from another CA is refused');
  t.not(await refusal('wrong-secret', memberTls), 'served', 'a member certificate with the wrong secret is refused');
});

/** Another certificate from the cluster CA. */
async function issue(name: string): Promise<{ ca: string; cert: string; key: string }> {
  const file = (suffix: string) => join(work, `${name}${suffix}`);
  await execFileAsync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', file('.key'), '-out', file('.csr')]);
  await execFileAsync('openssl', ['x509', '-req', '-in', file('.csr'), '-CA', cluster.ca, '-CAkey', join(work, 'cluster-ca.key'), '-CAserial', join(work, 'cluster-ca.srl'), '-days', '1', '-out', file('.pem')]);
  return { ca: cluster.ca, cert: file('.pem'), key: file('.key') };
}

/** The cluster CA's CRL, revoking `revoked` (certificate files), written as `openssl ca -gencrl` does. */
async function writeCrl(revoked: string[]): Promise<string> {
  const dir = mkdtempSync(join(work, 'ca-db-'));
  const config = join(dir, 'ca.cnf');
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'crlnumber'), '01\n');
  writeFileSync(config, `[ca]\ndefault_ca = d\n[d]\ndatabase = ${dir}/index.txt\ncrlnumber = ${dir}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 1\n`);
  const signer = ['-config', config, '-keyfile', join(work, 'cluster-ca.key'), '-cert', cluster.ca];
  for (const cert of revoked) await execFileAsync('openssl', ['ca', ...signer, '-revoke', cert]);
  const crl = join(dir, 'crl.pem');
  await execFileAsync('openssl', ['ca', ...signer, '-gencrl', '-out', crl]);
  return crl;
}

t.test('a certificate the CRL revokes is refused, also when the CRL changes while the node runs', async (t) => {
  const revokedEarly = await issue('revoked-early');
  const revokedLater = await issue('revoked-later');
  const crlFile = join(work, 'cluster.crl');
  writeFileSync(crlFile, readFileSync(await writeCrl([revokedEarly.cert])));
  const node = await spawnStorageNode('t4', join(work, 't4'), [...tlsFlags, '--node-tls-crl', crlFile]);
  t.teardown(() => node.stop());
  const served = async (files: { ca: string; cert: string; key: string }) => {
    const client = new NodeClient('t4', node.address, TEST_SECRET, loadNodeTls(files));
    try {
      await client.health();
      return true;
    } catch {
      return false;
    } finally {
      client.close();
    }
  };
  t.ok(await served(cluster), 'a member is served');
  t.notOk(await served(revokedEarly), 'a revoked certificate is refused');
  t.ok(await served(revokedLater), 'a certificate not yet revoked is served');

  writeFileSync(crlFile, readFileSync(await writeCrl([revokedEarly.cert, revokedLater.cert])));
  let refused = false;
  for (let attempt = 0; attempt < 40 && !refused; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    refused = !(await served(revokedLater));
  }
  t.ok(refused, 'the node follows the new CRL without a restart');
  t.ok(await served(cluster), 'members are still served');
  t.throws(() => loadNodeTls({ ...cluster, crl: cluster.cert }), 'a file that is no CRL is refused at start');
});
