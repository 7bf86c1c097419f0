/**
 * ArtifactStore on S3 or an S3-compatible server (MinIO, Ceph, R2, ...): root `s3://bucket/prefix`.
 *
 * - Every object Forgeline writes carries its sha256 in user metadata (`x-amz-meta-sha256`), so
 *   head() knows it without reading the bytes and reads are verified end to end.
 * - Metadata is fixed when an upload starts, so the sha256 must be known first: files are hashed
 *   before upload (and the bytes actually sent are hashed again, catching a file that changes
 *   mid-upload); streams of unknown content are spooled to a local temporary file.
 * - Uploads go through lib-storage's `Upload`: one PutObject up to `partSize`, a multipart upload
 *   above it (parts sent `queueSize` at a time; memory use is about partSize x queueSize).
 * - Re-putting identical content is detected by head() and uploads nothing.
 * - Missing keys become ArtifactNotFoundError; a missing bucket or refused credentials become
 *   ConfigError naming the setting to fix; everything else (network, throttling, 5xx) propagates
 *   unchanged as a transient fault for Temporal to retry.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { ConditionalPutResult, ListOptions, ListPage, ObjectInfo, PutOptions } from '../ports/artifact-store';
import { ArtifactIntegrityError, ArtifactNotFoundError, ConfigError } from '../ports/errors';
import {
  BaseArtifactStore,
  type BaseArtifactStoreOptions,
  hashFile,
  type OpenedObject,
  sha256Hex,
  stageFile,
  toBuffer,
  validateKey,
  validatePageSize,
  validatePrefix,
  verifyingStream,
} from './artifact-common';

/** User-metadata name of the content hash; S3 sends it as the `x-amz-meta-sha256` header. */
export const SHA256_METADATA = 'sha256';
export const DEFAULT_PART_SIZE = 16 * 1024 * 1024;
export const DEFAULT_QUEUE_SIZE = 4;
/** S3's smallest allowed part (all but the last). */
const MIN_PART_SIZE = 5 * 1024 * 1024;

export interface S3ArtifactStoreOptions extends BaseArtifactStoreOptions {
  /** Endpoint of an S3-compatible server, e.g. `http://localhost:9000`. Unset: AWS S3. */
  endpoint?: string;
  /** Default `us-east-1`. */
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need. */
  forcePathStyle?: boolean;
  /** Static credentials. Unset: the AWS default provider chain (env, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Multipart part size in bytes (minimum 5 MiB). Default 16 MiB. */
  partSize?: number;
  /** Parts of one object uploaded at once. Default 4. */
  queueSize?: number;
  /** Where streams of unknown content are spooled before upload. Default: the OS temp dir. */
  spoolDir?: string;
  /** A ready client to use instead of building one from the options above (tests, shared pools). */
  client?: S3Client;
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** S3 error names that mean "these credentials may not do this". */
const ACCESS_ERRORS = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
]);

interface AwsErrorLike {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

function awsError(err: unknown): AwsErrorLike {
  return typeof err === 'object' && err !== null ? (err as AwsErrorLike) : {};
}

/** Splits `s3://bucket/prefix` into bucket and prefix (no leading or trailing '/'). */
function parseS3Root(rootUri: string): { bucket: string; prefix: string } {
  const hint = 'expected s3://bucket or s3://bucket/prefix (check FORGELINE_ARTIFACT_URI)';
  const match = /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(rootUri);
  if (!match) throw new ConfigError(`artifact root ${JSON.stringify(rootUri)} is not an s3:// URI: ${hint}`);
  const bucket = match[1] ?? '';
  if (!BUCKET_NAME.test(bucket)) {
    throw new ConfigError(`artifact root ${rootUri} names an invalid bucket ${JSON.stringify(bucket)} (3-63 lowercase letters, digits, dots, dashes): ${hint}`);
  }
  const prefix = (match[2] ?? '').replace(/\/+$/, '');
  try {
    validatePrefix(prefix);
  } catch (err) {
    throw new ConfigError(`artifact root ${rootUri} has an invalid prefix: ${(err as Error).message}`, { cause: err });
  }
  return { bucket, prefix };
}

export class S3ArtifactStore extends BaseArtifactStore {
  readonly rootUri: string;
  readonly bucket: string;
  /** Prepended to every key: the root's prefix plus '/', or '' at the bucket root. */
  private readonly keyPrefix: string;
  private readonly client: S3Client;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly spoolDir: string;
  private readonly endpoint: string | undefined;
  private readonly region: string | undefined;

