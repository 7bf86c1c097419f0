/**
 * What every ArtifactStore adapter shares: key rules, hashing, staging files atomically on local
 * disk, the manifest format, and `BaseArtifactStore`, which implements the composite operations
 * (content-addressed puts, verified reads, directory publish/fetch) once on top of a handful of
 * primitives each adapter provides.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { z } from 'zod';
import { ErrorType } from '../contracts/errors';
import type {
  ArtifactStore,
  ConditionalPutResult,
  ListOptions,
  ListPage,
  Manifest,
  ObjectInfo,
  PutOptions,
  VersionedObject,
} from '../ports/artifact-store';
import { ArtifactConflictError, ArtifactIntegrityError, ArtifactNotFoundError, ForgelineError } from '../ports/errors';

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/** File name of a published version's manifest, directly under the version prefix. */
export const MANIFEST_FILE = 'MANIFEST.json';
export const MANIFEST_SCHEMA = 'forgeline.manifest/v1';
/** Content-addressed objects live at `cas/sha256/<first two hex digits>/<hash>`. */
export const CAS_PREFIX = 'cas/sha256/';
export const DEFAULT_PAGE_SIZE = 1000;
/**
 * Key segments starting with this are reserved for the stores' own bookkeeping (the local store
 * keeps checksums under `.forgeline/` and stages writes in `.forgeline-tmp-*` files), so no
 * artifact can collide with them and listings can skip them.
 */
export const RESERVED_SEGMENT_PREFIX = '.forgeline';
/** Name prefix of files being written; they are renamed into place when complete. */
export const TEMP_FILE_PREFIX = '.forgeline-tmp-';

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

function keyProblem(key: string, allowTrailingSlash: boolean): string | undefined {
  if (key.startsWith('/')) return 'must not start with "/"';
  if (key.includes('\0')) return 'must not contain NUL characters';
  const segments = key.split('/');
  if (allowTrailingSlash && segments[segments.length - 1] === '') segments.pop();
  for (const segment of segments) {
    if (segment === '') return 'must not contain empty segments ("//", or a trailing "/")';
    if (segment === '.' || segment === '..') return 'must not contain "." or ".." segments';
    if (segment.startsWith(RESERVED_SEGMENT_PREFIX)) {
      return `must not contain segments starting with "${RESERVED_SEGMENT_PREFIX}" (reserved for the store)`;
    }
  }
  return undefined;
}

/** Throws a clear Error naming the key unless it is a valid object key. Returns it otherwise. */
export function validateKey(key: string): string {
  if (typeof key !== 'string' || key === '') {
    throw new Error(`invalid artifact key ${JSON.stringify(key)}: must be a non-empty string`);
  }
  const problem = keyProblem(key, false);
  if (problem) throw new Error(`invalid artifact key ${JSON.stringify(key)}: ${problem}`);
  return key;
}

/**
 * Validates a listing prefix. Prefixes match like S3 prefixes (plain string prefixes of keys), so
 * `models/de` matches `models/demo/x`; the empty prefix matches everything.
 */
export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string') throw new Error(`invalid artifact prefix ${JSON.stringify(prefix)}: must be a string`);
  if (prefix === '') return prefix;
  const problem = keyProblem(prefix, true);
  if (problem) throw new Error(`invalid artifact prefix ${JSON.stringify(prefix)}: ${problem}`);
  return prefix;
}

/** The prefix of a published directory version: non-empty, always ending with '/'. */
export function versionPrefix(prefix: string): string {
  if (typeof prefix !== 'string' || prefix === '' || prefix === '/') {
    throw new Error(`invalid version prefix ${JSON.stringify(prefix)}: must be a non-empty key prefix such as "models/demo/v1/"`);
  }
  validatePrefix(prefix);
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

export function casKey(sha256: string): string {
  return `${CAS_PREFIX}${sha256.slice(0, 2)}/${sha256}`;
}

/**
 * Orders keys the way S3 does: by their UTF-8 bytes. (JavaScript's `<` compares UTF-16 code
 * units, which disagrees for characters outside the Basic Multilingual Plane.)
 */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function validatePageSize(pageSize: number | undefined): number {
  const size = pageSize ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(size) || size < 1) throw new Error(`invalid list pageSize ${String(pageSize)}: must be a positive integer`);
  return size;
}

