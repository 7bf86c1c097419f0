/**
 * A real Milvus server for tests: Milvus 2.3.5 standalone (the whole Go/C++ server: proxy,
 * coordinators, query/data/index nodes, with embedded etcd, local storage and RocksMQ), shipped as
 * binaries in the PyPI package `milvus` (requirements-stores.txt), which the stores venv installs
 * (scripts/lib/stores-venv.sh, run from scripts/bootstrap and here on first use).
 *
 * Why not `milvus-lite`: 3.x is a pure-Python rewrite behind a Milvus-compatible gRPC adapter
 * (not the Milvus engine), and the 2.4/2.5 wheels wrap the C++ core but answer alias calls with
 * empty messages and build only FLAT/IVF_FLAT indexes. The `milvus` package runs the real server,
 * native aliases and HNSW included.
 *
 * Each server gets a temp directory of its own (config, data, logs) and free loopback ports for
 * every listener, embedded etcd's client and peer ports too (the package's own launcher leaves
 * those at 2379/2380, so two servers could not run side by side). The binaries are unpacked once
 * per venv (under a lock) into `<venv>/share/forgeline-milvus/bin`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MilvusClient } from '@zilliz/milvus2-sdk-node';
import { REPO_ROOT } from '../../src/config/load';
import { stopProcessGroup } from '../../src/temporal/dev-server';
import { registerTeardown } from '../setup';
import { freePort } from './processes';

export interface MilvusServer {
  /** gRPC address for the SDK, `127.0.0.1:<port>`. */
  address: string;
  version: string;
  dir: string;
  child: ChildProcess;
  /** Stops the server (its whole process group) and removes its directory. */
  stop(): Promise<void>;
}

/** The stores venv (scripts/lib/stores-venv.sh): FORGELINE_STORES_VENV, else `<repo>/.venv-stores`. */
export function storesVenv(): string {
  const venv = process.env.FORGELINE_STORES_VENV ?? '.venv-stores';
  return path.isAbsolute(venv) ? venv : path.join(REPO_ROOT, venv);
}

/** Ports the config template asks for (`{{ name(int): default }}`), each given a free one. */
const TEMPLATE_PORTS = [
  'etcd_port',
  'root_coord_port',
  'proxy_port',
  'proxy_internal_port',
  'query_coord_port',
  'query_node_port',
  'index_coord_port',
  'index_node_port',
  'data_coord_port',
  'data_node_port',
] as const;

const UNPACK = `
import fcntl, os, sys
import milvus
base = sys.argv[1]
os.makedirs(base, exist_ok=True)
with open(os.path.join(base, '.unpack.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    milvus._initialize_data_files(base)  # md5-stamped: a no-op once unpacked
print(os.path.dirname(os.path.abspath(milvus.__file__)))
print(milvus.__version__)
`;

let prepared: { pkg: string; bin: string; version: string } | undefined;

/** Makes the stores venv ready and the server binaries unpacked; returns where they are. */
function prepare(): { pkg: string; bin: string; version: string } {
  if (prepared) return prepared;
  const script = path.join(REPO_ROOT, 'scripts/lib/stores-venv.sh');
  if (existsSync(script)) execFileSync('bash', [script], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 600_000 });
  const venv = storesVenv();
  const python = path.join(venv, 'bin', 'python');
  if (!existsSync(python)) {
    throw new Error(`no stores venv at ${venv}: run scripts/bootstrap (or bash scripts/lib/stores-venv.sh), or point FORGELINE_STORES_VENV at one`);
  }
  const share = path.join(venv, 'share', 'forgeline-milvus');
  let out: string;
  try {
    out = execFileSync(python, ['-c', UNPACK, share], { encoding: 'utf8', timeout: 300_000 });
  } catch (err) {
    throw new Error(`the stores venv ${venv} has no usable 'milvus' package (requirements-stores.txt pins it): ${String(err)}`);
  }
  const [pkg, version] = out.trim().split('\n');
  prepared = { pkg: pkg!, bin: path.join(share, 'bin'), version: version! };
  return prepared;
}

/** The Milvus version the stores venv's `milvus` package ships (installs and unpacks on first use). */
export function milvusVersion(): string {
  return prepare().version;
}

/** The package's config template with every `{{ name(type): default }}` filled in. */
export function renderConfig(template: string, values: Readonly<Record<string, string | number>>): string {
  return template.replace(/\{\{([^}]*)\}\}/g, (_match, inner: string) => {
    const colon = inner.indexOf(':');
    const name = (colon < 0 ? inner : inner.slice(0, colon)).replace(/\(.*\)/, '').trim();
    const fallback = colon < 0 ? undefined : inner.slice(colon + 1).trim();
    const value = values[name] ?? fallback;
    if (value === undefined || value === '') throw new Error(`milvus config template: no value for ${name}`);
    return String(value);
  });
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/**
 * The proxy answers a health check. A client per probe, its connection awaited here: a client
 * connects as it is constructed, and one made before the proxy listens would reject that
 * connection with nobody awaiting it (an unhandled rejection, fatal under a Temporal worker).
 */
