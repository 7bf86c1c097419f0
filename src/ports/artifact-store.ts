import type { Readable } from 'node:stream';

/**
 * Where every artifact lives: checkpoints, adapters, quantized models, eval reports, the registry.
 *
 * Keys are '/'-separated paths relative to the store's root URI (`file:///abs/dir` or
 * `s3://bucket/prefix`). Keys never start with '/' and never contain '..' segments.
 */
export interface ObjectInfo {
  key: string;
  /** Full URI of the object, e.g. `s3://bucket/prefix/key` or `file:///abs/path`. */
  uri: string;
  size: number;
  /** Hex sha256 of the content when the store knows it (always for puts made by Forgeline). */
  sha256?: string;
  lastModified?: Date;
}

export interface PutOptions {
  contentType?: string;
  /** Expected sha256 (hex). The put fails with ArtifactIntegrityError when the content differs. */
  sha256?: string;
}

/**
 * An object read together with its version token, for a later compareAndSwap.
 *
 * The `etag` is opaque: compare it only for equality and hand it back. (S3: the object's ETag,
 * an MD5 of the bytes for a single PUT; local store: the hex sha256 of the bytes.) Both are
 * content-derived, so a key rewritten A -> B -> A has A's etag again: a stale writer expecting A
 * then succeeds. Callers that must tell such moves apart put something unique (a move ID) in the
 * content, as the model registry does.
 */
export interface VersionedObject {
  body: Buffer;
  etag: string;
  info: ObjectInfo;
}

/** The outcome of a conditional write: written, or refused with what is stored now. */
export type ConditionalPutResult =
  | { written: true; etag: string; info: ObjectInfo }
  | {
      written: false;
      /**
       * What is stored at the key now, as seen right after the refusal (another writer may have
       * moved on since); undefined when nothing is (compareAndSwap expected an object).
       */
      current: { etag: string; info: ObjectInfo } | undefined;
    };

export interface ListPage {
  items: ObjectInfo[];
  /** Opaque cursor for the next page; undefined on the last page. */
  cursor?: string;
}

export interface ListOptions {
  /** Maximum items per page (the adapter may return fewer). Default 1000. */
  pageSize?: number;
  cursor?: string;
}

/** A published, immutable directory version. Written last, so its presence means "complete". */
export interface Manifest {
  schema: 'forgeline.manifest/v1';
  /** Key prefix of the version, e.g. `models/demo/adapters/3f2a.../`. */
  prefix: string;
  createdAt: string;
  files: Array<{ path: string; size: number; sha256: string }>;
  /** sha256 over the sorted `path\0sha256\n` lines: one hash naming the whole directory. */
  digest: string;
  metadata?: Record<string, unknown>;
}

export interface ArtifactStore {
  /** Root URI of the store, e.g. `file:///home/me/.forgeline/artifacts` or `s3://bucket/prefix`. */
  readonly rootUri: string;

  /** Write `body` at `key`. Re-putting identical content is a no-op success (idempotent). */
  put(key: string, body: Buffer | string | Readable, options?: PutOptions): Promise<ObjectInfo>;

  /** Upload a local file at `key`; large files go up in parts (multipart on S3). */
  putFile(key: string, localPath: string, options?: PutOptions): Promise<ObjectInfo>;

  /**
   * Content-addressed put: stores the bytes under `cas/sha256/<hh>/<hash>` and returns their info.
   * Putting the same bytes again does not write anything.
   */
  putContent(body: Buffer | string, options?: Omit<PutOptions, 'sha256'>): Promise<ObjectInfo>;

  /**
   * Create-if-absent: writes `body` at `key` only when nothing is stored there. Atomic: of many
   * writers racing on one key, exactly one gets `written: true`; the others get `written: false`
   * with the winner's etag (and sha256 in `current.info`), so a retry of the same write can tell
   * "already done" from "someone else's". Same as `compareAndSwap(key, body, null)`.
   */
  putIfAbsent(key: string, body: Buffer | string, options?: Pick<PutOptions, 'contentType'>): Promise<ConditionalPutResult>;

  /**
   * Compare-and-swap: writes `body` at `key` only if the object stored there still has the etag
   * `expectedEtag` (from getWithEtag or an earlier conditional write); `null` means "only if
   * nothing is stored there". Atomic with respect to every other conditional write on the key:
   * of writers racing from one etag, exactly one wins. On refusal nothing is written.
   *
   * Meant for small documents (the registry's aliases and versions): the body is held in memory.
   * A key written conditionally should only ever be written conditionally: an unconditional put()
   * racing with it is atomic on S3 but can be lost on the local store.
   *
   * S3: PutObject with `If-Match` / `If-None-Match: *` (AWS S3 since 2024; S3-compatible servers
   * must implement both, see README "Atomic registry"). Local store: create-if-absent is an
   * exclusive link(); a swap runs under a per-key lock file shared by every process on the host,
   * taken over from a crashed holder once it is older than the store's lock lease.
   */
  compareAndSwap(
    key: string,
    body: Buffer | string,
    expectedEtag: string | null,
    options?: Pick<PutOptions, 'contentType'>,
  ): Promise<ConditionalPutResult>;

  /** A (small) object's bytes with its etag, or undefined when absent. Verified like get(). */
  getWithEtag(key: string): Promise<VersionedObject | undefined>;

  /** Streaming read. Rejects with ArtifactNotFoundError when the key is absent. */
  get(key: string): Promise<Readable>;

  /** Convenience: read a whole (small) object into memory. */
  getBytes(key: string): Promise<Buffer>;

  /** Download `key` to a local file (streaming), creating parent directories. */
  getFile(key: string, localPath: string): Promise<ObjectInfo>;

  /** Metadata, or undefined when absent. */
  head(key: string): Promise<ObjectInfo | undefined>;

  /** One page of keys under `prefix`, in lexicographic key order. */
  list(prefix: string, options?: ListOptions): Promise<ListPage>;

  /** Every key under `prefix`, page by page. */
  listAll(prefix: string, options?: Omit<ListOptions, 'cursor'>): AsyncIterable<ObjectInfo>;

  delete(key: string): Promise<void>;

  /**
   * Publish a local directory as an immutable version under `prefix`: every file first, then
   * `<prefix>/MANIFEST.json` last, so a reader that sees the manifest sees every file.
   * Publishing the same content again is a no-op that returns the existing manifest; publishing
   * different content under an existing published prefix fails with ArtifactConflictError.
   */
  publishDirectory(localDir: string, prefix: string, metadata?: Record<string, unknown>): Promise<Manifest>;

  /** The manifest of a published version, or undefined when not (fully) published. */
  readManifest(prefix: string): Promise<Manifest | undefined>;

  /** Download a published version into `localDir`, verifying every file's sha256. */
  fetchDirectory(prefix: string, localDir: string): Promise<Manifest>;
}