// ---------------------------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------------------------

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function toBuffer(body: Buffer | string): Buffer {
  return typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
}

/**
 * A pass-through stream that hashes and counts what flows through it. When given an expectation,
 * it fails the stream with ArtifactIntegrityError at the end if the content does not match, so a
 * consumer never mistakes corrupted bytes for a complete read.
 */
export class Sha256Meter extends Transform {
  private readonly hash = createHash('sha256');
  private digest: string | undefined;
  bytes = 0;

  constructor(private readonly expect?: { uri: string; sha256: string }) {
    super();
  }

  /** Hex sha256 of everything that went through; available once the stream has ended. */
  get sha256(): string {
    if (this.digest === undefined) throw new Error('Sha256Meter: the stream has not ended yet');
    return this.digest;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.digest = this.hash.digest('hex');
    if (this.expect && this.expect.sha256 !== this.digest) {
      callback(new ArtifactIntegrityError(this.expect.uri, this.expect.sha256, this.digest));
      return;
    }
    callback();
  }
}

/** Pipes `source` through a verifier; errors on either side reach the returned stream. */
export function verifyingStream(source: Readable, uri: string, sha256: string | undefined): Readable {
  if (!sha256) return source;
  const meter = new Sha256Meter({ uri, sha256 });
  // The callback form of pipeline forwards errors to the last stream (the one the caller reads)
  // and destroys the source when the caller stops reading early.
  pipeline(source, meter, () => undefined);
  return meter;
}

export async function hashStream(source: Readable): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of source) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer);
    hash.update(buf);
    size += buf.length;
  }
  return { sha256: hash.digest('hex'), size };
}

export function hashFile(localPath: string): Promise<{ sha256: string; size: number }> {
  return hashStream(createReadStream(localPath));
}

export async function readAll(source: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer));
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------------------------------------
// Atomic local files
// ---------------------------------------------------------------------------------------------

/** A complete, fsynced temporary file next to its target, waiting to be moved into place. */
export interface StagedFile {
  readonly tempPath: string;
  readonly target: string;
  readonly sha256: string;
  readonly size: number;
  /** Renames the file over `target` (replacing what is there). */
  commit(): Promise<void>;
  /** Moves the file to `target` only if nothing is there. Returns false (and discards) otherwise. */
  commitIfAbsent(): Promise<boolean>;
  /** Deletes the temporary file. */
  discard(): Promise<void>;
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as NodeJS.ErrnoException).code ?? '');
}

/** fsyncs a directory so a rename in it survives a crash; a no-op where that is unsupported. */
async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    if (!isErrno(err, 'EISDIR', 'EINVAL', 'EPERM', 'EACCES', 'ENOTSUP')) throw err;
  } finally {
    await handle?.close();
  }
}

/**
 * Streams `source` into a new temporary file in `target`'s directory (creating it), hashing as it
 * writes, and fsyncs it. Nothing is visible at `target` until `commit()`; a failure removes the
 * temporary file. Same directory means same filesystem, so the final rename is atomic.
 */
export async function stageFile(source: Readable | Buffer, target: string): Promise<StagedFile> {
  const dir = path.dirname(target);
  const tempPath = path.join(dir, `${TEMP_FILE_PREFIX}${randomBytes(8).toString('hex')}`);

  // A concurrent delete may prune the (empty) directory between mkdir and open; try again then.
  let handle;
  try {
    for (let attempt = 1; !handle; attempt++) {
      await mkdir(dir, { recursive: true });
      try {
        handle = await open(tempPath, 'wx');
      } catch (err) {
        if (!isErrno(err, 'ENOENT') || attempt >= 3) throw err;
      }
    }
  } catch (err) {
    if (!Buffer.isBuffer(source)) source.destroy(); // release the source (e.g. its file descriptor)
    throw err;
  }

  const hash = createHash('sha256');
  let size = 0;
  try {
    const chunks: AsyncIterable<unknown> | Buffer[] = Buffer.isBuffer(source) ? [source] : source;
    for await (const chunk of chunks) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer);
      hash.update(buf);
      size += buf.length;
      // Awaiting each write is the back-pressure: we never read faster than the disk writes.
      let offset = 0;
      while (offset < buf.length) {
        const { bytesWritten } = await handle.write(buf, offset, buf.length - offset);
        offset += bytesWritten;
      }
    }
    await handle.sync();
  } catch (err) {
    if (!Buffer.isBuffer(source)) source.destroy();
    await handle.close().catch(() => undefined);
    await rm(tempPath, { force: true });
    throw err;
  }
  await handle.close();

  const sha256 = hash.digest('hex');
  const discard = (): Promise<void> => rm(tempPath, { force: true });
  return {
    tempPath,
    target,
    sha256,
    size,
    discard,
    async commit() {
      try {
        await rename(tempPath, target);
      } catch (err) {
        await discard();
        throw err;
      }
      await syncDirectory(dir);
    },
    async commitIfAbsent() {
      try {
        // link() fails with EEXIST when the target exists: an atomic "create if absent".
        await link(tempPath, target);
      } catch (err) {
        if (isErrno(err, 'EEXIST')) return false;
        throw err;
      } finally {
        await discard();
      }
      await syncDirectory(dir);
      return true;
    },
  };
}

