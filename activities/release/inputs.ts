import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplicationFailure } from '@temporalio/activity';
import { hashFile, listLocalFiles, manifestDigest } from '../../src/adapters/artifact-common';
import { ErrorType } from '../../src/contracts/errors';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import type { ArtifactStore } from '../../src/ports/artifact-store';
import type { ModelRegistry } from '../../src/registry/model-registry';

/** sha256 naming a local directory's content, computed as a published manifest's digest is. */
export async function digestDirectory(dir: string): Promise<string> {
  const files = await listLocalFiles(dir);
  return manifestDigest(await Promise.all(files.map(async (p) => ({ path: p, sha256: (await hashFile(path.join(dir, p))).sha256 }))));
}

function invalid(message: string): never {
  throw ApplicationFailure.nonRetryable(message, ErrorType.InvalidSpec);
}

/** The store key prefix a dataset or model URI names, when it lives in the artifact store. */
function storePrefix(store: ArtifactStore, uri: string): string | undefined {
  if (uri.startsWith('artifact://')) return uri.slice('artifact://'.length).replace(/^\/+/, '');
  const root = store.rootUri.replace(/\/$/, '') + '/';
  return uri.startsWith(root) ? uri.slice(root.length) : undefined;
}

/**
 * Make the release's dataset available locally (a directory with train.jsonl and eval.jsonl) and
 * check its content against `dataset.sha256` (the digest of the published directory).
 */
export async function localDataset(store: ArtifactStore, spec: ReleaseSpec, cacheDir: string): Promise<string> {
  const { uri, sha256 } = spec.dataset;
  let dir: string;
  if (uri.startsWith('file://')) {
    dir = fileURLToPath(uri);
    if (!existsSync(dir)) invalid(`dataset.uri: ${dir} does not exist on worker ${process.pid}; publish the dataset to the artifact store and use artifact://<prefix>`);
    const actual = await digestDirectory(dir);
    if (actual !== sha256) invalid(`dataset.sha256: ${uri} has digest ${actual}, the spec says ${sha256}`);
  } else {
    const prefix = storePrefix(store, uri);
    if (prefix === undefined) invalid(`dataset.uri: ${uri} is outside the artifact store ${store.rootUri}; use artifact://<prefix> or a URI under the store root`);
    const manifest = await store.readManifest(prefix);
    if (!manifest) invalid(`dataset.uri: nothing is published at ${uri} (no MANIFEST.json)`);
    if (manifest.digest !== sha256) invalid(`dataset.sha256: ${uri} has digest ${manifest.digest}, the spec says ${sha256}`);
    dir = path.join(cacheDir, 'datasets', sha256.slice(0, 16));
    if (!existsSync(path.join(dir, '.complete'))) {
      await store.fetchDirectory(prefix, dir);
      await writeFile(path.join(dir, '.complete'), sha256);
    }
  }
  for (const f of ['train.jsonl', 'eval.jsonl']) {
    if (!existsSync(path.join(dir, f))) invalid(`dataset.uri: ${uri} has no ${f}; a dataset is a directory with train.jsonl and eval.jsonl`);
  }
  return dir;
}

/** Local directory of the base model: a path as given, or a registry version fetched once. */
export async function localBaseModel(store: ArtifactStore, registry: ModelRegistry, spec: ReleaseSpec, cacheDir: string): Promise<{ dir: string; ref: string; digest?: string }> {
  if ('path' in spec.base) {
    if (!existsSync(path.join(spec.base.path, 'config.json'))) invalid(`base.path: ${spec.base.path} is not a model directory (no config.json) on this worker`);
    return { dir: spec.base.path, ref: `path:${spec.base.path}` };
  }
  const version = await registry.resolve(spec.base.ref).catch((err: Error) => invalid(`base.ref: ${err.message}`));
  return { dir: await fetchPublished(store, version.artifact.prefix, cacheDir), ref: version.ref, digest: version.artifact.digest };
}

/** Fetch a published directory into the worker's cache, once per digest. */
export async function fetchPublished(store: ArtifactStore, prefix: string, cacheDir: string): Promise<string> {
  const manifest = await store.readManifest(prefix);
  if (!manifest) throw ApplicationFailure.nonRetryable(`${prefix} is not a published directory`, ErrorType.ArtifactNotFound);
  const dir = path.join(cacheDir, 'artifacts', manifest.digest.slice(0, 16));
  if (!existsSync(path.join(dir, '.complete'))) {
    await store.fetchDirectory(prefix, dir);
    await writeFile(path.join(dir, '.complete'), manifest.digest);
  }
  return dir;
}
