/**
 * ArtifactStore on a local directory (`file:///abs/dir`): the default for development, CI and
 * single-machine setups.
 *
 * Layout under the root directory:
 *   <key>                             the object's bytes, at the path the key names
 *   .forgeline/sha256/<key>.json      checksum record: {sha256, size, mtimeNs, ino} of the object
 *   .forgeline/locks/<key>.lock       held while a compareAndSwap on <key> checks and writes
 *   **\/.forgeline-tmp-*              writes in progress (renamed into place when complete)
 *
 * Keys may not contain segments starting with ".forgeline" (see validateKey), so bookkeeping
 * never collides with artifacts and listings skip it.
 *
 * Writes are atomic: bytes go to a temporary file in the target's directory, are fsynced, then
 * renamed over the target, so a reader sees the old object or the new one, never a torn one.
 * The checksum record is written after the rename and is trusted only while the object's size
 * and modification time still match it; otherwise (a crash in between, a hand-edited file) head()
 * recomputes it. A filesystem cannot hold both `a` and `a/b`, so unlike S3 a key here cannot also
 * be the "directory" of other keys; such a put fails with a clear error.
 *
 * Conditional writes (putIfAbsent, compareAndSwap) are atomic across processes: create-if-absent
 * links a complete temporary file into place (link() fails if the target exists), and a swap
 * checks the current etag (the sha256 of the bytes) and renames under a per-key lock file,
 * `.forgeline/locks/<key>.lock` (see file-lock.ts: a crashed holder's lock is broken after its
 * lease).
 */
import type { BigIntStats } from 'node:fs';
import { open, readdir, readFile, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ConditionalPutResult, ListOptions, ListPage, ObjectInfo, PutOptions } from '../ports/artifact-store';
import { ArtifactIntegrityError, ArtifactNotFoundError, ConfigError } from '../ports/errors';
import {
  BaseArtifactStore,
  type BaseArtifactStoreOptions,
  compareKeys,
  hashFile,
  type OpenedObject,
  RESERVED_SEGMENT_PREFIX,
  sha256Hex,
  type StagedFile,
  stageFile,
  toBuffer,
  validateKey,
  validatePageSize,
  validatePrefix,
} from './artifact-common';
import { DEFAULT_LOCK_OPTIONS, type FileLockOptions, withFileLock } from './file-lock';

export interface LocalArtifactStoreOptions extends BaseArtifactStoreOptions {
  /** Lease and wait of compareAndSwap's per-key lock (defaults: 10 s lease, 30 s wait). */
  lock?: Partial<FileLockOptions>;
}

/** What `.forgeline/sha256/<key>.json` holds. */
interface ChecksumRecord {
  sha256: string;
  size: number;
  /** Modification time in nanoseconds, as a decimal string (exact, unlike a float of ms). */
  mtimeNs: string;
  /**
   * Inode of the object. Every put renames a fresh temp file into place, so the inode names one
   * write: two same-size puts racing within one mtime tick cannot share a record.
   */
  ino: string;
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? (err as NodeJS.ErrnoException).code : undefined;
}

/** Errors meaning "there is no file at this path". */
const ABSENT = ['ENOENT', 'ENOTDIR'];

/** Turns `file:///abs/dir` into `/abs/dir`, or explains what is wrong with the URI. */
function rootDirectoryOf(rootUri: string): string {
  const hint = 'expected file:///absolute/dir (check FORGELINE_ARTIFACT_URI)';
  let url: URL;
  try {
    url = new URL(rootUri);
  } catch {
    throw new ConfigError(`artifact root ${JSON.stringify(rootUri)} is not a URI: ${hint}`);
  }
  if (url.protocol !== 'file:') throw new ConfigError(`artifact root ${rootUri} is not a file: URI: ${hint}`);
  try {
    return path.resolve(fileURLToPath(url));
  } catch (err) {
    throw new ConfigError(`artifact root ${rootUri} is not a local directory: ${hint}`, { cause: err });
  }
}

export class LocalArtifactStore extends BaseArtifactStore {
  readonly rootUri: string;
  /** Absolute path of the root directory. It is created by the first write. */
  readonly rootDir: string;
  private readonly checksumDir: string;
  private readonly lockDir: string;
  private readonly lockOptions: FileLockOptions;