  constructor(rootUri: string, options: S3ArtifactStoreOptions = {}) {
    super(options);
    const { bucket, prefix } = parseS3Root(rootUri);
    this.bucket = bucket;
    this.keyPrefix = prefix ? `${prefix}/` : '';
    this.rootUri = prefix ? `s3://${bucket}/${prefix}` : `s3://${bucket}`;

    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    this.queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isInteger(this.partSize) || this.partSize < MIN_PART_SIZE) {
      throw new Error(`S3ArtifactStore: partSize must be a whole number of bytes >= ${MIN_PART_SIZE} (5 MiB), got ${String(options.partSize)}`);
    }
    if (!Number.isInteger(this.queueSize) || this.queueSize < 1) {
      throw new Error(`S3ArtifactStore: queueSize must be a positive integer, got ${String(options.queueSize)}`);
    }
    this.spoolDir = options.spoolDir ?? os.tmpdir();
    this.endpoint = options.endpoint;
    this.region = options.client ? undefined : (options.region ?? 'us-east-1');

    if (options.endpoint !== undefined && !URL.canParse(options.endpoint)) {
      throw new ConfigError(`S3 endpoint ${JSON.stringify(options.endpoint)} is not a URL: check FORGELINE_S3_ENDPOINT (e.g. http://localhost:9000)`);
    }
    this.client = options.client ?? new S3Client(this.clientConfig(options));
  }

  private clientConfig(options: S3ArtifactStoreOptions): S3ClientConfig {
    return {
      region: this.region,
      forcePathStyle: options.forcePathStyle ?? false,
      ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
      ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
      // S3-compatible servers differ in their support for the CRC checksums the SDK now sends by
      // default. Our sha256 metadata already verifies content end to end, so against a custom
      // endpoint send checksums only where the API requires them.
      ...(options.endpoint !== undefined
        ? { requestChecksumCalculation: 'WHEN_REQUIRED' as const, responseChecksumValidation: 'WHEN_REQUIRED' as const }
        : {}),
    };
  }