async function proxyHealthy(address: string): Promise<boolean> {
  const client = new MilvusClient({ address, timeout: 5_000 });
  try {
    await client.connectPromise;
    return (await client.checkHealth()).isHealthy;
  } catch {
    return false;
  } finally {
    await client.closeConnection().catch(() => undefined);
  }
}

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Starts a Milvus server of its own in a temp directory; resolves once it answers gRPC calls. */
export async function startMilvus(options: { startTimeoutMs?: number } = {}): Promise<MilvusServer> {
  const { pkg, bin, version } = prepare();
  const dir = mkdtempSync(path.join(tmpdir(), 'forgeline-milvus-'));
  const ports = await distinctFreePorts(TEMPLATE_PORTS.length + 3);
  const [etcdClient, etcdPeer, metrics] = ports.slice(TEMPLATE_PORTS.length) as [number, number, number];
  const values: Record<string, string | number> = Object.fromEntries(TEMPLATE_PORTS.map((name, i) => [name, ports[i]!]));
  for (const sub of ['configs', 'logs', 'data', 'run']) mkdirSync(path.join(dir, sub));
  Object.assign(values, {
    etcd_port: etcdClient,
    etcd_log_path: path.join(dir, 'logs', 'etcd.log'),
    etcd_data_dir: path.join(dir, 'data', 'etcd.data'),
    system_log_path: path.join(dir, 'logs'),
    local_storage_dir: path.join(dir, 'data'),
    rocksmq_data_dir: path.join(dir, 'data', 'rocksmq'),
  });
  const template = readFileSync(path.join(pkg, 'data', 'config.yaml.template'), 'utf8');
  writeFileSync(path.join(dir, 'configs', 'milvus.yaml'), renderConfig(template, values));
  writeFileSync(path.join(dir, 'configs', 'glog.conf'), readFileSync(path.join(pkg, 'data', 'glog.conf')));
  const etcdConfig = path.join(dir, 'configs', 'embed-etcd.yaml');
  writeFileSync(
    etcdConfig,
    [
      `listen-client-urls: http://127.0.0.1:${etcdClient}`,
      `advertise-client-urls: http://127.0.0.1:${etcdClient}`,
      `listen-peer-urls: http://127.0.0.1:${etcdPeer}`,
      `initial-advertise-peer-urls: http://127.0.0.1:${etcdPeer}`,
      `initial-cluster: default=http://127.0.0.1:${etcdPeer}`,
      '',
    ].join('\n'),
  );

  const logFile = path.join(dir, 'logs', 'milvus-stdout.log');
  const log = createWriteStream(logFile);
  await new Promise((resolve) => log.once('open', resolve));
  const child = spawn(path.join(bin, 'milvus'), ['run', 'standalone'], {
    cwd: dir, // the server reads configs/milvus.yaml from here
    detached: true,
    stdio: ['ignore', log, log],
    env: {
      ...process.env,
      DEPLOY_MODE: 'STANDALONE',
      METRICS_PORT: String(metrics),
      MILVUS_RUN_DIR: path.join(dir, 'run'),
      ETCD_CONFIG_PATH: etcdConfig, // = etcd.config.path: the embedded etcd's own listeners
      LOG_LEVEL: 'warn',
      // Test speed (config keys as env: proxy.timeTickInterval...): Strong reads wait for a time
      // tick, and a load for the query coordinator's checks; the defaults are 200 ms and 1-3 s.
      PROXY_TIMETICKINTERVAL: '50',
      QUERYCOORD_CHECKINTERVAL: '100',
      QUERYCOORD_DISTPULLINTERVAL: '100',
      QUERYCOORD_CHECKCHANNELINTERVAL: '100',
      QUERYCOORD_CHECKSEGMENTINTERVAL: '100',
      LD_LIBRARY_PATH: [bin, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
    },
  });
  const address = `127.0.0.1:${values.proxy_port}`;
  const stop = async (): Promise<void> => {
    await stopProcessGroup(child, 15_000);
    log.close();
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 120_000);
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`milvus exited (${child.exitCode ?? child.signalCode}) before it was ready; ${logFile}:\n${tail(logFile)}`);
      }
      try {
        const health = await fetch(`http://127.0.0.1:${metrics}/healthz`, { signal: AbortSignal.timeout(2_000) });
        if (health.ok && (await health.text()).includes('OK') && (await proxyHealthy(address))) break;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error(`milvus did not become healthy at ${address} in time; ${logFile}:\n${tail(logFile)}`);
      await sleep(250);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { address, version, dir, child, stop };
}

let shared: Promise<MilvusServer> | undefined;

/** One Milvus per test run, started on first use; tests keep apart by collection names. */
export function getMilvus(): Promise<MilvusServer> {
  if (!shared) {
    shared = startMilvus();
    registerTeardown('milvus', async () => (await shared!).stop());
  }
  return shared;
}