  constructor(rootUri: string, options: LocalArtifactStoreOptions = {}) {
    super(options);
    this.rootDir = rootDirectoryOf(rootUri);
    this.rootUri = pathToFileURL(this.rootDir).href;
    this.checksumDir = path.join(this.rootDir, RESERVED_SEGMENT_PREFIX, 'sha256');
    this.lockDir = path.join(this.rootDir, RESERVED_SEGMENT_PREFIX, 'locks');
    this.lockOptions = { ...DEFAULT_LOCK_OPTIONS, ...options.lock };
  }

  async put(key: string, body: Buffer | string | Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    validateKey(key);
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      // In-memory bodies are hashed up front, so an unchanged re-put touches nothing on disk.
      const bytes = toBuffer(body);
      const sha256 = sha256Hex(bytes);
      if (options.sha256 !== undefined && options.sha256 !== sha256) {
        throw new ArtifactIntegrityError(this.uriOf(key), options.sha256, sha256);
      }
      const existing = await this.head(key);
      if (existing?.sha256 === sha256) return existing;
      return this.write(key, bytes, options);
    }
    return this.write(key, body, options);
  }

  async putFile(key: string, localPath: string, options: PutOptions = {}): Promise<ObjectInfo> {
    validateKey(key);
    // Open first, so a missing source file fails before anything is created in the store.
    const source = await open(localPath, 'r');
    return this.write(key, source.createReadStream(), options);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const file = this.pathOf(validateKey(key));
    let stats: BigIntStats;
    try {
      stats = await stat(file, { bigint: true });
    } catch (err) {
      if (ABSENT.includes(errnoCode(err) ?? '')) return undefined;
      throw err;
    }
    if (!stats.isFile()) return undefined;

    let sha256 = await this.readChecksum(key, stats);
    if (sha256 === undefined) {
      // No valid record (written by hand, or a crash between rename and record): recompute, and
      // remember the result if the file did not change meanwhile.
      sha256 = (await hashFile(file)).sha256;
      const after = await stat(file, { bigint: true }).catch(() => undefined);
      if (after && after.size === stats.size && after.mtimeNs === stats.mtimeNs && after.ino === stats.ino) {
        // Best effort: a read-only store still answers head(), it just re-hashes next time.
        await this.writeChecksum(key, sha256, stats).catch(() => undefined);
      }
    }
    return this.infoOf(key, stats, sha256);
  }

  /**
   * One page of keys under `prefix` in UTF-8 byte order. The cursor is the last key returned;
   * the walk skips whole directories that sort before it. Items carry size and lastModified
   * (not sha256: that is what head() is for, and keeps listing cheap).
   */
  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    validatePrefix(prefix);
    const pageSize = validatePageSize(options.pageSize);
    // Start at the deepest directory the prefix names: "models/de" starts at "models/".
    const startDir = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const items: ObjectInfo[] = [];
    // Read one item more than a page, to know whether another page follows.
    for await (const item of this.walk(startDir, prefix, options.cursor)) {
      items.push(item);
      if (items.length > pageSize) break;
    }
    if (items.length <= pageSize) return { items };
    items.length = pageSize;
    return { items, cursor: items[pageSize - 1]!.key };
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(validateKey(key));
    await unlinkIfPresent(file);
    await unlinkIfPresent(this.checksumPathOf(key));
    // Remove directories the delete left empty, so that `a` can be stored after `a/b` is gone.
    await pruneEmptyDirectories(path.dirname(file), this.rootDir);
    await pruneEmptyDirectories(path.dirname(this.checksumPathOf(key)), this.checksumDir);
  }

  protected uriOf(key: string): string {
    // Keep a prefix's trailing '/' (path.join drops it), so version URIs read as directories.
    return pathToFileURL(this.pathOf(key) + (key.endsWith('/') ? path.sep : '')).href;
  }

  protected async openRead(key: string): Promise<OpenedObject> {
    let handle;
    try {
      handle = await open(this.pathOf(key), 'r');
    } catch (err) {
      if ([...ABSENT, 'EISDIR'].includes(errnoCode(err) ?? '')) throw new ArtifactNotFoundError(this.uriOf(key), { cause: err });
      throw err;
    }
    try {
      // Stats of the open descriptor: the checksum record must describe the bytes we will read,
      // even if a concurrent put renames a new file over the path meanwhile.
      const stats = await handle.stat({ bigint: true });
      if (!stats.isFile()) throw new ArtifactNotFoundError(this.uriOf(key));
      // Only a valid record is used; reads never re-hash a large file just to verify it.
      const sha256 = await this.readChecksum(key, stats);
      return { body: handle.createReadStream(), info: this.infoOf(key, stats, sha256) };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async compareAndSwap(key: string, body: Buffer | string, expectedEtag: string | null): Promise<ConditionalPutResult> {
    validateKey(key);
    const { staged, stats } = await this.stage(key, toBuffer(body));
    const written = (): ConditionalPutResult => ({ written: true, etag: staged.sha256, info: this.infoOf(key, stats, staged.sha256) });
    try {
      if (expectedEtag === null) {
        // No lock needed: link() creates the file only if absent, and a swap never writes a key
        // that is absent (there is no etag to match).
        if (!(await staged.commitIfAbsent())) return { written: false, current: await this.currentVersion(key) };
        await this.writeChecksum(key, staged.sha256, stats);
        return written();
      }
      return await withFileLock(this.lockPathOf(validateKey(key)), this.lockOptions, async (stillHeld) => {
        const current = await this.currentVersion(key);
        if (current?.etag !== expectedEtag) return { written: false, current };
        if (!(await stillHeld())) {
          throw new Error(`lost the lock on ${this.uriOf(key)} (held past its ${this.lockOptions.leaseMs} ms lease): nothing was written, retry`);
        }
        await staged.commit();
        await this.writeChecksum(key, staged.sha256, stats);
        return written();
      });
    } finally {
      await staged.discard(); // a no-op once committed
    }
  }

  // -------------------------------------------------------------------------------------------

  private pathOf(key: string): string {
    return path.join(this.rootDir, ...key.split('/'));
  }

  /** The lock file that guards compareAndSwap on `key` (for operators and tests). */
  lockPathOf(key: string): string {
    return `${path.join(this.lockDir, ...key.split('/'))}.lock`;
  }

  private async currentVersion(key: string): Promise<{ etag: string; info: ObjectInfo } | undefined> {
    const current = await this.getWithEtag(key);
    return current && { etag: current.etag, info: current.info };
  }

  private checksumPathOf(key: string): string {
    return `${path.join(this.checksumDir, ...key.split('/'))}.json`;
  }

  private infoOf(key: string, stats: BigIntStats, sha256: string | undefined): ObjectInfo {
    return {
      key,
      uri: this.uriOf(key),
      size: Number(stats.size),
      ...(sha256 !== undefined ? { sha256 } : {}),
      lastModified: new Date(Number(stats.mtimeMs)),
    };
  }

  /** Stages `source` next to the key's path, translating filesystem layout clashes. */
  private async stage(key: string, source: Buffer | Readable): Promise<{ staged: StagedFile; stats: BigIntStats }> {
    let staged: StagedFile;
    try {
      staged = await stageFile(source, this.pathOf(key));
    } catch (err) {
      if (['ENOTDIR', 'EEXIST'].includes(errnoCode(err) ?? '')) {
        throw new Error(
          `cannot store ${JSON.stringify(key)} in ${this.rootUri}: a parent of it is stored as an object ` +
            '(on a filesystem a key cannot also be the prefix of other keys)',
          { cause: err },
        );
      }
      throw err;
    }
    // Rename and link keep the inode, so these stats (size, mtime) describe the final object.
    return { staged, stats: await stat(staged.tempPath, { bigint: true }) };
  }

  /** The shared write path of put and putFile: stage, verify, skip if unchanged, rename, record. */
  private async write(key: string, source: Buffer | Readable, options: PutOptions): Promise<ObjectInfo> {
    const { staged, stats } = await this.stage(key, source);
    try {
      if (options.sha256 !== undefined && options.sha256 !== staged.sha256) {
        throw new ArtifactIntegrityError(this.uriOf(key), options.sha256, staged.sha256);
      }
      const existing = await this.head(key);
      if (existing?.sha256 === staged.sha256) return existing; // idempotent: leave the object as is
      try {
        await staged.commit();
      } catch (err) {
        if (errnoCode(err) === 'EISDIR') {
          throw new Error(
            `cannot store ${JSON.stringify(key)} in ${this.rootUri}: other keys are stored under "${key}/" ` +
              '(on a filesystem a key cannot also be the prefix of other keys)',
            { cause: err },
          );
        }
        throw err;
      }
    } finally {
      await staged.discard(); // a no-op once committed
    }
    await this.writeChecksum(key, staged.sha256, stats);
    return this.infoOf(key, stats, staged.sha256);
  }

  /** The recorded sha256, if the record still matches the object's size, mtime and inode. */
  private async readChecksum(key: string, stats: BigIntStats): Promise<string | undefined> {
    let record: Partial<ChecksumRecord>;
    try {
      record = JSON.parse(await readFile(this.checksumPathOf(key), 'utf8')) as Partial<ChecksumRecord>;
    } catch {
      return undefined; // absent or unreadable: treated as unknown, head() recomputes
    }
    const valid =
      typeof record.sha256 === 'string' &&
      record.size === Number(stats.size) &&
      record.mtimeNs === stats.mtimeNs.toString() &&
      record.ino === stats.ino.toString();
    return valid ? record.sha256 : undefined;
  }

  private async writeChecksum(key: string, sha256: string, stats: BigIntStats): Promise<void> {
    const record: ChecksumRecord = { sha256, size: Number(stats.size), mtimeNs: stats.mtimeNs.toString(), ino: stats.ino.toString() };
    const staged = await stageFile(Buffer.from(JSON.stringify(record)), this.checksumPathOf(key));
    await staged.commit();
  }

  /**
   * Yields the objects under directory `dirKey` ('' or ending in '/') whose keys start with
   * `prefix` and sort after `after`, in key order, descending only into directories that can hold
   * such keys.
   */
  private async *walk(dirKey: string, prefix: string, after: string | undefined): AsyncGenerator<ObjectInfo> {
    let entries;
    try {
      entries = await readdir(this.pathOf(dirKey || '.'), { withFileTypes: true });
    } catch (err) {
      if (ABSENT.includes(errnoCode(err) ?? '')) return;
      throw err;
    }

    // Order entries by the keys they stand for: directory "a" stands for "a/...", which sorts
    // after a file "a-b" ('-' < '/') though the name "a" sorts before it.
    const children: Array<{ key: string; isDir: boolean }> = [];
    for (const entry of entries) {
      if (entry.name.startsWith(RESERVED_SEGMENT_PREFIX)) continue; // bookkeeping, temp files
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        const target = await stat(path.join(this.pathOf(dirKey || '.'), entry.name)).catch(() => undefined);
        isDir = target?.isDirectory() ?? false;
        isFile = target?.isFile() ?? false;
      }
      if (isDir) children.push({ key: `${dirKey}${entry.name}/`, isDir: true });
      else if (isFile) children.push({ key: `${dirKey}${entry.name}`, isDir: false });
    }
    children.sort((a, b) => compareKeys(a.key, b.key));

    for (const child of children) {
      if (child.isDir) {
        // Skip directories outside the prefix, and those whose every key sorts before the cursor.
        if (!child.key.startsWith(prefix) && !prefix.startsWith(child.key)) continue;
        if (after !== undefined && compareKeys(child.key, after) < 0 && !after.startsWith(child.key)) continue;
        yield* this.walk(child.key, prefix, after);
      } else {
        if (!child.key.startsWith(prefix)) continue;
        if (after !== undefined && compareKeys(child.key, after) <= 0) continue;
        const stats = await stat(this.pathOf(child.key), { bigint: true }).catch(() => undefined);
        if (!stats) continue; // deleted while we were listing
        yield this.infoOf(child.key, stats, undefined);
      }
    }
  }
}

async function unlinkIfPresent(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    // Absent, or a directory (which is not an object): nothing to delete either way.
    if (![...ABSENT, 'EISDIR', 'EPERM'].includes(errnoCode(err) ?? '')) throw err;
  }
}

/** Removes `dir` and its parents while they are empty, stopping at (and keeping) `stopAt`. */
async function pruneEmptyDirectories(dir: string, stopAt: string): Promise<void> {
  for (let current = dir; current.startsWith(stopAt + path.sep); current = path.dirname(current)) {
    try {
      await rmdir(current);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue; // already gone; its parent may still be empty
      return; // not empty: then neither are its parents
    }
  }
}
