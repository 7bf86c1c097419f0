/**
 * Real S3-compatible servers for integration tests, each in a child process on a free loopback
 * port:
 *
 * - `s3rver` (npm s3rver 3.7.1; see s3rver-process.ts for why it runs apart, with
 *   --openssl-legacy-provider), with its own temporary data directory. It ignores conditional
 *   writes (PutObject's If-None-Match and If-Match): a conditional put simply overwrites.
 * - `moto` (PyPI moto 5.2.5, its server mode, in the project's venv; see moto-s3-process.py),
 *   in memory. It implements If-None-Match and If-Match, and serves one request at a time so
 *   that a condition's check and the write are atomic, as on AWS S3.
 *
 * `getS3Server(kind)` starts one server of each kind per test run on first use and registers its teardown;
 * tests isolate themselves with their own bucket (`createBucket()`) or key prefix.
 * No orphan survives the run: teardown stops the server, an exit hook kills it if the run ends
 * another way, and the server exits by itself when its stdin (our pipe) closes.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { registerTeardown } from '../setup';
import { venvPython } from './python';

export type S3ServerKind = 's3rver' | 'moto';

export interface S3TestServer {
  kind: S3ServerKind;
  /** True when the server honours PutObject's If-None-Match and If-Match (atomically). */
  conditionalWrites: boolean;
  /** e.g. http://127.0.0.1:41234 (use path-style addressing). */
  endpoint: string;
  region: string;
  /** s3rver's built-in account; moto accepts any. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** A new client for this server; the caller destroys it. */
  newClient(): S3Client;
  /** Creates a bucket (a fresh random name by default) and returns its name. */
  createBucket(name?: string): Promise<string>;
  stop(): Promise<void>;
}

const S3RVER_SCRIPT = path.join(__dirname, 's3rver-process.ts');
const MOTO_SCRIPT = path.join(__dirname, 'moto-s3-process.py');
const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

/** Starts a server of its own; the caller must stop() it. Most tests want getS3Server(). */
export async function startS3Server(kind: S3ServerKind = 's3rver'): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(os.tmpdir(), `forgeline-${kind}-`));
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // the child gets exactly the flags it needs (and no --inspect port clash)
  const child =
    kind === 's3rver'
      ? spawn(process.execPath, ['--openssl-legacy-provider', '--require', require.resolve('tsx/cjs'), S3RVER_SCRIPT, directory], {
          stdio: ['pipe', 'pipe', 'pipe'],
          env,
        })
      : spawn(venvPython(), [MOTO_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'], env, cwd: directory });

  // Whatever ends this process, take the server with it.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);

  // Keep the last few KiB of stderr for error messages; keep draining so the child never blocks.
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8192);
  });

  const cleanup = async (): Promise<void> => {
    await stopChild(child);
    process.off('exit', killOnExit);
    await rm(directory, { recursive: true, force: true });
  };

  let port: number;
  try {
    port = await readPort(kind, child, () => stderr);
  } catch (err) {
    await cleanup();
    throw err;
  }

  const endpoint = `http://127.0.0.1:${port}`;
  const region = 'us-east-1';
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  const newClient = (): S3Client => new S3Client({ endpoint, region, credentials, forcePathStyle: true });
  const admin = newClient();

  return {
    kind,
    conditionalWrites: kind === 'moto',
    endpoint,
    region,
    credentials,
    newClient,
    async createBucket(name = `forgeline-test-${randomBytes(4).toString('hex')}`) {
      await admin.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    async stop() {
      admin.destroy();
      await cleanup();
    },
  };
}

/** Resolves with the port from the child's `{"port": n}` line; rejects if it dies or hangs. */
async function readPort(kind: S3ServerKind, child: ChildProcessWithoutNullStreams, stderr: () => string): Promise<number> {
  const hint = kind === 'moto' ? ` (moto comes from requirements.lock: run scripts/bootstrap; python is ${venvPython()})` : '';
  const lines = readline.createInterface({ input: child.stdout });
  const ready = new Promise<number>((resolve, reject) => {
    lines.once('line', (line) => {
      try {
        resolve((JSON.parse(line) as { port: number }).port);
      } catch {
        reject(new Error(`${kind} printed ${JSON.stringify(line)} instead of its port`));
      }
    });
    child.once('exit', (code, signal) => {
      reject(new Error(`${kind} exited before listening (code ${code}, signal ${signal})${hint}:\n${stderr()}`));
    });
    child.once('error', reject);
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${kind} did not listen within ${STARTUP_TIMEOUT_MS} ms:\n${stderr()}`)), STARTUP_TIMEOUT_MS);
  });
  try {
    return await Promise.race([ready, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** SIGTERM, then SIGKILL if it has not exited in time; resolves once it has exited. */
async function stopChild(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

const shared = new Map<S3ServerKind, Promise<S3TestServer>>();

/** The run's shared server of `kind`, started on first use and stopped by the root afterAll hook. */
export function getS3Server(kind: S3ServerKind = 's3rver'): Promise<S3TestServer> {
  let server = shared.get(kind);
  if (!server) {
    const starting = startS3Server(kind);
    server = starting;
    shared.set(kind, starting);
    registerTeardown(kind, async () => {
      const started = await starting.catch(() => undefined);
      await started?.stop();
    });
  }
  return server;
}
