/**
 * ArtifactStore adapters: the shared conformance suite against the local filesystem and against
 * two real S3-compatible servers, plus what is specific to each adapter and the factory.
 * s3rver ignores conditional writes (If-None-Match, If-Match), so those run against moto's
 * server, which implements them; everything else runs against both.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createArtifactStore } from '../../src/adapters/artifact-store';
import { mapWithConcurrency } from '../../src/adapters/artifact-common';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { DEFAULT_PART_SIZE, S3ArtifactStore } from '../../src/adapters/s3-artifact-store';
import { ErrorType } from '../../src/contracts/errors';
import { ArtifactIntegrityError, ConfigError, ForgelineError } from '../../src/ports/errors';
import { digestStream, sha256, writeRandomFile } from '../helpers/artifact-fixtures';
import { startCasWorker, stopCasWorkers } from '../helpers/cas-workers';
import { getS3Server, type S3ServerKind, type S3TestServer } from '../helpers/s3-server';
import { describeArtifactStoreConformance, type StoreUnderTest } from './artifact-store.conformance';

const MiB = 1024 * 1024;

async function tempDir(label: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `forgeline-${label}-`));
}

function randomName(): string {
  return randomBytes(4).toString('hex');
}

function isConfigError(mentions: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.type, ErrorType.InvalidConfig);
    assert.equal(err.terminal, true);
    assert.match(err.message, mentions);
    return true;
  };
}

// ---------------------------------------------------------------------------------------------
// Local filesystem
// ---------------------------------------------------------------------------------------------

describeArtifactStoreConformance('LocalArtifactStore (local filesystem)', async () => {
  const dir = await tempDir('local-store');
  return {
    store: new LocalArtifactStore(pathToFileURL(dir).href),
    another: () => new LocalArtifactStore(pathToFileURL(dir).href),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('LocalArtifactStore specifics', function () {
  let dir: string;
  let store: LocalArtifactStore;

  beforeEach(async function () {
    dir = await tempDir('local-store');
    store = new LocalArtifactStore(`${pathToFileURL(dir).href}/`);
  });
  afterEach(async function () {
    await rm(dir, { recursive: true, force: true });
  });

  it('normalizes its root URI and names objects by file URI', async function () {
    assert.equal(store.rootUri, pathToFileURL(dir).href);
    const info = await store.put('a/b c.txt', 'x');
    assert.equal(info.uri, pathToFileURL(path.join(dir, 'a', 'b c.txt')).href);
  });

  it('rejects roots that are not absolute file: URIs', function () {
    for (const uri of ['s3://bucket/x', 'file://some-host/dir', 'not a uri']) {
      assert.throws(() => new LocalArtifactStore(uri), isConfigError(/FORGELINE_ARTIFACT_URI/));
    }
  });

  // Not in the conformance suite: s3rver itself lists in directory-walk order (q/a/c first).
  it('orders keys by their bytes, as S3 does, not by directory walk order', async function () {
    const keys = ['q/a/c', 'q/a-b', 'q/a.b', 'q/a0', 'q/B'];
    for (const key of keys) await store.put(key, key);
    const listed = (await store.list('q/')).items.map((i) => i.key);
    assert.deepEqual(listed, ['q/B', 'q/a-b', 'q/a.b', 'q/a/c', 'q/a0']);
    // And the cursor resumes correctly in the middle of such an ordering.
    const first = await store.list('q/', { pageSize: 3 });
    assert.equal(first.cursor, 'q/a.b');
    const rest = await store.list('q/', { cursor: first.cursor! });
    assert.deepEqual(rest.items.map((i) => i.key), ['q/a/c', 'q/a0']);
  });

  it('leaves the old object and no temporary files when a streaming put fails', async function () {
    await store.put('atomic/obj', 'previous');
    const failing = new Readable({
      read() {
        this.push(Buffer.alloc(64 * 1024, 1));
        this.destroy(new Error('source broke'));
      },
    });
    await assert.rejects(store.put('atomic/obj', failing), /source broke/);
    assert.equal((await store.getBytes('atomic/obj')).toString(), 'previous');
    assert.deepEqual(await readdir(path.join(dir, 'atomic')), ['obj'], 'no .forgeline-tmp-* file may remain');
  });

  it('keeps its checksums out of listings, and recomputes one gone stale', async function () {
    await store.put('k/file', 'one');
    assert.ok(existsSync(path.join(dir, '.forgeline')), 'checksums live under .forgeline/');
    assert.deepEqual((await store.list('')).items.map((i) => i.key), ['k/file']);

    // A file changed outside the store: its checksum record no longer matches size and mtime.
    await writeFile(path.join(dir, 'k', 'file'), 'changed by hand');
    assert.equal((await store.head('k/file'))?.sha256, sha256('changed by hand'));
    assert.equal((await store.getBytes('k/file')).toString(), 'changed by hand');
  });

  it('verifies reads against its checksum record', async function () {
    await store.put('rot/file', 'abcdef');
    // Bytes that no longer match a still-valid record (same size and mtime): bit rot, in effect.
    // (Rewriting the bytes instead would change the mtime, and utimes cannot restore it to the
    // nanosecond, so the record is what we alter.)
    const recordPath = path.join(dir, '.forgeline', 'sha256', 'rot', 'file.json');
    const record = JSON.parse(await readFile(recordPath, 'utf8')) as { sha256: string };
    await writeFile(recordPath, JSON.stringify({ ...record, sha256: sha256('abcdeX') }));

    await assert.rejects(store.getBytes('rot/file'), ArtifactIntegrityError);
    const target = path.join(dir, 'out', 'file');
    await assert.rejects(store.getFile('rot/file', target), ArtifactIntegrityError);
    assert.equal(existsSync(target), false);
  });

  it('explains that a key cannot be both an object and a prefix on a filesystem', async function () {
    await store.put('leaf', 'x');
    await assert.rejects(store.put('leaf/child', 'y'), /cannot store "leaf\/child".*prefix of other keys/);
    await store.put('branch/child', 'y');
    await assert.rejects(store.put('branch', 'x'), /cannot store "branch".*prefix of other keys/);
  });
});

// ---------------------------------------------------------------------------------------------
// S3 against s3rver
// ---------------------------------------------------------------------------------------------

/** One bucket per server for the conformance suite; each test gets its own root prefix inside it. */
const conformanceBuckets = new Map<S3ServerKind, Promise<string>>();