/**
 * Regular files under `dir` (following symbolic links), as sorted '/'-separated relative paths.
 * With `confine`, a symbolic link that leads out of `dir` is an error naming it (publishing must
 * not upload whatever a link points at).
 */
export async function listLocalFiles(dir: string, options: { confine?: boolean } = {}): Promise<string[]> {
  const found: string[] = [];
  const root = options.confine ? await realpath(dir) : '';
  async function walk(absDir: string, rel: string): Promise<void> {
    for (const entry of await readdir(absDir, { withFileTypes: true })) {
      const abs = path.join(absDir, entry.name);
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      if (options.confine && entry.isSymbolicLink()) {
        const target = await realpath(abs);
        if (path.relative(root, target).startsWith('..') || path.isAbsolute(path.relative(root, target))) {
          throw new Error(`cannot publish ${dir}: ${relPath} is a symbolic link to ${target}, outside the directory`);
        }
      }
      const info = entry.isSymbolicLink() ? await stat(abs) : entry;
      if (info.isDirectory()) await walk(abs, relPath);
      else if (info.isFile()) found.push(relPath);
    }
  }
  await walk(dir, '');
  return found.sort(compareKeys);
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

/**
 * Maps `items` with at most `limit` calls in flight. On failure no new calls start, the ones in
 * flight are awaited (so nothing keeps writing after we report), and the first error is thrown.
 */
export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!, index);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const workers = Math.min(Math.max(1, Math.floor(limit)), items.length);
  const outcomes = await Promise.allSettled(Array.from({ length: workers }, worker));
  const rejection = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (rejection) throw rejection.reason;
  return results;
}

// ---------------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------------

/** sha256 over the sorted `path\0sha256\n` lines: one hash naming a whole directory's content. */
export function manifestDigest(files: ReadonlyArray<{ path: string; sha256: string }>): string {
  const hash = createHash('sha256');
  for (const file of [...files].sort((a, b) => compareKeys(a.path, b.path))) hash.update(`${file.path}\0${file.sha256}\n`);
  return hash.digest('hex');
}

const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex sha256');

const ManifestSchema = z.object({
  schema: z.literal(MANIFEST_SCHEMA),
  prefix: z.string(),
  createdAt: z.string(),
  files: z.array(
    z.object({
      // Paths become local file names in fetchDirectory: refuse anything that could escape it.
      path: z.string().refine((p) => p !== '' && keyProblem(p, false) === undefined, 'expected a relative path without ".." or empty segments'),
      size: z.number().int().nonnegative(),
      sha256: sha256Schema,
    }),
  ),
  digest: sha256Schema,
  metadata: z.record(z.string(), z.unknown()).optional(),
});

/** Parses and checks a stored manifest; a manifest whose digest does not add up is corrupt. */
export function parseManifest(bytes: Buffer, uri: string): Manifest {
  let parsed;
  try {
    parsed = ManifestSchema.safeParse(JSON.parse(bytes.toString('utf8')));
  } catch (err) {
    throw new ForgelineError(ErrorType.ArtifactIntegrity, `corrupt manifest at ${uri}: not JSON (${(err as Error).message})`, true);
  }
  if (!parsed.success) {
    throw new ForgelineError(ErrorType.ArtifactIntegrity, `corrupt manifest at ${uri}: ${z.prettifyError(parsed.error)}`, true);
  }
  const manifest = parsed.data as Manifest;
  const digest = manifestDigest(manifest.files);
  if (digest !== manifest.digest) throw new ArtifactIntegrityError(uri, manifest.digest, digest);
  return manifest;
}

