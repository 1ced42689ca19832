// Test hosts in Linux network namespaces: each storage node gets its own namespace joined to the
// root namespace by a veth pair on a private /30 (10.77.S.4i+1 on the host side, 10.77.S.4i+2 on
// the node's), so a network partition is the node's link going down — packets vanish, as when a
// cable is pulled, instead of the instant "connection refused" of a dead loopback port.
// Needs root and iproute2; `netnsAvailable()` says whether this machine allows it.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const NAME_PREFIX = 'tessera-f';

const ip = (...args: string[]) => execFileAsync('ip', args).then(() => undefined);

export interface TestHost {
  /** Network namespace name; run a command in it with `ip netns exec NAME ...`. */
  namespace: string;
  /** The node's address inside its namespace (reachable from the root namespace). */
  address: string;
  /** Cut the host off the network (its link goes down; in-flight packets are lost). */
  cut(): Promise<void>;
  /** Bring its link back. */
  restore(): Promise<void>;
  /** Limit its link to `kbitPerSecond` each way (a congested or failing network path). */
  throttle(kbitPerSecond: number): Promise<void>;
  /** Lift the limit. */
  unthrottle(): Promise<void>;
  /** Bytes the host has sent over its link so far. */
  bytesSent(): Promise<number>;
}

const tc = (...args: string[]) => execFileAsync('tc', args).then(() => undefined);

/** A token bucket on one end of a link: `kbit` per second, a burst of 32 KiB, 400 ms of queue. */
function tokenBucket(device: string, kbit: number, namespace?: string): Promise<void> {
  const where = namespace ? ['-n', namespace] : [];
  return tc(...where, 'qdisc', 'replace', 'dev', device, 'root', 'tbf', 'rate', `${kbit}kbit`, 'burst', '32kb', 'latency', '400ms');
}

function removeQdisc(device: string, namespace?: string): Promise<void> {
  const where = namespace ? ['-n', namespace] : [];
  return tc(...where, 'qdisc', 'del', 'dev', device, 'root').catch(() => undefined);
}

let probed: boolean | undefined;

/** Whether network namespaces and veth pairs can be made here (root, iproute2, no sandbox veto). */
export function netnsAvailable(): boolean {
  if (probed !== undefined) return probed;
  const name = `${NAME_PREFIX}${process.pid}-probe`;
  try {
    execFileSync('ip', ['netns', 'add', name], { stdio: 'ignore' });
    execFileSync('ip', ['-n', name, 'link', 'add', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1'], { stdio: 'ignore' });
    probed = true;
  } catch {
    probed = false;
  } finally {
    try { execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' }); } catch { /* never made */ }
  }
  return probed;
}

/** Namespaces left behind by an earlier run of this harness that died (its pid is gone). */
export async function removeStaleHosts(): Promise<void> {
  const { stdout } = await execFileAsync('ip', ['netns', 'list']);
  for (const line of stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const owner = new RegExp(`^${NAME_PREFIX}(\\d+)-`).exec(name)?.[1];
    if (!owner || isAlive(Number(owner))) continue;
    await ip('netns', 'delete', name).catch(() => undefined);
  }
}

function isAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** A /30 subnet index for this run: 10.77.S.0/24 not used by any interface yet. */
async function freeSubnet(): Promise<number> {
  const { stdout } = await execFileAsync('ip', ['-o', '-4', 'addr', 'show']);
  for (let attempt = 0; attempt < 50; attempt++) {
    const subnet = 1 + Math.floor(Math.random() * 250);
    if (!stdout.includes(`10.77.${subnet}.`)) return subnet;
  }
  throw new Error('no free 10.77.x.0/24 subnet for test hosts');
}

/** One namespace per name in `ids`, each with a veth link to the root namespace. */
export async function createTestHosts(ids: string[]): Promise<{ hosts: Map<string, TestHost>; destroy(): Promise<void> }> {
  await removeStaleHosts();
  const subnet = await freeSubnet();
  const tag = `${process.pid.toString(36)}${subnet.toString(36)}`.slice(-5);
  const hosts = new Map<string, TestHost>();
  const created: string[] = [];
  const destroy = async () => {
    for (const namespace of created) await ip('netns', 'delete', namespace).catch(() => undefined);
  };
  try {
    for (const [i, id] of ids.entries()) {
      const namespace = `${NAME_PREFIX}${process.pid}-${id}`;
      const hostSide = `tf${tag}${i}h`;
      const nodeSide = `tf${tag}${i}n`;
      const base = 4 * (i + 1);
      const address = `10.77.${subnet}.${base + 2}`;
      await ip('netns', 'add', namespace);
      created.push(namespace);
      await ip('link', 'add', hostSide, 'type', 'veth', 'peer', 'name', nodeSide, 'netns', namespace);
      await ip('addr', 'add', `10.77.${subnet}.${base + 1}/30`, 'dev', hostSide);
      await ip('link', 'set', hostSide, 'up');
      await ip('-n', namespace, 'addr', 'add', `${address}/30`, 'dev', nodeSide);
      await ip('-n', namespace, 'link', 'set', nodeSide, 'up');
      await ip('-n', namespace, 'link', 'set', 'lo', 'up');
      hosts.set(id, {
        namespace,
        address,
        cut: () => ip('-n', namespace, 'link', 'set', nodeSide, 'down'),
        restore: () => ip('-n', namespace, 'link', 'set', nodeSide, 'up'),
        throttle: async (kbit) => {
          await tokenBucket(hostSide, kbit);
          await tokenBucket(nodeSide, kbit, namespace);
        },
        unthrottle: async () => {
          await removeQdisc(hostSide);
          await removeQdisc(nodeSide, namespace);
        },
        bytesSent: async () => {
          const { stdout } = await execFileAsync('ip', ['-n', namespace, '-j', '-s', 'link', 'show', 'dev', nodeSide]);
          return (JSON.parse(stdout) as Array<{ stats64: { tx: { bytes: number } } }>)[0]!.stats64.tx.bytes;
        },
      });
    }
  } catch (err) {
    await destroy();
    throw err;
  }
  return { hosts, destroy };
}