function s3Store(server: S3TestServer, rootUri: string, extra: Partial<ConstructorParameters<typeof S3ArtifactStore>[1]> = {}): S3ArtifactStore {
  return new S3ArtifactStore(rootUri, {
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: server.credentials,
    ...extra,
  });
}

function s3Conformance(kind: S3ServerKind): () => Promise<StoreUnderTest> {
  return async () => {
    const server = await getS3Server(kind);
    if (!conformanceBuckets.has(kind)) conformanceBuckets.set(kind, server.createBucket());
    const root = `s3://${await conformanceBuckets.get(kind)!}/runs/${randomName()}`;
    // Nothing to clean up per test: the server's data goes when it stops.
    return { store: s3Store(server, root), another: () => s3Store(server, root), cleanup: async () => undefined };
  };
}

describeArtifactStoreConformance('S3ArtifactStore (integration, needs s3rver)', s3Conformance('s3rver'), {
  conditionalWrites: 's3rver 3.7.1 ignores If-None-Match and If-Match, so a conditional put overwrites; the moto run covers them',
});

describeArtifactStoreConformance('S3ArtifactStore (integration, moto server: conditional writes)', s3Conformance('moto'));

describe('S3ArtifactStore specifics (integration, needs s3rver)', function () {
  let server: S3TestServer;
  let bucket: string;
  let scratch: string;
  const clients: S3Client[] = [];

  /** A client that records the name of every command it sends. */
  function recordingClient(): { client: S3Client; commands: string[] } {
    const client = server.newClient();
    clients.push(client);
    const commands: string[] = [];
    client.middlewareStack.add(
      (next, context) => async (args) => {
        commands.push(context.commandName ?? 'unknown');
        return next(args);
      },
      { step: 'initialize', name: 'recordCommandNames' },
    );
    return { client, commands };
  }

  before(async function () {
    server = await getS3Server();
    bucket = await server.createBucket();
  });
  beforeEach(async function () {
    scratch = await tempDir('s3-test');
  });
  afterEach(async function () {
    await rm(scratch, { recursive: true, force: true });
  });
  after(function () {
    for (const client of clients) client.destroy();
  });

  it('maps keys under the root prefix, and works at a bucket root too', async function () {
    const store = s3Store(server, `s3://${bucket}/some/root/`);
    assert.equal(store.rootUri, `s3://${bucket}/some/root`);
    const info = await store.put('k/v.txt', 'value');
    assert.equal(info.uri, `s3://${bucket}/some/root/k/v.txt`);

    const { client } = recordingClient();
    const raw = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'some/root/k/v.txt' }));
    assert.equal(raw.Metadata?.sha256, sha256('value'), 'sha256 travels as x-amz-meta-sha256');

    const rootBucket = await server.createBucket();
    const atRoot = s3Store(server, `s3://${rootBucket}`);
    await atRoot.put('top.txt', 'top');
    assert.deepEqual((await atRoot.list('')).items.map((i) => i.uri), [`s3://${rootBucket}/top.txt`]);
  });

  it('rejects malformed roots with ConfigError', function () {
    for (const uri of ['s3://', 's3://Bad_Bucket/x', 's3://ok-bucket/a/../b', 'file:///tmp/x']) {
      assert.throws(() => s3Store(server, uri), isConfigError(/FORGELINE_ARTIFACT_URI|invalid prefix/));
    }
  });

  it('turns a missing bucket into a ConfigError naming FORGELINE_ARTIFACT_URI', async function () {
    const store = s3Store(server, `s3://no-such-bucket-${randomName()}/p`);
    await assert.rejects(store.put('k', 'v'), isConfigError(/does not exist.*FORGELINE_ARTIFACT_URI.*FORGELINE_S3_ENDPOINT/));
    await assert.rejects(store.list(''), isConfigError(/FORGELINE_ARTIFACT_URI/));
    await assert.rejects(store.get('k'), isConfigError(/FORGELINE_ARTIFACT_URI/));
  });

  it('turns refused credentials into a ConfigError naming the AWS credentials', async function () {
    const store = s3Store(server, `s3://${bucket}/p`, { credentials: { accessKeyId: 'WRONG', secretAccessKey: 'WRONG' } });
    await assert.rejects(store.put('k', 'v'), isConfigError(/AWS_ACCESS_KEY_ID/));
    await assert.rejects(store.head('k'), isConfigError(/AWS_ACCESS_KEY_ID/));
    await assert.rejects(store.getBytes('k'), isConfigError(/AWS_ACCESS_KEY_ID/));
  });

  it('verifies reads against the stored sha256', async function () {
    const store = s3Store(server, `s3://${bucket}/verify`);
    const { client } = recordingClient();
    // An object whose metadata does not match its bytes (corruption, or a foreign writer).
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'verify/bad', Body: 'actual bytes', Metadata: { sha256: sha256('other bytes') } }),
    );
    await assert.rejects(store.getBytes('bad'), ArtifactIntegrityError);
    const target = path.join(scratch, 'bad');
    await assert.rejects(store.getFile('bad', target), ArtifactIntegrityError);
    assert.equal(existsSync(target), false);
  });

  it('lists 1,050 keys across pages of 1,000, each exactly once', async function () {
    this.timeout(120_000);
    const store = s3Store(server, `s3://${bucket}/many`);
    const keys = Array.from({ length: 1050 }, (_, i) => `k/${String(i).padStart(5, '0')}`);
    const started = Date.now();
    await mapWithConcurrency(keys, 32, (key) => store.put(key, key));
    const wrote = Date.now();

    const first = await store.list('k/');
    assert.equal(first.items.length, 1000);
    assert.ok(first.cursor, 'a second page must follow');
    const second = await store.list('k/', { cursor: first.cursor });
    assert.equal(second.items.length, 50);
    assert.equal(second.cursor, undefined);

    const counts = new Map<string, number>();
    for (const item of [...first.items, ...second.items]) counts.set(item.key, (counts.get(item.key) ?? 0) + 1);
    assert.equal(counts.size, 1050);
    assert.deepEqual([...counts.keys()], keys, 'in key order');
    assert.ok([...counts.values()].every((n) => n === 1), 'no key may be listed twice');

    const all: string[] = [];
    for await (const item of store.listAll('k/')) all.push(item.key);
    assert.deepEqual(all, keys);
    console.log(`      1,050 keys: wrote in ${wrote - started} ms, listed twice in ${Date.now() - wrote} ms`);
  });

  it('uploads a 100+ MiB file in parts and streams it back, with bounded memory', async function () {
    this.timeout(180_000);
    const size = 100 * MiB + 12_345; // not a multiple of the part size: the last part is short
    const source = path.join(scratch, 'big.bin');
    const digest = await writeRandomFile(source, size);
    const { client, commands } = recordingClient();
    const store = new S3ArtifactStore(`s3://${bucket}/big`, { client });

    // Sample memory while uploading and downloading: nothing may hold the whole file.
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    try {
      const t0 = Date.now();
      const put = await store.putFile('model.bin', source);
      const t1 = Date.now();
      assert.equal(put.size, size);
      assert.equal(put.sha256, digest);

      const expectedParts = Math.ceil(size / DEFAULT_PART_SIZE);
      assert.equal(commands.filter((c) => c === 'CreateMultipartUploadCommand').length, 1);
      assert.equal(commands.filter((c) => c === 'UploadPartCommand').length, expectedParts);
      assert.equal(commands.filter((c) => c === 'CompleteMultipartUploadCommand').length, 1);
      assert.equal(commands.filter((c) => c === 'PutObjectCommand').length, 0);

      const head = await store.head('model.bin');
      assert.equal(head?.size, size);
      assert.equal(head?.sha256, digest);

      const t2 = Date.now();
      const read = await digestStream(await store.get('model.bin'));
      const t3 = Date.now();
      assert.equal(read.size, size);
      assert.equal(read.sha256, digest);

      // Idempotent re-put: head says the same bytes are there, so nothing is uploaded.
      commands.length = 0;
      await store.putFile('model.bin', source);
      assert.deepEqual(commands, ['HeadObjectCommand']);

      const growth = (peak - baseline) / MiB;
      console.log(
        `      ${(size / MiB).toFixed(1)} MiB in ${expectedParts} parts: upload ${t1 - t0} ms, ` +
          `streaming download ${t3 - t2} ms, peak RSS growth ${growth.toFixed(0)} MiB`,
      );
      // Parts in flight are partSize x queueSize = 64 MiB; the file is over 100 MiB.
      assert.ok(growth < 100 + 64, `RSS grew by ${growth.toFixed(0)} MiB`);
    } finally {
      clearInterval(sampler);
    }
  });
});