// ---------------------------------------------------------------------------------------------
// The shared half of every adapter
// ---------------------------------------------------------------------------------------------

/** An open object: its bytes as a stream, and what the store knows about it. */
export interface OpenedObject {
  body: Readable;
  info: ObjectInfo;
  /** The store's version token for these bytes, where it has its own (S3's ETag). */
  etag?: string;
}

export interface BaseArtifactStoreOptions {
  /** Files transferred at once by publishDirectory and fetchDirectory. Default 4. */
  transferConcurrency?: number;
}

/**
 * Implements the composite operations of the port in terms of a few primitives. Adapters supply
 * the primitives (put, putFile, head, list, delete, openRead, compareAndSwap, uriOf); everything
 * here goes through them, so both adapters share one behaviour for content addressing, read
 * verification and directory versions.
 */
export abstract class BaseArtifactStore implements ArtifactStore {
  abstract readonly rootUri: string;
  protected readonly transferConcurrency: number;

  constructor(options: BaseArtifactStoreOptions = {}) {
    this.transferConcurrency = options.transferConcurrency ?? 4;
  }

  abstract put(key: string, body: Buffer | string | Readable, options?: PutOptions): Promise<ObjectInfo>;
  abstract putFile(key: string, localPath: string, options?: PutOptions): Promise<ObjectInfo>;
  abstract head(key: string): Promise<ObjectInfo | undefined>;
  abstract list(prefix: string, options?: ListOptions): Promise<ListPage>;
  abstract delete(key: string): Promise<void>;

  /** Full URI of `key` (for results and error messages). */
  protected abstract uriOf(key: string): string;
  /** Opens `key` for reading; rejects with ArtifactNotFoundError when absent. */
  protected abstract openRead(key: string): Promise<OpenedObject>;
  abstract compareAndSwap(
    key: string,
    body: Buffer | string,
    expectedEtag: string | null,
    options?: Pick<PutOptions, 'contentType'>,
  ): Promise<ConditionalPutResult>;

  /** Also used for manifests, so two publishers racing on one prefix cannot both "win". */
  putIfAbsent(key: string, body: Buffer | string, options?: Pick<PutOptions, 'contentType'>): Promise<ConditionalPutResult> {
    return this.compareAndSwap(key, body, null, options);
  }

  /** Reads the whole object, verified like get(); the etag is the store's own or else the sha256. */
  async getWithEtag(key: string): Promise<VersionedObject | undefined> {
    let opened: OpenedObject;
    try {
      opened = await this.openRead(validateKey(key));
    } catch (err) {
      if (err instanceof ArtifactNotFoundError) return undefined;
      throw err;
    }
    const body = await readAll(verifyingStream(opened.body, opened.info.uri, opened.info.sha256));
    const sha256 = sha256Hex(body);
    return { body, etag: opened.etag ?? sha256, info: { ...opened.info, size: body.length, sha256 } };
  }

  async putContent(body: Buffer | string, options: Omit<PutOptions, 'sha256'> = {}): Promise<ObjectInfo> {
    const bytes = toBuffer(body);
    const sha256 = sha256Hex(bytes);
    // put() is idempotent: when these bytes are already stored it returns without writing.
    return this.put(casKey(sha256), bytes, { ...options, sha256 });
  }

  /** Streams the object, failing the stream at its end if the bytes differ from the stored sha256. */
  async get(key: string): Promise<Readable> {
    const { body, info } = await this.openRead(validateKey(key));
    return verifyingStream(body, info.uri, info.sha256);
  }

  async getBytes(key: string): Promise<Buffer> {
    return readAll(await this.get(key));
  }

  async getFile(key: string, localPath: string): Promise<ObjectInfo> {
    return this.download(validateKey(key), localPath);
  }

  async *listAll(prefix: string, options: Omit<ListOptions, 'cursor'> = {}): AsyncIterable<ObjectInfo> {
    let cursor: string | undefined;
    do {
      const page = await this.list(prefix, { ...options, ...(cursor !== undefined ? { cursor } : {}) });
      yield* page.items;
      cursor = page.cursor;
    } while (cursor !== undefined);
  }

