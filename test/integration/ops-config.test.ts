// The three-host walkthrough of docs/deployment.md on loopback: storage nodes started from YAML
// files (with their metrics port), `tessera init`, a gateway from a JSON file with the command
// line overriding it, S3 traffic, node metrics counting the shards written, `tessera admin
// status` from the file's admin section, and a misspelt setting refused with a suggestion.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort, runTessera, tesseraMain } from '../lib/cluster.js';
import { signedSend } from '../lib/s3-request.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-ops-config-'));
const children: ChildProcess[] = [];
t.teardown(async () => {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((child) => (child.exitCode !== null ? undefined : new Promise((r) => child.once('exit', r)))));
  rmSync(dir, { recursive: true, force: true });
});
const env = {
  TESSERA_CLUSTER_SECRET: 'walkthrough-cluster-secret-0123456789abcdef',
  TESSERA_ACCESS_KEY: 'walkthrough-key',
  TESSERA_SECRET_KEY: 'walkthrough-secret-0123456789',
};
const credentials = { accessKeyId: env.TESSERA_ACCESS_KEY, secretAccessKey: env.TESSERA_SECRET_KEY };

/** Start `tessera <args>` and resolve with its stdout once `ready` matches. */
function launch(args: string[], ready: RegExp): Promise<string> {
  const child = spawn(process.execPath, [tesseraMain, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  let errors = '';
  child.stderr!.on('data', (chunk: Buffer) => { errors += chunk.toString(); });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (ready.test(output)) resolve(output);
    });
    child.once('exit', (code) => reject(new Error(`tessera ${args[0]} exited (${code}): ${errors}`)));
  });
}

const hosts = ['a', 'b', 'c'];
const nodes: Array<{ id: string; zone: string; listen: string; metrics: string }> = [];
for (const host of hosts) {
  nodes.push({ id: `${host}1`, zone: `rack-${host}`, listen: `127.0.0.1:${await freePort()}`, metrics: `127.0.0.1:${await freePort()}` });
}
for (const node of nodes) {
  writeFileSync(join(dir, `${node.id}.yaml`), [
    'log-level: info',
    'node:',
    `  id: ${node.id}`,
    `  data: ${join(dir, node.id)}`,
    `  listen: "${node.listen}"`,
    `  zone: ${node.zone}`,
    `  metrics-listen: "${node.metrics}"`,
    '',
  ].join('\n'));
}
await Promise.all(nodes.map((node) => launch(['node', '--config', join(dir, `${node.id}.yaml`)], /listening on/)));

t.test('tessera init gives the nodes their first map', async (t) => {
  const specs = nodes.flatMap((n) => ['--node', `${n.id}=${n.listen}@${n.zone}`]);
  const first = await runTessera(['init', ...specs], env);
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /cluster map epoch 1: a1, b1, c1, erasure 2\+1/);
  const bad = await runTessera(['init', '--node', 'a1=nowhere'], env);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /ID=HOST:PORT\[@ZONE\]/);
});

const gatewayPort = await freePort();
const gatewayConfig = join(dir, 'tessera.json');
writeFileSync(gatewayConfig, JSON.stringify({
  'log-level': 'warn',
  gateway: { seeds: nodes.map((n) => n.listen), host: '127.0.0.1', port: 1 },
  admin: { seeds: nodes.map((n) => n.listen).join(',') },
}));

t.test('a gateway from a config file, the command line overriding it', async (t) => {
  const output = await launch(['gateway', '--config', gatewayConfig, '--port', String(gatewayPort)], /ready/);
  t.match(output, `127.0.0.1:${gatewayPort}`, 'listens on the port given on the command line, not the file\'s');
  const endpoint = `http://127.0.0.1:${gatewayPort}`;
  t.equal((await signedSend(endpoint, credentials, { method: 'PUT', path: '/walk' })).status, 200);
  const body = Buffer.alloc(300 * 1024, 1);
  t.equal((await signedSend(endpoint, credentials, { method: 'PUT', path: '/walk/big', body })).status, 200);
  const read = await signedSend(endpoint, credentials, { method: 'GET', path: '/walk/big' });
  t.equal(read.body.length, body.length, 'reads back');
  t.equal((await fetch(`${endpoint}/_tessera/health/ready`)).status, 200);
});

t.test('each node serves its own metrics on --metrics-listen', async (t) => {
  let shardsWritten = 0;
  for (const node of nodes) {
    const response = await fetch(`http://${node.metrics}/_tessera/metrics`);
    t.equal(response.status, 200, `${node.id} answers`);
    const text = await response.text();
    t.match(text, /^tessera_node_disk_capacity_bytes \d+/m, `${node.id} disk capacity`);
    t.match(text, /^tessera_node_corrupt_blocks_total 0$/m, `${node.id} no corruption seen`);
    shardsWritten += Number(/^tessera_node_shard_writes_total (\d+)/m.exec(text)?.[1] ?? 0);
  }
  t.equal(shardsWritten, 3, 'the 300 KiB object was written as 2+1 shards, one per node');
});

async function nodeMetric(node: { metrics: string }, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://${node.metrics}/_tessera/metrics`)).text();
  const value = new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1];
  return value === undefined ? undefined : Number(value);
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)]);
}

t.test('a scrub finding a rotten block shows in that node\'s metrics', async (t) => {
  const victim = nodes[0]!;
  const shard = filesUnder(join(dir, victim.id, 'shards')).find((path) => statSync(path).size > 100 * 1024);
  if (!shard) throw new Error('no shard file of the 300 KiB object on a1');
  const fd = openSync(shard, 'r+');
  writeSync(fd, Buffer.from([0xff, 0x00, 0xff]), 0, 3, 1000); // inside the first data block
  closeSync(fd);
  const scrub = await runTessera(['admin', '--config', gatewayConfig, 'scrub'], env);
  t.match(scrub.stdout, /^a1: \d+ shards checked, 1 corrupt/m, 'scrub reports it');
  t.equal(await nodeMetric(victim, 'tessera_node_corrupt_blocks_total'), 1, 'a1 counted one corrupt block');
  t.equal(await nodeMetric(nodes[1]!, 'tessera_node_corrupt_blocks_total'), 0, 'b1 none');
});

t.test('tessera admin status reads the admin section of the same file', async (t) => {
  const status = await runTessera(['admin', '--config', gatewayConfig, 'status'], env);
  t.equal(status.code, 0, status.stderr);
  for (const node of nodes) t.match(status.stdout, new RegExp(`^${node.id}\\s+up\\s+${node.zone}\\s`, 'm'));
});

t.test('settings are validated with the file, the key and a suggestion', async (t) => {
  const typo = join(dir, 'typo.yaml');
  writeFileSync(typo, 'gateway:\n  prot: 9000\n');
  const refused = await runTessera(['gateway', '--config', typo], env);
  t.equal(refused.code, 1);
  t.match(refused.stderr, `${typo}: gateway.prot is not a setting of 'tessera gateway' (did you mean 'port'?)`);
  const wrongType = await runTessera(['node', '--id', 'x', '--data', join(dir, 'x'), '--listen', '127.0.0.1:0'], { ...env, TESSERA_CAPACITY: 'lots' });
  t.match(wrongType.stderr, 'TESSERA_CAPACITY must be a whole number, got "lots"');
  const missing = await runTessera(['gateway', '--config', join(dir, 'absent.yaml')], env);
  t.match(missing.stderr, /cannot read config file .*absent\.yaml/);
});