  async put(key: string, body: Buffer | string | Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    validateKey(key);
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      const bytes = toBuffer(body);
      return this.upload(key, () => bytes, { sha256: sha256Hex(bytes), size: bytes.length }, options);
    }
    // The sha256 must be in the metadata before the first byte goes up: spool to disk to learn it.
    const spool = await mkdtemp(path.join(this.spoolDir, 'forgeline-spool-'));
    try {
      const staged = await stageFile(body, path.join(spool, 'body'));
      return await this.uploadFile(key, staged.tempPath, staged, options);
    } finally {
      await rm(spool, { recursive: true, force: true });
    }
  }

  async putFile(key: string, localPath: string, options: PutOptions = {}): Promise<ObjectInfo> {
    validateKey(key);
    return this.uploadFile(key, localPath, await hashFile(localPath), options);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }));
      return this.infoOf(key, out.ContentLength, out.Metadata, out.LastModified);
    } catch (err) {
      if (this.isNotFound(err)) return undefined;
      throw this.translate(err, this.uriOf(key));
    }
  }

  /** One page via ListObjectsV2; the cursor is S3's continuation token. Items carry no sha256. */
  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    validatePrefix(prefix);
    const pageSize = validatePageSize(options.pageSize);
    try {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.keyPrefix + prefix,
          MaxKeys: pageSize, // S3 returns at most 1000 whatever we ask
          ...(options.cursor !== undefined ? { ContinuationToken: options.cursor } : {}),
        }),
      );
      const items = (out.Contents ?? []).flatMap((object): ObjectInfo[] => {
        if (object.Key === undefined || !object.Key.startsWith(this.keyPrefix)) return [];
        return [this.infoOf(object.Key.slice(this.keyPrefix.length), object.Size, undefined, object.LastModified)];
      });
      return out.IsTruncated && out.NextContinuationToken ? { items, cursor: out.NextContinuationToken } : { items };
    } catch (err) {
      throw this.translate(err, this.uriOf(prefix));
    }
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }));
    } catch (err) {
      throw this.translate(err, this.uriOf(key));
    }
  }

  protected uriOf(key: string): string {
    return `s3://${this.bucket}/${this.keyPrefix}${key}`;
  }

  protected async openRead(key: string): Promise<OpenedObject> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }));
      if (!(out.Body instanceof Readable)) throw new Error(`GetObject ${this.uriOf(key)} returned no Node.js stream`);
      return {
        body: out.Body,
        info: this.infoOf(key, out.ContentLength, out.Metadata, out.LastModified),
        ...(out.ETag !== undefined ? { etag: out.ETag } : {}),
      };
    } catch (err) {
      if (this.isNotFound(err)) throw new ArtifactNotFoundError(this.uriOf(key), { cause: err });
      throw this.translate(err, this.uriOf(key));
    }
  }

  /**
   * A conditional PutObject: `If-None-Match: *` (create-if-absent) or `If-Match: <etag>`. S3
   * refuses with 412 PreconditionFailed when the condition fails, and with 404 when If-Match
   * names an object that is gone. A 409 ConditionalRequestConflict (another conditional write
   * to the key in flight) is retried, as AWS advises; its outcome then decides.
   *
   * Servers that ignore these headers (s3rver 3.7.1) make this an unconditional put: see README
   * "Atomic registry" for the servers tested.
   */
  async compareAndSwap(
    key: string,
    body: Buffer | string,
    expectedEtag: string | null,
    options: Pick<PutOptions, 'contentType'> = {},
  ): Promise<ConditionalPutResult> {
    validateKey(key);
    const bytes = toBuffer(body);
    const sha256 = sha256Hex(bytes);
    for (let attempt = 1; ; attempt++) {
      try {
        const out = await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.keyPrefix + key,
            Body: bytes,
            ContentLength: bytes.length,
            ContentType: options.contentType ?? 'application/octet-stream',
            Metadata: { [SHA256_METADATA]: sha256 },
            ...(expectedEtag === null ? { IfNoneMatch: '*' } : { IfMatch: expectedEtag }),
          }),
        );
        if (out.ETag === undefined) throw new Error(`PutObject ${this.uriOf(key)} returned no ETag`);
        return { written: true, etag: out.ETag, info: { key, uri: this.uriOf(key), size: bytes.length, sha256 } };
      } catch (err) {
        const { name, $metadata } = awsError(err);
        const status = $metadata?.httpStatusCode;
        if (name === 'PreconditionFailed' || status === 412 || (expectedEtag !== null && this.isNotFound(err))) {
          return { written: false, current: await this.currentVersion(key) };
        }
        if ((name === 'ConditionalRequestConflict' || status === 409) && attempt < 5) {
          await sleep(20 * attempt * (0.5 + Math.random()));
          continue;
        }
        throw this.translate(err, this.uriOf(key));
      }
    }
  }

  private async currentVersion(key: string): Promise<{ etag: string; info: ObjectInfo } | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }));
      return { etag: out.ETag ?? '', info: this.infoOf(key, out.ContentLength, out.Metadata, out.LastModified) };
    } catch (err) {
      if (this.isNotFound(err)) return undefined;
      throw this.translate(err, this.uriOf(key));
    }
  }

  // -------------------------------------------------------------------------------------------

  private infoOf(key: string, size: number | undefined, metadata: Record<string, string> | undefined, lastModified: Date | undefined): ObjectInfo {
    const sha256 = metadata?.[SHA256_METADATA];
    return {
      key,
      uri: this.uriOf(key),
      size: size ?? 0,
      ...(sha256 !== undefined && SHA256_HEX.test(sha256) ? { sha256 } : {}),
      ...(lastModified !== undefined ? { lastModified } : {}),
    };
  }

  /** Uploads a local file whose hash is known, re-hashing the bytes as they are sent. */
  private uploadFile(key: string, localPath: string, content: { sha256: string; size: number }, options: PutOptions): Promise<ObjectInfo> {
    // If the file changes after it was hashed, the stream fails at its end, before the upload
    // completes, so no object is left whose metadata does not match its bytes.
    const body = (): Readable => verifyingStream(createReadStream(localPath), pathToFileURL(localPath).href, content.sha256);
    return this.upload(key, body, content, options);
  }

  /**
   * The one write path: check the expected hash, skip when the same bytes are already stored,
   * otherwise upload (single PUT or multipart, as lib-storage decides from the size).
   */
  private async upload(
    key: string,
    body: () => Buffer | Readable,
    content: { sha256: string; size: number },
    options: PutOptions,
  ): Promise<ObjectInfo> {
    const uri = this.uriOf(key);
    if (options.sha256 !== undefined && options.sha256 !== content.sha256) {
      throw new ArtifactIntegrityError(uri, options.sha256, content.sha256);
    }
    const existing = await this.head(key);
    if (existing && existing.sha256 === content.sha256 && existing.size === content.size) return existing;

    const upload = new Upload({
      client: this.client,
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false, // abort the multipart upload on failure: no orphaned parts
      params: {
        Bucket: this.bucket,
        Key: this.keyPrefix + key,
        Body: body(),
        ContentLength: content.size,
        ContentType: options.contentType ?? 'application/octet-stream',
        Metadata: { [SHA256_METADATA]: content.sha256 },
      },
    });
    try {
      await upload.done();
    } catch (err) {
      throw this.translate(err, uri);
    }
    return { key, uri, size: content.size, sha256: content.sha256 };
  }

  private isNotFound(err: unknown): boolean {
    const { name, $metadata } = awsError(err);
    if (name === 'NoSuchBucket') return false;
    return name === 'NoSuchKey' || name === 'NotFound' || $metadata?.httpStatusCode === 404;
  }

  /** Configuration faults become ConfigError with the fix; anything else is returned as is. */
  private translate(err: unknown, uri: string): unknown {
    const { name, message, $metadata } = awsError(err);
    const status = $metadata?.httpStatusCode;
    const endpoint = this.endpoint
      ? `FORGELINE_S3_ENDPOINT is ${this.endpoint}`
      : 'FORGELINE_S3_ENDPOINT is unset, so this is AWS S3; set it to use an S3-compatible server';

    if (name === 'NoSuchBucket') {
      return new ConfigError(
        `S3 bucket "${this.bucket}" does not exist (artifact root ${this.rootUri}): create it, or set ` +
          `FORGELINE_ARTIFACT_URI to an existing bucket (${endpoint})`,
        { cause: err },
      );
    }
    if ((name !== undefined && ACCESS_ERRORS.has(name)) || status === 403) {
      // HEAD responses have no body, so the SDK can only name their errors "Unknown".
      const what = name !== undefined && name !== 'Unknown' ? name : `HTTP ${status ?? 403}`;
      return new ConfigError(
        `S3 refused access to ${uri} (${what}): check the AWS credentials (AWS_ACCESS_KEY_ID and ` +
          `AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role) and that they may read and write ` +
          `${this.rootUri} (${endpoint})`,
        { cause: err },
      );
    }
    if (name === 'CredentialsProviderError') {
      return new ConfigError(
        `no AWS credentials found for ${this.rootUri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ` +
          `AWS_PROFILE (${message ?? name})`,
        { cause: err },
      );
    }
    if (name === 'PermanentRedirect' || status === 301) {
      return new ConfigError(
        `S3 bucket "${this.bucket}" is not in region ${this.region ?? '(client default)'}: set AWS_REGION to the bucket's region`,
        { cause: err },
      );
    }
    return err;
  }
}