  /**
   * Files first (each an idempotent put, so re-running an interrupted publish only sends what is
   * missing), manifest last and only if absent. The version's identity is its digest: metadata is
   * recorded but does not make a re-publish "different".
   *
   * Limitation: two publishers racing with *different* content on one unpublished prefix can
   * interleave file writes; exactly one manifest wins, and fetchDirectory's verification then
   * rejects any file the loser overwrote. Version prefixes derived from content or from the
   * workflow ID avoid the race.
   */
  async publishDirectory(localDir: string, prefix: string, metadata?: Record<string, unknown>): Promise<Manifest> {
    const base = versionPrefix(prefix);
    const paths = await listLocalFiles(localDir, { confine: true });
    if (paths.length === 0) throw new Error(`cannot publish ${localDir}: it contains no files`);
    if (paths.includes(MANIFEST_FILE)) {
      throw new Error(`cannot publish ${localDir}: it contains a top-level ${MANIFEST_FILE}, a name reserved for the version's manifest`);
    }
    for (const p of paths) validateKey(base + p);

    const files = await mapWithConcurrency(paths, this.transferConcurrency, async (p) => ({
      path: p,
      ...(await hashFile(path.join(localDir, ...p.split('/')))),
    }));
    const digest = manifestDigest(files);

    // Check before uploading anything, so a conflicting publish leaves the version untouched.
    const existing = await this.readManifest(base);
    if (existing) return this.sameVersionOrConflict(existing, base, digest);

    await mapWithConcurrency(files, this.transferConcurrency, (f) =>
      this.putFile(base + f.path, path.join(localDir, ...f.path.split('/')), { sha256: f.sha256 }),
    );

    const manifest: Manifest = {
      schema: MANIFEST_SCHEMA,
      prefix: base,
      createdAt: new Date().toISOString(),
      files: files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })),
      digest,
      ...(metadata !== undefined ? { metadata } : {}),
    };
    const created = await this.putIfAbsent(base + MANIFEST_FILE, `${JSON.stringify(manifest, null, 2)}\n`, { contentType: 'application/json' });
    if (!created.written) {
      // Someone published this prefix while we were uploading.
      const winner = await this.readManifest(base);
      if (!winner) throw new Error(`manifest at ${this.uriOf(base + MANIFEST_FILE)} appeared and vanished during publish`);
      return this.sameVersionOrConflict(winner, base, digest);
    }
    return manifest;
  }

  async readManifest(prefix: string): Promise<Manifest | undefined> {
    const key = versionPrefix(prefix) + MANIFEST_FILE;
    let bytes: Buffer;
    try {
      bytes = await this.getBytes(key);
    } catch (err) {
      if (err instanceof ArtifactNotFoundError) return undefined;
      throw err;
    }
    return parseManifest(bytes, this.uriOf(key));
  }

  async fetchDirectory(prefix: string, localDir: string): Promise<Manifest> {
    const base = versionPrefix(prefix);
    const manifest = await this.readManifest(base);
    if (!manifest) throw new ArtifactNotFoundError(this.uriOf(base + MANIFEST_FILE));
    await mapWithConcurrency(manifest.files, this.transferConcurrency, (f) =>
      this.download(base + f.path, path.join(localDir, ...f.path.split('/')), f),
    );
    return manifest;
  }

  private sameVersionOrConflict(existing: Manifest, base: string, digest: string): Manifest {
    if (existing.digest === digest) return existing;
    throw new ArtifactConflictError(
      this.uriOf(base),
      `it is published with digest ${existing.digest}, the new content has digest ${digest}`,
    );
  }

  /**
   * Streams `key` into `localPath` through a temporary file, checking the bytes against `expected`
   * (a manifest entry) or else the sha256 the store recorded; a mismatch leaves nothing behind.
   */
  private async download(key: string, localPath: string, expected?: { sha256: string; size: number }): Promise<ObjectInfo> {
    const { body, info } = await this.openRead(key);
    const staged = await stageFile(body, path.resolve(localPath));
    const want = expected?.sha256 ?? info.sha256;
    if ((want !== undefined && staged.sha256 !== want) || (expected !== undefined && staged.size !== expected.size)) {
      await staged.discard();
      throw new ArtifactIntegrityError(info.uri, want ?? '(unknown)', staged.sha256);
    }
    await staged.commit();
    return { ...info, size: staged.size, sha256: staged.sha256 };
  }
}