describe('S3ArtifactStore conditional writes (integration, moto server)', function () {
  it('sends If-None-Match / If-Match, and retries a 409 ConditionalRequestConflict until the condition decides', async function () {
    const server = await getS3Server('moto');
    const bucket = await server.createBucket();
    const client = server.newClient();
    const headers: Array<Record<string, string>> = [];
    let conflictsToInject = 2;
    // AWS answers 409 while another conditional write to the key is in flight; moto never does.
    client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers: Record<string, string> };
        headers.push({ ...request.headers });
        if (conflictsToInject-- > 0) {
          throw Object.assign(new Error('A conflicting conditional operation is currently in progress'), {
            name: 'ConditionalRequestConflict',
            $metadata: { httpStatusCode: 409 },
          });
        }
        return next(args);
      },
      { step: 'finalizeRequest', name: 'injectConditionalConflict' },
    );
    try {
      const store = new S3ArtifactStore(`s3://${bucket}/cond`, { client });
      const created = await store.putIfAbsent('alias.json', '{"v":1}');
      assert.ok(created.written);
      assert.equal(headers.length, 3, 'two 409s, then the write');
      assert.ok(headers.every((h) => h['if-none-match'] === '*'));

      headers.length = 0;
      const swapped = await store.compareAndSwap('alias.json', '{"v":2}', created.etag);
      assert.ok(swapped.written);
      assert.equal(headers[0]?.['if-match'], created.etag);
      assert.equal((await store.getWithEtag('alias.json'))?.etag, swapped.etag);
    } finally {
      client.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Factory
// ---------------------------------------------------------------------------------------------

describe('createArtifactStore', function () {
  it('builds a LocalArtifactStore for file: roots', function () {
    const store = createArtifactStore({ uri: 'file:///var/tmp/forgeline-artifacts' });
    assert.ok(store instanceof LocalArtifactStore);
    assert.equal(store.rootUri, 'file:///var/tmp/forgeline-artifacts');
  });

  it('builds an S3ArtifactStore for s3: roots', function () {
    const store = createArtifactStore({
      uri: 's3://forgeline-bucket/prefix/',
      s3: { endpoint: 'http://127.0.0.1:9000', region: 'eu-west-1', forcePathStyle: true, accessKeyId: 'a', secretAccessKey: 'b' },
    });
    assert.ok(store instanceof S3ArtifactStore);
    assert.equal(store.rootUri, 's3://forgeline-bucket/prefix');
  });

  it('refuses other schemes, half-given credentials and bad endpoints with ConfigError', function () {
    for (const uri of ['http://example.com/x', 'gs://bucket/x', '/abs/path', 'relative/dir', '']) {
      assert.throws(() => createArtifactStore({ uri }), isConfigError(/FORGELINE_ARTIFACT_URI/), uri);
    }
    assert.throws(() => createArtifactStore({ uri: 's3://forgeline-bucket', s3: { accessKeyId: 'only-half' } }), isConfigError(/AWS_SECRET_ACCESS_KEY/));
    assert.throws(() => createArtifactStore({ uri: 's3://forgeline-bucket', s3: { endpoint: 'not a url' } }), isConfigError(/FORGELINE_S3_ENDPOINT/));
  });
});

describe('LocalArtifactStore under concurrent puts to one key', function () {
  it('never pairs one write\'s bytes with another write\'s checksum (same size, same mtime tick)', async function () {
    this.timeout(60_000);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-race-'));
    try {
      const store = new LocalArtifactStore(pathToFileURL(dir).href);
      for (let round = 0; round < 100; round++) {
        const key = `race/${round}.json`;
        await Promise.all(['A', 'B', 'C'].map((c) => store.put(key, c.repeat(64))));
        const bytes = await store.getBytes(key); // verifies the stored sha256 against the bytes
        assert.match(bytes.toString(), /^(A{64}|B{64}|C{64})$/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LocalArtifactStore compare-and-swap across processes', function () {
  this.timeout(120_000);
  let dir: string;
  let rootUri: string;
  const startWorker = startCasWorker;

  beforeEach(async function () {
    dir = await tempDir('local-cas');
    rootUri = pathToFileURL(dir).href;
  });
  afterEach(async function () {
    stopCasWorkers();
    await rm(dir, { recursive: true, force: true });
  });

  it('loses no update when 3 processes increment one counter by compare-and-swap', async function () {
    const store = new LocalArtifactStore(rootUri);
    await store.putIfAbsent('shared/counter', '0');
    const perWorker = 15;
    const workers = await Promise.all([1, 2, 3].map(() => startWorker(['increment', rootUri, 'shared/counter', String(perWorker)])));
    const started = Date.now();
    for (const w of workers) w.go();
    const reports = await Promise.all(workers.map(async (w) => JSON.parse(await w.line(/refusals/)) as { refusals: number }));
    const refusals = reports.reduce((n, r) => n + r.refusals, 0);
    assert.equal((await store.getBytes('shared/counter')).toString(), String(3 * perWorker));
    console.log(`      ${3 * perWorker} increments from 3 processes in ${Date.now() - started} ms, ${refusals} swaps refused and retried`);
    assert.deepEqual(await readdir(path.join(dir, '.forgeline', 'locks', 'shared')), [], 'every lock was released');
  });

  it('takes over the lock of a holder that was killed (kill -9) once its lease has passed', async function () {
    const store = new LocalArtifactStore(rootUri, { lock: { leaseMs: 1500 } });
    const created = await store.putIfAbsent('alias.json', 'v1');
    assert.ok(created.written);
    const holder = await startWorker(['hold-lock', rootUri, 'alias.json']);
    holder.go();
    await holder.line(/^held$/);
    holder.child.kill('SIGKILL');
    await once(holder.child, 'exit');
    assert.ok(existsSync(store.lockPathOf('alias.json')), 'the dead holder left its lock behind');

    const started = Date.now();
    const swapped = await store.compareAndSwap('alias.json', 'v2', created.etag);
    const waited = Date.now() - started;
    assert.ok(swapped.written);
    assert.equal((await store.getBytes('alias.json')).toString(), 'v2');
    assert.ok(waited < 10_000, `took over after ${waited} ms`);
    assert.deepEqual(await readdir(path.dirname(store.lockPathOf('alias.json'))), [], 'no lock or broken-lock file remains');
    console.log(`      lock of a killed holder taken over after ${waited} ms (lease 1500 ms)`);
  });

  it('waits for a live holder, then fails retryably naming it, writing nothing', async function () {
    const store = new LocalArtifactStore(rootUri, { lock: { leaseMs: 60_000, timeoutMs: 500 } });
    const created = await store.putIfAbsent('alias.json', 'v1');
    assert.ok(created.written);
    const holder = await startWorker(['hold-lock', rootUri, 'alias.json']);
    holder.go();
    await holder.line(/^held$/);
    await assert.rejects(store.compareAndSwap('alias.json', 'v2', created.etag), (err: Error) => {
      assert.ok(!(err instanceof ForgelineError), 'a busy lock is transient: a plain, retryable error');
      assert.match(err.message, new RegExp(`timed out after 500 ms waiting for the lock .*held by pid ${holder.child.pid}`));
      return true;
    });
    assert.equal((await store.getBytes('alias.json')).toString(), 'v1');
  });
});
